"""The patient's own forms. Every message they can show is in the catalogue, so that a
German or Japanese patient never meets an English validation message."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Field, SelectField
from wtforms.validators import AnyOf, InputRequired, ValidationError

from dct_platform.i18n import SUPPORTED_LANGUAGES
from dct_platform.timeutil import is_valid_timezone
from dct_platform.web.forms import SelectChoice, VersionedForm

# Kept in English wording that says what went wrong ("Unknown time zone"), then what to do.
UNKNOWN_ZONE = _l("Unknown time zone. Please choose your time zone from the list.")


def _known_zone(form: FlaskForm, field: Field) -> None:
    if not is_valid_timezone(field.data or ""):
        raise ValidationError(UNKNOWN_ZONE)


class PreferencesForm(VersionedForm):
    # The choices depend on the patient (their zones first) and are set by the view. The
    # check is ours rather than WTForms' "Not a valid choice", which is not in our catalogue
    # and would not say what to do.
    timezone = SelectField(
        _l("Time zone"),
        validate_choice=False,
        validators=[InputRequired(message=UNKNOWN_ZONE), _known_zone],
    )
    # Only languages the portal is translated into; each named in its own language.
    preferred_language = SelectField(
        _l("Language"),
        choices=[SelectChoice(code, name) for code, name in SUPPORTED_LANGUAGES.items()],
        validate_choice=False,
        validators=[
            AnyOf(
                list(SUPPORTED_LANGUAGES),
                message=_l("Please choose one of the languages in the list."),
            )
        ],
    )
