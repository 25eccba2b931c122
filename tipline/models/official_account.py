"""A Zalo Official Account attached to a unit, with its OAuth tokens sealed at rest."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Column, ForeignKey, LargeBinary, MetaData, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.models.base import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from tipline.models.unit import Unit


class OfficialAccount(Base):
    __tablename__ = "official_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    oa_id: Mapped[str] = mapped_column(String(32), unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    # {"access_token", "refresh_token"} sealed to the relay key (the outbound worker's key):
    # refresh tokens are single-use, so the pair is replaced in one transaction before use.
    sealed_tokens: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_generation: Mapped[int] = mapped_column(default=0)
    # Zalo refused the refresh token: an OA admin must consent again (tipline.zalo.tokens).
    token_error: Mapped[str | None] = mapped_column(String(200))
    # When it was refused: the scheduled refresh tries such an OA again once a day, in case the
    # app's credentials, not the grant, were at fault.
    token_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the current pair was stored (consent, set-tokens, refresh): its refresh token dies
    # three months later unless used (tipline.zalo.status).
    tokens_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the OA's last message event was expanded (tipline.intake.expansion).
    last_webhook_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last failure of a send or a refresh that is the OA's, not one informant's (a missing
    # token, a configuration error, Zalo unreachable); cleared by the next successful send.
    # Zalo's code and words only: never a token, a user id or a text.
    last_error: Mapped[str | None] = mapped_column(String(200))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    unit: Mapped[Unit] = relationship(back_populates="official_accounts")


# What an OA's token state is computed from, never the tokens (migration 0031, a view): all
# that `tipline metrics` and its PostgreSQL role read of the OAs (tipline.migrate). In a
# MetaData of its own: a view, not a table the models create.
OA_TOKEN_FACTS = Table(
    "oa_token_facts",
    MetaData(),
    Column("oa_id", String(32)),
    Column("has_tokens", Boolean),
    Column("has_error", Boolean),
    Column("access_expires_at", UTCDateTime),
    Column("tokens_updated_at", UTCDateTime),
)
