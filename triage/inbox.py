"""The inbox: tips of the officer's unit (and, for commanders, the units below), metadata only.

Rows show plaintext metadata; nothing is decrypted to draw the list.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from tipline.models import OPEN_STATUSES, Category, Officer, Tip, Unit, utcnow
from tipline.web.labels import (
    CATEGORY_LABELS,
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
from triage.users import runtime, staff

blueprint = Blueprint("inbox", __name__, url_prefix="/triage")
PAGE_SIZE = 50
MAX_PAGE = 1_000_000  # past any real list; a larger offset overflows the database's integers
HIDDEN_CATEGORY = Category.PROCEDURE_QUESTION  # answered at dispatch, not triaged


def _rank() -> ColumnElement[int]:
    return case(*((Tip.priority == value, rank) for value, rank in PRIORITY_RANK.items()), else_=9)


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
        # The filters only: other names would reach url_for() as its own arguments
        # ("endpoint" made it fail, "_external"/"_anchor" changed the links).
        args={k: v for k, v in request.args.items() if k in form},
    )
