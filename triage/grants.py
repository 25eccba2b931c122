"""Key holders approve or reject the accounts waiting for their unit's key (tipline.grants).

Listed for a key holder: every pending request of a unit whose current key their chain opens
(their unit, and for a commander the units below), with who the account is, who asked for
the key and when, how old the account is, and what approving opens. The decision is audited
as theirs. An account waiting is told so (:func:`waiting_notice`), never shown a bare 403.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tipline.db import write_session
from tipline.grants import GrantRefused, approvable, approve, descendants, pending_request, reject
from tipline.models import GrantRequest, Officer, Tip, utcnow
from tipline.web.i18n import _
from tipline.web.labels import GRANT_REASON_LABELS, ROLE_LABELS, label
from triage.forms import EmptyForm
from triage.users import runtime, staff, unit_keys

blueprint = Blueprint("grants", __name__, url_prefix="/triage/grants")


def waiting_notice() -> str:
    return str(
        _(
            "Your account is waiting for a key holder's approval: a key holder of your unit "
            "or above must approve it before you can open tips."
        )
    )


@blueprint.app_context_processor
def _key_pending() -> dict[str, object]:
    """``key_pending`` for base.html: the logged-in key-holding account waits for approval."""
    user = current_user
    if not getattr(user, "is_authenticated", False) or not getattr(user, "holds_keys", False):
        return {}
    with runtime().sessions() as db:
        waiting = pending_request(db, user.officer_id) is not None
    return {"key_pending": waiting, "key_pending_notice": waiting_notice() if waiting else ""}


def _me(db: Session) -> Officer:
    return db.get_one(Officer, staff().officer_id)


def _holders_only() -> None:
    if not staff().holds_keys:
        abort(403)


def _row(db: Session, item: GrantRequest) -> dict[str, object]:
    below = descendants(db, [item.unit])
    tips = db.scalar(select(func.count(Tip.id)).where(Tip.unit_id.in_([u.id for u in below])))
    officer = item.officer
    return {
        "request": item,
        "officer": officer,
        "role": label(ROLE_LABELS, officer.role),
        "reason": label(GRANT_REASON_LABELS, item.reason),
        "requested_by": item.requested_by.username if item.requested_by else _("command line"),
        "account_age_hours": int((utcnow() - officer.created_at).total_seconds() // 3600),
        "units_below": len(below) - 1,
        "tips": tips or 0,
    }


@blueprint.get("/")
def index() -> ResponseReturnValue:
    _holders_only()
    with runtime().sessions() as db:
        rows = [_row(db, item) for item in approvable(db, _me(db), unit_keys(db))]
        return render_template("grants/index.html", rows=rows, form=EmptyForm())


def _decide(public_id: str, approving: bool) -> ResponseReturnValue:
    _holders_only()
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        with write_session(runtime().sessions) as db:
            item = db.scalars(
                select(GrantRequest).where(GrantRequest.public_id == public_id)
            ).one_or_none()
            if item is None:
                abort(404)
            decide = approve if approving else reject
            decide(db, item, _me(db), unit_keys(db), client_address=request.remote_addr)
            name = item.officer.display_name
    except GrantRefused:
        abort(
            403,
            _(
                "You cannot decide this request: it is not pending, or your keys do not "
                "open its unit."
            ),
        )
    if approving:
        flash(_("Approved: %(name)s now holds the unit's key.", name=name), "info")
    else:
        flash(_("Rejected: %(name)s gets no key.", name=name), "info")
    return redirect(url_for("grants.index"))


@blueprint.post("/<public_id>/approve")
def approve_request(public_id: str) -> ResponseReturnValue:
    return _decide(public_id, True)


@blueprint.post("/<public_id>/reject")
def reject_request(public_id: str) -> ResponseReturnValue:
    return _decide(public_id, False)
