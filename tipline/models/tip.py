"""A tip: one informant's report, its metadata in plaintext, its content sealed to its key."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keys import PublicKey
from keys.random import CROCKFORD
from tipline.models.base import Base, UTCDateTime, new_public_id, utcnow
from tipline.models.enums import (
    CLOSED_STATUSES,
    Channel,
    Priority,
    TipStatus,
)
from tipline.models.key_trust import tip_subject
from tipline.models.sealed_fields import (
    tip_binding,
)

if TYPE_CHECKING:
    from tipline.models.message import Message
    from tipline.models.officer import Officer
    from tipline.models.reply_address import ReplyAddress
    from tipline.models.unit import Unit


class Tip(Base):
    __tablename__ = "tips"
    __table_args__ = (
        Index("ix_tips_alias_status", "informant_alias", "status"),
        Index("ix_tips_undispatched", "dispatched_at", "created_at"),
        # The inbox's count and counters, and the search's newest tips (0007_triage_indexes).
        Index("ix_tips_unit_status", "unit_id", "status", "dispatched_at", "category"),
        Index("ix_tips_unit_created", "unit_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    # Given to the informant; lets them and officers refer to the tip without any identity.
    receipt_code: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=TipStatus.NEW, index=True)
    priority: Mapped[str] = mapped_column(String(16), default=Priority.NORMAL)
    category: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16), default=Channel.ZALO)
    # The OA that received the tip (an OA id, not the informant's).
    oa_id: Mapped[str | None] = mapped_column(String(32), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    # HMAC(alias key, OA id + Zalo user id): links one informant's tips, reveals no one.
    informant_alias: Mapped[str] = mapped_column(String(64))
    reply_address_id: Mapped[int | None] = mapped_column(ForeignKey("reply_addresses.id"))
    # The informant sent STOP / XÓA after this tip: it is never linked to an address again.
    informant_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # ... by withdrawing their consent on Zalo (``user_withdraw``, 0019): the same cut-off, and
    # the alias was replaced by a random one, so their Zalo id no longer leads here.
    informant_withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    # keys.certify: the public key signed with this row's identity (tipline.models.key_trust).
    key_certificate: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_outbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatch_attempts: Mapped[int] = mapped_column(default=0)
    # Why a tip is held undispatched (e.g. its OA is attached to no unit yet); never content.
    dispatch_error: Mapped[str | None] = mapped_column(String(200))
    # Triage and routing metadata (plaintext by design: the inbox lists tips without
    # decrypting them). The router's candidates and reasons quote the tip's text, so they are
    # sealed to the tip key; only the outcome is plain.
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"), index=True)
    needs_location: Mapped[bool] = mapped_column(default=False)
    location_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    routing_auto: Mapped[bool | None] = mapped_column()
    routing_confidence: Mapped[float | None] = mapped_column()
    sealed_routing: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A location the informant shared after being asked, sealed to the transit key for the
    # re-route job only, and erased by it (seconds later): follow-ups to a dispatched tip are
    # otherwise sealed to the tip key, which no worker holds.
    sealed_reroute: Mapped[bytes | None] = mapped_column(LargeBinary)
    # First opened by an officer of the unit it was in (a commander above glancing at it does
    # not count: 0026_console).
    first_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The SLA clock (0026_console): when the tip reached its current unit (None: at dispatch),
    # when an officer of that unit first opened it there (reset by a transfer or escalation),
    # and when an officer first answered the informant.
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unit_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation_level: Mapped[int] = mapped_column(default=0)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("tips.id"))
    # After closure the informant is asked for a 1–5 score (tipline.informant): when the
    # question went out (answers count for 7 days) and their answer, a number only
    # (0009_satisfaction).
    satisfaction_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    # Web-form tips only (0011_web_intake): the tip private key wrapped under Argon2id of the
    # passphrase the informant was shown once, so they (and only they) can read the officers'
    # replies at /tra-cuu. The server never keeps the passphrase.
    informant_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Retention (0012_retention, tipline.retention): when the unit was warned that the closed
    # tip nears its end, and when it was crypto-shredded (grants and sealed content deleted;
    # only this plaintext metadata stays, for statistics).
    retention_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shredded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    unit: Mapped[Unit | None] = relationship()
    assignee: Mapped[Officer | None] = relationship(foreign_keys=[assignee_id])
    reply_address: Mapped[ReplyAddress | None] = relationship()
    messages: Mapped[list[Message]] = relationship(
        back_populates="tip", order_by="Message.id", cascade="all, delete-orphan"
    )

    @property
    def public(self) -> PublicKey:
        return PublicKey.from_bytes(self.public_key).claiming(
            tip_subject(self.public_id), self.key_certificate
        )

    @property
    def key_binding(self) -> str:
        return tip_binding(self.public_id)

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def arrived_in_unit_at(self) -> datetime:
        """When the SLA clock started: arrival in the current unit (dispatch, transfer,
        escalation)."""
        return self.arrived_at or self.dispatched_at or self.created_at

    @property
    def pseudonym(self) -> str:
        """What officers call the informant: "Nguồn K7Q2-M9XA", derived from the alias only."""
        return pseudonym_of(self.informant_alias)


PSEUDONYM_BITS = 40


def pseudonym_of(alias: str) -> str:
    """The alias's first 40 bits as 8 Crockford base32 characters in two groups of four.

    The alias is the hex of an HMAC, so its bits are already uniform. 16 bits (four hex
    characters) gave even odds of two informants of one OA sharing a name at about 300
    informants; with 40 the odds are about one in 90,000 at 5,000 informants. Crockford's
    alphabet has no I, L, O or U, so an officer can read one aloud or copy it by hand.
    """
    bits = int(alias[: PSEUDONYM_BITS // 4], 16)
    code = "".join(CROCKFORD[(bits >> shift) & 31] for shift in range(PSEUDONYM_BITS - 5, -1, -5))
    return f"Nguồn {code[:4]}-{code[4:]}"
