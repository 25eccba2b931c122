"""Each unit's ready-made answers to informants, offered on the tip page's reply form.

Every key holder of the unit sees them; its commanders keep the list. The texts are the
unit's own templates, not tip content, so they are stored in plaintext.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from tipline.db import write_session
from tipline.models import CannedReply
from tipline.web.i18n import _
from triage.forms import CannedReplyForm, EmptyForm
from triage.users import StaffUser, runtime, staff

blueprint = Blueprint("canned", __name__, url_prefix="/triage/canned-replies")
MAX_PER_UNIT = 50


def _unit_of(user: StaffUser) -> int:
    if not user.holds_keys or user.unit_id is None:
        abort(403)
    return user.unit_id


@blueprint.get("/")
def index() -> ResponseReturnValue:
    user = staff()
    unit_id = _unit_of(user)
    with runtime().sessions() as db:
        replies = list(
            db.scalars(
                select(CannedReply)
                .where(CannedReply.unit_id == unit_id)
                .order_by(CannedReply.title)
            )
        )
    return render_template(
        "triage/canned.html",
        replies=replies,
        form=CannedReplyForm(),
        delete_form=EmptyForm(),
        can_edit=user.is_commander,
        logout_form=EmptyForm(),
        user=user,
    )


@blueprint.post("/")
def add() -> ResponseReturnValue:
    user = staff()
    unit_id = _unit_of(user)
    if not user.is_commander:
        abort(403)
    form = CannedReplyForm()
    if not form.validate_on_submit():
        flash(_("Give the answer a title (up to 80 characters) and a text."), "error")
        return redirect(url_for("canned.index"))
    with write_session(runtime().sessions) as db:
        count = len(list(db.scalars(select(CannedReply.id).where(CannedReply.unit_id == unit_id))))
        if count >= MAX_PER_UNIT:
            flash(_("A unit keeps at most %(n)s ready-made answers.", n=MAX_PER_UNIT), "error")
            return redirect(url_for("canned.index"))
        db.add(
            CannedReply(
                unit_id=unit_id,
                title=(form.title.data or "").strip(),
                text=(form.text.data or "").strip(),
            )
        )
    flash(_("Ready-made answer added."), "info")
    return redirect(url_for("canned.index"))


@blueprint.post("/<public_id>/delete")
def delete(public_id: str) -> ResponseReturnValue:
    user = staff()
    unit_id = _unit_of(user)
    if not user.is_commander or not EmptyForm().validate_on_submit():
        abort(403)
    with write_session(runtime().sessions) as db:
        reply = db.scalars(
            select(CannedReply).where(
                CannedReply.public_id == public_id, CannedReply.unit_id == unit_id
            )
        ).one_or_none()
        if reply is None:
            abort(404)
        db.delete(reply)
    flash(_("Ready-made answer deleted."), "info")
    return redirect(url_for("canned.index"))
