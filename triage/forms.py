"""The staff UI's forms (Flask-WTF: every form carries a CSRF token).

The forms people post before they have a session (login, recovery) take theirs from the
page's ``csrf_token()``, checked before the view runs (tipline.web.csrf): Flask-WTF's own
would give every visitor of the login page a server-side session.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

# Public ids, usernames, unit codes, OA ids: what audit events name. Nothing else is accepted.
IDENTIFIER = Regexp(r"^[A-Za-z0-9_.:@-]{1,64}$", message=_l("Letters, digits and . _ : @ - only"))
TOTP_CODE = Regexp(r"^\s*\d{6}\s*$", message=_l("6 digits from your authenticator app"))


class PublicForm(FlaskForm):
    """A form anyone may post: its CSRF token is the page's (checked by tipline.web.csrf)."""

    class Meta:
        csrf = False


class LoginForm(PublicForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    code = StringField(_l("Authenticator code"), validators=[Optional(), TOTP_CODE])


class TotpSetupForm(FlaskForm):
    code = StringField(_l("Authenticator code"), validators=[DataRequired(), TOTP_CODE])


class RecoverForm(PublicForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    recovery_code = StringField(_l("Recovery code"), validators=[DataRequired(), Length(max=64)])
    code = StringField(_l("Authenticator code"), validators=[DataRequired(), TOTP_CODE])
    new_password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(min=12, max=256)]
    )


class EmptyForm(FlaskForm):
    """A form with nothing but its CSRF token: logout, and buttons that post."""


class InboxFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form changes nothing

    status = SelectField(_l("Status"), validators=[Optional()], choices=[])
    priority = SelectField(_l("Priority"), validators=[Optional()], choices=[])
    category = SelectField(_l("Category"), validators=[Optional()], choices=[])
    assignee = SelectField(_l("Assignee"), validators=[Optional()], choices=[])
    unit = SelectField(_l("Unit"), validators=[Optional()], choices=[])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])


class ChoiceForm(FlaskForm):
    """One value from a list: status, priority, category, assignee, unit."""

    value = SelectField(validators=[DataRequired()], choices=[])


class TextForm(FlaskForm):
    text = TextAreaField(validators=[DataRequired(), Length(max=2000)])


class TriageForm(FlaskForm):
    """The tip page's one panel: status, priority, category and assignee, one save.

    ``confirm`` is set once the officer confirmed a change that closes the tip.
    """

    status = SelectField(_l("Status"), validators=[DataRequired()], choices=[])
    priority = SelectField(_l("Priority"), validators=[DataRequired()], choices=[])
    category = SelectField(_l("Category"), validators=[DataRequired()], choices=[])
    assignee = SelectField(_l("Assignee"), validators=[Optional()], choices=[])
    confirm = HiddenField()


class HandOverForm(FlaskForm):
    """Transfer to a unit (``unit``) or escalate; posted twice: to ask, then confirmed."""

    unit = SelectField(_l("Unit to transfer to"), validators=[Optional()], choices=[])
    confirm = HiddenField()


class CannedReplyForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=80)])
    text = TextAreaField(_l("Text"), validators=[DataRequired(), Length(max=2000)])


class DuplicateForm(FlaskForm):
    receipt_code = StringField(
        _l("Receipt code of the original tip"), validators=[DataRequired(), Length(max=16)]
    )


class SearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[DataRequired(), Length(min=2, max=100)])


class HiddenNext(FlaskForm):
    next = HiddenField()


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form changes nothing (the export POST is CSRF-checked)

    officer = StringField(_l("Officer"), validators=[Optional(), IDENTIFIER])
    unit = StringField(_l("Unit"), validators=[Optional(), IDENTIFIER])
    below = BooleanField(_l("and the units below"))
    action = SelectField(_l("Action"), validators=[Optional()], choices=[])
    outcome = SelectField(_l("Outcome"), validators=[Optional()], choices=[])
    tip = StringField(_l("Tip or object id"), validators=[Optional(), IDENTIFIER])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])


class NewAccountForm(FlaskForm):
    username = StringField(
        _l("Username"),
        validators=[
            DataRequired(),
            Regexp(r"^[a-z0-9][a-z0-9._-]{2,63}$", message=_l("3–64 of a-z, 0-9, . _ -")),
        ],
    )
    display_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    role = SelectField(_l("Role"), choices=[])
    unit = SelectField(_l("Unit"), validators=[Optional()], choices=[])


class OaForm(FlaskForm):
    oa_id = StringField(
        _l("OA id"),
        validators=[
            DataRequired(message=_l("Enter the OA id (digits, from the OA's page in Zalo).")),
            Regexp(r"^\s*\d{1,32}\s*$", message=_l("Digits only")),
        ],
    )
    # "1": the admin confirmed moving the OA from the unit it is attached to.
    move = HiddenField()


class ConfirmForm(FlaskForm):
    """A consequential button: posted once to ask, then again with ``confirm`` set to do it."""

    confirm = HiddenField()
