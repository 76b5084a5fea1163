from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp


class LoginForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired(), Length(max=80)],
        render_kw={"autocomplete": "username", "autocapitalize": "none"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )


class IdentityForm(FlaskForm):
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
    reason = TextAreaField(
        "Reason", validators=[DataRequired(message="Say why the patient moves."), Length(max=500)]
    )


class PreferencesForm(FlaskForm):
    timezone = StringField("Time zone", validators=[DataRequired(), Length(max=64)])
    preferred_language = SelectField(
        "Language",
        choices=[
            SelectChoice("en", "English"),
            SelectChoice("de", "Deutsch"),
            SelectChoice("ja", "日本語"),
            SelectChoice("es", "Español"),
            SelectChoice("fr", "Français"),
        ],
    )
