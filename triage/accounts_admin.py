"""Admin pages for one account's life-cycle (tipline.accounts): reset the password or a lost
authenticator, move to another unit, change role, disable or enable.

Each change is asked first and done only when posted again with ``confirm``: the page between
says what it will do (sessions ended, keys revoked and rotated, a key holder's approval
needed). Admins hold no key: wherever the account ends up able to read tips, it waits for a
key holder of that unit or above (triage.grants).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import new_passphrase
from tipline import accounts
from tipline.db import write_session
from tipline.grants import pending_request
from tipline.models import KEY_HOLDING_ROLES, Holder, KeyGrant, Officer, Role, Subject, Unit
from tipline.web.i18n import _
from tipline.web.labels import GRANT_REASON_LABELS, ROLE_LABELS, choices, label
from triage.forms import AccountChangeForm
from triage.users import drop_sessions, runtime, staff

blueprint = Blueprint("accounts_admin", __name__, url_prefix="/admin/accounts")

# What each role may do, shown where a role is chosen.
ROLE_DESCRIPTIONS = {
    Role.OFFICER: _l("Reads and handles the tips of their unit, with the unit's key."),
    Role.COMMANDER: _l(
        "Oversees their unit and every unit below it: dashboard, assignments; holds the unit's key."
    ),
    Role.AUDITOR: _l("Reads the audit log and its anomalies; holds no key, never reads a tip."),
    Role.ADMIN: _l(
        "Manages units, accounts and Official Accounts; holds no key, never reads a tip."
    ),
}

CHANGES = ("password", "authenticator", "unit", "role", "disable", "enable")


@blueprint.before_request
def _admins_only() -> None:
    if staff().role != Role.ADMIN:
        abort(403)


def _me(db: Session) -> Officer:
    return db.get_one(Officer, staff().officer_id)


def _officer_or_404(db: Session, public_id: str) -> Officer:
    officer = db.scalars(select(Officer).where(Officer.public_id == public_id)).one_or_none()
    if officer is None:
        abort(404)
    return officer


def _unit_choices(db: Session) -> list[tuple[str, str]]:
    return [
        (code, f"{name} ({code})")
        for code, name in db.execute(select(Unit.code, Unit.name).order_by(Unit.code))
    ]


def _form(db: Session) -> AccountChangeForm:
    form = AccountChangeForm()
    form.unit.choices = [("", "—"), *_unit_choices(db)]
    form.role.choices = [("", "—"), *choices(ROLE_LABELS)]
    return form


def _page(
    db: Session, officer: Officer, form: AccountChangeForm, status: int = 200
) -> ResponseReturnValue:
    holds = db.scalar(
        select(KeyGrant.id)
        .where(
            KeyGrant.holder_kind == Holder.OFFICER,
            KeyGrant.holder_id == officer.id,
            KeyGrant.subject_kind == Subject.UNIT_KEY,
        )
        .limit(1)
    )
    waiting = pending_request(db, officer.id)
    page = render_template(
        "admin/account.html",
        officer=officer,
        form=form,
        role=label(ROLE_LABELS, officer.role),
        role_labels=ROLE_LABELS,
        role_descriptions=ROLE_DESCRIPTIONS,
        holds_key=holds is not None,
        waiting=waiting,
        waiting_reason=label(GRANT_REASON_LABELS, waiting.reason) if waiting else None,
        key_role=officer.role in KEY_HOLDING_ROLES,
    )
    return page, status


@blueprint.get("/<public_id>")
def show(public_id: str) -> ResponseReturnValue:
    with runtime().sessions() as db:
        officer = _officer_or_404(db, public_id)
        form = _form(db)
        form.unit.data = officer.unit.code if officer.unit else ""
        form.role.data = officer.role
        return _page(db, officer, form)


def _consequence(officer: Officer, change: str, target: str) -> str:
    """What the change will do, in words, on the confirmation page."""
    name = officer.display_name
    if change == "password":
        return str(
            _(
                "%(name)s's password and key pair are replaced and every session ends. You "
                "will see a new password once, to hand over in person; %(name)s changes it at "
                "the next login and enrols the authenticator again. The unit's key reaches the "
                "account only when a key holder of the unit approves it.",
                name=name,
            )
        )
    if change == "authenticator":
        return str(
            _(
                "%(name)s's authenticator is reset and every session ends; at the next login "
                "%(name)s scans a new QR code. The account's unit keys are withdrawn until a "
                "key holder of the unit approves again: whoever enrols the new authenticator "
                "gets the keys.",
                name=name,
            )
        )
    if change == "unit":
        return str(
            _(
                "%(name)s moves to %(unit)s. The old unit's keys are withdrawn from the account "
                "and that unit's key is rotated; every session ends. The new unit's key reaches "
                "the account only when a key holder of %(unit)s approves it.",
                name=name,
                unit=target,
            )
        )
    if change == "role":
        return str(
            _(
                "%(name)s becomes %(role)s; every session ends. An auditor or administrator "
                "holds no key: the account's keys are withdrawn and rotated. A role that holds "
                "keys waits for a key holder's approval.",
                name=name,
                role=target,
            )
        )
    if change == "disable":
        return str(
            _(
                "%(name)s can no longer log in; every session ends now. The account's keys are "
                "withdrawn and every unit key it could open is rotated, so tips from now on are "
                "sealed to keys it never held.",
                name=name,
            )
        )
    return str(
        _(
            "%(name)s can log in again. The unit's key reaches the account only when a key "
            "holder of the unit approves it.",
            name=name,
        )
    )


@blueprint.post("/<public_id>/<change>")
def change_account(public_id: str, change: str) -> ResponseReturnValue:
    if change not in CHANGES:
        abort(404)
    with runtime().sessions() as db:
        officer = _officer_or_404(db, public_id)
        form = _form(db)
        if not form.validate_on_submit():
            return _page(db, officer, form, 400)
        target = ""
        if change == "unit":
            if not form.unit.data:
                form.unit.errors = [_("Choose the unit to move the account to.")]
                return _page(db, officer, form, 400)
            if officer.unit is not None and form.unit.data == officer.unit.code:
                form.unit.errors = [_("The account is already in this unit.")]
                return _page(db, officer, form, 400)
            target = dict(form.unit.choices)[form.unit.data]
        if change == "role":
            if not form.role.data or form.role.data == officer.role:
                form.role.errors = [_("Choose a role the account does not have yet.")]
                return _page(db, officer, form, 400)
            if form.role.data in KEY_HOLDING_ROLES and officer.unit is None:
                form.role.errors = [
                    _("Officers and commanders belong to a unit: move the account to one first.")
                ]
                return _page(db, officer, form, 400)
            target = label(ROLE_LABELS, form.role.data)
        if officer.id == staff().officer_id:
            form.role.errors = [_("You cannot change your own account here.")]
            return _page(db, officer, form, 409)
        if form.confirm.data != "1":
            page = render_template(
                "admin/account_confirm.html",
                officer=officer,
                change=change,
                consequence=_consequence(officer, change, target),
                form=form,
            )
            return page, 200
    return _apply(public_id, change, form)


def _apply(public_id: str, change: str, form: AccountChangeForm) -> ResponseReturnValue:
    rt = runtime()
    shown: dict[str, str] | None = None
    address = request.remote_addr
    with write_session(rt.sessions) as db:
        officer = _officer_or_404(db, public_id)
        me = _me(db)
        if change == "password":
            password = new_passphrase()
            recovery, _totp = accounts.reset_password(
                db,
                officer,
                password=password,
                cost=rt.config.kdf_cost,
                actor=me,
                client_address=address,
            )
            shown = {
                "username": officer.username,
                "display_name": officer.display_name,
                "password": password,
                "recovery_code": recovery,
            }
        elif change == "authenticator":
            accounts.reset_authenticator(db, officer, actor=me, client_address=address)
        elif change == "unit":
            unit = db.scalars(select(Unit).where(Unit.code == form.unit.data)).one()
            accounts.move(db, officer, unit, actor=me, client_address=address)
        elif change == "role":
            accounts.change_role(db, officer, str(form.role.data), actor=me, client_address=address)
        elif change == "disable":
            if officer.active:
                accounts.disable(db, officer, actor=me, client_address=address)
        elif not officer.active:
            accounts.enable(db, officer, actor=me, client_address=address)
    drop_sessions(public_id)
    if shown is not None:
        response = make_response(render_template("admin/password_reset.html", account=shown))
        response.headers["Cache-Control"] = "no-store"
        return response
    flash(_("Account updated."), "info")
    return redirect(url_for("accounts_admin.show", public_id=public_id))
