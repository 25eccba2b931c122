"""The duty roster in the UI: who is on duty now, changed by the officer or a commander above.

Dispatched tips go to the on-duty key holder of the unit with the fewest open tips
(tipline.routing.duty). An officer puts themselves on or off duty; a commander sees and changes
the roster of their unit and every unit below. Each change is a DUTY_CHANGE audit event naming
who made it: the auditor's off-hours rule replays them (tipline.audit.roster).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from tipline.db import write_session
from tipline.models import KEY_HOLDING_ROLES, Officer, Unit
from tipline.routing.duty import set_on_duty
from tipline.web.i18n import _
from tipline.web.labels import ROLE_LABELS, label
from triage.access import visible_unit_ids
from triage.forms import EmptyForm
from triage.users import runtime, staff

blueprint = Blueprint("roster", __name__, url_prefix="/triage/roster")


@dataclass(frozen=True)
class RosterRow:
    public_id: str
    display_name: str
    role: str
    on_duty: bool
    unit_name: str


def _officers(unit_ids: list[int], only: int | None) -> list[RosterRow]:
    with runtime().sessions() as db:
        stmt = (
            select(
                Officer.public_id, Officer.display_name, Officer.role, Officer.on_duty, Unit.name
            )
            .join(Unit, Officer.unit_id == Unit.id)
            .where(
                Officer.unit_id.in_(unit_ids),
                Officer.role.in_(list(KEY_HOLDING_ROLES)),
                Officer.active.is_(True),
            )
            .order_by(Unit.level, Unit.name, Officer.display_name)
        )
        if only is not None:
            stmt = stmt.where(Officer.id == only)
        return [RosterRow(*row) for row in db.execute(stmt)]


@blueprint.get("/")
def index() -> ResponseReturnValue:
    user = staff()
    if not user.holds_keys:
        abort(403)
    with runtime().sessions() as db:
        units = visible_unit_ids(db, user)
    rows = _officers(units, None if user.is_commander else user.officer_id)
    return render_template(
        "triage/roster.html",
        rows=rows,
        on_duty=sum(1 for row in rows if row.on_duty),
        role_name=lambda role: label(ROLE_LABELS, role),
        form=EmptyForm(),
        user=user,
    )


@blueprint.post("/<public_id>")
def change(public_id: str) -> ResponseReturnValue:
    """Put an officer on or off duty: themselves, or by a commander above their unit."""
    user = staff()
    if not user.holds_keys:
        abort(403)
    wanted = request.form.get("on_duty")
    if wanted not in ("0", "1"):
        abort(400, _("Choose on duty or off duty."))
    with write_session(runtime().sessions) as db:
        officer = db.scalars(select(Officer).where(Officer.public_id == public_id)).one_or_none()
        if officer is None:
            abort(404)
        allowed = officer.id == user.officer_id or (
            user.is_commander and officer.unit_id in visible_unit_ids(db, user)
        )
        if not allowed:
            abort(403)
        me = db.get_one(Officer, user.officer_id)
        try:
            set_on_duty(db, officer, wanted == "1", by=me)
        except ValueError:
            abort(400, _("Only officers and commanders of a unit go on duty."))
        name, on = officer.display_name, officer.on_duty
    flash(
        _("%(name)s is now on duty.", name=name)
        if on
        else _("%(name)s is now off duty.", name=name)
    )
    return redirect(url_for("roster.index"))
