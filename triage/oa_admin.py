"""The admin's Zalo OA page: each OA's connection, Zalo's consent (OAuth v4 with PKCE), detach.

The consent (CONTRACT.md): ``GET /admin/zalo/connect/<oa_id>`` keeps a random state and PKCE
verifier for this admin, this session and this OA (tipline.zalo.accounts) and sends the browser
to Zalo's consent page; Zalo sends it back to ``GET /admin/zalo/callback`` with ``code``,
``oa_id`` and ``state``. The callback is an admin page like any other (default-deny login,
admins only): the admin who started the consent finishes it in the same session. The tokens
are sealed to the relay key's public half, which is all this tier holds: it cannot open them.

The redirect URI given to Zalo is ``TIPLINE_PUBLIC_URL`` + the callback's path when that is
set, else the address the admin used; it must be the one registered in Zalo's console
(docs/zalo.md).
"""

from __future__ import annotations

from datetime import datetime

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

from keys import new_token
from tipline.db import write_session
from tipline.models import Officer, Role, utcnow
from tipline.units import UnitError, detach_oa, valid_oa_id
from tipline.web.i18n import _
from tipline.zalo.accounts import (
    GRANT_WARNING,
    ConsentError,
    ConsentRefusal,
    OaStatus,
    TokenState,
    configured,
    find_oa,
    finish_consent,
    oa_statuses,
    start_consent,
)
from tipline.zalo.client import ZaloClient
from tipline.zalo.tokens import REFRESH_MARGIN
from triage.forms import ConfirmForm
from triage.users import runtime, staff

blueprint = Blueprint("admin_zalo", __name__, url_prefix="/admin/zalo")

# This session's half of each consent's binding (the other half is kept with the state).
CONSENT_BINDING = "zalo_consent_binding"

TOKEN_STATE_LABELS = {
    TokenState.OK: _l("Connected"),
    TokenState.MISSING: _l("Not connected"),
    TokenState.EXPIRING: _l("Connection expiring"),
    TokenState.ERROR: _l("Connection refused by Zalo"),
}

REFUSAL_MESSAGES = {
    ConsentRefusal.NOT_CONFIGURED: _l(
        "Zalo is not configured on this server: ZALO_APP_ID and ZALO_APP_SECRET must be set "
        "(docs/zalo.md)."
    ),
    ConsentRefusal.NO_CODE: _l(
        "Zalo sent no authorisation code back: the OA administrator did not approve. Nothing "
        "was changed."
    ),
    ConsentRefusal.STATE: _l(
        "This connection request is not valid: it is unknown, older than 10 minutes, already "
        "used, or was started in another session. Nothing was changed: start again with "
        "“Connect”."
    ),
    ConsentRefusal.WRONG_OA: _l(
        "Zalo returned another OA than the one you asked to connect. Nothing was changed: log "
        "in to Zalo as an administrator of the right OA and connect again."
    ),
    ConsentRefusal.UNKNOWN_OA: _l(
        "This OA is no longer attached to a unit. Nothing was changed: attach it, then connect "
        "it."
    ),
    ConsentRefusal.REFUSED: _l(
        "Zalo refused the authorisation code (expired, already used, or the app secret is "
        "wrong). Nothing was changed: connect again."
    ),
    ConsentRefusal.UNAVAILABLE: _l(
        "Zalo could not be reached. Nothing was changed: try again in a few minutes."
    ),
}


@blueprint.before_request
def _admins_only() -> None:
    if staff().role != Role.ADMIN:
        abort(403)


def _client() -> str | None:
    return request.remote_addr


def _alerts(status: OaStatus, now: datetime) -> list[str]:
    """What needs doing about one OA, in the UI's language."""
    alerts: list[str] = []
    if status.token_state is TokenState.MISSING:
        alerts.append(
            _(
                "Not connected: the OA has no Zalo tokens, so every acknowledgement and reply "
                "through it fails. Click “Connect” and approve in Zalo as the OA's administrator."
            )
        )
    elif status.token_state is TokenState.ERROR:
        alerts.append(
            _(
                "Zalo refused to renew this OA's tokens: the app's permission was withdrawn or "
                "expired. No reply can be sent through it: click “Reconnect”. If every OA shows "
                "this, ZALO_APP_SECRET is probably wrong: once it is fixed they recover by "
                "themselves within a day."
            )
        )
    elif status.token_state is TokenState.EXPIRING:
        if status.expires_at is None or status.expires_at <= now + REFRESH_MARGIN:
            alerts.append(
                _(
                    "The access token was not renewed in time: check that at least one worker "
                    "(tipline worker) is running and can reach Zalo."
                )
            )
        if status.grant_ends_at is not None and status.grant_ends_at <= now + GRANT_WARNING:
            alerts.append(
                _(
                    "The app's permission for this OA ends on %(date)s unless it is renewed: "
                    "check the workers, or click “Reconnect”.",
                    date=status.grant_ends_at.strftime("%d/%m/%Y"),
                )
            )
    elif status.last_webhook_at is None:
        alerts.append(
            _(
                "No message from Zalo has arrived through this OA yet: check the webhook URL "
                "and the events switched on in Zalo's console (docs/zalo.md)."
            )
        )
    if status.last_error:
        alerts.append(_("Last error: %(error)s", error=status.last_error))
    return alerts


def _configuration_alerts() -> list[str]:
    config = runtime().config
    alerts: list[str] = []
    if not configured(runtime()):
        alerts.append(
            _(
                "Configuration error: ZALO_APP_ID and ZALO_APP_SECRET (the app's id and its "
                "secret key for OAuth) must be set, or no OA can be connected or renewed."
            )
        )
    if not config.zalo_oa_secret_key:
        alerts.append(
            _(
                "Configuration error: ZALO_OA_SECRET_KEY (the OA secret key of the app's "
                "Webhook page) is not set: every message from Zalo is refused."
            )
        )
    return alerts


@blueprint.get("/")
def index() -> ResponseReturnValue:
    now = utcnow()
    with runtime().sessions() as db:
        statuses = oa_statuses(db, now)
    return render_template(
        "admin/zalo.html",
        statuses=statuses,
        alerts={status.oa_id: _alerts(status, now) for status in statuses},
        configuration=_configuration_alerts(),
        labels=TOKEN_STATE_LABELS,
        TokenState=TokenState,
        button=ConfirmForm(formdata=None),
    )


def _redirect_uri() -> str:
    base = runtime().config.public_url
    if base:
        return base + url_for("admin_zalo.callback")
    return url_for("admin_zalo.callback", _external=True)


@blueprint.get("/connect/<oa_id>")
def connect(oa_id: str) -> ResponseReturnValue:
    """Start Zalo's consent for ``oa_id``: 302 to ``{ZALO_OAUTH_BASE}/v4/oa/permission?…``."""
    if not valid_oa_id(oa_id):
        abort(404)
    with runtime().sessions() as db:
        if find_oa(db, oa_id) is None:
            abort(404)
    binding = session.get(CONSENT_BINDING)
    if not isinstance(binding, str) or not binding:
        binding = new_token(26)
        session[CONSENT_BINDING] = binding
    try:
        url = start_consent(
            runtime(),
            oa_id=oa_id,
            officer_id=staff().public_id,
            binding=binding,
            redirect_uri=_redirect_uri(),
        )
    except ConsentError as refused:
        flash(str(REFUSAL_MESSAGES[refused.reason]), "error")
        return redirect(url_for("admin_zalo.index"))
    return redirect(url)


@blueprint.get("/callback")
def callback() -> ResponseReturnValue:
    """Where Zalo sends the admin back: check the state, exchange the code, store the tokens."""
    binding = session.get(CONSENT_BINDING)
    oa_id = request.args.get("oa_id", "")[:64]
    try:
        with ZaloClient.from_config(runtime().config) as client:
            result = finish_consent(
                runtime(),
                client,
                code=request.args.get("code", "")[:512],
                oa_id=oa_id,
                state=request.args.get("state", ""),
                officer_id=staff().public_id,
                binding=binding if isinstance(binding, str) else "",
                client_address=_client(),
            )
    except ConsentError as refused:
        page = render_template(
            "admin/zalo_result.html",
            ok=False,
            message=REFUSAL_MESSAGES[refused.reason],
            zalo_error=refused.zalo_error,
        )
        return page, 503 if refused.reason is ConsentRefusal.UNAVAILABLE else 400
    return render_template("admin/zalo_result.html", ok=True, result=result)


@blueprint.post("/<oa_id>/detach")
def detach(oa_id: str) -> ResponseReturnValue:
    """Detach an OA: first a page saying what it does, then (``confirm``) the deed."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    if not valid_oa_id(oa_id):
        abort(404)
    with runtime().sessions() as db:
        oa = find_oa(db, oa_id)
        if oa is None:
            abort(404)
        unit_name, unit_code = oa.unit.name, oa.unit.code
    if form.confirm.data != "1":
        page = render_template(
            "admin/confirm_detach.html",
            oa_id=oa_id,
            unit=(unit_name, unit_code),
            form=ConfirmForm(formdata=None, confirm="1"),
        )
        return page, 200
    try:
        with write_session(runtime().sessions) as db:
            me = db.get_one(Officer, staff().officer_id)
            detach_oa(db, oa_id, actor=me, client_address=_client())
    except UnitError:
        abort(404)
    flash(_("OA %(oa)s detached from %(unit)s.", oa=oa_id, unit=unit_name), "info")
    return redirect(url_for("admin_zalo.index"))

