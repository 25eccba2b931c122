"""The staff UI's forms (Flask-WTF: every form carries a CSRF token).

The forms people post before they have a session (login, recovery) take theirs from the
page's ``csrf_token()``, checked before the view runs (tipline.web.csrf): Flask-WTF's own
would give every visitor of the login page a server-side session.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    EqualTo,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from tipline.web.form_messages import Form

# Public ids, usernames, unit codes, OA ids: what audit events name. Nothing else is accepted.
IDENTIFIER = Regexp(r"^[A-Za-z0-9_.:@-]{1,64}$", message=_l("Letters, digits and . _ : @ - only"))
TOTP_CODE = Regexp(r"^\s*\d{6}\s*$", message=_l("6 digits from your authenticator app"))


class PublicForm(Form):
    """A form anyone may post: its CSRF token is the page's (checked by tipline.web.csrf)."""

    class Meta:
        csrf = False


class LoginForm(PublicForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    code = StringField(_l("Authenticator code"), validators=[Optional(), TOTP_CODE])


class TotpSetupForm(Form):
    code = StringField(_l("Authenticator code"), validators=[DataRequired(), TOTP_CODE])


class RecoverForm(PublicForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    recovery_code = StringField(_l("Recovery code"), validators=[DataRequired(), Length(max=64)])
    code = StringField(_l("Authenticator code"), validators=[DataRequired(), TOTP_CODE])
    new_password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(min=12, max=256)]
    )


class NewPasswordForm(Form):
    new_password = PasswordField(
        _l("New password"),
        validators=[
            DataRequired(message=_l("Enter a new password.")),
            Length(min=12, max=256, message=_l("At least 12 characters.")),
        ],
    )
    confirm = PasswordField(
        _l("New password again"),
        validators=[
            DataRequired(message=_l("Enter the new password again.")),
            EqualTo("new_password", message=_l("The two passwords differ.")),
        ],
    )


class EmptyForm(Form):
    """A form with nothing but its CSRF token: logout, and buttons that post."""


class InboxFilterForm(Form):
    class Meta:
        csrf = False  # a GET search form changes nothing

    status = SelectField(_l("Status"), validators=[Optional()], choices=[])
    priority = SelectField(_l("Priority"), validators=[Optional()], choices=[])
    category = SelectField(_l("Category"), validators=[Optional()], choices=[])
    assignee = SelectField(_l("Assignee"), validators=[Optional()], choices=[])
    unit = SelectField(_l("Unit"), validators=[Optional()], choices=[])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])
    # The dashboard's drill-downs (triage.deadlines): not opened past the SLA; open past the
    # closure deadline.
    overdue = BooleanField(_l("Not opened, past the SLA"))
    closure = BooleanField(_l("Open past the closure deadline"))


class ChoiceForm(Form):
    """One value from a list: status, priority, category, assignee, unit."""

    value = SelectField(validators=[DataRequired()], choices=[])


class TextForm(Form):
    text = TextAreaField(validators=[DataRequired(), Length(max=2000)])


class TriageForm(Form):
    """The tip page's one panel: status, priority, category and assignee, one save.

    ``confirm`` is set once the officer confirmed a change that closes the tip.
    """

    status = SelectField(_l("Status"), validators=[DataRequired()], choices=[])
    priority = SelectField(_l("Priority"), validators=[DataRequired()], choices=[])
    category = SelectField(_l("Category"), validators=[DataRequired()], choices=[])
    assignee = SelectField(_l("Assignee"), validators=[Optional()], choices=[])
    confirm = HiddenField()


class HandOverForm(Form):
    """Transfer to a unit (``unit``) or escalate; posted twice: to ask, then confirmed."""

    unit = SelectField(_l("Unit to transfer to"), validators=[Optional()], choices=[])
    confirm = HiddenField()


class CannedReplyForm(Form):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=80)])
    text = TextAreaField(_l("Text"), validators=[DataRequired(), Length(max=2000)])


class DuplicateForm(Form):
    receipt_code = StringField(
        _l("Receipt code of the original tip"), validators=[DataRequired(), Length(max=16)]
    )


class SearchForm(Form):
    class Meta:
        csrf = False

    q = StringField(
        _l("Search"),
        validators=[
            DataRequired(message=_l("Type what to search for.")),
            # Fewer characters match nearly every tip: a bulk read, not a search.
            Length(min=3, max=100, message=_l("Type 3 to 100 characters.")),
        ],
    )


class HiddenNext(Form):
    next = HiddenField()


class AuditFilterForm(Form):
    class Meta:
        csrf = False  # a GET search form changes nothing (the export POST is CSRF-checked)

    officer = StringField(_l("Officer"), validators=[Optional(), IDENTIFIER])
    unit = StringField(_l("Unit"), validators=[Optional(), IDENTIFIER])
    below = BooleanField(_l("and the units below"))
    action = SelectField(_l("Action"), validators=[Optional()], choices=[])
    outcome = SelectField(_l("Outcome"), validators=[Optional()], choices=[])
    # A receipt code as a citizen quotes it ("tl 0abc 1def") or an internal id.
    tip = StringField(
        _l("Receipt code or object id"),
        validators=[
            Optional(),
            Regexp(r"^[A-Za-z0-9_.:@ -]{1,64}$", message=_l("A receipt code or an id")),
        ],
    )
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])


REQUIRED = _l("This field is required.")  # WTForms has no Vietnamese catalogue: ours


class ChoiceField(SelectField):
    """A select whose refusal of a value not offered is in the UI's language."""

    def pre_validate(self, form: object) -> None:
        if self.data not in {value for value, *_rest in self.iter_choices()}:
            raise ValidationError(_l("Not a valid choice."))


class NewAccountForm(Form):
    username = StringField(
        _l("Username"),
        validators=[
            DataRequired(message=REQUIRED),
            Regexp(r"^[a-z0-9][a-z0-9._-]{2,63}$", message=_l("3–64 of a-z, 0-9, . _ -")),
        ],
    )
    display_name = StringField(
        _l("Full name"), validators=[DataRequired(message=REQUIRED), Length(max=200)]
    )
    role = ChoiceField(_l("Role"), choices=[])
    # A unit's code (v2025:32134), from the units list below the form: a list of every unit
    # would be thousands of options on every admin page (tipline.admin's paging).
    unit = StringField(_l("Unit code"), validators=[Optional(), Length(max=32)])


class OaForm(Form):
    oa_id = StringField(
        _l("OA id"),
        validators=[
            DataRequired(message=_l("Enter the OA id (digits, from the OA's page in Zalo).")),
            Regexp(r"^\s*\d{1,32}\s*$", message=_l("Digits only")),
        ],
    )
    # "1": the admin confirmed moving the OA from the unit it is attached to.
    move = HiddenField()


class AccountChangeForm(Form):
    """One life-cycle change of an account (triage.accounts_admin); ``confirm`` "1" does it."""

    unit = SelectField(_l("Unit"), validators=[Optional()], choices=[], validate_choice=False)
    role = SelectField(_l("Role"), validators=[Optional()], choices=[], validate_choice=False)
    confirm = HiddenField()

    def validate_unit(self, field: SelectField) -> None:
        if field.data and field.data not in {value for value, _label in field.choices}:
            raise ValidationError(_l("This unit does not exist."))

    def validate_role(self, field: SelectField) -> None:
        if field.data and field.data not in {value for value, _label in field.choices}:
            raise ValidationError(_l("This role does not exist."))


class ConfirmForm(Form):
    """A consequential button: posted once to ask, then again with ``confirm`` set to do it."""

    confirm = HiddenField()
