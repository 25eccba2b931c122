"""POST /lang/<code>: Vietnamese or English, for staff and anonymous visitors alike.

Shared by every tier that shows pages (the staff UI and the public web form): the choice is a
cookie of the browser, never a server-side session (tipline.web.i18n).
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, request, url_for
from flask.typing import ResponseReturnValue

from tipline.runtime import app_runtime
from tipline.web.i18n import LANGUAGE_COOKIE, LANGUAGES

blueprint = Blueprint("language", __name__)


def _home() -> str:
    """Where a post without a usable Referer goes: this tier's first page."""
    if "auth" in current_app.blueprints:
        return url_for("auth.login")
    return url_for("web_intake.report")


@blueprint.post("/lang/<code>")
def set_language(code: str) -> ResponseReturnValue:
    target = request.referrer or _home()
    # Only back to this site, and no control character: a CR/LF in the Referer reached the
    # Location header (Werkzeug refused to set it: a 500).
    if not target.startswith(request.host_url) or not target.isprintable():
        target = _home()
    response = redirect(target)
    if code in LANGUAGES:  # a cookie, not the session: anonymous visitors have none
        response.set_cookie(
            LANGUAGE_COOKIE,
            code,
            httponly=True,
            samesite="Lax",
            secure=app_runtime().config.behind_tls,
            max_age=None,
        )
    return response
