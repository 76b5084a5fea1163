"""The device pages' forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length

from devices.health import MAX_NOTE


class AcknowledgeForm(FlaskForm):
    note = StringField(
        "Note (optional)",
        validators=[Length(max=MAX_NOTE)],
        render_kw={"placeholder": "e.g. called the patient, charger replaced"},
    )
