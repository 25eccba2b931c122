"""Anti-CSRF without a server-side session for visitors who have none.

Flask-WTF keeps its token in the session, so every page showing a form used to give every
anonymous visitor of /bao-tin, /tra-cuu or /login a session in Redis and a session cookie.
Now a visitor without a session (the session is empty: not logged in, not enrolling) gets a
signed double-submit token instead:

- a random value in a cookie of the browser (:data:`BROWSER_COOKIE`: HttpOnly, SameSite=Lax,
  Secure behind TLS, no lifetime, so it goes when the browser closes), which the server does
  not keep;
- in each form, a token signed with the app's secret key and bound to that value
  (``keys.sign_token``), good for :data:`TOKEN_LIFE`.

A post is accepted when its token opens with the cookie it came with: another site can make a
browser post but cannot read the page's token, and a token taken from another browser does
not match this browser's cookie. Over HTTPS the Referer must be this site, as Flask-WTF asks.
Once there is a session (an officer logged in, or enrolling their authenticator), its own
Flask-WTF token is the only one accepted, as before.

The web form's proof-of-work challenge is bound to the same browser value
(:func:`sign_for_browser`).
"""

from __future__ import annotations

import re

from flask import current_app, g, request, session
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf, same_origin
from werkzeug.wrappers import Response

from keys import BadToken, new_token, open_token, sign_token

BROWSER_COOKIE = "tipline_csrf"
FIELD = "csrf_token"
PURPOSE = "csrf"
TOKEN_LIFE = 12 * 3600  # a form left open through a working day still posts
_VALUE = re.compile(r"[0-9A-Z]{26}")  # new_token(26): 130 random bits


def _key() -> bytes:
    return str(current_app.config["SECRET_KEY"]).encode()


def sent_browser_value() -> str:
    """The browser value this request's cookie carries ("" when none or malformed)."""
    value = request.cookies.get(BROWSER_COOKIE, "")
    return value if _VALUE.fullmatch(value) else ""


def browser_value() -> str:
    """This browser's value, made (and set on the response) if it sent none."""
    if "browser_value" not in g:
        value = sent_browser_value()
        if not value:
            value = new_token(26)
            g.new_browser_value = value
        g.browser_value = value
    return str(g.browser_value)


def set_browser_cookie(response: Response) -> Response:
    """After a page that made a browser value, give it to the browser (an ``after_request``)."""
    value = g.pop("new_browser_value", None)
    if value is not None:
        response.set_cookie(
            BROWSER_COOKIE,
            value,
            httponly=True,
            samesite="Lax",
            secure=bool(current_app.config["SESSION_COOKIE_SECURE"]),
            max_age=None,
        )
    return response


def sign_for_browser(
    purpose: str, payload: str = "", *, browser: str | None = None, issued: int | None = None
) -> str:
    """A token for ``purpose`` good only beside this browser's cookie (or ``browser``)."""
    bound = browser_value() if browser is None else browser
    return sign_token(_key(), purpose, payload, bound_to=bound, issued=issued)


def open_from_browser(purpose: str, token: str, *, max_age: int) -> str:
    """The payload of a token :func:`sign_for_browser` made for the browser posting it."""
    browser = sent_browser_value()
    if not browser:
        raise BadToken("no browser value")
    return open_token(_key(), purpose, token, max_age=max_age, bound_to=browser)


def form_token() -> str:
    """The page's anti-CSRF token (templates' ``csrf_token()``): the session's, if any."""
    if session:
        return str(generate_csrf())
    return sign_for_browser(PURPOSE)


class FormProtection(CSRFProtect):  # type: ignore[misc]  # Flask-WTF ships no types
    """Flask-WTF's check for requests with a session; the browser token for those without."""

    def protect(self, apply_exemptions: bool = False) -> None:
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return
        if request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return
        if session:
            super().protect()
            return
        try:
            open_from_browser(PURPOSE, request.form.get(FIELD, ""), max_age=TOKEN_LIFE)
        except BadToken as exc:
            raise CSRFError("The CSRF token is missing or invalid.") from exc
        if request.is_secure and current_app.config["WTF_CSRF_SSL_STRICT"]:
            if not request.referrer or not same_origin(
                request.referrer, f"https://{request.host}/"
            ):
                raise CSRFError("The referrer does not match the host.")
        g.csrf_valid = True  # Flask-WTF forms then skip their own (session) check


csrf = FormProtection()
