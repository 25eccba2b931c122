"""The inbox: tips of the officer's unit (and, for commanders, the units below), metadata only.

Rows show plaintext metadata; nothing is decrypted to draw the list.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, abort, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from tipline.db import write_session
from tipline.models import (
    OPEN_STATUSES,
    Category,
    Notification,
    Officer,
    Priority,
    Tip,
    TipView,
    Unit,
    utcnow,
)
from tipline.web.i18n import when
from tipline.web.labels import (
    CATEGORY_LABELS,
    NOTIFICATION_KIND_LABELS,
    PRIORITY_LABELS,
    PRIORITY_RANK,
    STATUS_LABELS,
    choices,
    label,
    sla_remaining,
)
from triage.access import visible_unit_ids
from triage.deadlines import closure_overdue, unopened_overdue
from triage.forms import EmptyForm, InboxFilterForm
from triage.users import StaffUser, runtime, staff

blueprint = Blueprint("inbox", __name__, url_prefix="/triage")
PAGE_SIZE = 50
SIDE_LIST = 30  # tips beside the tip page on a wide screen
LIVE_ROWS = 50  # changed tips one poll returns at most
LIVE_OVERLAP = timedelta(seconds=5)  # a poll looks back this far: commits land late
NOTIFICATIONS = 100  # shown on the notification list
MAX_PAGE = 1_000_000  # past any real list; a larger offset overflows the database's integers
HIDDEN_CATEGORY = Category.PROCEDURE_QUESTION  # answered at dispatch, not triaged


def _rank() -> ColumnElement[int]:
    return case(*((Tip.priority == value, rank) for value, rank in PRIORITY_RANK.items()), else_=9)


def _inbox_conditions(units: list[int]) -> list[ColumnElement[bool]]:
    """Open, dispatched tips of ``units`` that officers triage (no procedure questions)."""
    return [
        Tip.unit_id.in_(units),
        Tip.dispatched_at.is_not(None),
        func.coalesce(Tip.category, "") != HIDDEN_CATEGORY,
        Tip.status.in_(OPEN_STATUSES),
    ]


def _unread_condition() -> ColumnElement[bool]:
    """With ``TipView`` outer-joined for one officer: the tip arrived in its unit, or its
    informant wrote, since that officer last looked at it (or they never did)."""
    return or_(
        TipView.id.is_(None),
        TipView.seen_at < Tip.last_inbound_at,
        TipView.seen_at < func.coalesce(Tip.arrived_at, Tip.dispatched_at),
    )


def _with_views(officer_id: int) -> tuple[type[TipView], ColumnElement[bool]]:
    return TipView, and_(TipView.tip_id == Tip.id, TipView.officer_id == officer_id)


def unread_ids(db: Session, officer_id: int, tips: list[Tip]) -> set[int]:
    """Which of ``tips`` are unread for the officer."""
    seen = dict(
        db.execute(
            select(TipView.tip_id, TipView.seen_at).where(
                TipView.officer_id == officer_id, TipView.tip_id.in_([t.id for t in tips])
            )
        ).all()
    )
    unread = set()
    for tip in tips:
        at = seen.get(tip.id)
        if at is None or at < tip.last_inbound_at or at < tip.arrived_in_unit_at:
            unread.add(tip.id)
    return unread


def unread_count(db: Session, officer_id: int, units: list[int]) -> int:
    view, on = _with_views(officer_id)
    return (
        db.scalar(
            select(func.count())
            .select_from(Tip)
            .outerjoin(view, on)
            .where(*_inbox_conditions(units), _unread_condition())
        )
        or 0
    )


def _notification_filter(officer: Officer) -> ColumnElement[bool]:
    """Notices for the officer, and the unit-wide notices of their unit."""
    mine = Notification.officer_id == officer.id
    if officer.unit_id is None:
        return mine
    return or_(
        mine, and_(Notification.officer_id.is_(None), Notification.unit_id == officer.unit_id)
    )


def unread_notifications(db: Session, officer: Officer) -> int:
    conditions = [_notification_filter(officer)]
    if officer.notifications_seen_at is not None:
        conditions.append(Notification.created_at > officer.notifications_seen_at)
    return db.scalar(select(func.count()).select_from(Notification).where(*conditions)) or 0


def side_list(db: Session, officer: Officer, units: list[int]) -> list[dict[str, object]]:
    """The open tips of ``units`` beside a tip page (wide screens): receipt, priority, unread.

    One query of a few columns (no ORM objects: a tip page is opened all shift long).
    """
    view, on = _with_views(officer.id)
    rows = db.execute(
        select(Tip.public_id, Tip.receipt_code, Tip.priority, _unread_condition())
        .outerjoin(view, on)
        .where(*_inbox_conditions(units))
        .order_by(_rank(), Tip.created_at.desc())
        .limit(SIDE_LIST)
    ).all()
    return [
        {
            "public_id": public_id,
            "receipt_code": code,
            "priority": priority,
            "priority_label": label(PRIORITY_LABELS, priority),
            "unread": bool(unread),
        }
        for public_id, code, priority, unread in rows
    ]


def _filters(form: InboxFilterForm, units: list[int], db: Session) -> list[object]:
    conditions: list[object] = [Tip.unit_id.in_(units), Tip.dispatched_at.is_not(None)]
    conditions.append(func.coalesce(Tip.category, "") != HIDDEN_CATEGORY)
    if form.status.data:
        conditions.append(Tip.status == form.status.data)
    else:
        conditions.append(Tip.status.in_(OPEN_STATUSES))
    if form.priority.data:
        conditions.append(Tip.priority == form.priority.data)
    if form.category.data:
        conditions.append(Tip.category == form.category.data)
    if form.assignee.data == "none":
        conditions.append(Tip.assignee_id.is_(None))
    elif form.assignee.data:
        officer_id = db.scalar(select(Officer.id).where(Officer.public_id == form.assignee.data))
        conditions.append(Tip.assignee_id == officer_id)
    if form.unit.data:
        unit_id = db.scalar(select(Unit.id).where(Unit.public_id == form.unit.data))
        conditions.append(Tip.unit_id == unit_id)
    if form.overdue.data:
        conditions.append(unopened_overdue(db, utcnow()))
    if form.closure.data:
        conditions.append(closure_overdue(utcnow()))
    if form.since.data:
        conditions.append(Tip.created_at >= datetime.combine(form.since.data, time(), UTC))
    if form.until.data:
        end = datetime.combine(form.until.data, time(), UTC) + timedelta(days=1)
        conditions.append(Tip.created_at < end)
    return conditions


@blueprint.get("/")
def index() -> ResponseReturnValue:
    user = staff()
    form = InboxFilterForm(request.args)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    if page > MAX_PAGE:
        abort(404)
    with runtime().sessions() as db:
        units = visible_unit_ids(db, user)
        unit_rows = db.execute(
            select(Unit.id, Unit.public_id, Unit.name).where(Unit.id.in_(units)).order_by(Unit.name)
        ).all()
        officers = db.execute(
            select(Officer.public_id, Officer.display_name)
            .where(Officer.unit_id.in_(units), Officer.active.is_(True))
            .order_by(Officer.display_name)
        ).all()
        form.status.choices = [("", "—"), *choices(STATUS_LABELS)]
        form.priority.choices = [("", "—"), *choices(PRIORITY_LABELS)]
        shown = {c: name for c, name in CATEGORY_LABELS.items() if c is not HIDDEN_CATEGORY}
        form.category.choices = [("", "—"), *choices(shown)]
        form.assignee.choices = [("", "—"), ("none", "(chưa giao)")] + [tuple(o) for o in officers]
        form.unit.choices = [("", "—")] + [(u.public_id, u.name) for u in unit_rows]
        valid = form.validate() if request.args else True
        conditions = _filters(form, units, db) if valid else [Tip.id.is_(None)]
        total = db.scalar(select(func.count()).select_from(Tip).where(*conditions)) or 0
        tips = list(
            db.scalars(
                select(Tip)
                .where(*conditions)
                .order_by(_rank(), Tip.created_at.desc())
                .offset((page - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        )
        # Grouped by unit too: SQLite then reads ix_tips_unit_status alone, in its order.
        counters: dict[str, int] = {}
        for _unit, status, count in db.execute(
            select(Tip.unit_id, Tip.status, func.count())
            .where(Tip.unit_id.in_(units), Tip.dispatched_at.is_not(None))
            .group_by(Tip.unit_id, Tip.status)
        ):
            counters[status] = counters.get(status, 0) + count
        names = {u.id: u.name for u in unit_rows}
        me = db.get_one(Officer, user.officer_id)
        unread = unread_ids(db, me.id, tips)
        unread_total = unread_count(db, me.id, units)
        assignees = dict(
            db.execute(
                select(Officer.id, Officer.display_name).where(
                    Officer.id.in_({t.assignee_id for t in tips if t.assignee_id})
                )
            ).all()
        )
        now = utcnow()
        rows = [
            {
                "tip": tip,
                "unit": names.get(tip.unit_id or 0, ""),
                "assignee": assignees.get(tip.assignee_id or 0),
                "status": label(STATUS_LABELS, tip.status),
                "priority": label(PRIORITY_LABELS, tip.priority),
                "category": label(CATEGORY_LABELS, tip.category),
                "sla": sla_remaining(tip, now),
                "unread": tip.id in unread,
            }
            for tip in tips
        ]
    pages = max(1, -(-total // PAGE_SIZE))
    return render_template(
        "triage/inbox.html",
        form=form,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        counters={label(STATUS_LABELS, k): v for k, v in counters.items()},
        logout_form=EmptyForm(),
        user=user,
        unread_total=unread_total,
        # The filters only: other names would reach url_for() as its own arguments
        # ("endpoint" made it fail, "_external"/"_anchor" changed the links).
        args={k: v for k, v in request.args.items() if k in form},
    )


def key_holder() -> StaffUser:
    """Officers and commanders: the live inbox and notices are theirs (auditors and admins
    hold no unit and get no tips)."""
    user = staff()
    if not user.holds_keys:
        abort(403)
    return user


def _live_row(tip: Tip, unit: str, unread: bool) -> dict[str, object]:
    """What the inbox's script draws for a tip: metadata only, as the list shows it."""
    return {
        "id": tip.public_id,
        "code": tip.receipt_code,
        "url": url_for("tips.show", public_id=tip.public_id),
        "priority": tip.priority,
        "priority_label": label(PRIORITY_LABELS, tip.priority),
        "status_label": label(STATUS_LABELS, tip.status),
        "category_label": label(CATEGORY_LABELS, tip.category),
        "unit": unit,
        "received": when(tip.created_at),
        "urgent": tip.priority == Priority.URGENT,
        "unread": unread,
    }


@blueprint.get("/live")
def live() -> ResponseReturnValue:
    """The live inbox's poll: unread counts, and the open tips that arrived or changed since
    ``since`` (an ISO time this endpoint gave before). Metadata only, nothing decrypted.

    Each poll also keeps the session alive (the session refreshes on every request): the
    inbox's script polls only while the page is open, and stops after the idle timeout
    without input unless the officer is on duty.
    """
    user = key_holder()
    now = utcnow()
    since_text = request.args.get("since", "")
    try:
        since = datetime.fromisoformat(since_text) if since_text else now - LIVE_OVERLAP
    except ValueError:
        abort(400)
    if since.tzinfo is None:
        abort(400)
    since = since - LIVE_OVERLAP
    with runtime().sessions() as db:
        me = db.get_one(Officer, user.officer_id)
        units = visible_unit_ids(db, user)
        changed = list(
            db.scalars(
                select(Tip)
                .where(
                    *_inbox_conditions(units),
                    or_(
                        Tip.dispatched_at > since,
                        Tip.last_inbound_at > since,
                        Tip.arrived_at > since,
                    ),
                )
                .order_by(_rank(), Tip.created_at.desc())
                .limit(LIVE_ROWS)
            )
        )
        unread = unread_ids(db, me.id, changed)
        names = dict(
            db.execute(
                select(Unit.id, Unit.name).where(Unit.id.in_({t.unit_id for t in changed}))
            ).all()
        )
        body = {
            "now": now.isoformat(),
            "unread": unread_count(db, me.id, units),
            "notifications": unread_notifications(db, me),
            "on_duty": me.on_duty,
            "tips": [_live_row(t, names.get(t.unit_id or 0, ""), t.id in unread) for t in changed],
        }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/notifications")
def notifications() -> ResponseReturnValue:
    """The notices written for the officer and their unit (assigned, transferred in, escalated,
    SLA, held, retention); looking at the list marks them read."""
    user = key_holder()
    with write_session(runtime().sessions) as db:
        me = db.get_one(Officer, user.officer_id)
        seen_before = me.notifications_seen_at
        rows = list(
            db.execute(
                select(Notification, Tip.public_id, Tip.receipt_code, Tip.unit_id)
                .outerjoin(Tip, Tip.id == Notification.tip_id)
                .where(_notification_filter(me))
                .order_by(Notification.created_at.desc(), Notification.id.desc())
                .limit(NOTIFICATIONS)
            ).all()
        )
        units = set(visible_unit_ids(db, user))
        items = [
            {
                "kind": label(NOTIFICATION_KIND_LABELS, note.kind),
                "at": note.created_at,
                "code": code,
                # Linked only while the tip is in the officer's units.
                "url": url_for("tips.show", public_id=public_id) if unit_id in units else None,
                "new": seen_before is None or note.created_at > seen_before,
            }
            for note, public_id, code, unit_id in rows
        ]
        now = utcnow()
        me.notifications_seen_at = now
        for note, *_rest in rows:
            if note.officer_id == me.id and note.read_at is None:
                note.read_at = now
    return render_template(
        "triage/notifications.html", items=items, logout_form=EmptyForm(), user=user
    )
