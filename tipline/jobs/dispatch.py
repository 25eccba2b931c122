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
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from keys import PrivateKey
from tipline import audit, runtime
from tipline.jobs.relay import drain
from tipline.keychain import (
    drop_other_unit_grants,
    drop_transit_grant,
    grant_tip_to_unit,
    open_tip_from_transit,
)
from tipline.models import (
    Channel,
    Direction,
    Holder,
    HoldReason,
    KeyGrant,
    NotificationKind,
    Priority,
    Subject,
    Tip,
    TipStatus,
    Unit,
    UnitKey,
    key_trust,
    utcnow,
)
from tipline.models.sealed_fields import (
    MESSAGE_BODY,
    TIP_REROUTE,
)
from tipline.outgoing import (
    queue_outbound,
)
from tipline.routing import route_tip
from tipline.routing.classify import PROCEDURE_REPLY, classify
from tipline.routing.duty import assign, notify
from tipline.routing.escalation import schedule
from tipline.routing.geo import boundaries_from_config
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
        else "\nNhắn \"tình trạng\" để xem tình trạng tin báo; nhắn \"XÓA\" để xóa địa chỉ "
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


def _hold(session: Session, tip: Tip, reason: str) -> None:
    tip.dispatch_error = reason
    tip.dispatch_attempts += 1


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
    itself, tipline.jobs.fastpath): :func:`dispatch`, then relay the acknowledgement."""
    return dispatch(runtime.current(), tip_public_id, drain_now=True)


def dispatch(rt: runtime.Runtime, tip_public_id: str, *, drain_now: bool) -> str:
    """Route the tip, grant its key to the unit, drop the transit grant, queue the ack
    (``drain_now``: and drain the outbox at once, for a job; the relay's batch sends it)."""
    config = rt.config
    # Built once per process, before the write lock is taken (about 1.5 s the first time).
    boundaries = boundaries_from_config(config.ward_boundaries)
    gazetteer()
    urgent = False
    # Read-then-write: on SQLite, hold the write lock from the first statement, so the claim
    # cannot fail on a snapshot another writer (the intake relay) made stale.
    with audit.audited_session(rt.sessions) as session:
        tip = session.scalars(
            select(Tip).where(Tip.public_id == tip_public_id).with_for_update(key_share=True)
        ).one_or_none()
        if tip is None:
            log.warning("dispatch: no tip %s", tip_public_id)
            return "missing"
        if tip.dispatched_at is not None:
            return "already dispatched"
        if intake_unit(session, tip) is None:
            _hold(session, tip, HoldReason.OA_NOT_ATTACHED)
            log.warning("dispatch: tip %s held (%s)", tip.public_id, HoldReason.OA_NOT_ATTACHED)
            return "held"
        try:
            tip_key = open_tip_from_transit(session, tip, rt.transit.private_for)
        except TransitKeyLost:
            return _land_unrouted(session, tip, utcnow())
        text, point = read_tip(tip, tip_key)
        decision = route_tip(session, tip, text, point, boundaries)
        unit = decision.unit
        if unit is None or unit.current_key is None:
            reason = decision.reason if unit is None else HoldReason.UNIT_HAS_NO_KEY
            _hold(session, tip, reason)
            log.warning("dispatch: tip %s held (%s)", tip.public_id, reason)
            return "held"
        if not key_trust.accept(unit.current_key.public):
            _hold(session, tip, HoldReason.UNIT_KEY_NOT_CERTIFIED)
            return "held"
        now = utcnow()
        claimed = session.execute(
            update(Tip)
            .where(Tip.id == tip.id, Tip.dispatched_at.is_(None))
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            return "already dispatched"
        drop_other_unit_grants(session, tip, keep=grant_tip_to_unit(session, tip, tip_key, unit))
        tip.dispatched_at = now
        tip.unit = unit
        tip.dispatch_error = None
        tip.dispatch_attempts += 1
        tip.routing_auto = decision.auto
        tip.routing_confidence = decision.confidence
        tip.needs_location = decision.needs_location
        tip.sealed_routing = seal_decision(tip, decision)
        suggestion = classify(text)
        tip.category = tip.category or suggestion.category
        tip.priority = suggestion.priority
        audit.record(
            session,
            action=audit.actions.TIP_DISPATCHED,
            object_id=tip.public_id,
            unit=unit,
            detail={"unit": unit.code, "route": decision.reason, "auto": str(decision.auto)},
        )
        relay = rt.transit.public()
        if suggestion.is_procedure:
            tip.status = TipStatus.RESOLVED
            tip.closed_at = now
            tip.needs_location = False
            queue_outbound(session, tip, PROCEDURE_REPLY, transit=relay)
        else:
            assign(session, tip, unit)
            reply = acknowledgement_text(tip, unit)
            if tip.needs_location and point is None and tip.location_requested_at is None:
                reply += "\n\n" + (
                    WEB_LOCATION_REQUEST if tip.channel == Channel.WEB else LOCATION_REQUEST
                )
                tip.location_requested_at = now
            queue_outbound(session, tip, reply, transit=relay)
            urgent = tip.priority == Priority.URGENT
        code = unit.code
    log.info("dispatch: tip %s to unit %s", tip_public_id, code)
    if urgent:
        schedule(rt.redis, tip_public_id, 0)
    if drain_now:
        drain(rt.sessions, rt.redis)  # send the acknowledgement now rather than at the next tick
    return "dispatched"


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
