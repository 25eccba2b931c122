"""The auditor's workspace: who touched what, filterable, exportable, verifiable; no tip content.

Auditors hold no unit key (DESIGN.md, Audit). These pages read ``audit_events`` and the names
of officers and units, nothing else; they link to nothing that opens a tip. They are audited
themselves: each page view records AUDIT_VIEW (before anything is shown), an export
AUDIT_EXPORT (in the export's transaction), a verification AUDIT_VERIFY with its outcome.

Only the ``auditor`` role gets in. Admins manage the accounts and keys whose use is audited, so
they do not audit themselves (separation of duties); officers and commanders get 403 too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from keys import VerifyKey
from tipline.audit import (
    FAILED_LOGINS,
    LOGIN_SPRAY,
    LOGIN_SWARM,
    Anomaly,
    actions,
    anomalies,
    export_csv,
    query_events,
    record,
    verify_chain,
)
from tipline.audit.checkpoint import Checkpoint, CheckpointError
from tipline.audit.query import CsvNames
from tipline.audit.roster import roster_rules
from tipline.audit.witness import (
    NotWitnessed,
    Reading,
    WitnessedResult,
    WitnessError,
    make_checkpoint,
    read,
    verify_witnessed,
)
from tipline.db import write_session
from tipline.intake.recording import normalise_receipt_code
from tipline.models import (
    AnomalyReview,
    AuditEvent,
    Officer,
    Outcome,
    Role,
    RouteReason,
    Tip,
    Unit,
    utcnow,
)
from tipline.time_rules import (
    VIETNAM,
)
from tipline.web.i18n import _
from tipline.web.labels import (
    ACTION_LABELS,
    ANOMALY_LABELS,
    CATEGORY_LABELS,
    OUTCOME_LABELS,
    PRIORITY_LABELS,
    ROLE_LABELS,
    STATUS_LABELS,
    choices,
    label,
)
from triage.forms import (
    IDENTIFIER,
    AuditFilterForm,
)
from triage.users import runtime, staff

blueprint = Blueprint("audit_ui", __name__, url_prefix="/audit")
PAGE_SIZE = 50
MAX_PAGE = 1_000_000  # past any real log; a larger offset overflows the database's integers
ANOMALY_DAYS = 7  # the anomaly panel's default window
ACTIVITY_DAYS = 30  # an officer's summary and flags, by default

LOGIN_FLAGS = frozenset({FAILED_LOGINS, LOGIN_SPRAY, LOGIN_SWARM})


@dataclass(frozen=True)
class Filters:
    """The validated filters, as :func:`tipline.audit.query_events` takes them."""

    officer: str | None = None
    unit: list[str] | None = None
    action: str | None = None
    outcome: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # What was asked, for the AUDIT_VIEW detail and the export form: short strings only.
    asked: dict[str, str] = field(default_factory=dict)

    def query(self) -> dict[str, Any]:
        return {
            "officer": self.officer,
            "unit": self.unit,
            "action": self.action,
            "outcome": self.outcome,
            "object_id": self.object_id,
            "since": self.since,
            "until": self.until,
        }


@blueprint.app_template_filter("audit_time")
def audit_time(moment: datetime | None) -> str:
    """Vietnam's clock, to the second: the order of events matters to an auditor."""
    if moment is None:
        return "—"
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S")


def day_start(day: date) -> datetime:
    """Midnight in Vietnam: the auditor's dates are local dates."""
    return datetime.combine(day, time(), VIETNAM)


def _filter_form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    named = ((name, label(ACTION_LABELS, name)) for name in actions.ALL)
    form.action.choices = [("", "—"), *sorted(named, key=lambda c: c[1])]
    form.outcome.choices = [("", "—"), *choices(OUTCOME_LABELS)]
    return form


def _units_below(db: Session, code: str) -> list[str]:
    """A unit's code and the codes of every unit below it (a province's whole tree)."""
    top = db.scalar(select(Unit.id).where(Unit.code == code))
    if top is None:
        return [code]
    ids, frontier = [top], [top]
    while frontier:
        frontier = list(db.scalars(select(Unit.id).where(Unit.parent_id.in_(frontier))))
        ids += frontier
    return list(db.scalars(select(Unit.code).where(Unit.id.in_(ids))))


def _filters(db: Session, form: AuditFilterForm, *, default_days: int | None = None) -> Filters:
    """The form's filters; ``default_days`` fills an empty "from" with that many days back."""
    asked: dict[str, str] = {}
    since = day_start(form.since.data) if form.since.data else None
    if since is None and default_days is not None:
        since = day_start(utcnow().astimezone(VIETNAM).date() - timedelta(days=default_days - 1))
    until = day_start(form.until.data) + timedelta(days=1) if form.until.data else None
    unit = (form.unit.data or "").strip() or None
    units = None
    if unit is not None:
        units = _units_below(db, unit) if form.below.data else [unit]
    for key, value in (
        ("officer", form.officer.data),
        ("unit", unit),
        ("below", "1" if unit and form.below.data else None),
        ("action", form.action.data),
        ("outcome", form.outcome.data),
        ("object", form.tip.data),
        ("since", since.date().isoformat() if since else None),
        ("until", form.until.data.isoformat() if form.until.data else None),
    ):
        if value:
            asked[key] = str(value).strip()
    return Filters(
        officer=(form.officer.data or "").strip() or None,
        unit=units,
        action=form.action.data or None,
        outcome=form.outcome.data or None,
        object_id=_object_id(db, form.tip.data or ""),
        since=since,
        until=until,
        asked=asked,
    )


def _tip_by_receipt(db: Session, text: str) -> Tip | None:
    """The tip whose receipt code ``text`` is, typed any way a citizen quotes it."""
    code = normalise_receipt_code(text)
    if not code.startswith("TL-"):
        return None
    return db.scalars(select(Tip).where(Tip.receipt_code == code)).one_or_none()


def _object_id(db: Session, text: str) -> str | None:
    """What the "receipt code or object" filter asks for: a tip's public id for a receipt
    code, else the id as typed (a tip, an account, a unit's public id)."""
    text = text.strip()
    if not text:
        return None
    tip = _tip_by_receipt(db, text)
    return tip.public_id if tip is not None else text


def _me(db: Session) -> Officer:
    return db.get_one(Officer, staff().officer_id)


def _client() -> str | None:
    return request.remote_addr


def _note(
    action: str,
    *,
    object_id: str | None = None,
    outcome: Outcome = Outcome.OK,
    detail: dict[str, str] | None = None,
) -> None:
    """Record what the auditor did, in its own short transaction (the write lock is brief)."""
    with write_session(runtime().sessions) as db:
        record(
            db,
            action=action,
            actor=_me(db),
            object_id=object_id,
            outcome=outcome,
            client_address=_client(),
            detail=detail,
        )


@blueprint.before_request
def _auditors_only() -> None:
    if staff().role != Role.AUDITOR:
        abort(403)


def _page() -> int:
    page = max(1, request.args.get("page", 1, type=int) or 1)
    if page > MAX_PAGE:
        abort(404)
    return page


def _pairs(db: Session, stmt: Select[str, str]) -> dict[str, str]:
    """A two-column query as a mapping from the first to the second."""
    return {str(row[0]): str(row[1]) for row in db.execute(stmt)}


@dataclass
class Names:
    """What ids and codes in events read as: unit names, receipt codes, officers' names."""

    units: dict[str, str] = field(default_factory=dict)
    receipts: dict[str, str] = field(default_factory=dict)
    officers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, db: Session, events: list[AuditEvent]) -> Names:
        codes, ids = set(), set()
        for e in events:
            if e.unit_code:
                codes.add(e.unit_code)
            if e.object_id:
                ids.add(e.object_id)
            for key, value in _safe_detail(e).items():
                if key in UNIT_KEYS:
                    codes.add(value)
                elif key in OFFICER_KEYS:
                    ids.add(value)
        names = cls()
        if codes:
            names.units = _pairs(db, select(Unit.code, Unit.name).where(Unit.code.in_(codes)))
        if ids:
            names.receipts = _pairs(
                db, select(Tip.public_id, Tip.receipt_code).where(Tip.public_id.in_(ids))
            )
            names.officers = _pairs(
                db,
                select(Officer.public_id, Officer.display_name).where(Officer.public_id.in_(ids)),
            )
        return names


# What the keys of an event's detail read as (anything else is shown as stored).
DETAIL_LABELS: dict[str, Any] = {
    "unit": _l("Unit"),
    "to_unit": _l("To unit"),
    "from_unit": _l("From unit"),
    "assignee": _l("Assigned to"),
    "by": _l("By"),
    "route": _l("Route"),
    "status": _l("Status"),
    "priority": _l("Priority"),
    "category": _l("Category"),
    "results": _l("Results"),
    "searched": _l("Tips searched"),
    "rows": _l("Rows"),
    "view": _l("Page"),
    "page": _l("Page number"),
    "checked": _l("Events checked"),
    "head_seq": _l("Last event"),
    "first_bad_seq": _l("First broken event"),
    "on_duty": _l("On duty"),
    "kind": _l("Flag"),
    "message": _l("Message"),
    "delivery": _l("Delivery"),
    "oa": _l("OA"),
    "reason": _l("Reason"),
    "since": _l("From"),
    "until": _l("To"),
    "officer": _l("Officer"),
    "action": _l("Action"),
    "object": _l("Object"),
    "outcome": _l("Outcome"),
}
UNIT_KEYS = frozenset({"unit", "to_unit", "from_unit"})
OFFICER_KEYS = frozenset({"assignee", "officer"})
VALUE_LABELS: dict[str, dict[Any, Any]] = {
    "status": STATUS_LABELS,
    "priority": PRIORITY_LABELS,
    "category": CATEGORY_LABELS,
    "action": ACTION_LABELS,
    "kind": ANOMALY_LABELS,
    "outcome": OUTCOME_LABELS,
    "on_duty": {"1": _l("yes"), "0": _l("no")},
    "by": {"duty_roster": _l("duty roster")},
    "route": {reason.value: reason.value for reason in RouteReason},
}


def _safe_detail(event: AuditEvent) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in event.detail.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def _detail_text(event: AuditEvent, names: Names) -> str:
    """The detail in words: labelled keys, unit names for codes, officers' names for ids. A row
    altered by hand may hold anything, so it is shown raw then."""
    try:
        pairs = sorted(event.detail.items())
    except (ValueError, TypeError, AttributeError):
        return str(event.detail_json)
    parts = []
    for key, value in pairs:
        text = str(value)
        if key in UNIT_KEYS:
            text = names.units.get(text, text)
        elif key in OFFICER_KEYS:
            text = names.officers.get(text, text)
        elif key in VALUE_LABELS:
            text = str(VALUE_LABELS[key].get(text, text))
        parts.append(f"{label(DETAIL_LABELS, key)}: {text}")
    return "; ".join(parts)


def _rows(events: list[AuditEvent], db: Session | None = None) -> list[dict[str, Any]]:
    """What a row of the event table shows: names and receipt codes, never anything from a
    tip's content."""
    names = Names.of(db, events) if db is not None else Names()
    return [
        {
            "event": e,
            "action": label(ACTION_LABELS, e.action),
            "outcome": label(OUTCOME_LABELS, e.outcome),
            "role": label(ROLE_LABELS, e.actor_role) if e.actor_role else "",
            "detail": _detail_text(e, names),
            "unit_name": names.units.get(e.unit_code or "", e.unit_code or ""),
            "receipt": names.receipts.get(e.object_id or ""),
            "object_name": names.officers.get(e.object_id or ""),
        }
        for e in events
    ]


def _datalists(db: Session) -> dict[str, Any]:
    officers = db.execute(
        select(Officer.username, Officer.display_name).order_by(Officer.username)
    ).all()
    units = db.execute(select(Unit.code, Unit.name).order_by(Unit.code)).all()
    return {"officer_options": officers, "unit_options": units}


@blueprint.get("/")
def index() -> ResponseReturnValue:
    """Every event, newest first, filtered and paginated in SQL."""
    form = _filter_form()
    page = _page()
    valid = form.validate() if request.args else True
    with runtime().sessions() as db:
        filters = _filters(db, form) if valid else Filters()
    _note(actions.AUDIT_VIEW, detail={"view": "events", "page": str(page), **filters.asked})
    with runtime().sessions() as db:
        if valid:
            result = query_events(db, page=page, per_page=PAGE_SIZE, **filters.query())
            rows, total, pages = _rows(result.items, db), result.total, result.pages
        else:
            rows, total, pages = [], 0, 1
        lists = _datalists(db)
    args = {k: v for k, v in request.args.items() if k != "page" and v and k in form}
    return render_template(
        "audit/events.html",
        form=form,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        args=args,
        **lists,
    )


@blueprint.get("/officers/<public_id>")
def officer(public_id: str) -> ResponseReturnValue:
    """One account's activity: a summary by action, its anomaly flags, its events."""
    if not IDENTIFIER.regex.match(public_id):
        abort(404)
    form = _filter_form()
    page = _page()
    valid = form.validate() if request.args else True
    with runtime().sessions() as db:
        who = db.scalars(select(Officer).where(Officer.public_id == public_id)).one_or_none()
        known = who is not None or db.scalar(
            select(AuditEvent.id).where(AuditEvent.actor_id == public_id).limit(1)
        )
        if not known:
            abort(404)
        filters = _filters(db, form, default_days=ACTIVITY_DAYS) if valid else Filters()
    _note(
        actions.AUDIT_VIEW,
        object_id=public_id,
        detail={"view": "officer", "page": str(page), **filters.asked},
    )
    with runtime().sessions() as db:
        who = db.scalars(select(Officer).where(Officer.public_id == public_id)).one_or_none()
        since = filters.since or day_start(utcnow().date()) - timedelta(days=ACTIVITY_DAYS)
        scoped = {**filters.query(), "officer": public_id, "since": since}
        result = query_events(db, page=page, per_page=PAGE_SIZE, **scoped)
        window = [AuditEvent.actor_id == public_id, AuditEvent.at >= since]
        if filters.until is not None:
            window.append(AuditEvent.at < filters.until)
        counts = [
            (label(ACTION_LABELS, name), count)
            for name, count in db.execute(
                select(AuditEvent.action, func.count())
                .where(*window)
                .group_by(AuditEvent.action)
                .order_by(func.count().desc())
            ).all()
        ]
        flags = anomalies(
            db,
            since=since,
            until=filters.until,
            officer=public_id,
            rules=roster_rules(db, since=since, until=filters.until),
        )
        about = query_events(
            db,
            object_id=public_id,
            action=[actions.ACCOUNT_CREATE, actions.ACCOUNT_CHANGE, actions.GRANT],
            per_page=20,
        )
        context = {
            "who": who,
            "public_id": public_id,
            "name": who.display_name if who else public_id,
            "username": who.username if who else "",
            "role": label(ROLE_LABELS, who.role) if who else "",
            "unit": who.unit if who else None,
            "counts": counts,
            "flags": _flag_rows(db, flags),
            "rows": _rows(result.items, db),
            "about": _rows(about.items, db),
            "total": result.total,
            "page": page,
            "pages": result.pages,
            "since": since,
        }
    args = {k: v for k, v in request.args.items() if k != "page" and v and k in form}
    return render_template("audit/officer.html", form=form, args=args, **context)


def flag_key(flag: Anomaly) -> str:
    """A flag's identity across computations: its kind and first event."""
    return f"{flag.kind}:{flag.event_ids[0]}"


def _flag_rows(db: Session, found: list[Anomaly]) -> list[dict[str, Any]]:
    """Each flag with a link to the events behind it (the list, filtered) and its review."""
    keys = [flag_key(f) for f in found]
    reviews = {
        r.flag: r
        for r in (
            db.scalars(select(AnomalyReview).where(AnomalyReview.flag.in_(keys))) if keys else []
        )
    }
    rows = []
    for flag, key in zip(found, keys, strict=True):
        logins = flag.kind in LOGIN_FLAGS
        link: dict[str, str] = {
            "action": actions.LOGIN_FAILED if logins else actions.TIP_OPEN,
            "since": flag.start.astimezone(VIETNAM).date().isoformat(),
            "until": flag.end.astimezone(VIETNAM).date().isoformat(),
        }
        if flag.actor_id and not logins:
            link["officer"] = flag.actor_id
        if flag.object_id and not logins:
            link["tip"] = flag.object_id
        rows.append(
            {
                "flag": flag,
                "kind": label(ANOMALY_LABELS, flag.kind),
                "link": link,
                "key": key,
                "review": reviews.get(key),
            }
        )
    return rows


@blueprint.get("/anomalies")
def anomaly_panel() -> ResponseReturnValue:
    """The anomaly flags over a chosen window (the last week by default)."""
    form = _filter_form()
    valid = form.validate() if request.args else True
    with runtime().sessions() as db:
        filters = _filters(db, form, default_days=ANOMALY_DAYS) if valid else Filters()
    _note(actions.AUDIT_VIEW, detail={"view": "anomalies", **filters.asked})
    with runtime().sessions() as db:
        since = filters.since or day_start(utcnow().date()) - timedelta(days=ANOMALY_DAYS)
        found = (
            anomalies(
                db,
                since=since,
                until=filters.until,
                officer=filters.officer,
                unit=filters.unit,
                rules=roster_rules(db, since=since, until=filters.until),
            )
            if valid
            else []
        )
        flags = _flag_rows(db, found)
        if request.args.get("unreviewed"):
            flags = [row for row in flags if row["review"] is None]
        lists = _datalists(db)
    return render_template(
        "audit/anomalies.html",
        form=form,
        unreviewed=bool(request.args.get("unreviewed")),
        flags=flags,
        since=since,
        until=filters.until - timedelta(days=1) if filters.until else None,
        **lists,
    )


MAX_NOTE = 1000


def _csv_names(db: Session) -> CsvNames:
    """The page's words for the export: Vietnam's time, action labels, unit names, receipt
    codes looked up per batch of events."""

    def receipts(ids: Sequence[str]) -> dict[str, str]:
        tips = select(Tip.public_id, Tip.receipt_code).where(Tip.public_id.in_(set(ids)))
        return _pairs(db, tips)

    return CsvNames(
        zone=VIETNAM,
        actions={name: str(label(ACTION_LABELS, name)) for name in actions.ALL},
        units=_pairs(db, select(Unit.code, Unit.name)),
        receipts=receipts,
    )


@blueprint.post("/anomalies/review")
def review_anomaly() -> ResponseReturnValue:
    """Mark a flag reviewed with a note: kept with the flag, recorded in the chain as the
    auditor's ANOMALY_REVIEW. The flag must be one the events still show."""
    key = request.form.get("flag", "")
    note = " ".join(request.form.get("note", "").split())
    kind, _sep, first = key.partition(":")
    if not note or len(note) > MAX_NOTE or kind not in ANOMALY_LABELS:
        abort(
            400, _("Write a note (at most %(n)d characters) to mark a flag reviewed.", n=MAX_NOTE)
        )
    with write_session(runtime().sessions) as db:
        event = db.scalars(
            select(AuditEvent).where(AuditEvent.public_id == first)
        ).one_or_none()
        if event is None:
            abort(400, _("This flag no longer exists."))
        since = event.at - timedelta(days=1)
        found = anomalies(
            db,
            since=since,
            until=event.at + timedelta(days=1),
            rules=roster_rules(db, since=since),
        )
        if key not in {flag_key(f) for f in found}:
            abort(400, _("This flag no longer exists."))
        me = _me(db)
        review = db.scalars(select(AnomalyReview).where(AnomalyReview.flag == key)).one_or_none()
        if review is None:
            review = AnomalyReview(flag=key, note=note, reviewer_id=me.public_id, reviewer_name="")
            db.add(review)
        review.note = note
        review.reviewer_id = me.public_id
        review.reviewer_name = me.display_name
        review.reviewed_at = utcnow()
        record(
            db,
            action=actions.ANOMALY_REVIEW,
            actor=me,
            object_id=first,
            client_address=_client(),
            detail={"kind": kind},
        )
    return redirect(url_for("audit_ui.anomaly_panel"))


@blueprint.get("/tips/<code>")
def tip_history(code: str) -> ResponseReturnValue:
    """Everything that happened to one tip, found by its receipt code as a citizen quotes it
    (what a complaint names): the tip's events in chain order, with its unit's name."""
    if len(code) > 40:
        abort(404)
    with runtime().sessions() as db:
        tip = _tip_by_receipt(db, code)
        if tip is None:
            abort(404)
        public_id, receipt = tip.public_id, tip.receipt_code
    _note(actions.AUDIT_VIEW, object_id=public_id, detail={"view": "tip"})
    with runtime().sessions() as db:
        tip = db.scalars(select(Tip).where(Tip.public_id == public_id)).one()
        result = query_events(
            db, object_id=public_id, per_page=MAX_HISTORY, newest_first=False
        )
        context = {
            "receipt": receipt,
            "unit": tip.unit.name if tip.unit else None,
            "received": tip.created_at,
            "rows": _rows(result.items, db),
            "total": result.total,
            "shown": len(result.items),
        }
    return render_template("audit/tip.html", **context)


MAX_HISTORY = 500  # events on one tip's page; the filtered list pages through more


@blueprint.post("/export")
def export() -> ResponseReturnValue:
    """The filtered events as CSV (hashes included): recorded as AUDIT_EXPORT, then sent."""
    form = AuditFilterForm(request.form)
    form.action.choices = [("", "")] + [(name, name) for name in actions.ALL]
    form.outcome.choices = [("", "")] + [(name, name) for name in OUTCOME_LABELS]
    if not form.validate():
        abort(400)
    with write_session(runtime().sessions) as db:
        filters = _filters(db, form)
        text = export_csv(
            db,
            actor=_me(db),
            client_address=_client(),
            names=_csv_names(db),
            **filters.query(),
        )
    stamp = utcnow().astimezone(VIETNAM).strftime("%Y%m%d-%H%M%S")
    return Response(
        "\ufeff" + text,  # a byte-order mark so that spreadsheets read UTF-8
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="tipline-audit-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


@blueprint.route("/verify", methods=["GET", "POST"])
def verify() -> ResponseReturnValue:
    """GET: the button, the latest witnessed checkpoint and the past verifications. POST:
    verify the whole chain now, through every witnessed checkpoint (tipline.audit.witness)."""
    witnessed: WitnessedResult | None = None
    result = None
    bad: list[dict[str, Any]] = []
    if request.method == "POST":  # CSRF checked by CSRFProtect before we get here
        with runtime().sessions() as db:  # read-only: no write lock while a long chain is read
            witnessed = verify_witnessed(db, runtime().witness, _trusted())
            result = witnessed.chain
            if result.first_bad_seq is not None:
                bad = _rows(
                    list(
                        db.scalars(
                            select(AuditEvent)
                            .where(
                                or_(
                                    AuditEvent.seq == result.first_bad_seq,
                                    AuditEvent.public_id == (result.first_bad_id or ""),
                                )
                            )
                            .order_by(AuditEvent.id)
                        )
                    )
                )  # as stored, codes and all: this is the evidence of an edit
        detail = {"checked": str(result.checked), "head_seq": str(result.head_seq)}
        if result.first_bad_seq is not None:
            detail["first_bad_seq"] = str(result.first_bad_seq)
        if witnessed.latest is not None:
            detail["witnessed_seq"] = str(witnessed.latest.seq)
        if witnessed.missing_triggers:
            detail["missing_triggers"] = ",".join(witnessed.missing_triggers)[:100]
        _note(
            actions.AUDIT_VERIFY,
            outcome=Outcome.OK if witnessed.ok else Outcome.BROKEN,
            detail=detail,
        )
    else:
        _note(actions.AUDIT_VIEW, detail={"view": "verify"})
    with runtime().sessions() as db:
        history = query_events(db, action=actions.AUDIT_VERIFY, per_page=10)
        rows = _rows(history.items, db)
    return render_template(
        "audit/verify.html",
        result=result,
        witnessed=witnessed,
        bad=bad,
        history=rows,
        **_checkpoint_panel(),
    )


# --- checkpoints: made, exported and compared here (tipline.audit.witness) -------------------


def _trusted() -> VerifyKey:
    return runtime().config.secrets.audit_signing_key.verify_key


def _age_text(age: timedelta | None) -> str:
    if age is None:
        return ""
    minutes = max(0, int(age.total_seconds() // 60))
    if minutes < 60:
        return str(_("%(n)s minutes ago", n=minutes))
    if minutes < 48 * 60:
        return str(_("%(n)s hours ago", n=minutes // 60))
    return str(_("%(n)s days ago", n=minutes // (24 * 60)))


def _checkpoint_panel(**extra: Any) -> dict[str, Any]:
    """The latest witnessed checkpoint, its age and the witness's restores (no chain walk)."""
    witness = runtime().witness
    problem = None
    reading = Reading()
    try:
        reading = read(witness.records(_trusted()))
    except WitnessError as exc:
        problem = str(exc)
    latest = reading.latest
    age = utcnow() - latest.at if latest is not None else None
    return {
        "latest": latest,
        "latest_age": _age_text(age),
        "stale": age is not None and age > timedelta(hours=1),
        "restores": reading.restores,
        "witness_problem": problem,
        "witness_configured": witness.configured,
        "fingerprint": _trusted().fingerprint,
        "compared": None,
        **extra,
    }


def _render_checkpoints(status: int = 200, **extra: Any) -> ResponseReturnValue:
    with runtime().sessions() as db:
        history = query_events(db, action=actions.AUDIT_VERIFY, per_page=10)
        rows = _rows(history.items, db)
    page = render_template(
        "audit/verify.html",
        result=None,
        witnessed=None,
        bad=[],
        history=rows,
        **_checkpoint_panel(**extra),
    )
    return page, status


@blueprint.post("/checkpoints")
def checkpoint_new() -> ResponseReturnValue:
    """Verify the newest events, sign the head and append it to the witness; audited."""
    key = runtime().config.secrets.audit_signing_key
    try:
        with runtime().sessions() as db:
            made = make_checkpoint(db, runtime().witness, key)
    except (NotWitnessed, WitnessError) as exc:
        _note(actions.AUDIT_CHECKPOINT, outcome=Outcome.BROKEN, detail={"made": "no"})
        return _render_checkpoints(409, made_error=str(exc))
    _note(actions.AUDIT_CHECKPOINT, detail={"seq": str(made.seq)})
    return _render_checkpoints(made=made)


@blueprint.post("/checkpoints/export")
def checkpoint_export() -> ResponseReturnValue:
    """The latest witnessed checkpoint as a signed file, to keep away from this server; one is
    made first when none exists yet."""
    try:
        latest = read(runtime().witness.records(_trusted())).latest
        if latest is None:
            with runtime().sessions() as db:
                latest = make_checkpoint(
                    db, runtime().witness, runtime().config.secrets.audit_signing_key
                )
            _note(actions.AUDIT_CHECKPOINT, detail={"seq": str(latest.seq)})
    except (NotWitnessed, WitnessError) as exc:
        return _render_checkpoints(409, made_error=str(exc))
    _note(actions.AUDIT_EXPORT, detail={"checkpoint_seq": str(latest.seq)})
    stamp = latest.at.astimezone(VIETNAM).strftime("%Y%m%d-%H%M%S")
    return Response(
        latest.to_json() + "\n",
        mimetype="application/json",
        headers={
            "Content-Disposition": (
                f'attachment; filename="tipline-checkpoint-{latest.seq}-{stamp}.json"'
            ),
            "Cache-Control": "no-store",
        },
    )


MAX_CHECKPOINT_BYTES = 4096


@blueprint.post("/checkpoints/compare")
def checkpoint_compare() -> ResponseReturnValue:
    """An exported checkpoint, uploaded: does the chain still pass through it?"""
    upload = request.files.get("checkpoint")
    data = upload.read(MAX_CHECKPOINT_BYTES + 1) if upload is not None else b""
    try:
        if not data or len(data) > MAX_CHECKPOINT_BYTES:
            raise CheckpointError("empty or too large")
        checkpoint = Checkpoint.from_json(data.decode("utf-8"))
        checkpoint.check(_trusted())
    except (CheckpointError, UnicodeDecodeError) as exc:
        _note(actions.AUDIT_COMPARE, outcome=Outcome.FAILED, detail={"consistent": "unreadable"})
        return _render_checkpoints(
            400,
            compared={"verdict": "unreadable", "reason": str(exc), "checkpoint": None},
        )
    try:
        reading = read(runtime().witness.records(_trusted()))
    except WitnessError:
        reading = Reading()
    lost = next(
        (
            r
            for r in reading.restores
            if r.lost_to is not None and r.since < checkpoint.seq <= r.lost_to
        ),
        None,
    )
    with runtime().sessions() as db:
        result = verify_chain(db, checkpoint, trusted_key=_trusted())
    if result.ok:
        verdict = "consistent"
    elif lost is not None and result.reason and "ends before" in result.reason:
        verdict = "lost"
    else:
        verdict = "inconsistent"
    _note(
        actions.AUDIT_COMPARE,
        outcome=Outcome.OK if verdict != "inconsistent" else Outcome.BROKEN,
        detail={"seq": str(checkpoint.seq), "consistent": verdict},
    )
    return _render_checkpoints(
        compared={
            "verdict": verdict,
            "checkpoint": checkpoint,
            "reason": result.reason,
            "restore": lost,
        }
    )
