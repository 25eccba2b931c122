"""Login with password and TOTP, QR enrolment, recovery code, logout."""

from __future__ import annotations

import base64
from datetime import timedelta
from io import BytesIO

import pyotp
import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.wrappers import Response

from keys import (
    BadToken,
    EnvelopeError,
    PrivateKey,
    WrongSecret,
    new_session_secret,
    new_token,
    open_token,
    refuse_password,
    refuse_secret,
    sign_token,
    verify_password,
)
from keys.password import normalise_recovery_code
from tipline.audit import actions, record
from tipline.counters import count
from tipline.db import retry_when_locked
from tipline.grants import end_sessions
from tipline.keychain import (
    rewrap_officer_key,
    unit_keys_of,
    unlock_officer_key,
    unlock_with_recovery_code,
)
from tipline.models import Officer, Outcome, Role, utcnow
from tipline.models.sealed_fields import OFFICER_KEY_SESSION_WRAP, OFFICER_TOTP_SECRET
from tipline.runtime import Runtime
from tipline.transit import NoTransitKey, recover_events
from tipline.web.i18n import _
from tipline.web.limits import address_group, limiter
from triage.forms import EmptyForm, LoginForm, NewPasswordForm, RecoverForm, TotpSetupForm
from triage.throttle import LoginAttempt
from triage.users import (
    StaffUser,
    begin_session,
    drop_sessions,
    forget_officer_key,
    keep_officer_key,
    runtime,
)

blueprint = Blueprint("auth", __name__)
PENDING = "pending_enrolment"  # officer public id + key sealed for the session, before TOTP
# The secret that opens the pending key: only in this cookie (signed, expiring, bound to the
# officer), never in the server session, so Redis and its dumps alone open nothing.
ENROL_COOKIE = "tipline_enrol"
ENROL_PATH = "/login"  # sent to the login steps only
ENROL_PURPOSE = "enrolment"
# A browser that logged in to an account before: its failures alone slow it down there
# (triage.throttle). A random id, signed and bound to the account; sent to the login steps.
KNOWN_COOKIE = "tipline_known"
KNOWN_PURPOSE = "known-browser"
KNOWN_LIFE = 30 * 24 * 3600


def _client() -> str | None:
    return request.remote_addr


def _totp_secret(officer: Officer, key: PrivateKey) -> str:
    if officer.sealed_totp_secret is None:
        raise EnvelopeError("no TOTP secret")
    return OFFICER_TOTP_SECRET.open(
        key, officer.sealed_totp_secret, officer_public_id=officer.public_id
    ).decode()


def _totp_ok(db: Session, officer: Officer, secret: str, code: str) -> bool:
    """A current code (±30 s), never one already used: codes cannot be replayed.

    The step is claimed by one conditional UPDATE whose row count decides, not read then
    written: two logins with the same code at the same moment (READ COMMITTED on PostgreSQL)
    both read the old step, and both got in. The second UPDATE now waits for the first's row
    lock, sees its step and changes nothing.
    """
    totp = pyotp.TOTP(secret)
    now = utcnow()
    for drift in (0, -1, 1):
        at = now + timedelta(seconds=30 * drift)
        if not pyotp.utils.strings_equal(totp.at(at), code.strip()):
            continue
        step = totp.timecode(at)
        claimed = db.connection().execute(
            update(Officer)
            .where(
                Officer.id == officer.id,
                or_(Officer.totp_last_step.is_(None), Officer.totp_last_step < step),
            )
            .values(totp_last_step=step)
        )
        if claimed.rowcount == 1:
            set_committed_value(officer, "totp_last_step", step)  # as stored; nothing to flush
            return True
    return False


def _attempt(username: str, officer: Officer | None = None) -> LoginAttempt:
    """This try, for the throttle: the browser counts apart if it is known for ``officer``."""
    return LoginAttempt(username, address_group(_client() or ""), _known_browser(officer))


def _known_browser(officer: Officer | None) -> str | None:
    """The id in this browser's known-browser cookie, if that cookie is ``officer``'s."""
    token = request.cookies.get(KNOWN_COOKIE)
    if officer is None or not token:
        return None
    try:
        return open_token(
            runtime().config.secret_key.encode(),
            KNOWN_PURPOSE,
            token,
            max_age=KNOWN_LIFE,
            bound_to=officer.public_id,
        )
    except BadToken:
        return None


def _remember_browser(response: Response, officer: Officer) -> None:
    """A new known-browser cookie for ``officer`` (a new id at every login)."""
    token = sign_token(
        runtime().config.secret_key.encode(),
        KNOWN_PURPOSE,
        new_token(26),
        bound_to=officer.public_id,
    )
    response.set_cookie(
        KNOWN_COOKIE,
        token,
        path=ENROL_PATH,
        httponly=True,
        samesite="Lax",
        secure=runtime().config.behind_tls,
        max_age=KNOWN_LIFE,
    )


def _fail(
    db: Session, officer: Officer | None, reason: str, attempt: LoginAttempt | None = None
) -> None:
    """Audit a refused login step; count it against ``attempt``'s scopes when given (a try
    refused because a wait was running is audited, never counted)."""
    if attempt is not None:
        attempt.failed(runtime())
    count(runtime().redis, "login_failures", reason=reason)  # tipline.metrics
    record(
        db,
        action=actions.LOGIN_FAILED,
        actor=officer,
        object_id=officer.public_id if officer is not None else None,  # per-account flags
        outcome=Outcome.DENIED,
        # Per-address flags (sprays); for staff accounts only, as every recorded address is
        # (tipline.audit.record): a username that is no account records none.
        client_address=_client() if officer is not None else None,
        detail={"reason": reason},
    )


def _wait_notice(seconds: int) -> str:
    return str(
        _(
            "Too many failed attempts. Please wait %(seconds)d seconds and try again.",
            seconds=seconds,
        )
    )


def _home(role: str) -> str:
    """Where a login lands: auditors on the audit log, admins on their page, commanders on
    their dashboard, officers on the inbox."""
    if role == Role.AUDITOR:
        return url_for("audit_ui.index")
    if role == Role.COMMANDER:
        return url_for("dashboard.index")
    return url_for("admin.index") if role == Role.ADMIN else url_for("inbox.index")


def _finish_login(db: Session, officer: Officer, key: PrivateKey) -> Response:
    """A fresh session id, the key halves split between Redis and the cookie, audited."""
    session.clear()  # nothing from before the login survives it
    _attempt(officer.username, officer).succeeded(runtime())
    officer.last_login_at = utcnow()
    login_user(StaffUser(officer))
    current_app.session_interface.regenerate(session)  # type: ignore[attr-defined]
    begin_session(officer)
    response = redirect(_home(officer.role))
    _remember_browser(response, officer)
    keep_officer_key(response, officer, key, new_session_secret())
    record(db, action=actions.LOGIN, actor=officer, client_address=_client())
    if officer.unit_id is not None and StaffUser(officer).holds_keys:
        record(db, action=actions.KEY_UNLOCK, actor=officer, client_address=_client())
        opened = unit_keys_of(db, officer, key)
        try:
            recovered = recover_events(db.connection(), runtime().transit, opened)
        except NoTransitKey:  # no worker yet: the events wait for the next login
            recovered = 0
        if recovered:
            record(
                db,
                action=actions.EVENTS_RECOVERED,
                actor=officer,
                client_address=_client(),
                detail={"events": str(recovered)},
            )
    return response


def _login_page(form: LoginForm, error: str, status: int, *, wait: int = 0) -> ResponseReturnValue:
    """The login page again with why; shown directly, not flashed: a flash would give the
    visitor a server-side session. ``wait``: the seconds a throttled try is told to wait."""
    page = render_template("auth/login.html", form=form, notices=[("error", error)])
    return page, status, {"Retry-After": str(wait)} if wait else {}


@blueprint.route("/login", methods=["GET", "POST"])
@limiter.limit("20/minute;200/hour", methods=["POST"])
@retry_when_locked  # SQLite: a worker's commit during the Argon2id (tipline.db)
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(_home(current_user.role))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template(
            "auth/login.html", form=form
        ), 400 if request.method == "POST" else 200
    message = _("Wrong username, password or code.")
    username = form.username.data.strip().lower()
    with runtime().sessions() as db, db.begin():
        found = db.scalars(select(Officer).where(Officer.username == username)).one_or_none()
        officer = found if found is not None and found.active else None
        attempt = _attempt(username, officer)
        # Before any password check, and the same for every username, real or not: a wait
        # that runs refuses the try without counting it (triage.throttle).
        wait = attempt.wait(runtime())
        if wait:
            _fail(db, officer, "throttled")
            return _login_page(form, _wait_notice(wait), 429, wait=wait)
        if officer is None:
            # The same Argon2id run as a wrong password, at the cost real accounts have: the
            # time taken does not tell which usernames exist.
            refuse_password(form.password.data, runtime().config.kdf_cost)
            _fail(db, None, "unknown_account", attempt)
            return _login_page(form, message, 401)
        password = form.password.data
        if not verify_password(officer.password_hash, password):
            _fail(db, officer, "password", attempt)
            return _login_page(form, message, 401)
        try:
            key = unlock_officer_key(officer, password)
            secret = _totp_secret(officer, key)
        except (WrongSecret, EnvelopeError):
            _fail(db, officer, "key", attempt)
            return _login_page(form, message, 401)
        if officer.totp_confirmed_at is None:
            # First login: prove the authenticator works before the session starts.
            return _pending_step(officer, key, "totp", "auth.totp_setup")
        if not form.code.data or not _totp_ok(db, officer, secret, form.code.data):
            _fail(db, officer, "totp", attempt)
            return _login_page(form, message, 401)
        if officer.must_change_password:
            # An admin set this password (a new account, a reset): replaced before any page.
            return _pending_step(officer, key, "password", "auth.new_password")
        return _finish_login(db, officer, key)


def _pending_step(officer: Officer, key: PrivateKey, stage: str, endpoint: str) -> Response:
    """Hold the unlocked key for a step before the session starts (enrolling the
    authenticator, replacing an admin's password): sealed in the server session under a
    secret only this browser's cookie holds."""
    unlock = new_session_secret()
    session[PENDING] = {
        "officer": officer.public_id,
        "stage": stage,
        "key": base64.b64encode(
            OFFICER_KEY_SESSION_WRAP.wrap(key, unlock, officer_public_id=officer.public_id)
        ).decode(),
    }
    response = redirect(url_for(endpoint))
    _keep_enrolment_secret(response, officer, unlock)
    return response


def _enrolment_lifetime() -> int:
    return runtime().config.session_idle_minutes * 60  # the server half's own idle timeout


def _keep_enrolment_secret(response: Response, officer: Officer, secret: bytes) -> None:
    """The cookie half of the pending key: the secret, signed and bound to the officer."""
    token = sign_token(
        runtime().config.secret_key.encode(),
        ENROL_PURPOSE,
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        bound_to=officer.public_id,
    )
    response.set_cookie(
        ENROL_COOKIE,
        token,
        path=ENROL_PATH,
        httponly=True,
        samesite="Lax",
        secure=runtime().config.behind_tls,
        max_age=_enrolment_lifetime(),
    )


def open_enrolment_cookie(rt: Runtime, token: str, officer_public_id: str) -> str:
    """The secret an enrolment cookie carries (URL-safe base64); BadToken if it is not one."""
    payload = open_token(
        rt.config.secret_key.encode(),
        ENROL_PURPOSE,
        token,
        max_age=rt.config.session_idle_minutes * 60,
        bound_to=officer_public_id,
    )
    return payload + "=" * (-len(payload) % 4)


def _pending_key(officer: Officer, wrapped: str) -> PrivateKey | None:
    """The officer's key from the session's wrap and the cookie's secret; None without both."""
    try:
        secret = base64.urlsafe_b64decode(
            open_enrolment_cookie(
                runtime(), request.cookies.get(ENROL_COOKIE, ""), officer.public_id
            )
        )
        return OFFICER_KEY_SESSION_WRAP.unwrap(
            base64.b64decode(wrapped), secret, officer_public_id=officer.public_id
        )
    except (BadToken, WrongSecret, ValueError):
        return None


def _restart_login() -> Response:
    session.pop(PENDING, None)
    response = redirect(url_for("auth.login"))
    response.delete_cookie(ENROL_COOKIE, path=ENROL_PATH)
    return response


@blueprint.route("/login/totp-setup", methods=["GET", "POST"])
def totp_setup() -> ResponseReturnValue:
    pending = session.get(PENDING)
    if not pending or pending.get("stage", "totp") != "totp":
        return redirect(url_for("auth.login"))
    form = TotpSetupForm()
    with runtime().sessions() as db, db.begin():
        officer = db.scalars(
            select(Officer).where(Officer.public_id == pending["officer"])
        ).one_or_none()
        if officer is None:
            session.pop(PENDING, None)
            abort(400)
        key = _pending_key(officer, pending["key"])
        if key is None:  # the cookie half is gone (another browser, expired): start again
            return _restart_login()
        secret = _totp_secret(officer, key)
        uri = pyotp.TOTP(secret).provisioning_uri(name=officer.username, issuer_name="Tipline")
        if form.validate_on_submit():
            if _totp_ok(db, officer, secret, form.code.data or ""):
                officer.totp_confirmed_at = utcnow()
                if officer.must_change_password:
                    session[PENDING] = {**pending, "stage": "password"}
                    return redirect(url_for("auth.new_password"))
                session.pop(PENDING, None)
                response = _finish_login(db, officer, key)
                response.delete_cookie(ENROL_COOKIE, path=ENROL_PATH)
                return response
            _fail(db, officer, "totp_enrolment")
            flash(
                _("That code did not match. Check the time on your phone and try again."), "error"
            )
        buffer = BytesIO()
        segno.make(uri, error="m").save(buffer, kind="svg", scale=5, border=2)
        qr = "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()
        return render_template("auth/totp_setup.html", form=form, qr=qr, secret=secret)


@blueprint.route("/login/new-password", methods=["GET", "POST"])
def new_password() -> ResponseReturnValue:
    """The password an admin set (a new account, a reset) is replaced at the first login,
    after the authenticator: nobody but the officer knows the password that opens their key.
    The key is re-wrapped and a new recovery code shown (the admin saw the old one)."""
    pending = session.get(PENDING)
    if not pending or pending.get("stage") != "password":
        return redirect(url_for("auth.login"))
    form = NewPasswordForm()
    with runtime().sessions() as db, db.begin():
        officer = db.scalars(
            select(Officer).where(Officer.public_id == pending["officer"])
        ).one_or_none()
        if officer is None:
            return _restart_login()
        key = _pending_key(officer, pending["key"])
        if key is None:
            return _restart_login()
        if not form.validate_on_submit():
            return render_template("auth/new_password.html", form=form), (
                400 if request.method == "POST" else 200
            )
        if verify_password(officer.password_hash, form.new_password.data or ""):
            form.new_password.errors = [
                _("Choose a password different from the one you were given.")
            ]
            return render_template("auth/new_password.html", form=form), 400
        password = form.new_password.data or ""
        code = _set_password(db, officer, key, password, "password_changed_at_login")
        session.pop(PENDING, None)
        landed = _finish_login(db, officer, key)
    page = make_response(
        render_template("auth/password_set.html", recovery_code=code, home=landed.location)
    )
    for cookie in landed.headers.getlist("Set-Cookie"):
        page.headers.add("Set-Cookie", cookie)
    page.delete_cookie(ENROL_COOKIE, path=ENROL_PATH)
    return page


def _set_password(
    db: Session, officer: Officer, key: PrivateKey, password: str, change: str
) -> str:
    """The officer's key re-wrapped under ``password``, audited as ``change``: the new
    recovery code."""
    code = rewrap_officer_key(officer, key, new_password=password, cost=runtime().config.kdf_cost)
    officer.must_change_password = False
    record(
        db,
        action=actions.ACCOUNT_CHANGE,
        actor=officer,
        object_id=officer.public_id,
        client_address=_client(),
        detail={"change": change},
    )
    return code


@blueprint.route("/login/recover", methods=["GET", "POST"])
@limiter.limit("5/minute;20/hour", methods=["POST"])
def recover() -> ResponseReturnValue:
    """A forgotten password: the recovery code opens the key, which is re-wrapped; access kept.

    Never refused because logins are being slowed down (triage.throttle): recovery is how the
    officer gets back in whatever others tried. Its own failures have their own delays.
    """
    form = RecoverForm()
    if not form.validate_on_submit():
        return render_template("auth/recover.html", form=form)
    username = (form.username.data or "").strip().lower()
    with runtime().sessions() as db, db.begin():
        found = db.scalars(select(Officer).where(Officer.username == username)).one_or_none()
        officer = found if found is not None and found.active else None
        attempt = _attempt(username, officer)
        wait = attempt.recovery_wait(runtime())
        if wait:
            _fail(db, officer, "recovery_throttled")
            notices = [("error", _wait_notice(wait))]
            page = render_template("auth/recover.html", form=form, notices=notices)
            return page, 429, {"Retry-After": str(wait)}
        recovery_code = normalise_recovery_code(form.recovery_code.data or "")
        try:
            if officer is None:
                refuse_secret(recovery_code, runtime().config.kdf_cost)  # as long as a wrong code
            key = unlock_with_recovery_code(officer, recovery_code)
            if not _totp_ok(db, officer, _totp_secret(officer, key), form.code.data or ""):
                raise WrongSecret("totp")
        except (WrongSecret, EnvelopeError):
            attempt.recovery_failed(runtime())
            _fail(db, officer, "recovery")
            notices = [("error", _("Wrong username, recovery code or authenticator code."))]
            return render_template("auth/recover.html", form=form, notices=notices), 401
        password = form.new_password.data or ""
        new_code = _set_password(db, officer, key, password, "password_recovered")
        attempt.recovered(runtime())
        # Whoever knew the old password may be logged in somewhere: every session ends.
        end_sessions(db, officer, actor=officer, reason="password_recovered")
        public_id = officer.public_id
    drop_sessions(public_id)
    return render_template("auth/recovered.html", recovery_code=new_code)


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    user = current_user
    if user.is_authenticated:
        with runtime().sessions() as db, db.begin():
            officer = db.scalars(select(Officer).where(Officer.public_id == user.get_id())).one()
            record(db, action=actions.LOGOUT, actor=officer, client_address=_client())
    logout_user()
    session.clear()
    response = redirect(url_for("auth.login"))
    forget_officer_key(response)
    return response
