"""The dispatch job: from the transit grant to the unit that should act on the tip.

Idempotent: the first run to claim the tip (an UPDATE guarded by ``dispatched_at IS NULL``)
dispatches it; any later or concurrent run finds it claimed and stops.

The job is the one moment a worker can read the tip (through the transit grant, which it
then drops), so everything that needs the words happens here: the route (place names, a
shared point), the suggested category and priority, the sealed routing record. A tip the
router cannot place stays with the OA's unit, flagged ``needs_location``; the informant is
asked once for a location. Only the OA's unit and the units above it hold a tip that has not
been routed: no candidate commune is granted it in advance (each could read a tip that may
never be theirs). The location, when it comes, is sealed into the routing record and the unit
is notified; an officer who holds the tip transfers it (``reroute_tip``).

Procedure questions ("hỏi thủ tục") are answered with a pointer to guidance and closed at
once: status ``resolved``, category ``hoi_thu_tuc``, no assignee. An inbox that lists open
tips (``Tip.is_open``) never shows them; they stay readable in the unit's archive.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from keys import PrivateKey, PublicKey
from tipline import audit, runtime
from tipline.jobs.relay import drain
from tipline.keychain import (
    drop_transit_grant,
    open_tip_from_transit,
    transit_grants,
)
from tipline.models import (
    Channel,
    Delivery,
    Direction,
    Holder,
    HoldReason,
    KeyGrant,
    Message,
    MessageKind,
    NotificationKind,
    Priority,
    Subject,
    Tip,
    TipStatus,
    Unit,
    UnitKey,
    key_trust,
    new_public_id,
    utcnow,
)
from tipline.models.sealed_fields import (
    KEY_GRANT,
    MESSAGE_BODY,
    MESSAGE_FOR_RELAY,
    TIP_REROUTE,
)
from tipline.outbox import add_jobs
from tipline.routing import route_tip
from tipline.routing.classify import PROCEDURE_REPLY, classify
from tipline.routing.duty import DutyRoster, assign, notify
from tipline.routing.escalation import schedule
from tipline.routing.geo import Boundaries, boundaries_from_config
from tipline.routing.places import gazetteer
from tipline.routing.service import (
    decide,
    intake_unit,
    oa_owner,
    seal_decision,
)
from tipline.transit import TransitKeyLost

log = logging.getLogger(__name__)

LOCATION_REQUEST = (
    "Để chuyển tin báo đến đúng Công an xã/phường, bạn vui lòng chia sẻ vị trí nơi xảy ra sự "
    "việc (trong Zalo: bấm dấu +, chọn Vị trí). Nếu không tiện, bạn có thể bỏ qua tin này."
)


# A web-form informant reads replies at /tra-cuu and answers there, in text.
WEB_LOCATION_REQUEST = (
    "Để chuyển tin báo đến đúng Công an xã/phường, bạn vui lòng trả lời tại đây tên xã/phường, "
    "thôn/ấp hoặc địa chỉ nơi xảy ra sự việc."
)


def acknowledgement_text(tip: Tip, unit: Unit) -> str:
    """The informant's receipt, in Vietnamese, with the code to quote when following up."""
    follow_up = (
        "Bạn có thể xem trả lời và bổ sung thông tin tại trang Tra cứu, "
        "bằng mã tiếp nhận và cụm mật khẩu đã nhận."
        if tip.channel == Channel.WEB
        else "Bạn có thể nhắn thêm thông tin, hình ảnh hoặc vị trí trong cuộc trò chuyện này."
    )
    commands = (
        ""
        if tip.channel == Channel.WEB
        else '\nNhắn "tình trạng" để xem tình trạng tin báo; nhắn "XÓA" để xóa địa chỉ '
        "liên lạc của bạn."
    )
    # Crime reports (tố giác, tin báo về tội phạm) are governed by the Criminal Procedure Code
    # 2015, which protects the informant; the Law on Denunciations (Luật Tố cáo) is about
    # complaints against officials and does not apply.
    return (
        f"{unit.name} đã nhận được tin báo của bạn.\n"
        f"Mã tiếp nhận: {tip.receipt_code}\n"
        "Danh tính người báo tin được giữ bí mật theo Bộ luật Tố tụng hình sự. "
        + follow_up
        + commands
        + "\nKhẩn cấp, cần can thiệp ngay: gọi 113."
    )


def _land_unrouted(session: Session, tip: Tip, now: datetime) -> str:
    """The transit epoch's key is gone (the key store restarted): nobody can route the tip
    automatically. It lands, unrouted, in its intake unit, which holds a grant of its key
    (tipline.intake.expansion), for its officers to read and route by hand."""
    unit = intake_unit(session, tip)
    drop_transit_grant(session, tip)
    tip.unit = unit
    tip.dispatched_at = now
    tip.dispatch_error = HoldReason.TRANSIT_KEY_LOST
    tip.dispatch_attempts += 1
    tip.routing_auto = False
    audit.record(
        session,
        action=audit.actions.TIP_DISPATCHED,
        object_id=tip.public_id,
        unit=unit,
        detail={"unit": unit.code if unit else "", "route": HoldReason.TRANSIT_KEY_LOST},
    )
    log.warning("dispatch: tip %s lands unrouted (%s)", tip.public_id, HoldReason.TRANSIT_KEY_LOST)
    return "unrouted"


def read_tip(tip: Tip, tip_key: PrivateKey) -> tuple[str, tuple[float, float] | None]:
    """The informant's words so far, and the last location they shared (if any)."""
    texts: list[str] = []
    point: tuple[float, float] | None = None
    for message in tip.messages:
        if message.direction != Direction.INBOUND:
            continue
        body = json.loads(
            MESSAGE_BODY.open(tip_key, message.sealed_body, message_public_id=message.public_id)
        )
        if isinstance(body.get("text"), str):
            texts.append(body["text"])
        location = body.get("location")
        if isinstance(location, dict):
            point = (float(location["lat"]), float(location["lon"]))
    return "\n".join(texts), point


def dispatch_tip(tip_public_id: str) -> str:
    """RQ entry point (retries and the sweeper's re-queues; the relay dispatches most tips
    itself, tipline.jobs.fastpath): :func:`dispatch_many` for one tip, then relay the
    acknowledgement. Raises when the tip could not be dispatched, for RQ to retry."""
    rt = runtime.current()
    outcome = dispatch_many(rt, [tip_public_id])[tip_public_id]
    if outcome == "failed":
        raise DispatchFailedError(f"dispatch of tip {tip_public_id} failed (logged above)")
    drain(rt.sessions, rt.redis)  # send the acknowledgement now rather than at the next tick
    return outcome


class DispatchFailedError(RuntimeError):
    """Planning or applying a tip's dispatch raised (the log says why)."""


@dataclass
class _Plan:
    """What dispatching one tip will write, worked out before the write lock (module
    docstring of :func:`dispatch_many`)."""

    ref: str
    tip_id: int
    outcome: str  # "dispatch", "hold", "unrouted" (or "missing", "already dispatched")
    hold_reason: str | None = None
    unit_id: int = 0
    unit_code: str = ""
    unit_key_id: int = 0
    grant: bytes = b""
    route_reason: str = ""
    auto: bool = False
    confidence: float = 0.0
    needs_location: bool = False
    sealed_routing: bytes = b""
    category: str | None = None
    priority: str = Priority.NORMAL
    procedure: bool = False
    ask_location: bool = False
    web: bool = False
    message_id: str = ""
    sealed_body: bytes = b""
    sealed_for_relay: bytes | None = None


def dispatch_many(rt: runtime.Runtime, refs: list[str]) -> dict[str, str]:
    """Dispatch the tips ``refs``: route each, grant its key to the unit, drop the transit
    grant, assign it, queue the acknowledgement. Their outcome by ref ("dispatched", "held",
    "unrouted", "missing", "already dispatched", "failed").

    In two phases, so the write lock is held only for the writes (issue 15: dispatch held it
    12-16 ms a tip, routing, decryption and ORM work inside, and the webhook's insert waited):

    1. *Plan*, in a read transaction: open each tip through its transit grant, read it,
       route, classify, and seal what will be stored (the unit's grant of the tip key, the
       routing record, the acknowledgement for the record and for the relay).
    2. *Apply*, in one row-locked write transaction for the batch (``audit.audited_session``):
       the tips' rows locked, each still undispatched tip claimed and written with Core
       statements; duty assignment from counts read once per unit; the audit events appended
       together before commit.

    A plan made stale in between (the unit's key rotated) is planned again; a tip another
    worker dispatched meanwhile is left alone (its row says so). A tip whose plan raised is
    "failed" (the caller hands it to RQ); if applying raises, every tip of the batch fails.
    """
    outcomes: dict[str, str] = {}
    urgent: list[str] = []
    pending = list(refs)
    for _round in range(2):
        if not pending:
            break
        plans = _plan(rt, pending, outcomes)
        try:
            stale = _apply(rt, plans, outcomes, urgent)
        except DBAPIError:
            raise
        except Exception:
            log.exception("dispatch: applying a batch of %d tips failed", len(plans))
            for plan in plans:
                outcomes[plan.ref] = "failed"
            stale = []
        pending = stale
    for ref in pending:
        outcomes[ref] = "failed"
    for ref in urgent:
        schedule(rt.redis, ref, 0)
    return outcomes


def _plan(rt: runtime.Runtime, refs: list[str], outcomes: dict[str, str]) -> list[_Plan]:
    boundaries = boundaries_from_config(rt.config.ward_boundaries)
    gazetteer()
    relay = rt.transit.public()
    private_for = rt.transit.batch_opener()
    plans: list[_Plan] = []
    with rt.sessions() as session:
        tips = session.scalars(
            select(Tip).where(Tip.public_id.in_(refs)).options(selectinload(Tip.messages))
        ).all()
        found = {tip.public_id: tip for tip in tips}
        grants = transit_grants(session, [tip.id for tip in tips])
        for ref in refs:
            tip = found.get(ref)
            if tip is None:
                log.warning("dispatch: no tip %s", ref)
                outcomes[ref] = "missing"
                continue
            if tip.dispatched_at is not None:
                outcomes[ref] = "already dispatched"
                continue
            try:
                plans.append(_plan_one(session, tip, rt, boundaries, relay, private_for, grants))
            except Exception:
                log.exception("dispatch: planning tip %s failed", ref)
                outcomes[ref] = "failed"
    return plans


def _plan_one(
    session: Session,
    tip: Tip,
    rt: runtime.Runtime,
    boundaries: Boundaries | None,
    relay: PublicKey,
    private_for: Callable[[bytes], PrivateKey],
    grants: dict[int, KeyGrant],
) -> _Plan:
    plan = _Plan(tip.public_id, tip.id, "hold")
    if intake_unit(session, tip) is None:
        plan.hold_reason = HoldReason.OA_NOT_ATTACHED
        return plan
    try:
        tip_key = open_tip_from_transit(session, tip, private_for, grants)
    except TransitKeyLost:
        plan.outcome = "unrouted"
        return plan
    text, point = read_tip(tip, tip_key)
    decision = route_tip(session, tip, text, point, boundaries)
    unit = decision.unit
    if unit is None or unit.current_key is None:
        plan.hold_reason = decision.reason if unit is None else HoldReason.UNIT_HAS_NO_KEY
        return plan
    unit_key = unit.current_key
    if not key_trust.accept(unit_key.public):
        plan.hold_reason = HoldReason.UNIT_KEY_NOT_CERTIFIED
        return plan
    suggestion = classify(text)
    plan.outcome = "dispatch"
    plan.unit_id, plan.unit_code, plan.unit_key_id = unit.id, unit.code, unit_key.id
    plan.grant = KEY_GRANT.seal(
        tip_key, unit_key.public, Subject.TIP, tip.id, Holder.UNIT_KEY, unit_key.id
    )
    plan.route_reason, plan.auto = decision.reason, decision.auto
    plan.confidence, plan.needs_location = decision.confidence, decision.needs_location
    plan.sealed_routing = seal_decision(tip, decision)
    plan.category = tip.category or suggestion.category
    plan.priority = suggestion.priority
    plan.procedure = suggestion.is_procedure
    if plan.procedure:
        reply = PROCEDURE_REPLY
        plan.needs_location = False
    else:
        reply = acknowledgement_text(tip, unit)
        if plan.needs_location and point is None and tip.location_requested_at is None:
            reply += "\n\n" + (
                WEB_LOCATION_REQUEST if tip.channel == Channel.WEB else LOCATION_REQUEST
            )
            plan.ask_location = True
    plan.web = tip.channel == Channel.WEB
    plan.message_id = new_public_id()
    plan.sealed_body = MESSAGE_BODY.seal(
        tip.public,
        json.dumps({"text": reply}, ensure_ascii=False).encode(),
        message_public_id=plan.message_id,
    )
    if not plan.web:
        plan.sealed_for_relay = MESSAGE_FOR_RELAY.seal(
            relay,
            json.dumps({"text": reply}, ensure_ascii=False).encode(),
            message_public_id=plan.message_id,
        )
    return plan


def _apply(
    rt: runtime.Runtime, plans: list[_Plan], outcomes: dict[str, str], urgent: list[str]
) -> list[str]:
    """Phase 2 of :func:`dispatch_many`; the refs whose plans went stale."""
    if not plans:
        return []
    stale: list[str] = []
    with audit.audited_session(rt.sessions) as session:
        ids = sorted(plan.tip_id for plan in plans)
        undispatched = set(
            session.scalars(
                select(Tip.id)
                .where(Tip.id.in_(ids), Tip.dispatched_at.is_(None))
                .order_by(Tip.id)
                .with_for_update(key_share=True)
            )
        )
        unit_ids = {plan.unit_id for plan in plans if plan.outcome == "dispatch"}
        current = _current_keys(session, unit_ids)
        held = {
            (int(tip_id), int(key_id))
            for tip_id, key_id in session.execute(
                select(KeyGrant.subject_id, KeyGrant.holder_id).where(
                    KeyGrant.subject_kind == Subject.TIP,
                    KeyGrant.subject_id.in_(ids),
                    KeyGrant.holder_kind == Holder.UNIT_KEY,
                )
            )
        }
        duty = DutyRoster(session)
        writes = _Writes()
        now = utcnow()
        for plan in plans:
            if plan.tip_id not in undispatched:
                outcomes[plan.ref] = "already dispatched"
            elif plan.outcome == "hold":
                session.execute(
                    update(Tip)
                    .where(Tip.id == plan.tip_id)
                    .values(
                        dispatch_error=plan.hold_reason,
                        dispatch_attempts=Tip.dispatch_attempts + 1,
                    )
                )
                log.warning("dispatch: tip %s held (%s)", plan.ref, plan.hold_reason)
                outcomes[plan.ref] = "held"
            elif plan.outcome == "unrouted":
                tip = session.get_one(Tip, plan.tip_id)
                outcomes[plan.ref] = _land_unrouted(session, tip, now)
            elif current.get(plan.unit_id) != plan.unit_key_id:
                stale.append(plan.ref)  # the unit's key rotated since the plan
            else:
                _write(plan, now, (plan.tip_id, plan.unit_key_id) in held, duty, writes)
                outcomes[plan.ref] = "dispatched"
                if plan.priority == Priority.URGENT and not plan.procedure:
                    urgent.append(plan.ref)
        writes.flush(session.connection(), now)
        duty.flush()
    for plan in plans:
        if outcomes.get(plan.ref) == "dispatched":
            log.info("dispatch: tip %s to unit %s", plan.ref, plan.unit_code)
    return stale


def _current_keys(session: Session, unit_ids: set[int]) -> dict[int, int]:
    """Each unit's current key version's id (tipline.models.Unit.current_key, for many)."""
    if not unit_ids:
        return {}
    rows = session.execute(
        select(UnitKey.unit_id, UnitKey.id, UnitKey.version)
        .where(UnitKey.unit_id.in_(unit_ids), UnitKey.retired_at.is_(None))
        .order_by(UnitKey.unit_id, UnitKey.version)
    ).all()
    return {unit_id: key_id for unit_id, key_id, _version in rows}


# The hot path's statements, built once (building them per tip cost more than running them).
_TIPS = cast(Table, Tip.__table__)
_GRANTS = cast(Table, KeyGrant.__table__)
_INSERT_GRANT = insert(_GRANTS)
_DROP_OTHER_GRANTS = delete(_GRANTS).where(
    _GRANTS.c.subject_kind == Subject.TIP,
    _GRANTS.c.subject_id == bindparam("tip_id"),
    or_(
        _GRANTS.c.holder_kind == Holder.TRANSIT,
        and_(_GRANTS.c.holder_kind == Holder.UNIT_KEY, _GRANTS.c.holder_id != bindparam("keep")),
    ),
)
_WRITE_TIP = (
    update(_TIPS)
    .where(_TIPS.c.id == bindparam("tip_id"))
    .values(dispatch_attempts=_TIPS.c.dispatch_attempts + 1)
)
_INSERT_MESSAGE = insert(cast(Table, Message.__table__))


@dataclass
class _Writes:
    """The rows of a batch's dispatches, written together at the end of :func:`_apply`: one
    statement each (executemany; on PostgreSQL one round trip) instead of six a tip."""

    grants: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    tips: dict[frozenset[str], list[dict[str, Any]]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    sends: list[tuple[str, str]] = field(default_factory=list)

    def flush(self, conn: Connection, now: datetime) -> None:
        if self.grants:
            conn.execute(_INSERT_GRANT, self.grants)
        if self.dropped:
            conn.execute(_DROP_OTHER_GRANTS, self.dropped)
        for rows in self.tips.values():
            conn.execute(_WRITE_TIP, rows)
        if self.messages:
            conn.execute(_INSERT_MESSAGE, self.messages)
        if self.sends:
            add_jobs(conn, self.sends, now)


def _write(plan: _Plan, now: datetime, granted: bool, duty: DutyRoster, writes: _Writes) -> None:
    """One planned dispatch, as rows for :class:`_Writes` (no ORM unit of work on the hot
    path) and its audit event."""
    tip_id = plan.tip_id
    if not granted:
        writes.grants.append(
            {
                "subject_kind": Subject.TIP,
                "subject_id": tip_id,
                "holder_kind": Holder.UNIT_KEY,
                "holder_id": plan.unit_key_id,
                "sealed": plan.grant,
            }
        )
    writes.dropped.append({"tip_id": tip_id, "keep": plan.unit_key_id})
    assignee = None if plan.procedure else duty.pick(plan.unit_id)
    values: dict[str, Any] = {
        "tip_id": tip_id,
        "dispatched_at": now,
        "unit_id": plan.unit_id,
        "dispatch_error": None,
        "routing_auto": plan.auto,
        "routing_confidence": plan.confidence,
        "needs_location": plan.needs_location,
        "sealed_routing": plan.sealed_routing,
        "category": plan.category,
        "priority": plan.priority,
        "assignee_id": assignee,
        "updated_at": now,
    }
    if plan.procedure:
        values.update(status=TipStatus.RESOLVED, closed_at=now)
    if plan.ask_location:
        values["location_requested_at"] = now
    if plan.web:
        values["last_outbound_at"] = now
    writes.tips.setdefault(frozenset(values), []).append(values)
    audit.record(
        duty.session,
        action=audit.actions.TIP_DISPATCHED,
        object_id=plan.ref,
        unit_code=plan.unit_code,
        detail={"unit": plan.unit_code, "route": plan.route_reason, "auto": str(plan.auto)},
    )
    if not plan.procedure:
        duty.announce(tip_id, plan.ref, plan.unit_id, plan.unit_code, assignee)
    writes.messages.append(
        {
            "public_id": plan.message_id,
            "tip_id": tip_id,
            "direction": Direction.OUTBOUND,
            "kind": MessageKind.TEXT,
            "sealed_body": plan.sealed_body,
            "sealed_for_relay": plan.sealed_for_relay,
            "delivery": Delivery.PORTAL if plan.web else Delivery.QUEUED,
            "delivered_at": now if plan.web else None,
            "created_at": now,
        }
    )
    if not plan.web:
        writes.sends.append(("send", plan.message_id))


def _unit_key_ids(unit: Unit) -> set[int]:
    return {key.id for key in unit.keys}


def reroute_tip(tip_public_id: str) -> str:
    """Move a ``needs_location`` tip to where the location the informant sent says.

    The location was sealed to the transit key by intake (``Tip.sealed_reroute``); this job
    opens it, erases it, and routes on the point. The tip moves only to a unit that already
    holds a grant (the candidates pre-granted at dispatch): no worker can grant a tip it
    cannot open. Anywhere else, the holding unit is told where the point is, in the sealed
    routing record, and an officer transfers the tip.
    """
    rt = runtime.current()
    config = rt.config
    boundaries = boundaries_from_config(config.ward_boundaries)
    gazetteer()
    with audit.audited_session(rt.sessions) as session:
        tip = session.scalars(
            select(Tip).where(Tip.public_id == tip_public_id).with_for_update(key_share=True)
        ).one_or_none()
        if tip is None or tip.sealed_reroute is None:
            return "nothing to do"
        try:
            key = rt.transit.private_for(tip.sealed_reroute)
        except TransitKeyLost:  # the key store restarted: the point is gone, the tip stays
            tip.sealed_reroute = None
            return "location lost"
        body = json.loads(TIP_REROUTE.open(key, tip.sealed_reroute, tip_public_id=tip.public_id))
        tip.sealed_reroute = None
        if not tip.needs_location or tip.unit is None:
            return "not needed"
        point = (float(body["lat"]), float(body["lon"]))
        holder = oa_owner(session, tip.oa_id) or tip.unit
        decision = decide(session, holder, "", point, boundaries)
        tip.needs_location = False
        tip.routing_auto = decision.auto
        tip.routing_confidence = decision.confidence
        tip.sealed_routing = seal_decision(tip, decision)
        target = decision.unit
        if target is None or target.id == tip.unit.id:
            return "kept"
        held = set(
            session.scalars(
                select(KeyGrant.holder_id).where(
                    KeyGrant.subject_kind == Subject.TIP,
                    KeyGrant.subject_id == tip.id,
                    KeyGrant.holder_kind == Holder.UNIT_KEY,
                )
            )
        )
        if not decision.auto or not (held & _unit_key_ids(target)):
            notify(session, NotificationKind.LOCATION_RECEIVED, tip, unit=tip.unit, officers=[])
            return "officer to transfer"
        keep = _unit_key_ids(target) | _unit_key_ids(holder)
        session.execute(
            delete(KeyGrant).where(
                KeyGrant.subject_kind == Subject.TIP,
                KeyGrant.subject_id == tip.id,
                KeyGrant.holder_kind == Holder.UNIT_KEY,
                KeyGrant.holder_id.not_in(list(keep)),
                KeyGrant.holder_id.in_(select(UnitKey.id)),
            )
        )
        tip.unit = target
        assign(session, tip, target)
        audit.record(
            session,
            action=audit.actions.TRANSFER,
            object_id=tip.public_id,
            unit=target,
            detail={"to_unit": target.code, "route": decision.reason},
        )
        code = target.code
    log.info("reroute: tip %s to unit %s", tip_public_id, code)
    return "rerouted"
