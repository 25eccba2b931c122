"""Vietnamese first, English on request (Flask-Babel)."""

from __future__ import annotations

from flask import request, session
from flask_babel import gettext

LANGUAGES = ("vi", "en")


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(LANGUAGES, default="vi") or "vi"


def _(message: str, **variables: object) -> str:
    """gettext, typed: the UI's strings are English msgids with Vietnamese translations."""
    return str(gettext(message, **variables))
