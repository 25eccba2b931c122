"""The commanders' dashboard: volume, SLA compliance and backlog of their units, as SVG charts.

Everything here is a SQL aggregate over plaintext metadata (status, priority, category, unit,
times); nothing is decrypted. Scope is the commander's unit and every unit below it
(:func:`triage.access.visible_unit_ids`). The charts are drawn on the server as inline SVG:
no script, no chart library, no CDN, and colours come from the stylesheet (CSP: style-src
'self'). The geometry is computed here; ``templates/triage/charts.html`` only draws it.

Days are Vietnamese calendar days (UTC+7, no daylight saving time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden

from tipline.models import (
    OPEN_STATUSES,
    Category,
    Officer,
    OfficialAccount,
    Priority,
    Tip,
    Unit,
    utcnow,
)
from tipline.time_rules import (
    VIETNAM_OFFSET,
    VIETNAM_ZONE_NAME,
)
from tipline.web.i18n import (
    _,
)
from tipline.web.labels import (
    CATEGORY_LABELS,
    FIRST_OPEN_SLA,
    PRIORITY_LABELS,
    STATUS_LABELS,
    label,
)
from triage.access import visible_unit_ids
from triage.commune_map import area_map, ward_code
from triage.deadlines import (
    CLOSURE_DEADLINE,
    closure_overdue,
    seconds_between,
    sla_seconds,
    unopened_overdue,
)
from triage.forms import EmptyForm
from triage.users import runtime, staff

blueprint = Blueprint("dashboard", __name__, url_prefix="/triage/dashboard")
DAYS = 30
PERIODS = (7, 30, 90, 365)  # the period selector's choices, in days
SILENT_AFTER = timedelta(days=7)  # an OA with no webhook for this long is listed as silent
ESCALATED_SHOWN = 50
TOP_CATEGORIES = 7  # the rest are drawn together as "other categories"
TOP_UNITS = 15
HIDDEN_CATEGORY = Category.PROCEDURE_QUESTION  # answered, not triaged: as in the inbox
AGE_BUCKETS = (
    (timedelta(days=1), _l("< 1 day")),
    (timedelta(days=3), _l("1–3 days")),
    (timedelta(days=7), _l("3–7 days")),
    (timedelta(days=30), _l("7–30 days")),
    (None, _l("> 30 days")),
)

# --- SQL -----------------------------------------------------------------------------------


def _local_day(db: Session) -> ColumnElement[Any]:
    if db.get_bind().dialect.name == "sqlite":
        return func.date(Tip.created_at, f"+{VIETNAM_OFFSET // timedelta(hours=1)} hours")
    return func.date(func.timezone(VIETNAM_ZONE_NAME, Tip.created_at))


@dataclass
class Figures:
    """What the dashboard shows, as plain numbers (the tests read these)."""

    days: list[date]
    per_day: dict[date, dict[str, int]]  # day → category ("" for none) → tips
    per_unit: dict[int, int]  # unit id → tips in the period
    unit_names: dict[int, str]
    unit_public: dict[int, str]  # unit id → public id, for links to the unit's tips
    sla: dict[str, dict[str, int]]  # priority → met, late, overdue, pending
    backlog: dict[str, list[int]]  # open status → tips per age bucket
    overdue_now: int = 0
    closure_overdue: int = 0  # open past the closure deadline (triage.deadlines)
    period: int = DAYS
    period_total: int = 0
    # unit id → (questions asked, answers, average 1–5) after closures in the period
    satisfaction: dict[int, tuple[int, int, float | None]] = field(default_factory=dict)


def figures(db: Session, units: list[int], now: datetime, period: int = DAYS) -> Figures:
    today = (now + VIETNAM_OFFSET).date()
    days = [today - timedelta(days=period - 1 - i) for i in range(period)]
    since = datetime.combine(days[0], time(), UTC) - VIETNAM_OFFSET
    scope = [Tip.unit_id.in_(units), Tip.dispatched_at.is_not(None)]
    recent = [*scope, Tip.created_at >= since]
    day = _local_day(db)
    per_day: dict[date, dict[str, int]] = {d: {} for d in days}
    for raw_day, category, count in db.execute(
        select(day, Tip.category, func.count()).where(*recent).group_by(day, Tip.category)
    ):
        key = raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day))
        if key in per_day:
            per_day[key][category or ""] = count
    per_unit = {
        unit_id: count
        for unit_id, count in db.execute(
            select(Tip.unit_id, func.count()).where(*recent).group_by(Tip.unit_id)
        )
        if unit_id is not None
    }
    unit_rows = db.execute(select(Unit.id, Unit.name, Unit.public_id).where(Unit.id.in_(units)))
    unit_names, unit_public = {}, {}
    for unit_id, name, public in unit_rows:
        unit_names[unit_id], unit_public[unit_id] = name, public

    sla_limit = sla_seconds()
    opened_after = seconds_between(db, Tip.created_at, Tip.first_opened_at)
    opened = Tip.first_opened_at.is_not(None)
    past_sla = unopened_overdue(db, now)
    sla: dict[str, dict[str, int]] = {
        p.value: {"met": 0, "late": 0, "overdue": 0, "pending": 0} for p in FIRST_OPEN_SLA
    }
    for priority, met, late, overdue, total in db.execute(
        select(
            Tip.priority,
            func.sum(case((and_(opened, opened_after <= sla_limit), 1), else_=0)),
            func.sum(case((and_(opened, opened_after > sla_limit), 1), else_=0)),
            func.sum(case((past_sla, 1), else_=0)),
            func.count(),
        )
        .where(*recent)
        .group_by(Tip.priority)
    ):
        row = sla.setdefault(priority, {"met": 0, "late": 0, "overdue": 0, "pending": 0})
        row.update(met=met or 0, late=late or 0, overdue=overdue or 0)
        row["pending"] = total - row["met"] - row["late"] - row["overdue"]

    backlog_scope = [
        *scope,
        Tip.status.in_(OPEN_STATUSES),
        func.coalesce(Tip.category, "") != HIDDEN_CATEGORY,
    ]
    bucket = case(
        *(
            (Tip.created_at >= now - age, index)
            for index, (age, _name) in enumerate(AGE_BUCKETS)
            if age is not None
        ),
        else_=len(AGE_BUCKETS) - 1,
    )
    backlog = {s.value: [0] * len(AGE_BUCKETS) for s in OPEN_STATUSES}
    for status, index, count in db.execute(
        select(Tip.status, bucket, func.count()).where(*backlog_scope).group_by(Tip.status, bucket)
    ):
        backlog[status][int(index)] = count
    overdue_now = (
        db.scalar(select(func.count()).select_from(Tip).where(*backlog_scope, past_sla)) or 0
    )
    closure_late = (
        db.scalar(select(func.count()).select_from(Tip).where(*backlog_scope, closure_overdue(now)))
        or 0
    )
    satisfaction = {
        unit_id: (asked, answered, float(average) if average is not None else None)
        for unit_id, asked, answered, average in db.execute(
            select(
                Tip.unit_id,
                func.count(),
                func.count(Tip.satisfaction),
                func.avg(Tip.satisfaction),
            )
            .where(*scope, Tip.satisfaction_asked_at >= since)
            .group_by(Tip.unit_id)
        )
        if unit_id is not None
    }
    return Figures(
        days=days,
        per_day=per_day,
        per_unit=per_unit,
        unit_names=unit_names,
        unit_public=unit_public,
        sla=sla,
        backlog=backlog,
        overdue_now=overdue_now,
        closure_overdue=closure_late,
        period=period,
        period_total=sum(per_unit.values()),
        satisfaction=satisfaction,
    )


# --- chart geometry ------------------------------------------------------------------------


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str  # a class of tipline.css: the fill colour
    title: str  # the SVG tooltip (and what a screen reader reads)
    href: str | None = None  # the tips behind the bar


@dataclass
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"
    css: str = ""
    href: str | None = None


@dataclass
class Chart:
    width: int
    height: int
    title: str
    rects: list[Rect] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    lines: list[tuple[float, float, float, float]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css class, label)


def nice_max(value: int) -> int:
    """The smallest of 1, 2, 5 × 10^k that is ≥ ``value`` (an axis top)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _daily_chart(data: Figures) -> Chart:
    totals: dict[str, int] = {}
    for counts in data.per_day.values():
        for category, count in counts.items():
            totals[category] = totals.get(category, 0) + count
    ranked = sorted(totals, key=lambda c: (-totals[c], c))
    shown = ranked[:TOP_CATEGORIES] if len(ranked) > TOP_CATEGORIES + 1 else ranked
    series = [(c, f"s{i}", label(CATEGORY_LABELS, c or None)) for i, c in enumerate(shown)]
    other = [c for c in ranked if c not in shown]
    if other:
        series.append(("*", f"s{len(shown)}", _("Other categories")))
    left, top, plot_w, plot_h = 44.0, 12.0, 660.0, 200.0
    chart = Chart(760, 260, _("Tips per day by category, last %(n)s days", n=data.period))
    top_value = nice_max(max((sum(c.values()) for c in data.per_day.values()), default=0) or 1)
    _y_axis(chart, left, top, plot_w, plot_h, top_value)
    slot = plot_w / len(data.days)
    for i, day in enumerate(data.days):
        counts = data.per_day[day]
        y = top + plot_h
        for category, css, name in series:
            count = (
                sum(counts.get(c, 0) for c in other) if category == "*" else counts.get(category, 0)
            )
            if not count:
                continue
            height = plot_h * count / top_value
            y -= height
            chart.rects.append(
                Rect(
                    left + i * slot + 2,
                    y,
                    slot - 4,
                    height,
                    css,
                    f"{day:%d/%m} · {name}: {count}",
                )
            )
        if i % max(1, len(data.days) // 6) == 0 or i == len(data.days) - 1:
            chart.texts.append(
                Text(left + (i + 0.5) * slot, top + plot_h + 16, f"{day:%d/%m}", "middle")
            )
    chart.legend = [(css, name) for _c, css, name in series]
    return chart


def _y_axis(
    chart: Chart, left: float, top: float, width: float, height: float, top_value: int
) -> None:
    for fraction in (0.0, 0.5, 1.0):
        y = top + height * (1 - fraction)
        chart.lines.append((left, y, left + width, y))
        chart.texts.append(Text(left - 6, y + 4, f"{top_value * fraction:g}", "end", "axis"))


def _hbar_chart(
    title: str,
    rows: Sequence[tuple[str, list[tuple[int, str, str]], str, str | None]],
    legend: list[tuple[str, str]],
) -> Chart:
    """Horizontal bars: (label, [(count, css, tooltip)...] stacked, text at the end, link)."""
    left, bar_w, row_h = 250.0, 400.0, 24.0
    chart = Chart(760, int(row_h * max(1, len(rows)) + 16), title)
    top_value = (
        max((sum(c for c, _css, _t in parts) for _l, parts, _e, _h in rows), default=0) or 1
    )
    for i, (name, parts, end, href) in enumerate(rows):
        y = 8 + i * row_h
        chart.texts.append(Text(left - 8, y + 14, name, "end", href=href))
        x = left
        for count, css, tooltip in parts:
            if not count:
                continue
            width = bar_w * count / top_value
            chart.rects.append(Rect(x, y + 2, width, row_h - 6, css, tooltip, href))
            x += width
        chart.texts.append(Text(x + 6, y + 14, end))
    chart.legend = legend
    return chart


def _unit_chart(data: Figures) -> Chart:
    ranked = sorted(data.per_unit.items(), key=lambda item: (-item[1], item[0]))
    rows: list[tuple[str, list[tuple[int, str, str]], str, str | None]] = [
        (name, [(count, "s0", f"{name}: {count}")], str(count), _inbox(unit=public))
        for unit_id, count in ranked[:TOP_UNITS]
        for name in [data.unit_names.get(unit_id, "?")]
        for public in [data.unit_public.get(unit_id, "")]
    ]
    rest = sum(count for _u, count in ranked[TOP_UNITS:])
    if rest:
        other = _("Other units")
        rows.append((other, [(rest, "s0", f"{other}: {rest}")], str(rest), None))
    return _hbar_chart(_("Tips by unit, last %(n)s days", n=data.period), rows, [])


def _sla_chart(data: Figures) -> Chart:
    names = {
        "met": _("opened in time"),
        "late": _("opened late"),
        "overdue": _("not opened, overdue"),
    }
    rows = []
    for priority in (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW):
        counts = data.sla.get(priority.value, {})
        due = sum(counts.get(k, 0) for k in ("met", "late", "overdue"))
        share = f"{100 * counts.get('met', 0) / due:.0f} %" if due else "—"
        parts = [(counts.get(k, 0), f"sla-{k}", f"{names[k]}: {counts.get(k, 0)}") for k in names]
        # Shares, not counts: every priority's bar is the full width.
        scaled = [(c * 1000 // due if due else 0, css, t) for c, css, t in parts]
        limit = FIRST_OPEN_SLA[priority]
        rows.append(
            (
                f"{label(PRIORITY_LABELS, priority)} ({_duration(limit)})",
                scaled,
                _("%(share)s of %(n)s", share=share, n=due),
                _inbox(priority=priority.value, status="", overdue="1"),
            )
        )
    legend = [(f"sla-{k}", v) for k, v in names.items()]
    return _hbar_chart(
        _("Opened within the SLA, last %(n)s days", n=data.period), rows, legend
    )


def _backlog_chart(data: Figures) -> Chart:
    left, top, plot_w, plot_h = 44.0, 12.0, 660.0, 200.0
    chart = Chart(760, 260, _("Open backlog by status and age"))
    labels: dict[str, object] = {str(k): v for k, v in STATUS_LABELS.items()}
    sums = [sum(data.backlog[s.value][i] for s in OPEN_STATUSES) for i in range(len(AGE_BUCKETS))]
    top_value = nice_max(max(sums, default=0) or 1)
    _y_axis(chart, left, top, plot_w, plot_h, top_value)
    slot = plot_w / len(AGE_BUCKETS)
    for i, (_age, bucket_name) in enumerate(AGE_BUCKETS):
        y = top + plot_h
        for status in OPEN_STATUSES:
            count = data.backlog[status.value][i]
            if not count:
                continue
            height = plot_h * count / top_value
            y -= height
            name = label(labels, status.value)
            chart.rects.append(
                Rect(
                    left + i * slot + slot * 0.2,
                    y,
                    slot * 0.6,
                    height,
                    f"st-{status.value}",
                    f"{bucket_name} · {name}: {count}",
                    _inbox(status=status.value),
                )
            )
        chart.texts.append(Text(left + (i + 0.5) * slot, y - 4, str(sums[i]), "middle", "total"))
        chart.texts.append(
            Text(left + (i + 0.5) * slot, top + plot_h + 16, str(bucket_name), "middle")
        )
    chart.legend = [(f"st-{s.value}", label(labels, s.value)) for s in OPEN_STATUSES]
    return chart


def _duration(limit: timedelta) -> str:
    minutes = int(limit.total_seconds() // 60)
    if minutes < 60:
        return _("%(n)s min", n=minutes)
    return _("%(n)s h", n=minutes // 60)


def _inbox(**params: str) -> str:
    """The inbox filtered to the tips behind a figure."""
    values: dict[str, Any] = {k: v for k, v in params.items() if v}
    return url_for("inbox.index", **values)


@dataclass(frozen=True)
class WorkloadRow:
    name: str
    link: str
    open: int
    overdue: int
    closure_late: int


def _workload(
    db: Session, units: list[int], now: datetime
) -> tuple[list[WorkloadRow], list[WorkloadRow]]:
    """Open tips per officer (assigned) and per unit, with those past a deadline."""
    scope = [
        Tip.unit_id.in_(units),
        Tip.dispatched_at.is_not(None),
        Tip.status.in_(OPEN_STATUSES),
        func.coalesce(Tip.category, "") != HIDDEN_CATEGORY,
    ]
    counts = (
        func.count(),
        func.sum(case((unopened_overdue(db, now), 1), else_=0)),
        func.sum(case((closure_overdue(now), 1), else_=0)),
    )
    officers = [
        WorkloadRow(name, _inbox(assignee=public), total, late or 0, closing or 0)
        for name, public, total, late, closing in db.execute(
            select(Officer.display_name, Officer.public_id, *counts)
            .join(Tip, Tip.assignee_id == Officer.id)
            .where(*scope)
            .group_by(Officer.id, Officer.display_name, Officer.public_id)
            .order_by(func.count().desc(), Officer.display_name)
        )
    ]
    per_unit = [
        WorkloadRow(name, _inbox(unit=public), total, late or 0, closing or 0)
        for name, public, total, late, closing in db.execute(
            select(Unit.name, Unit.public_id, *counts)
            .join(Tip, Tip.unit_id == Unit.id)
            .where(*scope)
            .group_by(Unit.id, Unit.name, Unit.public_id)
            .order_by(func.count().desc(), Unit.name)
        )
    ]
    return officers, per_unit


def _idle_units(db: Session, units: list[int], data: Figures) -> list[Unit]:
    """Units (below the province) that received no tip in the period: a dead OA, or a unit
    nobody writes to, is as worth a look as a busy one."""
    return list(
        db.scalars(
            select(Unit)
            .where(
                Unit.id.in_(units),
                Unit.id.not_in(list(data.per_unit)),
                Unit.parent_id.is_not(None),
            )
            .order_by(Unit.name)
        )
    )


def _silent_oas(db: Session, units: list[int], now: datetime) -> list[OfficialAccount]:
    """OAs of these units with no webhook for :data:`SILENT_AFTER` (or never)."""
    return list(
        db.scalars(
            select(OfficialAccount)
            .where(
                OfficialAccount.unit_id.in_(units),
                or_(
                    OfficialAccount.last_webhook_at.is_(None),
                    OfficialAccount.last_webhook_at < now - SILENT_AFTER,
                ),
            )
            .order_by(OfficialAccount.last_webhook_at.is_not(None), OfficialAccount.last_webhook_at)
        )
    )


def _escalated(db: Session, units: list[int]) -> list[Tip]:
    return list(
        db.scalars(
            select(Tip)
            .where(
                Tip.unit_id.in_(units),
                Tip.escalated_at.is_not(None),
                Tip.status.in_(OPEN_STATUSES),
            )
            .order_by(Tip.escalated_at.desc())
            .limit(ESCALATED_SHOWN)
        )
    )


@dataclass(frozen=True)
class MapArea:
    path: str
    shade: int  # 0 (no tips) … 4 (the most)
    href: str
    title: str
    overdue: int
    label_x: float
    label_y: float


def _map(
    db: Session, units: list[int], data: Figures, now: datetime
) -> tuple[float, float, list[MapArea]] | None:
    """The communes of these units, shaded by tips in the period, each a link to its
    overdue tips; None without boundaries (or no current commune)."""
    boundaries = runtime().config.ward_boundaries
    if boundaries is None or not boundaries.exists():
        return None
    communes = {
        ward: (unit_id, name, public)
        for unit_id, code, name, public in db.execute(
            select(Unit.id, Unit.code, Unit.name, Unit.public_id).where(Unit.id.in_(units))
        )
        for ward in [ward_code(code)]
        if ward is not None
    }
    drawn = area_map(str(boundaries.resolve()), frozenset(communes))
    if drawn is None:
        return None
    overdue = {
        unit_id: int(count)
        for unit_id, count in db.execute(
            select(Tip.unit_id, func.count())
            .where(
                Tip.unit_id.in_(units),
                Tip.dispatched_at.is_not(None),
                Tip.status.in_(OPEN_STATUSES),
                unopened_overdue(db, now),
            )
            .group_by(Tip.unit_id)
        )
    }
    most = max(data.per_unit.values(), default=0) or 1
    areas = []
    for area in drawn.areas:
        unit_id, name, public = communes[area.code]
        tips = data.per_unit.get(unit_id, 0)
        late = overdue.get(unit_id, 0)
        shade = 0 if not tips else 1 + min(3, (3 * tips) // most)
        title = _("%(unit)s: %(n)s tips, %(late)s overdue", unit=name, n=tips, late=late)
        areas.append(
            MapArea(
                area.path,
                shade,
                _inbox(unit=public, overdue="1"),
                title,
                late,
                area.label_x,
                area.label_y,
            )
        )
    return drawn.width, drawn.height, areas


@blueprint.get("/")
def index() -> ResponseReturnValue:
    user = staff()
    if not user.is_commander:
        raise Forbidden()
    asked = request.args.get("days", DAYS, type=int)
    period = asked if asked in PERIODS else DAYS
    now = utcnow()
    with runtime().sessions() as db:
        units = visible_unit_ids(db, user)
        data = figures(db, units, now, period)
        officers, per_unit = _workload(db, units, now)
        panels = {
            "workload": officers,
            "unit_workload": per_unit,
            "idle_units": _idle_units(db, units, data),
            "silent_oas": _silent_oas(db, units, now),
            "escalated": _escalated(db, units),
            "province_map": _map(db, units, data, now),
        }
        since = data.days[0].isoformat()
        page = render_template(
            "triage/dashboard.html",
            data=data,
            charts=[_daily_chart(data), _unit_chart(data), _sla_chart(data), _backlog_chart(data)],
            backlog_total=sum(sum(v) for v in data.backlog.values()),
            compliance=_compliance(data),
            satisfaction=[
                (data.unit_names.get(unit_id, "?"), asked, answered, average)
                for unit_id, (asked, answered, average) in sorted(
                    data.satisfaction.items(), key=lambda item: (-item[1][1], item[0])
                )
            ],
            days=period,
            periods=PERIODS,
            period_changed=asked != period,
            links={
                "period": _inbox(since=since, status=""),
                "backlog": _inbox(),
                "overdue": _inbox(overdue="1"),
                "closure": _inbox(closure="1"),
            },
            closure_days=CLOSURE_DEADLINE.days,
            silent_days=SILENT_AFTER.days,
            now=now,
            logout_form=EmptyForm(),
            user=user,
            **panels,
        )
    return page


def _compliance(data: Figures) -> str:
    due = sum(v["met"] + v["late"] + v["overdue"] for v in data.sla.values())
    met = sum(v["met"] for v in data.sla.values())
    return f"{100 * met / due:.0f} %" if due else "—"
