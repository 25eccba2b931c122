"""The auditor's workspace: who touched what, filterable, exportable, verifiable; no tip content.

Auditors hold no unit key (DESIGN.md, Audit). These pages read ``audit_events`` and the names
of officers and units, nothing else; they link to nothing that opens a tip. They are audited
themselves: each page view records AUDIT_VIEW (before anything is shown), an export
AUDIT_EXPORT (in the export's transaction), a verification AUDIT_VERIFY with its outcome.

Only the ``auditor`` role gets in. Admins manage the accounts and keys whose use is audited, so
they do not audit themselves (separation of duties); officers and commanders get 403 too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import func, or_, select
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
from tipline.models import (
    AuditEvent,
    Officer,
    Outcome,
    Role,
    Unit,
    utcnow,
)
from tipline.time_rules import (
    VIETNAM,
)
from tipline.web.labels import (
    ACTION_LABELS,
    ANOMALY_LABELS,
    OUTCOME_LABELS,
    ROLE_LABELS,
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
        object_id=(form.tip.data or "").strip() or None,
        since=since,
        until=until,
        asked=asked,
    )


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


def _rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """What a row of the event table shows; the actor's name, never anything from a tip."""
    return [
        {
            "event": e,
            "action": label(ACTION_LABELS, e.action),
            "outcome": label(OUTCOME_LABELS, e.outcome),
            "role": label(ROLE_LABELS, e.actor_role) if e.actor_role else "",
            "detail": _detail_text(e),
        }
        for e in events
    ]


def _detail_text(event: AuditEvent) -> str:
    """``key=value`` pairs; a row altered by hand may hold anything, so show it raw then."""
    try:
        return ", ".join(f"{k}={v}" for k, v in sorted(event.detail.items()))
    except (ValueError, TypeError, AttributeError):
        return str(event.detail_json)


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
            rows, total, pages = _rows(result.items), result.total, result.pages
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
        flags = anomalies(db, since=since, until=filters.until, officer=public_id)
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
            "flags": _flag_rows(flags),
            "rows": _rows(result.items),
            "about": _rows(about.items),
            "total": result.total,
            "page": page,
            "pages": result.pages,
            "since": since,
        }
    args = {k: v for k, v in request.args.items() if k != "page" and v and k in form}
    return render_template("audit/officer.html", form=form, args=args, **context)


def _flag_rows(found: list[Anomaly]) -> list[dict[str, Any]]:
    """Each flag with a link to the events behind it (the list, filtered)."""
    rows = []
    for flag in found:
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
        rows.append({"flag": flag, "kind": label(ANOMALY_LABELS, flag.kind), "link": link})
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
                db, since=since, until=filters.until, officer=filters.officer, unit=filters.unit
            )
            if valid
            else []
        )
        lists = _datalists(db)
    return render_template(
        "audit/anomalies.html",
        form=form,
        flags=_flag_rows(found),
        since=since,
        until=filters.until - timedelta(days=1) if filters.until else None,
        **lists,
    )


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
        text = export_csv(db, actor=_me(db), client_address=_client(), **filters.query())
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
                )
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
        rows = _rows(history.items)
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
        rows = _rows(history.items)
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
