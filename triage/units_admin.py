"""Admins add and rename units (issue 19); the national import (`tipline units import`) is
still the way to load thousands at once.

A new unit under a keyed parent gets its first key version at once, granted to the parent's
key (tipline.units.add_unit), so the commanders above can open its tips from the first one.
Unit names are public (they are on posters and in acknowledgements): a rename is audited with
the new name. Every error is said in Vietnamese and changes nothing.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tipline.audit import actions, record
from tipline.db import write_session
from tipline.models import Officer, OfficialAccount, Role, Unit, UnitKey, UnitLevel
from tipline.units import UnitError, add_unit
from tipline.web.i18n import _
from tipline.web.labels import UNIT_LEVEL_LABELS, label
from triage.forms import EmptyForm
from triage.users import runtime, staff

blueprint = Blueprint("units_admin", __name__, url_prefix="/admin/units")
MAX_NAME = 200
MAX_CODE = 32


@blueprint.before_request
def _admins_only() -> None:
    if staff().role != Role.ADMIN:
        abort(403)


def _me(db: Session) -> Officer:
    return db.get_one(Officer, staff().officer_id)


def _parents(db: Session) -> list[tuple[str, str]]:
    """Units that can have communes below them: provinces and (old) districts."""
    return [
        (code, name)
        for code, name in db.execute(
            select(Unit.code, Unit.name)
            .where(Unit.level.in_([UnitLevel.PROVINCE, UnitLevel.DISTRICT]))
            .order_by(Unit.name)
        )
    ]


def _new_form(errors: list[str], status: int = 200) -> ResponseReturnValue:
    with runtime().sessions() as db:
        parents = _parents(db)
    page = render_template(
        "admin/unit_new.html",
        errors=errors,
        values=request.form,
        levels=[(level.value, label(UNIT_LEVEL_LABELS, level.value)) for level in UnitLevel],
        parents=parents,
        form=EmptyForm(),
    )
    return page, status


@blueprint.get("/new")
def new() -> ResponseReturnValue:
    return _new_form([])


@blueprint.post("/new")
def create() -> ResponseReturnValue:
    code = request.form.get("code", "").strip()
    name = " ".join(request.form.get("name", "").split())
    level = request.form.get("level", "")
    parent = request.form.get("parent", "").strip() or None
    errors = []
    if not code or len(code) > MAX_CODE:
        errors.append(_("The unit code is required (at most %(n)s characters).", n=MAX_CODE))
    elif any(ch.isspace() for ch in code):
        errors.append(_("A unit code has no spaces."))
    if not name or len(name) > MAX_NAME:
        errors.append(_("The unit name is required (at most %(n)s characters).", n=MAX_NAME))
    if level not in set(UnitLevel):
        errors.append(_("Choose the unit level from the list."))
    if errors:
        return _new_form(errors, 400)
    with write_session(runtime().sessions) as db:
        if db.scalar(select(Unit.id).where(Unit.code == code)) is not None:
            errors.append(_("A unit with code %(code)s already exists.", code=code))
        elif parent is not None and db.scalar(select(Unit.id).where(Unit.code == parent)) is None:
            errors.append(_("There is no unit with code %(code)s.", code=parent))
        if errors:
            db.rollback()
            return _new_form(errors, 400)
        try:
            unit = add_unit(
                db, code=code, name=name, level=level, parent_code=parent, actor=_me(db)
            )
        except UnitError:
            db.rollback()
            return _new_form([_("The unit could not be added.")], 400)
        public_id = unit.public_id
    flash(_("Unit %(name)s added.", name=name))
    return redirect(url_for("units_admin.show", public_id=public_id))


@blueprint.get("/<public_id>")
def show(public_id: str) -> ResponseReturnValue:
    with runtime().sessions() as db:
        unit = db.scalars(select(Unit).where(Unit.public_id == public_id)).one_or_none()
        if unit is None:
            abort(404)
        page = render_template(
            "admin/unit.html",
            unit=unit,
            level=label(UNIT_LEVEL_LABELS, unit.level),
            parent=unit.parent,
            oas=list(
                db.scalars(select(OfficialAccount.oa_id).where(OfficialAccount.unit_id == unit.id))
            ),
            versions=db.scalar(
                select(func.count()).select_from(UnitKey).where(UnitKey.unit_id == unit.id)
            ),
            officers=db.scalar(
                select(func.count()).select_from(Officer).where(Officer.unit_id == unit.id)
            ),
            form=EmptyForm(),
        )
    return page


@blueprint.post("/<public_id>/rename")
def rename(public_id: str) -> ResponseReturnValue:
    name = " ".join(request.form.get("name", "").split())
    if not name or len(name) > MAX_NAME:
        abort(400, _("The unit name is required (at most %(n)s characters).", n=MAX_NAME))
    with write_session(runtime().sessions) as db:
        unit = db.scalars(select(Unit).where(Unit.public_id == public_id)).one_or_none()
        if unit is None:
            abort(404)
        unit.name = name
        record(
            db,
            action=actions.UNIT_RENAME,
            actor=_me(db),
            object_id=unit.public_id,
            unit=unit,
            client_address=request.remote_addr,
            detail={"name": name[:100]},
        )
    flash(_("Unit renamed to %(name)s.", name=name))
    return redirect(url_for("units_admin.show", public_id=public_id))
