from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.errors import DomainError, NotFound, StaleRecord, expect_version
from dct_platform.extensions import db
from dct_platform.i18n import in_current_language
from dct_platform.models import Patient
from dct_platform.roles import Role
from dct_platform.services import patients as service
from dct_platform.timeutil import utcnow
from dct_platform.web.form_errors import show_domain_error
from dct_platform.web.guards import roles_required
from patient_portal.forms import PreferencesForm
from patient_portal.zones import zone_choices

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="templates")


def _me() -> Patient:
    patient = db.session.scalar(select(Patient).where(policy.visible(current_user, Patient)))
    if patient is None:
        # Lazy, so that the error page can tell it is already in the patient's language.
        raise NotFound(
            _l("Your account is not linked to a study record yet. Please call your study site.")
        )
    return patient


def _preferences_form(patient: Patient, **kwargs: Any) -> PreferencesForm:
    form = PreferencesForm(obj=patient, **kwargs)
    # The zones a patient most likely wants: where they are set now, and where their site is.
    form.timezone.choices = zone_choices([patient.timezone, patient.site.timezone])
    return form


def _show_refusal(form: PreferencesForm, exc: DomainError) -> None:
    """A service's refusal, but never in English on a German or Japanese page: a message
    the catalogue does not know gives way to one that says what to do."""
    if in_current_language(exc.message) and all(
        in_current_language(m) for ms in exc.details.get("fields", {}).values() for m in ms
    ):
        show_domain_error(form, exc)
    else:
        form.form_errors.append(
            _("Your settings could not be saved. Please check them and try again.")
        )


@bp.get("/")
@roles_required(Role.PATIENT)
def home() -> str:
    patient = _me()
    return render_template("portal/home.html", patient=patient)


@bp.route("/profile", methods=["GET", "POST"])
@roles_required(Role.PATIENT)
def profile() -> Response | tuple[str, int]:
    patient = _me()
    identity = service.get_identity(db.session(), current_user, patient)
    form = _preferences_form(patient)
    status = 200
    if form.validate_on_submit():
        changes = {
            "timezone": form.timezone.data,
            "preferred_language": form.preferred_language.data,
        }
        try:
            expect_version(patient, form.submitted_version())
            service.update_patient(db.session(), current_user, utcnow(), patient, changes)
        except StaleRecord:
            # Show what is stored now, so the patient decides on the current settings.
            form = _preferences_form(patient, formdata=None)
            form.form_errors.append(
                _("Your settings were changed in the meantime. Check them and save again.")
            )
            status = 409
        except DomainError as exc:
            _show_refusal(form, exc)
            status = 422
        else:
            flash(_("Your settings are saved."), "success")
            return redirect(url_for("portal.profile"))
    elif form.is_submitted():
        status = 422
    return render_template(
        "portal/profile.html",
        patient=patient,
        identity=identity,
        form=form,
    ), status
