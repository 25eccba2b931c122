"""The staff web UI: login, the duty officers' inbox and tip pages, the commanders' dashboard.

One blueprint per area. Access is default-deny: every endpoint needs a logged-in account
except the short allow-list in :data:`PUBLIC_ENDPOINTS` (SecureDrop's pattern), and each
page then checks the role and, for tip content, the key chain.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import Babel, get_locale
from flask_login import LoginManager, current_user
from flask_session import Session
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect

from tipline.models import Channel, Direction, Outcome, Role
from tipline.runtime import Runtime
from tipline.time_rules import VIETNAM_ZONE_NAME
from triage.guards import refuse_nul
from triage.i18n import select_locale, when
from triage.limits import limiter
from triage.users import load_user

csrf = CSRFProtect()
login_manager = LoginManager()

PUBLIC_ENDPOINTS = frozenset(
    {
        "auth.login",
        "auth.totp_setup",
        "auth.recover",
        "auth.set_language",
        "health.healthz",
        "intake.zalo_webhook",
        "static",
        "web_intake.report",
        "web_intake.submit",
        "web_intake.lookup",
        "web_intake.follow_up",
    }
)
# Machine-to-machine routes with their own authentication (signatures, tokens), not forms.
CSRF_EXEMPT_BLUEPRINTS = ("intake", "zalo_simulator")

CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": ["'self'", "data:"],
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def init_triage(app: Flask, runtime: Runtime) -> None:
    config = runtime.config
    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=runtime.redis,
        SESSION_KEY_PREFIX="tipline:session:",
        SESSION_PERMANENT=True,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=config.session_idle_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        SESSION_COOKIE_NAME="tipline_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.behind_tls,
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which has its own idle timeout
        BABEL_DEFAULT_LOCALE="vi",
        BABEL_DEFAULT_TIMEZONE=VIETNAM_ZONE_NAME,
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        RATELIMIT_STORAGE_URI=_limits_uri(runtime),
        RATELIMIT_HEADERS_ENABLED=False,
    )
    Session(app)
    csrf.init_app(app)
    for name in CSRF_EXEMPT_BLUEPRINTS:
        blueprint = app.blueprints.get(name)
        if blueprint is not None:
            csrf.exempt(blueprint)
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
    # The vocabularies templates compare stored values with (``m.direction == Direction.NOTE``).
    app.jinja_env.globals.update(Channel=Channel, Direction=Direction, Outcome=Outcome, Role=Role)
    app.jinja_env.filters["when"] = when
    limiter.init_app(app)
    for name in (*CSRF_EXEMPT_BLUEPRINTS, "health"):
        if name in app.blueprints:  # machine routes are not throttled by the login limits
            limiter.exempt(app.blueprints[name])  # type: ignore[call-overload]  # sansio type
    Talisman(
        app,
        force_https=False,  # TLS ends at the reverse proxy (deploy/); HSTS is sent over HTTPS
        strict_transport_security=True,
        session_cookie_secure=config.behind_tls,
        content_security_policy=CSP,
        # Same-origin only: Flask-WTF checks the Referer of form posts over HTTPS; no URL of
        # ours (tip ids, search words) ever leaves for another site.
        referrer_policy="same-origin",
        frame_options="DENY",
    )
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"

    from triage.admin import blueprint as admin
    from triage.audit_ui import blueprint as audit_ui
    from triage.auth import blueprint as auth
    from triage.dashboard import blueprint as dashboard
    from triage.inbox import blueprint as inbox
    from triage.posters import blueprint as posters
    from triage.search import blueprint as search
    from triage.tips import blueprint as tips
    from triage.web_intake import blueprint as web_intake

    for blueprint in (auth, inbox, tips, audit_ui, admin, search, dashboard, web_intake, posters):
        app.register_blueprint(blueprint)
    app.before_request(refuse_nul)  # before the login check: the same 400 for everyone
    app.before_request(_require_login)
    from triage.access import audit_denied_access

    app.after_request(audit_denied_access)


def _require_login() -> ResponseReturnValue | None:
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC_ENDPOINTS or endpoint.split(".")[0] in CSRF_EXEMPT_BLUEPRINTS:
        return None
    if current_user.is_authenticated:
        return None
    return redirect(url_for("auth.login"))


def _limits_uri(runtime: Runtime) -> str:
    """Flask-Limiter's storage: the configured Redis URL as given (password, user, TLS, db)."""
    url = runtime.config.redis_url
    if url is None:  # embedded Redis on a unix socket
        return f"redis+unix://{runtime.redis.connection_pool.connection_kwargs['path']}"
    return f"redis+{url}" if url.startswith("unix://") else url
