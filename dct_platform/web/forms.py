from __future__ import annotations

from typing import cast

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)

# types-WTForms (3.2) predates SelectChoice (WTForms 3.3), and its `choices` types admit only
# tuples. Imported here once, as Any, for every form and view that declares choices.
from wtforms.fields.choices import SelectChoice as SelectChoice  # type: ignore[attr-defined]
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional, Regexp

from dct_platform.i18n import SUPPORTED_LANGUAGES
from dct_platform.security import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH


class LoginForm(FlaskForm):
    username = StringField(
        _l("Username"),
        validators=[DataRequired(), Length(max=80)],
        render_kw={"autocomplete": "username", "autocapitalize": "none"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )


class VersionedForm(FlaskForm):
    """A form that edits a versioned record: it carries the version the page showed, so
    that saving from a page someone else's change has outdated is refused, not applied."""

    version = HiddenField()

    def submitted_version(self) -> int | None:
        data = self.version.data
        if data is None:
            return None
        try:
            return int(data)
        except (TypeError, ValueError):
            return None


class IdentityForm(VersionedForm):
    given_name = StringField("Given name", validators=[DataRequired(), Length(max=100)])
    family_name = StringField("Family name", validators=[DataRequired(), Length(max=100)])
    date_of_birth = DateField("Date of birth", validators=[Optional()])
    email = EmailField("Email", validators=[Optional(), Email(), Length(max=254)])
    phone = StringField("Phone", validators=[Optional(), Length(max=40)])
    address_line1 = StringField("Address", validators=[Optional(), Length(max=200)])
    address_line2 = StringField("Address (line 2)", validators=[Optional(), Length(max=200)])
    postal_code = StringField("Postal code", validators=[Optional(), Length(max=20)])
    city = StringField("City", validators=[Optional(), Length(max=100)])
    region = StringField("Region or state", validators=[Optional(), Length(max=100)])
    country = StringField(
        "Country code",
        validators=[
            Optional(),
            Regexp(r"^[A-Z]{2}$", message="Use a two-letter country code such as DE."),
        ],
    )
    reason = TextAreaField("Reason for the change", validators=[Optional(), Length(max=500)])


class TransferForm(FlaskForm):
    to_site_id = SelectField("Transfer to site", coerce=int, validators=[DataRequired()])
    # Own ids: this form shares its page with another form's "reason" field.
    reason = TextAreaField(
        "Reason",
        id="transfer-reason",
        validators=[DataRequired(message="Say why the patient moves."), Length(max=500)],
    )
    # "" keeps the patient's zone, also when a form (an older page) does not send the field;
    # the choices (current zone first, then the sites' zones, then every canonical zone)
    # are set per patient by the view.
    timezone = SelectField(
        "Patient's time zone from the transfer on", id="transfer-timezone", default=""
    )


class PreferencesForm(VersionedForm):
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=64)])
    # Only languages the portal is translated into; each named in its own language.
    preferred_language = SelectField(
        _l("Language"),
        choices=[SelectChoice(code, name) for code, name in SUPPORTED_LANGUAGES.items()],
    )


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    # The length is checked here too so that a huge body is refused before any hashing; the
    # rest of the password policy is the service's (`security.password_problems`).
    new_password = PasswordField(
        _l("New password"),
        validators=[
            DataRequired(),
            Length(
                min=MIN_PASSWORD_LENGTH,
                message=_l("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            ),
            Length(
                max=MAX_PASSWORD_LENGTH,
                message=_l("Use at most %(n)d characters.", n=MAX_PASSWORD_LENGTH),
            ),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("New password again"),
        validators=[
            DataRequired(),
            EqualTo("new_password", message=_l("The two passwords differ.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class EnrolForm(IdentityForm):
    site_id = SelectField("Site", coerce=int, validators=[DataRequired()])
    subject_number = StringField("Subject number", validators=[DataRequired(), Length(max=32)])
    timezone = StringField(
        "Patient's time zone",
        validators=[DataRequired(), Length(max=64)],
        description="Where the patient lives, e.g. Europe/Berlin",
    )
    # The same unbound field, so it keeps its place in the field order. Cast as the stubs type
    # every field declaration (the field, not its UnboundField), so forms see a SelectField.
    preferred_language = cast(SelectField, PreferencesForm.preferred_language)
    status = SelectField(
        "Status",
        choices=[SelectChoice("screening", "Screening"), SelectChoice("enrolled", "Enrolled")],
    )
    baseline_date = DateField("Baseline date", validators=[Optional()])
    arm = StringField("Arm", validators=[Optional(), Length(max=40)])
    consent_date = DateField(
        "Consent signed on",
        validators=[DataRequired(message="Give the day the patient signed the consent form.")],
    )
    consent_version = StringField(
        "Consent form version",
        validators=[
            DataRequired(message="Give the version of the consent form signed."),
            Length(max=40),
        ],
        description="As printed on the form, e.g. 3.0 of 2026-01-15",
    )
    create_account = BooleanField("Open a portal account", default=True)


class StatusForm(FlaskForm):
    status = SelectField("New status", validators=[DataRequired(message="Choose a status.")])
    effective_on = DateField(
        "Took effect on",
        validators=[DataRequired(message="Give the day the change took effect.")],
    )
    reason = TextAreaField(
        "Reason",
        id="status-reason",
        validators=[DataRequired(message="Say why the status changes."), Length(max=500)],
    )


class UserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    display_name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Email", validators=[Optional(), Email(), Length(max=254)])
    role = SelectField("Role", validators=[DataRequired(message="Choose a role.")])
    timezone = StringField("Time zone", default="UTC", validators=[DataRequired(), Length(max=64)])
    site_ids = SelectMultipleField("Sites (site staff, investigators)", coerce=int)
    trial_ids = SelectMultipleField("Trials (trial and supply managers)", coerce=int)


class AccessForm(FlaskForm):
    site_ids = SelectMultipleField("Sites", coerce=int, id="access-sites")
    trial_ids = SelectMultipleField("Trials", coerce=int, id="access-trials")
    reason = TextAreaField(
        "Reason",
        id="access-reason",
        validators=[DataRequired(message="Say why."), Length(max=500)],
    )


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(message="Say why."), Length(max=500)])
