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
from typing import Any

from flask import Flask, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import Babel, get_locale
from flask_babel import lazy_gettext as _l
from flask_session import Session
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from tipline.models import Channel, Direction, Outcome, Role
from tipline.models.key_trust import UncertifiedKey
from tipline.runtime import Runtime
from tipline.time_rules import VIETNAM_ZONE_NAME
from tipline.web.csrf import csrf, form_token, set_browser_cookie
from tipline.web.guards import MACHINE_BLUEPRINTS, refuse_nul
from tipline.web.i18n import _, select_locale, translate_form_messages, when
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
    app.register_error_handler(UncertifiedKey, _uncertified_key)
    app.register_error_handler(500, _server_error)


# Routes that answer machines (Zalo, the simulator, health checks): JSON, never a page.
MACHINE_PATHS = ("/zalo/", "/_sim/", "/healthz", "/livez", "/readyz")


def _uncertified_key(error: UncertifiedKey) -> ResponseReturnValue:
    """A stored public key failed its certificate: nothing was sealed, the action rolled back,
    the refusal is logged and audited (tipline.models.key_trust)."""
    message = _(
        "This record's encryption key is not the one it was created with (it was changed in "
        "the database). Nothing was encrypted to it and nothing was saved. The incident has "
        "been recorded; tell your administrator."
    )
    if request.path.startswith(MACHINE_PATHS):
        return {"error": "uncertified_key"}, 409
    title = str(ERROR_TITLES[409])
    return render_template("errors/error.html", code=409, title=title, message=message), 409


# What each error says when the code that raised it gave no words of its own (Werkzeug's
# defaults are English sentences).
ERROR_TITLES: dict[int, Any] = {
    400: _l("Bad request"),
    403: _l("No permission"),
    404: _l("Not found"),
    405: _l("Method not allowed"),
    409: _l("Conflict"),
    413: _l("Too large"),
    429: _l("Too many requests"),
    500: _l("Server error"),
    503: _l("Service unavailable"),
    507: _l("The server's disk is full"),
}
ERROR_MESSAGES: dict[int, Any] = {
    400: _l("The request could not be understood. Go back and try again."),
    403: _l("You do not have permission to see this page."),
    404: _l("The page you asked for does not exist or is no longer here."),
    405: _l("This page cannot be used this way (the request method is not allowed)."),
    409: _l("The request conflicts with the current state. Reload the page and try again."),
    413: _l("What you sent is too large."),
    429: _l("Too many requests. Please wait a moment and try again."),
    503: _l("The service is not available right now. Please try again in a few minutes."),
}


def _error_page(error: HTTPException) -> ResponseReturnValue:
    """Plain error pages for people, in their language; the webhook and JSON routes answer
    with their own JSON."""
    if request.path.startswith(MACHINE_PATHS):
        return error
    code = error.code or 500
    message = error.description
    if isinstance(error, CSRFError):  # Flask-WTF's reasons are English and technical
        message = str(
            _l("The form has expired or did not come from this page. Reload it and try again.")
        )
    elif message is None or message == type(error).description:  # Werkzeug's English default
        message = str(ERROR_MESSAGES.get(code, ""))
    title = str(ERROR_TITLES.get(code, code))
    home = None
    for endpoint in ("auth.login", "web_intake.report"):
        if endpoint in current_app.view_functions:
            home = url_for(endpoint)
            break
    page = render_template(
        "errors/error.html", code=code, title=title, message=message, home=home
    )
    return page, code


# When even the error page cannot be rendered (its template, Babel or Redis failing too).
BARE_500 = (
    '<!doctype html><html lang="vi"><meta charset="utf-8"><title>500</title>'
    "<h1>Lỗi máy chủ</h1><p>Hệ thống đang gặp sự cố. Thông tin của bạn chưa được lưu; "
    "vui lòng thử lại sau ít phút.</p>"
    "<p lang=\"en\">Server error. Nothing was stored; please try again in a few minutes.</p>"
    "</html>"
)


def _server_error(error: Exception) -> ResponseReturnValue:
    """Any unhandled failure: a page in the visitor's language (Vietnamese first), never
    Werkzeug's English "Internal Server Error", and never the exception's text."""
    if request.path.startswith(MACHINE_PATHS):
        return {"ok": False, "error": "server error"}, 500
    try:
        message = _(
            "Something went wrong on the server. Nothing was stored; please try again in a "
            "few minutes."
        )
        title = str(ERROR_TITLES[500])
        return render_template("errors/error.html", code=500, title=title, message=message), 500
    except Exception:  # the page itself fails: the plain one
        return BARE_500, 500, {"Content-Type": "text/html; charset=utf-8"}


def _limits_uri(runtime: Runtime) -> str:
    """Flask-Limiter's storage: the configured Redis URL as given (password, user, TLS, db)."""
    url = runtime.config.redis_url
    if url is None:  # embedded Redis on a unix socket
        return f"redis+unix://{runtime.redis.connection_pool.connection_kwargs['path']}"
    return f"redis+{url}" if url.startswith("unix://") else url
