"""What the system did with the tips, counted three independent ways.

1. The database: one inbound message per acknowledged ``msg_id`` (found by the keyed digest
   intake stores), its tip dispatched, one ``tip_dispatched`` audit event per tip, one
   outbound acknowledgement per tip and its delivery state, nothing left in the outbox.
2. The audit chain: ``tip_dispatched`` events are counted there, not in ``tips``.
3. The Zalo simulator's record of what the OA sent: one acknowledgement per tip, found by the
   tip's receipt code in the text, to the user who sent the tip.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy import Engine, func, select

from tests.faults.stream import Tip as SentTip
from tipline.audit import actions
from tipline.config import Config
from tipline.intake.recording import (
    dedup_key,
)
from tipline.models import (
    AuditEvent,
    Delivery,
    Direction,
    InboundEvent,
    Message,
    OutboxEntry,
    Tip,
)

RECEIPT = re.compile(r"TL-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}")


@dataclass
class Ledger:
    acknowledged: int = 0
    stored: int = 0  # acknowledged msg_ids with an inbound message
    missing: list[str] = field(default_factory=list)  # acknowledged msg_ids with none
    unexpanded: int = 0  # stored events not yet turned into tips
    tips: int = 0
    undispatched: list[str] = field(default_factory=list)
    dispatch_events: Counter[str] = field(default_factory=Counter)  # tip → audit events
    acks_queued: Counter[str] = field(default_factory=Counter)  # tip → outbound messages
    acks_unsent: list[str] = field(default_factory=list)  # tip ids with an ack not yet sent
    acks_failed: list[str] = field(default_factory=list)
    outbox_pending: int = 0
    zalo_acks: Counter[str] = field(default_factory=Counter)  # receipt code → OA sends
    zalo_ack_times: dict[str, list[float]] = field(default_factory=dict)  # code → wall times
    zalo_wrong_user: list[str] = field(default_factory=list)
    receipts: dict[str, str] = field(default_factory=dict)  # tip public id → receipt code

    @property
    def drained(self) -> bool:
        """Everything acknowledged went all the way: stored, dispatched, answered on Zalo."""
        return (
            not self.missing
            and self.unexpanded == 0
            and not self.undispatched
            and not self.acks_unsent
            and self.outbox_pending == 0
            and all(self.zalo_acks[code] >= 1 for code in self.receipts.values())
        )

    @property
    def progress(self) -> tuple[int, ...]:
        """Changes whenever anything moved on."""
        return (
            self.stored,
            self.unexpanded,
            len(self.undispatched),
            len(self.acks_unsent),
            self.outbox_pending,
            sum(self.zalo_acks.values()),
        )

    def duplicates(self) -> dict[str, dict[str, int]]:
        return {
            "dispatch_events": {t: n for t, n in self.dispatch_events.items() if n != 1},
            "acks_queued": {t: n for t, n in self.acks_queued.items() if n != 1},
            "zalo_acks": {c: n for c, n in self.zalo_acks.items() if n > 1},
        }

    def summary(self) -> dict[str, object]:
        return {
            "acknowledged": self.acknowledged,
            "stored": self.stored,
            "missing": len(self.missing),
            "unexpanded": self.unexpanded,
            "tips": self.tips,
            "dispatched": self.tips - len(self.undispatched),
            "dispatch_events": sum(self.dispatch_events.values()),
            "acks_sent_to_zalo": sum(self.zalo_acks[c] for c in self.receipts.values()),
            "acks_unsent": len(self.acks_unsent),
            "acks_failed": len(self.acks_failed),
            "outbox_pending": self.outbox_pending,
        }


def take(engine: Engine, config: Config, base_url: str, sent: list[SentTip]) -> Ledger:
    ledger = Ledger()
    acknowledged = {
        dedup_key(config, t.oa, t.msg_id): t for t in sent if t.acknowledged_at is not None
    }
    ledger.acknowledged = len(acknowledged)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.dedup_key, Tip.public_id)
            .join(Tip, Tip.id == Message.tip_id)
            .where(Message.direction == Direction.INBOUND, Message.dedup_key.is_not(None))
        ).all()
        tip_of = {key: tip for key, tip in rows if key in acknowledged}
        ledger.stored = len(tip_of)
        ledger.missing = [t.msg_id for key, t in acknowledged.items() if key not in tip_of]
        ledger.unexpanded = conn.execute(
            select(func.count()).where(InboundEvent.processed_at.is_(None))
        ).scalar_one()
        tip_ids = set(tip_of.values())
        user_of: dict[str, set[str]] = defaultdict(set)
        for key, tip in tip_of.items():
            user_of[tip].add(acknowledged[key].user)
        tips = conn.execute(
            select(Tip.public_id, Tip.receipt_code, Tip.dispatched_at).where(
                Tip.public_id.in_(tip_ids)
            )
        ).all()
        ledger.tips = len(tips)
        ledger.receipts = {row.public_id: row.receipt_code for row in tips}
        ledger.undispatched = [row.public_id for row in tips if row.dispatched_at is None]
        ledger.dispatch_events = Counter(
            conn.scalars(
                select(AuditEvent.object_id).where(AuditEvent.action == actions.TIP_DISPATCHED)
            ).all()
        )
        for tip_id in tip_ids:
            ledger.dispatch_events.setdefault(tip_id, 0)
        outbound = conn.execute(
            select(Tip.public_id, Message.delivery)
            .join(Tip, Tip.id == Message.tip_id)
            .where(Message.direction == Direction.OUTBOUND)
        ).all()
        for tip_id, delivery in outbound:
            ledger.acks_queued[tip_id] += 1
            if delivery == Delivery.QUEUED:
                ledger.acks_unsent.append(tip_id)
            elif delivery != Delivery.SENT:
                ledger.acks_failed.append(tip_id)
        ledger.outbox_pending = conn.execute(
            select(func.count()).where(OutboxEntry.enqueued_at.is_(None))
        ).scalar_one()
    calls = httpx.get(f"{base_url}/_sim/messages", timeout=30).json()
    code_owner = {code: tip for tip, code in ledger.receipts.items()}
    for call in calls:
        if call["error"] != 0:
            continue
        for code in RECEIPT.findall(call["text"] or ""):
            ledger.zalo_acks[code] += 1
            at = datetime.fromisoformat(call["time"]).timestamp()
            ledger.zalo_ack_times.setdefault(code, []).append(at)
            tip = code_owner.get(code)
            if tip is not None and call["user_id"] not in user_of[tip]:
                ledger.zalo_wrong_user.append(code)
    return ledger
