"""Vietnamese first, English on request (Flask-Babel)."""

from __future__ import annotations

from datetime import datetime

from flask import session
from flask_babel import format_datetime, gettext

LANGUAGES = ("vi", "en")


def select_locale() -> str:
    """Vietnamese unless the person chose English: many office browsers say "en-US"."""
    chosen = session.get("lang")
    return str(chosen) if chosen in LANGUAGES else "vi"


def _(message: str, **variables: object) -> str:
    """gettext, typed: the UI's strings are English msgids with Vietnamese translations."""
    return str(gettext(message, **variables))


def when(moment: datetime | None, seconds: bool = False) -> str:
    """A time as officers read it: Vietnam's clock (UTC+7), day first."""
    if moment is None:
        return "—"
    return str(format_datetime(moment, "dd/MM/yyyy HH:mm:ss" if seconds else "dd/MM/yyyy HH:mm"))
