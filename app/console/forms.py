"""The console's forms. Every POST form is a FlaskForm, so each carries and checks a CSRF token."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3; its stubs are 3.2
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from app.models import ROLES
from app.models.visit import VISIT_STATUSES

REASON_MAX = 500


class LoginForm(FlaskForm):
    """E-mail and password; `next` brings the user back to the page that sent them here."""

    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=500)])
    next = HiddenField()


class LanguageForm(FlaskForm):
    """The language switch shown in the console's header."""

    lang = SelectField(_l("Language"), choices=[SelectChoice("en", "English"), SelectChoice("zh", "中文")])
    next = HiddenField()


class ReasonForm(FlaskForm):
    """Base of every action form: the reason is kept in the audit log with who and when."""

    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=REASON_MAX)])
    next = HiddenField()


class ReminderForm(ReasonForm):
    """Send a reminder now; outside the participant's daytime hours only when confirmed."""

    confirm_outside_window = BooleanField(_l("Send even if it is outside the participant's daytime hours"))


class ReopenForm(ReasonForm):
    """Reopen a missed visit for a new window of `days` days from today."""

    days = IntegerField(
        _l("New window (days)"), default=7, validators=[InputRequired(), NumberRange(min=1, max=60)]
    )


class AcknowledgeForm(FlaskForm):
    """Acknowledge a red flag: the note says what was done (called the participant, referred…)."""

    note = TextAreaField(_l("Note"), validators=[DataRequired(), Length(max=REASON_MAX)])
    next = HiddenField()


class UserCreateForm(FlaskForm):
    """Admin: create an account."""

    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])  # create_user checks it
    role = SelectField(_l("Role"), choices=[SelectChoice(r, r) for r in ROLES], default="viewer")
    password = PasswordField(_l("Initial password"), validators=[DataRequired(), Length(min=12, max=500)])


class UserRoleForm(FlaskForm):
    """Admin: change an account's role."""

    role = SelectField(_l("Role"), choices=[SelectChoice(r, r) for r in ROLES])


class UserActiveForm(FlaskForm):
    """Admin: deactivate or reactivate an account."""

    active = HiddenField(validators=[DataRequired()])


class VisitFilterForm(FlaskForm):
    """Search and filters of the visit table (a GET form: it changes nothing, so no CSRF token)."""

    class Meta:
        csrf = False

    q = StringField(_l("Record id"), validators=[Optional(), Length(max=100)])
    visit = SelectField(_l("Visit"), validators=[Optional()])
    status = SelectField(
        _l("Status"),
        choices=[SelectChoice("", "—"), *[SelectChoice(s, s) for s in VISIT_STATUSES]],
        validators=[Optional()],
    )
    date_from = DateField(_l("Window from"), validators=[Optional()])
    date_to = DateField(_l("Window to"), validators=[Optional()])
