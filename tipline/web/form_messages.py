"""WTForms' own messages in the app's catalog, so a Vietnamese page never says "Not a valid
date value." (WTForms ships no Vietnamese). Forms take their translations from here
(:class:`Form`); the messages are listed so that ``make translations`` extracts them into the
catalog beside ours."""

from __future__ import annotations

from typing import Any

from flask_babel import get_translations, gettext, ngettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

# Every WTForms message a form of ours can show (wtforms/locale/wtforms.pot).
WTFORMS_MESSAGES = (
    _l("This field is required."),
    _l("Invalid input."),
    _l("Not a valid choice."),
    _l("Invalid Choice: could not coerce."),
    _l("Not a valid date value."),
    _l("Not a valid datetime value."),
    _l("Not a valid time value."),
    _l("Not a valid integer value."),
    _l("Not a valid decimal value."),
    _l("Not a valid float value."),
    _l("Field must be between %(min)d and %(max)d characters long."),
    _l("Number must be between %(min)s and %(max)s."),
    _l("Number must be at least %(min)s."),
    _l("Number must be at most %(max)s."),
    _l("Invalid value, must be one of: %(values)s."),
    _l("Field must be equal to %(other_name)s."),
    _l("Invalid CSRF Token."),
    _l("CSRF token missing."),
    _l("CSRF failed."),
    _l("CSRF token expired."),
)
def _plurals() -> None:
    """Never called: here for extraction, the plural messages WTForms asks for."""
    ngettext(
        "Field must be at least %(min)d character long.",
        "Field must be at least %(min)d characters long.",
        1,
    )
    ngettext(
        "Field cannot be longer than %(max)d character.",
        "Field cannot be longer than %(max)d characters.",
        1,
    )


class _Messages:
    """WTForms' translations interface over Flask-Babel (the request's language)."""

    def gettext(self, string: str) -> str:
        return str(gettext(string))

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        # Not flask_babel.ngettext: it formats the result with {"num": n} itself, and WTForms
        # formats it afterwards with its own names (%(max)d).
        return str(get_translations().ungettext(singular, plural, n))


MESSAGES = _Messages()


class Form(FlaskForm):
    """The base of every form: WTForms' messages in the page's language."""

    class Meta(FlaskForm.Meta):
        def get_translations(self, form: Any) -> _Messages:
            return MESSAGES
