"""What both web surfaces share: sessions, CSRF, languages, throttling, security headers.

The public surface (:mod:`tipline.public`: the Zalo webhook and the anonymous web form) and the
staff UI (:mod:`triage`) are built on this and on nothing of each other.

A server-side session (Redis) exists only once someone logs in: anonymous visitors' forms are
protected without one (:mod:`tipline.web.csrf`), their language is a cookie
(:mod:`tipline.web.i18n`), and nothing else writes to their session.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import Babel, get_locale
from flask_session import Session
from flask_talisman import Talisman
from werkzeug.exceptions import HTTPException

from tipline.models import Channel, Direction, Outcome, Role
from tipline.runtime import Runtime
from tipline.time_rules import VIETNAM_ZONE_NAME
from tipline.web.csrf import csrf, form_token, set_browser_cookie
from tipline.web.guards import MACHINE_BLUEPRINTS, refuse_nul
from tipline.web.i18n import select_locale, translate_form_messages, when
from tipline.web.language import blueprint as language
from tipline.web.limits import limiter

TRANSLATIONS = Path(__file__).parent / "translations"

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


def init_web(app: Flask, runtime: Runtime) -> None:
    """Sessions, CSRF, Babel, the limiter, headers and error pages, for pages people see."""
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
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
        RATELIMIT_STORAGE_URI=_limits_uri(runtime),
        RATELIMIT_HEADERS_ENABLED=False,
    )
    Session(app)
    csrf.init_app(app)
    # Templates' csrf_token(): the session's token, or the browser-bound one without a session
    # (Flask-WTF's own would make a session for every visitor of a page with a form).
    app.jinja_env.globals["csrf_token"] = form_token
    app.context_processor(lambda: {"csrf_token": form_token})
    app.after_request(set_browser_cookie)
    for name in MACHINE_BLUEPRINTS:
        blueprint = app.blueprints.get(name)
        if blueprint is not None:
            csrf.exempt(blueprint)
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
    # The vocabularies templates compare stored values with (``m.direction == Direction.NOTE``).
    app.jinja_env.globals.update(Channel=Channel, Direction=Direction, Outcome=Outcome, Role=Role)
    app.jinja_env.filters["when"] = when
    app.jinja_env.globals.setdefault("staff_ui", False)  # set by triage where it is mounted
    app.register_blueprint(language)
    limiter.init_app(app)
    for name in (*MACHINE_BLUEPRINTS, "health"):
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
    app.before_request(refuse_nul)  # before any login check: the same 400 for everyone
    app.before_request(translate_form_messages)
    for code in (400, 403, 404, 405, 409, 413, 429, 503):
        app.register_error_handler(code, _error_page)


def _error_page(error: HTTPException) -> ResponseReturnValue:
    """Plain error pages for people; the webhook and JSON routes answer with their own JSON."""
    if request.path.startswith(("/zalo/", "/_sim/", "/healthz")):
        return error
    return render_template(
        "errors/error.html", code=error.code, message=error.description
    ), error.code or 500


def _limits_uri(runtime: Runtime) -> str:
    """Flask-Limiter's storage: the configured Redis URL as given (password, user, TLS, db)."""
    url = runtime.config.redis_url
    if url is None:  # embedded Redis on a unix socket
        return f"redis+unix://{runtime.redis.connection_pool.connection_kwargs['path']}"
    return f"redis+{url}" if url.startswith("unix://") else url
