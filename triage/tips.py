"""A tip's page (decrypted on open, audited) and the actions officers take on it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from redis import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import EnvelopeError, PrivateKey, PublicKey
from tipline import tip_actions
from tipline.audit import actions, audited_session, query_events, record
from tipline.models import (
    CLOSED_STATUSES,
    AuditEvent,
    CannedReply,
    Category,
    Message,
    Officer,
    Outcome,
    Priority,
    Tip,
    TipStatus,
    TipView,
    Unit,
    utcnow,
)
from tipline.models.sealed_fields import MESSAGE_BODY, TIP_ROUTING
from tipline.routing.escalation import schedule
from tipline.routing.panel import routing_panel
from tipline.time_rules import ZALO_REPLY_WINDOW, reply_window
from tipline.tip_actions import ActionRefused, Actor, Field, Refusal
from tipline.transit import NoTransitKey
from tipline.web.i18n import _
from tipline.web.labels import (
    ACTION_LABELS,
    CATEGORY_LABELS,
    DELIVERY_LABELS,
    MESSAGE_KIND_LABELS,
    OUTCOME_LABELS,
    PRIORITY_LABELS,
    SEND_PROBLEM_LABELS,
    STATUS_LABELS,
    choices,
    deadlines,
    label,
    sla_remaining,
)
from triage import related
from triage.access import open_tip, other_tip, tip_for, visible_unit_ids
from triage.attachments import TALISMAN_OPTIONS, attachment_items, new_visit, serve
from triage.forms import ChoiceForm, DuplicateForm, EmptyForm, HandOverForm, TextForm, TriageForm
from triage.inbox import side_list
from triage.related import normalised_code
from triage.search import body_text
from triage.tip_map import tip_place
from triage.users import StaffUser, runtime, staff

log = logging.getLogger(__name__)
blueprint = Blueprint("tips", __name__, url_prefix="/triage/tips")
TIMELINE = 100  # events shown on a tip page
# One visit, one "tip opened" event: renders of the same tip in the same login session less
# than this apart (after an action, a reload) belong to the visit already recorded.
VISIT_GAP = timedelta(minutes=30)
VISITS = "tip_visits"  # session: tip public id -> time of the last render (public ids only)
MAX_VISITS = 50


def _new_visit(public_id: str) -> bool:
    """Whether this render starts a visit (and so is audited); remembers it in the session."""
    visits = dict(session.get(VISITS) or {})
    now = time.time()
    last = visits.get(public_id)
    visits[public_id] = now
    if len(visits) > MAX_VISITS:
        visits = dict(sorted(visits.items(), key=lambda item: item[1])[-MAX_VISITS:])
    session[VISITS] = visits
    return not isinstance(last, float | int) or now - last > VISIT_GAP.total_seconds()


def _seen(db: Session, officer: Officer, tip: Tip) -> None:
    """The officer has now seen the tip as it is: its unread marker goes."""
    view = db.scalars(
        select(TipView).where(TipView.officer_id == officer.id, TipView.tip_id == tip.id)
    ).one_or_none()
    if view is None:
        db.add(TipView(officer_id=officer.id, tip_id=tip.id, seen_at=utcnow()))
    else:
        view.seen_at = utcnow()


def _client() -> str | None:
    return request.remote_addr


def _officer(db: Session, user: StaffUser) -> Officer:
    return db.get_one(Officer, user.officer_id)


def _open_body(tip_key: PrivateKey, message: Message) -> dict[str, Any]:
    try:
        body = MESSAGE_BODY.open(tip_key, message.sealed_body, message_public_id=message.public_id)
    except EnvelopeError:
        return {"text": _("(this message could not be decrypted)")}
    data = json.loads(body)
    return data if isinstance(data, dict) else {}


def _routing(tip_key: PrivateKey, tip: Tip) -> dict[str, Any] | None:
    if tip.sealed_routing is None:
        return None
    try:
        data = json.loads(
            TIP_ROUTING.open(tip_key, tip.sealed_routing, tip_public_id=tip.public_id)
        )
    except (EnvelopeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@blueprint.get("/<public_id>")
def show(public_id: str) -> ResponseReturnValue:
    user = staff()
    with audited_session(runtime().sessions) as db:
        tip = tip_for(db, user, public_id, lock=True)
        if tip.shredded_at is not None:  # crypto-shredded (tipline.retention): no key left
            return render_template(
                "triage/tip_shredded.html",
                tip=tip,
                unit_name=tip.unit.name if tip.unit else "",
                status=label(STATUS_LABELS, tip.status),
                logout_form=EmptyForm(),
                user=user,
            )
        tip_key = open_tip(db, tip)
        officer = _officer(db, user)
        tip_actions.opened_by(tip, officer)
        if _new_visit(tip.public_id):
            record(
                db,
                action=actions.TIP_OPEN,
                actor=officer,
                object_id=tip.public_id,
                client_address=_client(),
            )
        _seen(db, officer, tip)
        authors = dict(db.execute(select(Officer.id, Officer.display_name)).all())
        sent_at = {m.public_id: m.created_at for m in tip.messages}
        messages = []
        bodies: list[tuple[str, dict[str, Any]]] = []  # for related tips and the map
        for m in tip.messages:
            body = _open_body(tip_key, m)
            bodies.append((m.direction, body))
            reply_to = body.get("reply_to")
            messages.append(
                {
                    "message": m,
                    "body": body,
                    "author": authors.get(m.author_id or 0),
                    "delivery": label(DELIVERY_LABELS, m.delivery),
                    "problem": label(SEND_PROBLEM_LABELS, m.delivery_problem)
                    if m.delivery_problem
                    else None,
                    "kind": label(MESSAGE_KIND_LABELS, m.kind),
                    "attachments": [
                        label(MESSAGE_KIND_LABELS, str(a)) for a in body.get("attachments") or []
                    ],
                    # The quoted message, when it is in this tip: linked, with its time.
                    "reply_to": reply_to if reply_to in sent_at else None,
                    "reply_to_at": sent_at.get(str(reply_to)) if reply_to else None,
                }
            )
        attachments = attachment_items(db, tip, tip_key, new_visit())
        units = visible_unit_ids(db, user)
        # Related tips and the map (issue 18): links, the numbers to look for, the place.
        tip_links = related.links_of(db, tip, units)
        tip_numbers = related.identifiers(
            body_text(body) for direction, body in bodies if direction in related.SOURCES
        )
        place = tip_place(db, tip, [body for _d, body in bodies])
        # Only officers whose key chain opens this tip (tipline.tip_actions).
        can_open = tip_actions.officers_who_can_open(db, tip, units)
        assignees = list(
            db.scalars(
                select(Officer)
                .where(Officer.public_id.in_(can_open))
                .order_by(Officer.display_name)
            )
        )
        targets = tip_actions.transfer_targets(db, tip)
        # The latest events only: a tip opened every shift gathers hundreds of "opened" rows.
        events = query_events(db, object_id=tip.public_id, newest_first=True, per_page=TIMELINE)
        timeline = [
            {
                "at": event.at,
                "action": label(ACTION_LABELS, event.action),
                "actor": event.actor_name,
                "outcome": None
                if event.outcome == Outcome.OK
                else label(OUTCOME_LABELS, event.outcome),
            }
            for event in reversed(events.items)
        ]
        duplicate_of = db.get(Tip, tip.duplicate_of_id) if tip.duplicate_of_id else None
        canned = list(
            db.scalars(
                select(CannedReply)
                .where(CannedReply.unit_id == tip.unit_id)
                .order_by(CannedReply.title)
            )
        )
        side = side_list(db, officer, [tip.unit_id] if tip.unit_id else [])  # its unit's
        now = utcnow()
        last_message = tip_actions.informant_last_message_at(tip)
        window, window_until = reply_window(last_message, now)
        context = {
            "tip": tip,
            "unit_name": tip.unit.name if tip.unit else "",
            "parent": tip.unit.parent if tip.unit else None,
            "messages": messages,
            "attachments": attachments,
            "routing": routing_panel(db, _routing(tip_key, tip)),
            "timeline": timeline,
            "timeline_total": events.total,
            "status": label(STATUS_LABELS, tip.status),
            "priority": label(PRIORITY_LABELS, tip.priority),
            "category": label(CATEGORY_LABELS, tip.category),
            "sla": sla_remaining(tip, now),
            "deadlines": [(d, d.remaining(now)) for d in deadlines(tip)],
            "canned": canned,
            "side": side,
            "taken": tip.assignee_id == officer.id and tip.status != TipStatus.NEW,
            "triage_form": _triage_form(tip, assignees),
            "handover_form": _handover_form(targets),
            "reply_open": tip_actions.reply_open(tip, now),
            "reply_until": last_message + ZALO_REPLY_WINDOW,
            "window": window,
            "window_until": window_until,
            "assignee": tip.assignee.display_name if tip.assignee else None,
            "duplicate_of": duplicate_of,
            "tip_links": tip_links,
            "tip_numbers": tip_numbers,
            "place": place,
            "status_form": _choice(tip.status, choices(STATUS_LABELS)),
            "priority_form": _choice(tip.priority, choices(PRIORITY_LABELS)),
            "category_form": _choice(tip.category or Category.OTHER, choices(CATEGORY_LABELS)),
            "assign_form": _choice(
                tip.assignee.public_id if tip.assignee else "",
                [(o.public_id, o.display_name) for o in assignees],
            ),
            "transfer_form": _choice("", [(u.public_id, u.name) for u in targets]),
            "text_form": TextForm(),
            "duplicate_form": DuplicateForm(),
            "empty_form": EmptyForm(),
            "logout_form": EmptyForm(),
            "user": user,
        }
    return render_template("triage/tip.html", **context)


@blueprint.get("/<public_id>/attachments/<attachment_id>")
def download_attachment(public_id: str, attachment_id: str) -> ResponseReturnValue:
    """The cleaned file to save; audited, never cached (triage.attachments)."""
    return serve(public_id, attachment_id, inline=False)


@blueprint.get("/<public_id>/attachments/<attachment_id>/view")
def view_attachment(public_id: str, attachment_id: str) -> ResponseReturnValue:
    """The cleaned file shown inside the tip page; audited once per visit."""
    return serve(public_id, attachment_id, inline=True)


# The file's own headers (sandbox CSP, framed by our pages only), not the pages' policy.
download_attachment.talisman_view_options = dict(TALISMAN_OPTIONS)  # type: ignore[attr-defined]
view_attachment.talisman_view_options = dict(TALISMAN_OPTIONS)  # type: ignore[attr-defined]


def _triage_form(tip: Tip, assignees: list[Officer]) -> TriageForm:
    form = TriageForm(
        formdata=None,
        prefix="triage",
        status=tip.status,
        priority=tip.priority,
        category=tip.category or Category.OTHER,
        assignee=tip.assignee.public_id if tip.assignee else "",
    )
    form.status.choices = choices(STATUS_LABELS)
    form.priority.choices = choices(PRIORITY_LABELS)
    form.category.choices = choices(CATEGORY_LABELS)
    form.assignee.choices = [("", "—")] + [(o.public_id, o.display_name) for o in assignees]
    return form


def _handover_form(targets: list[Unit]) -> HandOverForm:
    form = HandOverForm(formdata=None, prefix="handover")
    form.unit.choices = [(u.public_id, u.name) for u in targets]
    return form


def _choice(current: str, choices: list[tuple[str, str]]) -> ChoiceForm:
    form = ChoiceForm(formdata=None, value=current)
    form.value.choices = choices
    return form


Action = Callable[[Session, Tip, Actor, StaffUser], str | None]
REFUSALS = {
    Refusal.REPLY_WINDOW_CLOSED: _l(
        "The reply window is closed: Zalo lets the OA answer only within 7 days "
        "of the informant's last message."
    ),
    Refusal.INFORMANT_STOPPED: _l(
        "The informant asked to stop all contact (STOP): no reply can reach them about this tip."
    ),
    Refusal.NO_PARENT_UNIT: _l("This unit has no parent unit to escalate to."),
    Refusal.NOT_A_DUPLICATE: _l("No other tip of your units has that receipt code."),
}


def _act(public_id: str, action: Action) -> ResponseReturnValue:
    """Run one action (tipline.tip_actions) in one transaction; flash its outcome."""
    user = staff()
    with audited_session(runtime().sessions) as db:
        tip = tip_for(db, user, public_id, lock=True)
        if tip.shredded_at is not None:  # deleted under the retention policy: nothing to act on
            abort(409, _("This tip was deleted under the retention policy."))
        actor = Actor(_officer(db, user), request.remote_addr)
        try:
            message = action(db, tip, actor, user)
        except ActionRefused as refused:
            message = str(REFUSALS[refused.reason])
        # Transferred (or escalated) out of this officer's units: back to the inbox, not to
        # a page they may no longer open.
        db.flush()
        still_visible = tip.unit_id in visible_unit_ids(db, user)
    if message:
        flash(message, "info")
    if not still_visible:
        return redirect(url_for("tips.moved", public_id=public_id))
    return redirect(url_for("tips.show", public_id=public_id))


def _posted_choice(valid: set[str]) -> str:
    form = ChoiceForm()
    form.value.choices = [(v, v) for v in valid]
    if not form.validate_on_submit() or form.value.data not in valid:
        abort(400)
    return str(form.value.data)


def _transit() -> PublicKey:
    """The current transit epoch, for a message to the informant; 503 before any worker ran."""
    try:
        return runtime().transit.public()
    except NoTransitKey:
        abort(503, _("The system is starting: no worker has run yet. Try again in a few minutes."))


def _set_field(public_id: str, field: Field, valid: set[str], done: str) -> ResponseReturnValue:
    value = _posted_choice(valid)
    transit = _transit() if field is Field.STATUS else None

    def change(db: Session, tip: Tip, actor: Actor, _u: StaffUser) -> str:
        tip_actions.set_field(db, tip, actor, field, value, transit)
        return done

    return _act(public_id, change)


@blueprint.post("/<public_id>/status")
def set_status(public_id: str) -> ResponseReturnValue:
    valid = {s.value for s in TipStatus}
    return _set_field(public_id, Field.STATUS, valid, _("Status changed."))


@blueprint.post("/<public_id>/priority")
def set_priority(public_id: str) -> ResponseReturnValue:
    valid = {p.value for p in Priority}
    return _set_field(public_id, Field.PRIORITY, valid, _("Priority changed."))


@blueprint.post("/<public_id>/category")
def set_category(public_id: str) -> ResponseReturnValue:
    valid = {c.value for c in Category}
    return _set_field(public_id, Field.CATEGORY, valid, _("Category changed."))


@blueprint.post("/<public_id>/assign")
def assign(public_id: str) -> ResponseReturnValue:
    def change(db: Session, tip: Tip, actor: Actor, user: StaffUser) -> str:
        # Checked after tip_for (in _act): someone outside the tip's units gets 403 whatever
        # they post, not a 400 that depends on whose id they tried.
        value = _posted_choice(
            tip_actions.officers_who_can_open(db, tip, visible_unit_ids(db, user))
        )
        assignee = db.scalars(select(Officer).where(Officer.public_id == value)).one()
        tip_actions.assign(db, tip, actor, assignee)
        return _("Assigned.")

    return _act(public_id, change)


def _posted_text() -> str:
    form = TextForm()
    if not form.validate_on_submit():
        abort(400)
    text = (form.text.data or "").strip()
    if not text:
        abort(400)
    return text


@blueprint.post("/<public_id>/note")
def add_note(public_id: str) -> ResponseReturnValue:
    text = _posted_text()

    def change(db: Session, tip: Tip, actor: Actor, _u: StaffUser) -> str:
        open_tip(db, tip)  # only someone who can read the tip writes into it
        tip_actions.add_note(db, tip, actor, text)
        return _("Note added.")

    return _act(public_id, change)


@blueprint.post("/<public_id>/reply")
def reply(public_id: str) -> ResponseReturnValue:
    text = _posted_text()
    transit = _transit()

    def change(db: Session, tip: Tip, actor: Actor, _u: StaffUser) -> str:
        open_tip(db, tip)
        tip_actions.reply(db, tip, actor, text, transit)
        return _("Reply queued for delivery.")

    return _act(public_id, change)


def _confirmed() -> bool:
    return request.form.get("confirm") == "1"


def _confirm(
    public_id: str, title: str, consequence: str, endpoint: str, fields: dict[str, str]
) -> ResponseReturnValue:
    """The page that asks before a consequential action, saying what will follow."""
    with runtime().sessions() as db:
        tip = tip_for(db, staff(), public_id)
        if tip.shredded_at is not None:  # deleted under the retention policy: nothing to act on
            abort(409, _("This tip was deleted under the retention policy."))
        code = tip.receipt_code
    return render_template(
        "triage/confirm.html",
        receipt_code=code,
        public_id=public_id,
        title=title,
        consequence=consequence,
        action=url_for(endpoint, public_id=public_id),
        fields=fields,
        logout_form=EmptyForm(),
        user=staff(),
    )


def _posted_target(db: Session, tip: Tip) -> Unit:
    targets = {u.public_id: u for u in tip_actions.transfer_targets(db, tip)}
    value = request.form.get("value") or request.form.get("handover-unit") or ""
    if not EmptyForm().validate_on_submit() or value not in targets:
        abort(400)
    return targets[value]


@blueprint.post("/<public_id>/transfer")
def transfer(public_id: str) -> ResponseReturnValue:
    if not _confirmed():
        user = staff()
        with runtime().sessions() as db:
            target = _posted_target(db, tip_for(db, user, public_id))
            name, target_id = target.name, target.public_id
        return _confirm(
            public_id,
            _("Transfer to %(unit)s?", unit=name),
            _(
                "The tip, its conversation and its attachments go to %(unit)s, which must open "
                "it within its own deadline. The assignee is cleared, and you will no longer "
                "see the tip unless your unit is above %(unit)s.",
                unit=name,
            ),
            "tips.transfer",
            {"value": target_id},
        )

    def change(db: Session, tip: Tip, actor: Actor, _u: StaffUser) -> str:
        target = _posted_target(db, tip)
        tip_actions.transfer(db, tip, actor, open_tip(db, tip), target)
        return _("Transferred.")

    return _handed_over(public_id, _act(public_id, change))


@blueprint.post("/<public_id>/escalate")
def escalate(public_id: str) -> ResponseReturnValue:
    if not EmptyForm().validate_on_submit():
        abort(400)
    if not _confirmed():
        user = staff()
        with runtime().sessions() as db:
            tip = tip_for(db, user, public_id)
            parent = tip.unit.parent if tip.unit else None
            if parent is None:
                abort(400)
            name = parent.name
        return _confirm(
            public_id,
            _("Hand this tip up to %(unit)s?", unit=name),
            _(
                "%(unit)s becomes responsible for the tip: it leaves your unit's list and you "
                "will no longer open it, and its deadline starts again there.",
                unit=name,
            ),
            "tips.escalate",
            {},
        )

    def change(db: Session, tip: Tip, actor: Actor, _u: StaffUser) -> str:
        parent = tip.unit.parent if tip.unit else None
        if parent is None or parent.current_key is None:
            raise ActionRefused(Refusal.NO_PARENT_UNIT)  # refused before the key is opened
        parent = tip_actions.escalate(db, tip, actor, open_tip(db, tip))
        return _("Escalated to %(unit)s.", unit=parent.name)

    return _handed_over(public_id, _act(public_id, change))


def _handed_over(public_id: str, response: ResponseReturnValue) -> ResponseReturnValue:
    """After a hand-over: an urgent tip's SLA check is scheduled again in its new unit."""
    with runtime().sessions() as db:
        tip = db.scalars(select(Tip).where(Tip.public_id == public_id)).one_or_none()
        if tip is not None and tip.priority == Priority.URGENT and tip.is_open:
            try:
                schedule(runtime().redis, tip.public_id, tip.escalation_level)
            except RedisError:  # the hand-over is done; only the reminder is lost
                log.warning("could not schedule the SLA check of tip %s", tip.public_id)
    return response


@blueprint.get("/<public_id>/moved")
def moved(public_id: str) -> ResponseReturnValue:
    """Where a tip this officer handed over went: a page of its own, not a 403 on the tip."""
    user = staff()
    with runtime().sessions() as db:
        tip = db.scalars(select(Tip).where(Tip.public_id == public_id)).one_or_none()
        if tip is None:
            abort(404)
        handed = db.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.object_id == public_id,
                AuditEvent.actor_id == user.public_id,
                AuditEvent.action.in_([actions.TRANSFER, actions.ESCALATE]),
            )
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).one_or_none()
        if handed is None:
            abort(404)
        unit = tip.unit.name if tip.unit else ""
        code = tip.receipt_code
        visible = tip.unit_id in visible_unit_ids(db, user)
    return render_template(
        "triage/moved.html",
        receipt_code=code,
        unit_name=unit,
        visible=visible,
        public_id=public_id,
        escalated=handed.action == actions.ESCALATE,
        logout_form=EmptyForm(),
        user=user,
    )


@blueprint.post("/<public_id>/duplicate")
def mark_duplicate(public_id: str) -> ResponseReturnValue:
    form = DuplicateForm()
    if not form.validate_on_submit():
        abort(400)
    code = normalised_code(form.receipt_code.data or "")
    if not _confirmed():  # it closes the tip: ask first, saying so (issue 18)
        user = staff()
        with runtime().sessions() as db:
            tip = tip_for(db, user, public_id)
            original = other_tip(db, user, code)
            if original is None or original.id == tip.id:
                flash(str(REFUSALS[Refusal.NOT_A_DUPLICATE]), "info")
                return redirect(url_for("tips.show", public_id=public_id))
        return _confirm(
            public_id,
            _("Close this tip as a duplicate of %(code)s?", code=code),
            _(
                "This tip is closed as a duplicate: it leaves the inbox, its deadlines stop, "
                "and it is deleted when its retention period ends. Its page links to "
                "%(code)s, which stays as it is; the informant is not asked to rate the answer.",
                code=code,
            ),
            "tips.mark_duplicate",
            {"receipt_code": code},
        )

    def change(db: Session, tip: Tip, actor: Actor, user: StaffUser) -> str:
        tip_actions.mark_duplicate(db, tip, actor, other_tip(db, user, code))
        return _("Marked as a duplicate.")

    return _act(public_id, change)


@blueprint.post("/<public_id>/take")
def take(public_id: str) -> ResponseReturnValue:
    """ "Nhận xử lý": assign the tip to oneself; a new tip becomes in progress."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    transit = _transit()

    def change(db: Session, tip: Tip, actor: Actor, _u: StaffUser) -> str:
        tip_actions.take(db, tip, actor, transit)
        return _("You are handling this tip.")

    return _act(public_id, change)


@blueprint.post("/<public_id>/triage")
def save_triage(public_id: str) -> ResponseReturnValue:
    """The one panel: status, priority, category and assignee, saved together; each change
    is audited as its own event. Closing asks first."""
    user = staff()
    form = TriageForm(prefix="triage")
    form.status.choices = choices(STATUS_LABELS)
    form.priority.choices = choices(PRIORITY_LABELS)
    form.category.choices = choices(CATEGORY_LABELS)
    with runtime().sessions() as db:
        tip = tip_for(db, user, public_id)
        # Only officers whose key chain opens this tip, as the panel offers (issue 14).
        valid = tip_actions.officers_who_can_open(db, tip, visible_unit_ids(db, user))
        was_open = tip.is_open
    form.assignee.choices = [("", "—"), *((v, v) for v in sorted(valid))]
    if not form.validate_on_submit():
        abort(400)
    status = str(form.status.data)
    if was_open and status in CLOSED_STATUSES and form.confirm.data != "1":
        return _confirm(
            public_id,
            _("Close this tip as “%(status)s”?", status=label(STATUS_LABELS, status)),
            _(
                "A closed tip leaves the inbox, its deadlines stop, and it is deleted when "
                "its retention period ends. An informant on Zalo is thanked and asked to "
                "rate the answer when it is closed as resolved or unfounded."
            ),
            "tips.save_triage",
            {f"triage-{name}": str(form[name].data or "") for name in TRIAGE_FIELDS}
            | {"triage-confirm": "1"},
        )
    values = {
        Field.STATUS: status,
        Field.PRIORITY: str(form.priority.data),
        Field.CATEGORY: str(form.category.data),
    }
    transit = _transit()
    assignee_id = str(form.assignee.data or "")

    def change(db: Session, tip: Tip, actor: Actor, _u: StaffUser) -> str:
        changed = False
        for field, value in values.items():
            current = getattr(tip, field.value) or (
                Category.OTHER if field is Field.CATEGORY else ""
            )
            if current != value:
                tip_actions.set_field(db, tip, actor, field, value, transit)
                changed = True
        if assignee_id and (tip.assignee is None or tip.assignee.public_id != assignee_id):
            assignee = db.scalars(select(Officer).where(Officer.public_id == assignee_id)).one()
            tip_actions.assign(db, tip, actor, assignee)
            changed = True
        return _("Saved.") if changed else _("Nothing to change.")

    return _act(public_id, change)


TRIAGE_FIELDS = ("status", "priority", "category", "assignee")
