"""Vietnamese first, English on request (Flask-Babel).

The choice is a cookie of the browser (no server-side session for anonymous visitors):
"vi" or "en", nothing else, gone when the browser closes.
"""

from __future__ import annotations

from datetime import datetime

from flask import request
from flask_babel import gettext

from tipline.time_rules import VIETNAM

LANGUAGES = ("vi", "en")
LANGUAGE_COOKIE = "tipline_lang"


def select_locale() -> str:
    """Vietnamese unless the person chose English: many office browsers say "en-US"."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    return chosen if chosen in LANGUAGES else "vi"


def _(message: str, **variables: object) -> str:
    """gettext, typed: the UI's strings are English msgids with Vietnamese translations."""
    return str(gettext(message, **variables))


def when(moment: datetime | None, seconds: bool = False) -> str:
    """A time as officers read it: Vietnam's clock (UTC+7), day first, in every language.

    Plain strftime: a tip page shows dozens of times, and Babel's formatter costs ~60 µs each.
    """
    if moment is None:
        return "—"
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")
