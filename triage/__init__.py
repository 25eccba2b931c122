"""The staff web UI: login, the duty officers' inbox and tip pages, the commanders' dashboard,
the auditors' and the admins' pages.

One blueprint per area. Access is default-deny: every endpoint needs a logged-in account
except the short allow-list in :data:`PUBLIC_ENDPOINTS` (SecureDrop's pattern), and each
page then checks the role and, for tip content, the key chain. The anonymous public surface
lives apart, in :mod:`tipline.public`.
"""

from __future__ import annotations

from flask import Flask, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user
from werkzeug.wrappers import Response

from tipline.web.guards import MACHINE_BLUEPRINTS
from triage.users import load_user

login_manager = LoginManager()

# Endpoints anyone may reach: the login steps, and the public surface (tipline.public).
PUBLIC_ENDPOINTS = frozenset(
    {
        "auth.login",
        "auth.totp_setup",
        "auth.new_password",
        "auth.recover",
        "language.set_language",
        "health.healthz",
        "health.livez",
        "health.readyz",
        "intake.zalo_webhook",
        "static",
        "web_intake.report",
        "web_intake.submit",
        "web_intake.lookup",
        "web_intake.follow_up",
    }
)


def init_triage(app: Flask) -> None:
    """Register the staff blueprints and the login requirement (after :func:`init_web`)."""
    login_manager.init_app(app)
    app.jinja_env.globals["staff_ui"] = True  # base.html: the staff navigation and links
    login_manager.user_loader(load_user)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"

    from triage.access import audit_denied_access
    from triage.accounts_admin import blueprint as accounts_admin
    from triage.admin import blueprint as admin
    from triage.audit_ui import blueprint as audit_ui
    from triage.auth import blueprint as auth
    from triage.canned import blueprint as canned
    from triage.dashboard import blueprint as dashboard
    from triage.export import blueprint as tip_export
    from triage.grants import blueprint as grants
    from triage.inbox import blueprint as inbox
    from triage.oa_admin import blueprint as admin_zalo
    from triage.posters import blueprint as posters
    from triage.related import blueprint as related
    from triage.roster import blueprint as roster
    from triage.search import blueprint as search
    from triage.tips import blueprint as tips
    from triage.units_admin import blueprint as units_admin
    from triage.zalo_events import blueprint as zalo_events

    for blueprint in (
        auth,
        inbox,
        tips,
        audit_ui,
        admin,
        admin_zalo,
        units_admin,
        search,
        dashboard,
        roster,
        posters,
        zalo_events,
        grants,
        accounts_admin,
    ):
        app.register_blueprint(blueprint)
    for blueprint in (tip_export, canned, related):
        app.register_blueprint(blueprint)
    app.before_request(_require_login)
    app.after_request(audit_denied_access)
    app.after_request(never_stored)


def _require_login() -> ResponseReturnValue | None:
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC_ENDPOINTS or endpoint.split(".")[0] in MACHINE_BLUEPRINTS:
        return None
    if current_user.is_authenticated:
        return None
    return redirect(url_for("auth.login"))


def never_stored(response: Response) -> Response:
    """``Cache-Control: no-store`` on every response of a staff session, and of the login steps.

    A logged-in officer's pages show decrypted tips (the tip page, search results, files,
    exports): no browser cache or proxy may keep them for the next user of the machine. The
    simplest rule that cannot miss a page is every response while someone is logged in (or
    enrolling their authenticator: the session exists), plus the login and recovery pages,
    which show a TOTP secret or a new recovery code to a visitor who has no session yet.
    """
    if current_user.is_authenticated or session or request.blueprint == "auth":
        response.headers["Cache-Control"] = "no-store"
    return response
