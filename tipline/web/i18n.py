"""Vietnamese first, English on request (Flask-Babel).

The choice is a cookie of the browser (no server-side session for anonymous visitors):
"vi" or "en", nothing else, gone when the browser closes.
"""

from __future__ import annotations

from datetime import datetime

from flask import request
from flask_babel import get_translations, gettext

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


class FormMessages:
    """WTForms' own messages ("This field is required.", "Not a valid date value.") from our
    catalog: WTForms ships no Vietnamese, so without this they showed in English on Vietnamese
    pages. Flask-WTF asks the request for them (``request.wtforms_translations``). Nothing is
    formatted here: WTForms fills in its own ``%(min)d``."""

    def ugettext(self, string: str) -> str:
        return str(get_translations().ugettext(string))

    def ungettext(self, singular: str, plural: str, n: int) -> str:
        return str(get_translations().ungettext(singular, plural, n))


def translate_form_messages() -> None:
    """Before each request: WTForms' messages in the page's language (Flask-WTF's hook)."""
    request.wtforms_translations = FormMessages()  # type: ignore[attr-defined]
