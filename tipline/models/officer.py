"""A staff account: duty officer, commander, auditor or admin."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keys import PublicKey
from tipline.models.base import Base, UTCDateTime, new_public_id, utcnow
from tipline.models.key_trust import officer_subject
from tipline.models.sealed_fields import officer_binding

if TYPE_CHECKING:
    from tipline.models.unit import Unit


class Officer(Base):
    __tablename__ = "officers"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    # keys.certify: the public key signed with this row's identity (tipline.models.key_trust).
    key_certificate: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    # The private key, wrapped under Argon2id(password) and under Argon2id(recovery code).
    key_wrapped_by_password: Mapped[bytes] = mapped_column(LargeBinary)
    key_wrapped_by_recovery: Mapped[bytes] = mapped_column(LargeBinary)
    # The TOTP secret, sealed to the officer's own key: readable only after the password.
    sealed_totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(default=True)
    on_duty: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column()
    # Set when the officer proved their authenticator works (QR enrolment at first login).
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The password was set by an admin (a new account, a reset): changed at the next login.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # Raised to end every session of the account (disable, recovery, resets, moves): a
    # session remembers the value it started with and is refused once it differs.
    session_epoch: Mapped[int] = mapped_column(default=0)
    # The notification list was last looked at (0026_console): later notices are unread.
    notifications_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    unit: Mapped[Unit | None] = relationship()

    @property
    def public(self) -> PublicKey:
        return PublicKey.from_bytes(self.public_key).claiming(
            officer_subject(self.public_id), self.key_certificate
        )

    @property
    def key_binding(self) -> str:
        return officer_binding(self.public_id)
