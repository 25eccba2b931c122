"""What an officer can do to a tip, each action one audited change in the caller's transaction.

The staff UI (``triage.tips``) checks who may act and which values were offered, opens the
tip's key where an action needs it, and calls one of these; the change, its notification and
its audit event are written here, so every surface that acts on a tip acts the same way.
An action that cannot apply raises :class:`ActionRefused` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import PrivateKey, PublicKey
from tipline import informant
from tipline.audit import actions, record
from tipline.keychain import grant_tip_to_unit, officers_reaching_tip, transfer_tip
from tipline.models import (
    CLOSED_STATUSES,
    KEY_HOLDING_ROLES,
    Channel,
    Direction,
    Message,
    MessageKind,
    Notification,
    NotificationKind,
    Officer,
    Tip,
    TipStatus,
    Unit,
    new_public_id,
    utcnow,
)
from tipline.outgoing import queue_outbound, seal_body
from tipline.time_rules import ZALO_REPLY_WINDOW


class Refusal(StrEnum):
    REPLY_WINDOW_CLOSED = "reply_window_closed"
    INFORMANT_STOPPED = "informant_stopped"
    NO_PARENT_UNIT = "no_parent_unit"
    NOT_A_DUPLICATE = "not_a_duplicate"


class ActionRefused(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where (the address goes into the audit event only)."""

    officer: Officer
    client_address: str | None


class Field(StrEnum):
    STATUS = "status"
    PRIORITY = "priority"
    CATEGORY = "category"


FIELD_ACTIONS = {
    Field.STATUS: actions.STATUS_CHANGE,
    Field.PRIORITY: actions.PRIORITY_CHANGE,
    Field.CATEGORY: actions.CATEGORY_CHANGE,
}


def _record(db: Session, actor: Actor, tip: Tip, action: str, **detail: str) -> None:
    record(
        db,
        action=action,
        actor=actor.officer,
        object_id=tip.public_id,
        client_address=actor.client_address,
        detail=detail or None,
    )


def informant_last_message_at(tip: Tip) -> datetime:
    """When the informant last wrote to the OA, in this tip or a later one: Zalo counts its
    reply windows per user and OA, not per tip."""
    address = tip.reply_address
    if address is not None and address.last_inbound_at > tip.last_inbound_at:
        return address.last_inbound_at
    return tip.last_inbound_at


def reply_open(tip: Tip, now: datetime) -> bool:
    """Zalo lets an OA answer for 7 days after the informant's last message (free for the
    first 48 hours, then paid: ``time_rules.reply_window``); the web follow-up page
    (/tra-cuu) has no such window."""
    return tip.channel == Channel.WEB or informant_last_message_at(tip) >= now - ZALO_REPLY_WINDOW


def set_field(
    db: Session, tip: Tip, actor: Actor, field: Field, value: str, transit: PublicKey | None
) -> None:
    """Status, priority or category: one plaintext field, one audited change. A status
    change tells the informant (``informant.on_status_change``) where that applies."""
    old = getattr(tip, field.value) or ""
    setattr(tip, field.value, value)
    if field is Field.STATUS:
        tip.closed_at = utcnow() if value in CLOSED_STATUSES else None
        if transit is None:
            raise ValueError("a status change may thank the informant: it needs the transit key")
        informant.on_status_change(db, tip, transit)
    _record(db, actor, tip, FIELD_ACTIONS[field], **{"from": old, "to": value})


def assignable_officers(db: Session, unit_ids: list[int]) -> set[str]:
    """Public ids of the active key-holding accounts of ``unit_ids`` (no auditor, no admin)."""
    return set(
        db.scalars(
            select(Officer.public_id).where(
                Officer.unit_id.in_(unit_ids),
                Officer.active.is_(True),
                Officer.role.in_(list(KEY_HOLDING_ROLES)),
            )
        )
    )


def officers_who_can_open(db: Session, tip: Tip, unit_ids: list[int]) -> set[str]:
    """Public ids of the :func:`assignable_officers` of ``unit_ids`` whose key chain leads to
    ``tip``: a tip is assigned only to someone who can open it (not, say, by a commander to
    an officer of a sibling commune, or to one still waiting for a key holder's approval)."""
    reach = officers_reaching_tip(db, tip)
    if not reach:
        return set()
    return set(
        db.scalars(
            select(Officer.public_id).where(
                Officer.id.in_(reach),
                Officer.unit_id.in_(unit_ids),
                Officer.active.is_(True),
                Officer.role.in_(list(KEY_HOLDING_ROLES)),
            )
        )
    )


def assign(db: Session, tip: Tip, actor: Actor, assignee: Officer) -> None:
    tip.assignee = assignee
    if assignee.id != actor.officer.id:  # taking a tip yourself needs no notice
        db.add(
            Notification(officer_id=assignee.id, tip_id=tip.id, kind=NotificationKind.ASSIGNED_TIP)
        )
    _record(db, actor, tip, actions.ASSIGN, assignee=assignee.public_id)


def add_note(db: Session, tip: Tip, actor: Actor, text: str) -> Message:
    """An internal note, sealed to the tip like its messages; the informant never sees it."""
    note = Message(
        public_id=new_public_id(),
        tip=tip,
        direction=Direction.NOTE,
        kind=MessageKind.NOTE,
        sealed_body=b"",
        author_id=actor.officer.id,
    )
    note.sealed_body = seal_body(tip, note, {"text": text})
    db.add(note)
    db.flush()
    _record(db, actor, tip, actions.NOTE_ADDED)
    return note


def reply(db: Session, tip: Tip, actor: Actor, text: str, transit: PublicKey) -> Message:
    """Queue an answer to the informant; refused once they sent STOP, or once Zalo's reply
    window has closed."""
    if tip.informant_stopped_at is not None:
        raise ActionRefused(Refusal.INFORMANT_STOPPED)
    if not reply_open(tip, utcnow()):
        raise ActionRefused(Refusal.REPLY_WINDOW_CLOSED)
    message = queue_outbound(db, tip, text, transit=transit, author=actor.officer)
    if tip.responded_at is None:
        tip.responded_at = utcnow()  # the response deadline is met (web.labels.deadlines)
    db.flush()
    _record(db, actor, tip, actions.REPLY_QUEUED, message=message.public_id)
    return message


def arrive(tip: Tip) -> None:
    """The tip reached a new unit: its SLA clock starts again there, unopened, and so do its
    reminders (tipline.routing.escalation counts ``escalation_level`` from the tip's unit)."""
    tip.arrived_at = utcnow()
    tip.unit_opened_at = None
    tip.escalation_level = 0


def opened_by(tip: Tip, officer: Officer) -> None:
    """An officer opened the tip: the SLA clock stops only for an officer of the tip's own unit
    (a commander above glancing at it leaves the unit's deadline running)."""
    if officer.unit_id != tip.unit_id:
        return
    now = utcnow()
    if tip.unit_opened_at is None:
        tip.unit_opened_at = now
    if tip.first_opened_at is None:
        tip.first_opened_at = now


def take(db: Session, tip: Tip, actor: Actor, transit: PublicKey) -> None:
    """ "Nhận xử lý": the acting officer assigns the tip to themself; a new tip becomes
    in progress. Each change is its own audited event, as if made by hand."""
    if tip.assignee_id != actor.officer.id:
        assign(db, tip, actor, actor.officer)
    if tip.status == TipStatus.NEW:
        set_field(db, tip, actor, Field.STATUS, TipStatus.IN_PROGRESS, transit)


def transfer_targets(db: Session, tip: Tip) -> list[Unit]:
    """Units of the same province tree (the tree below the topmost ancestor), except this one."""
    root = tip.unit
    while root is not None and root.parent is not None:
        root = root.parent
    if root is None:
        return []
    ids = [root.id]
    frontier = [root.id]
    while frontier:
        frontier = list(db.scalars(select(Unit.id).where(Unit.parent_id.in_(frontier))))
        ids += frontier
    return [
        unit
        for unit in db.scalars(select(Unit).where(Unit.id.in_(ids)).order_by(Unit.name))
        if unit.id != tip.unit_id and unit.current_key is not None
    ]


def transfer(db: Session, tip: Tip, actor: Actor, tip_key: PrivateKey, target: Unit) -> None:
    """Hand the tip to ``target``: its key re-sealed to that unit, the assignee cleared."""
    origin = tip.unit.code if tip.unit else ""
    transfer_tip(db, tip, tip_key, target)
    tip.assignee = None
    arrive(tip)
    db.add(Notification(unit_id=target.id, tip_id=tip.id, kind=NotificationKind.TRANSFERRED))
    _record(db, actor, tip, actions.TRANSFER, from_unit=origin, to_unit=target.code)


def escalate(db: Session, tip: Tip, actor: Actor, tip_key: PrivateKey) -> Unit:
    """Raise the tip to the parent unit (the unit keeps its own grant); the parent."""
    parent = tip.unit.parent if tip.unit else None
    if parent is None or parent.current_key is None:
        raise ActionRefused(Refusal.NO_PARENT_UNIT)
    grant_tip_to_unit(db, tip, tip_key, parent)
    origin = tip.unit.code if tip.unit else ""
    tip.unit = parent
    tip.escalated_at = utcnow()
    arrive(tip)
    db.add(Notification(unit_id=parent.id, tip_id=tip.id, kind=NotificationKind.ESCALATED))
    _record(db, actor, tip, actions.ESCALATE, from_unit=origin, to_unit=parent.code)
    return parent


def mark_duplicate(db: Session, tip: Tip, actor: Actor, original: Tip | None) -> Tip:
    """Close ``tip`` as a duplicate of ``original``: a tip the officer may open (the caller
    checks their units and key chain: triage.access.other_tip), or None, refused."""
    if original is None or original.id == tip.id:
        raise ActionRefused(Refusal.NOT_A_DUPLICATE)
    tip.duplicate_of_id = original.id
    tip.status = TipStatus.DUPLICATE
    tip.closed_at = utcnow()
    _record(db, actor, tip, actions.STATUS_CHANGE, to=TipStatus.DUPLICATE, of=original.public_id)
    return original
