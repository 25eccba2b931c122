"""Admin pages: units, their OAs and keys, staff accounts. Never tip content.

Admins hold no key (DESIGN.md): they create accounts and attach OAs, but cannot open a tip,
a note or an audit event's details beyond what the auditor's page shows everyone. A new
account waits for its unit key until a key holder of the unit or above approves it
(``tipline.grants``, triage.grants); one account's life-cycle is in triage.accounts_admin.
Every change here is an audit event with the admin as actor, in the change's own transaction.

The initial password and the recovery code of a new account are shown once, to be handed
over in person (printed, sealed); the officer enrols the authenticator at first login.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from keys import new_passphrase
from tipline import accounts
from tipline.audit import actions, record
from tipline.db import write_session
from tipline.models import Holder, KeyGrant, Officer, Role, Subject, Unit, UnitKey
from tipline.officers import add_officer
from tipline.units import OaMoveRefused, UnitError, rotate_key, set_oa
from tipline.web.i18n import _
from tipline.web.labels import (
    ROLE_LABELS,
    choices,
)
from triage.forms import ChoiceForm, EmptyForm, NewAccountForm, OaForm
from triage.users import drop_sessions, runtime, staff

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


@blueprint.before_request
def _admins_only() -> None:
    if staff().role != Role.ADMIN:
        abort(403)


def _me(db: Session) -> Officer:
    return db.get_one(Officer, staff().officer_id)


def _client() -> str | None:
    from flask import request

    return request.remote_addr


def _account_form() -> NewAccountForm:
    """The form; its unit is a code typed or pasted from the units list (after the national
    import a list of every unit would be 3,355 options on every admin page)."""
    form = NewAccountForm()
    form.role.choices = choices(ROLE_LABELS)
    return form


# Rows per page of the units and accounts lists: every page costs the same few queries.
PAGE_SIZE = 50


@dataclass(frozen=True)
class Listing:
    """One page of a list: its rows, the search, the page number and the number of pages."""

    rows: Sequence[Any]
    query: str
    page: int
    pages: int
    total: int
    prefix: str = ""

    def link(self, page: int) -> str:
        """This list's page ``page`` with the same search; the other list stays where it is."""
        kept = {k: v for k, v in request.args.items() if not k.startswith(self.prefix + "_")}
        mine = {f"{self.prefix}_q": self.query, f"{self.prefix}_page": str(page)}
        values: dict[str, Any] = {**kept, **mine}
        return url_for("admin.index", _anchor=self.prefix, **values)


def _page_arg(name: str) -> int:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else 1


def _search_arg(name: str) -> str:
    return request.args.get(name, "").strip()[:100]


def _listing(
    db: Session, statement: Select[Any], where: Any, page: int, query: str, prefix: str
) -> Listing:
    """``statement``'s page ``page`` (the last one past the end) under ``where``."""
    if where is not None:
        statement = statement.where(where)
    total = db.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    pages = max(-(-total // PAGE_SIZE), 1)
    page = min(page, pages)
    rows = db.scalars(statement.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    return Listing(rows=rows, query=query, page=page, pages=pages, total=total, prefix=prefix)


def _matching(query: str, *columns: Any) -> Any:
    """Any of ``columns`` contains ``query``, in any case. PostgreSQL's lower() folds
    Vietnamese capitals; SQLite's only ASCII ones, so the query is also tried as typed and
    in title case ("ba đình" finds "Ba Đình")."""
    if not query:
        return None
    text = query.replace("%", "").replace("_", "")
    variants = {text, text.lower(), text.title()}
    return or_(
        *(func.lower(column).like(f"%{text.lower()}%") for column in columns),
        *(column.like(f"%{variant}%") for column in columns for variant in variants),
    )


def _overview(db: Session) -> dict[str, object]:
    units_query = _search_arg("units_q")
    units = _listing(
        db,
        select(Unit)
        .options(selectinload(Unit.official_accounts), selectinload(Unit.keys))
        .order_by(Unit.code),
        _matching(units_query, Unit.code, Unit.name),
        _page_arg("units_page"),
        units_query,
        "units",
    )
    shown = [unit.id for unit in units.rows]
    holders = dict(
        db.execute(
            select(UnitKey.unit_id, func.count(func.distinct(KeyGrant.holder_id)))
            .join(KeyGrant, KeyGrant.subject_id == UnitKey.id)
            .where(
                KeyGrant.subject_kind == Subject.UNIT_KEY,
                KeyGrant.holder_kind == Holder.OFFICER,
                UnitKey.unit_id.in_(shown),
            )
            .group_by(UnitKey.unit_id)
        ).all()
    ) if shown else {}
    accounts_query = _search_arg("accounts_q")
    officers = _listing(
        db,
        select(Officer).options(joinedload(Officer.unit)).order_by(Officer.username),
        _matching(accounts_query, Officer.username, Officer.display_name),
        _page_arg("accounts_page"),
        accounts_query,
        "accounts",
    )
    return {
        "units": units.rows,
        "units_list": units,
        "officers": officers.rows,
        "accounts_list": officers,
        "holders": holders,
    }


def _index(
    form: NewAccountForm,
    status: int = 200,
    *,
    oa_form: OaForm | None = None,
    oa_unit: str | None = None,
) -> ResponseReturnValue:
    """The page; ``oa_form`` with its errors is shown on the row of unit ``oa_unit``."""
    with runtime().sessions() as db:
        page = render_template(
            "admin/index.html",
            form=form,
            oa_form=OaForm(formdata=None),
            failed_oa_form=oa_form,
            oa_unit=oa_unit,
            button=EmptyForm(),
            role_labels=ROLE_LABELS,
            **_overview(db),
        )
    return page, status


@blueprint.get("/")
def index() -> ResponseReturnValue:
    return _index(_account_form())


@blueprint.post("/officers")
def create_account() -> ResponseReturnValue:
    form = _account_form()
    if not form.validate_on_submit():
        return _index(form, 400)
    unit_code = str(form.unit.data or "").strip()
    if unit_code:
        with runtime().sessions() as db:
            known = db.scalar(select(Unit.id).where(Unit.code == unit_code))
        if known is None:
            form.unit.errors = [*form.unit.errors, _("No unit has this code.")]
            return _index(form, 400)
    password = new_passphrase()
    try:
        with write_session(runtime().sessions) as db:
            account = add_officer(
                db,
                username=str(form.username.data),
                display_name=str(form.display_name.data),
                role=str(form.role.data),
                unit_code=unit_code or None,
                password=password,
                cost=runtime().config.kdf_cost,
                actor=_me(db),
                must_change_password=True,  # the admin saw it: replaced at the first login
            )
            shown = {
                "username": account.officer.username,
                "display_name": account.officer.display_name,
                "password": password,
                "recovery_code": account.recovery_code,
                "key_pending": account.key_pending,
            }
    except UnitError as exc:  # taken username, officer without a unit…: nothing was written
        form.username.errors = [*form.username.errors, str(exc)]
        return _index(form, 400)
    response = make_response(render_template("admin/new_account.html", account=shown))
    response.headers["Cache-Control"] = "no-store"
    return response


def _officer_or_404(db: Session, public_id: str) -> Officer:
    officer = db.scalars(select(Officer).where(Officer.public_id == public_id)).one_or_none()
    if officer is None:
        abort(404)
    return officer


def _account_changed(db: Session, officer: Officer, detail: dict[str, str]) -> None:
    record(
        db,
        action=actions.ACCOUNT_CHANGE,
        actor=_me(db),
        object_id=officer.public_id,
        unit=officer.unit,
        client_address=_client(),
        detail=detail,
    )


@blueprint.post("/officers/<public_id>/active")
def set_active(public_id: str) -> ResponseReturnValue:
    """Disable or re-enable an account: a disabled one cannot log in; its session ends."""
    form = ChoiceForm()
    form.value.choices = [("on", "on"), ("off", "off")]
    if not form.validate_on_submit():
        abort(400)
    with write_session(runtime().sessions) as db:
        officer = _officer_or_404(db, public_id)
        me = _me(db)
        if officer.id == me.id:
            abort(409, _("You cannot disable your own account."))
        active = form.value.data == "on"
        if officer.active != active:
            # Disabling ends the sessions, revokes the grants and rotates the keys it opened.
            change = accounts.enable if active else accounts.disable
            change(db, officer, actor=me, client_address=_client())
    drop_sessions(public_id)
    flash(_("Account updated."), "info")
    return redirect(url_for("admin.index"))


@blueprint.post("/officers/<public_id>/unlock")
def unlock(public_id: str) -> ResponseReturnValue:
    """Lift a lockout after failed logins (the officer called the admin)."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    with write_session(runtime().sessions) as db:
        officer = _officer_or_404(db, public_id)
        officer.failed_logins = 0
        officer.locked_until = None
        _account_changed(db, officer, {"unlocked": "True"})
    flash(_("Account updated."), "info")
    return redirect(url_for("admin.index"))


def _unit_or_404(db: Session, public_id: str) -> Unit:
    unit = db.scalars(select(Unit).where(Unit.public_id == public_id)).one_or_none()
    if unit is None:
        abort(404)
    return unit


@blueprint.post("/units/<public_id>/oa")
def attach_oa(public_id: str) -> ResponseReturnValue:
    """Attach an OA. One attached to another unit is moved only once the admin confirmed it
    on the page this shows first; a malformed OA id is shown on the form, in the UI's language."""
    form = OaForm()
    with runtime().sessions() as db:
        target = _unit_or_404(db, public_id)
        target_code, target_name = target.code, target.name
    if not form.validate_on_submit():
        return _index(_account_form(), 400, oa_form=form, oa_unit=public_id)
    oa_id = str(form.oa_id.data).strip()
    try:
        with write_session(runtime().sessions) as db:
            set_oa(
                db,
                target_code,
                oa_id,
                actor=_me(db),
                move=form.move.data == "1",
                client_address=_client(),
            )
    except OaMoveRefused as refused:  # nothing written: ask first
        page = render_template(
            "admin/confirm_move.html",
            oa_id=oa_id,
            unit_public_id=public_id,
            current=(refused.current_name, refused.current_code),
            target=(target_name, target_code),
            form=OaForm(formdata=None, oa_id=oa_id, move="1"),
        )
        return page, 200
    except UnitError as exc:
        abort(400, str(exc))
    flash(_("Official Account attached."), "info")
    return redirect(url_for("admin.index"))


@blueprint.post("/units/<public_id>/rotate-key")
def rotate(public_id: str) -> ResponseReturnValue:
    """A new key version for new tips. Admins hold no key, so older tips are not re-sealed:
    they stay readable through their existing grants (``tipline keys rotate`` run with an
    officer's key re-seals them)."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        with write_session(runtime().sessions) as db:
            unit = _unit_or_404(db, public_id)
            rotate_key(db, unit.code, actor=_me(db))
    except UnitError as exc:  # no key yet: the unit's first officer creates it
        abort(409, str(exc))
    flash(_("New key version created."), "info")
    return redirect(url_for("admin.index"))
