from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.audit_reading import ReadableAction, actions_csv, read_actions
from dct_platform.errors import DomainError, NotFound, expect_version
from dct_platform.extensions import db
from dct_platform.models import Patient, Site
from dct_platform.models.patients import PatientStatus
from dct_platform.models.users import SITE_ROLES
from dct_platform.panels import panels_for
from dct_platform.services import patient_status
from dct_platform.services import patients as service
from dct_platform.services.enrolment import enrol_with_portal_account
from dct_platform.services.patient_status import Consent
from dct_platform.timeutil import canonical_timezones, utcnow
from dct_platform.web import bp
from dct_platform.web.form_errors import show_domain_error
from dct_platform.web.forms import EnrolForm, IdentityForm, SelectChoice, StatusForm, TransferForm
from dct_platform.web.guards import roles_required


def _status_choices(form: StatusForm, patient: Patient) -> None:
    form.status.choices = [SelectChoice("", "Choose…")] + [
        SelectChoice(s.value, patient_status.LABELS[s])
        for s in patient_status.allowed_next(patient)
    ]


def _render_patient(
    patient: Patient,
    identity_form: IdentityForm | None = None,
    transfer_form: TransferForm | None = None,
    status_form: StatusForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    identity = service.get_identity(db.session(), current_user, patient)
    if identity_form is None:
        identity_form = IdentityForm(obj=identity, formdata=None)
    if transfer_form is None:
        transfer_form = TransferForm(formdata=None)
    _transfer_choices(transfer_form, patient)
    if status_form is None:
        status_form = StatusForm(formdata=None, prefix="status")
    _status_choices(status_form, patient)
    history = service.site_history(db.session(), patient)
    sites = {
        s.id: s for s in db.session.scalars(select(Site).where(Site.trial_id == patient.trial_id))
    }
    return render_template(
        "site/patient.html",
        patient=patient,
        identity=identity,
        identity_form=identity_form,
        transfer_form=transfer_form,
        history=history,
        sites=sites,
        trail_actions=_history(patient),
        status_form=status_form,
        status_labels=patient_status.LABELS,
        status_history=patient_status.status_history(db.session(), patient),
        panels=panels_for("site.patient", db.session(), current_user, utcnow(), patient),
    ), status


@bp.post("/site/patients/<int:patient_id>/status")
@roles_required(*SITE_ROLES)
def site_patient_status(patient_id: int) -> Response | tuple[str, int]:
    patient = policy.get_visible(db.session(), current_user, Patient, patient_id)
    form = StatusForm(prefix="status")
    _status_choices(form, patient)
    status = 422
    if form.validate_on_submit():
        try:
            patient_status.change_status(
                db.session(),
                current_user,
                utcnow(),
                patient,
                PatientStatus(form.status.data),
                form.effective_on.data,
                form.reason.data or "",
            )
        except DomainError as exc:
            show_domain_error(form, exc)
            status = exc.status
        else:
            flash(
                f"{patient.subject_number} is now {patient_status.LABELS[patient.status]}.",
                "success",
            )
            return redirect(url_for("web.site_patient", patient_id=patient.id))
    return _render_patient(patient, status_form=form, status=status)


def _history(patient: Patient) -> list[ReadableAction]:
    entries = service.record_history(db.session(), current_user, patient)
    return read_actions(db.session(), entries, current_user.timezone)


@bp.get("/site/patients/<int:patient_id>/history.csv")
@roles_required(*SITE_ROLES)
def site_patient_history_csv(patient_id: int) -> Response:
    patient = policy.get_visible(db.session(), current_user, Patient, patient_id)
    response = Response(actions_csv(_history(patient), current_user.timezone), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="history-{secure_filename(patient.subject_number)}.csv"'
    )
    return response


@bp.get("/site/patients/<int:patient_id>/history/print")
@roles_required(*SITE_ROLES)
def site_patient_history_print(patient_id: int) -> str:
    patient = policy.get_visible(db.session(), current_user, Patient, patient_id)
    return render_template(
        "site/history_print.html",
        patient=patient,
        actions=_history(patient),
        printed_at=utcnow(),
    )


def _transfer_choices(form: TransferForm, patient: Patient) -> None:
    others = list(
        db.session.scalars(
            select(Site)
            .where(Site.trial_id == patient.trial_id, Site.id != patient.site_id, Site.is_active)
            .order_by(Site.site_number)
        )
    )
    form.to_site_id.choices = [
        SelectChoice(str(s.id), f"{s.site_number}: {s.name} ({s.country})") for s in others
    ]
    # Keeping the zone first (the safe default), then the target sites' zones, the usual
    # choice when the patient moves with the site, then every other canonical zone.
    site_zones: dict[str, list[str]] = {}
    for s in others:
        if s.timezone != patient.timezone:
            site_zones.setdefault(s.timezone, []).append(s.site_number)
    form.timezone.choices = [
        SelectChoice("", f"Keep {patient.timezone} (current)"),
        *(
            SelectChoice(zone, f"{zone} (zone of site {', '.join(numbers)})")
            for zone, numbers in sorted(site_zones.items())
        ),
        *(
            SelectChoice(zone, zone)
            for zone in sorted(canonical_timezones() - site_zones.keys() - {patient.timezone})
        ),
    ]


@bp.route("/site/patients/new", methods=["GET", "POST"])
@roles_required(*SITE_ROLES)
def site_enrol() -> Response | tuple[str, int]:
    sites = list(
        db.session.scalars(
            select(Site)
            .where(policy.visible(current_user, Site), Site.is_active)
            .order_by(Site.site_number)
        )
    )
    form = EnrolForm()
    form.site_id.choices = [SelectChoice(str(s.id), f"{s.site_number}: {s.name}") for s in sites]
    if not form.is_submitted() and sites:
        form.timezone.data = sites[0].timezone
    status = 200
    if form.validate_on_submit():
        site = next((s for s in sites if s.id == form.site_id.data), None)
        # Field by field: text or a date, and None for a blank field.
        fields: dict[str, Any] = {k: getattr(form, k).data or None for k in service.IDENTITY_FIELDS}
        identity = service.IdentityInput(**fields)
        try:
            if site is None:
                raise NotFound("Choose one of your sites.")
            result = enrol_with_portal_account(
                db.session(),
                current_user,
                utcnow(),
                site=site,
                subject_number=(form.subject_number.data or "").strip(),
                timezone=(form.timezone.data or "").strip(),
                preferred_language=form.preferred_language.data or "en",
                status=PatientStatus(form.status.data),
                baseline_date=form.baseline_date.data,
                arm=form.arm.data,
                identity=identity,
                consent=Consent(form.consent_date.data, form.consent_version.data),
                create_account=bool(form.create_account.data),
            )
        except DomainError as exc:
            show_domain_error(form, exc)
            status = 422
        else:
            flash(f"{result.patient.subject_number} is enrolled.", "success")
            if result.username:
                flash(
                    f"Portal sign-in for the patient: username {result.username}, temporary "
                    f"password {result.temporary_password} (shown once; hand it over in person).",
                    "secret",
                )
            return redirect(url_for("web.site_patient", patient_id=result.patient.id))
    elif form.is_submitted():
        status = 422
    return render_template("site/enrol.html", form=form), status


@bp.get("/site/patients/<int:patient_id>")
@roles_required(*SITE_ROLES)
def site_patient(patient_id: int) -> tuple[str, int]:
    return _render_patient(policy.get_visible(db.session(), current_user, Patient, patient_id))


@bp.post("/site/patients/<int:patient_id>/identity")
@roles_required(*SITE_ROLES)
def site_patient_identity(patient_id: int) -> Response | tuple[str, int]:
    patient = policy.get_visible(db.session(), current_user, Patient, patient_id)
    form = IdentityForm()
    status = 422
    if form.validate_on_submit():
        fields: dict[str, Any] = {k: getattr(form, k).data or None for k in service.IDENTITY_FIELDS}
        data = service.IdentityInput(**fields)
        try:
            current = service.get_identity(db.session(), current_user, patient)
            if current is not None:
                expect_version(current, form.submitted_version())
            service.save_identity(
                db.session(), current_user, utcnow(), patient, data, form.reason.data
            )
        except DomainError as exc:
            show_domain_error(form, exc)
            status = exc.status
        else:
            flash("Personal data saved.", "success")
            return redirect(url_for("web.site_patient", patient_id=patient.id))
    return _render_patient(patient, identity_form=form, status=status)


@bp.post("/site/patients/<int:patient_id>/transfer")
@roles_required(*SITE_ROLES)
def site_patient_transfer(patient_id: int) -> Response | tuple[str, int]:
    patient = policy.get_visible(db.session(), current_user, Patient, patient_id)
    form = TransferForm()
    _transfer_choices(form, patient)
    if form.validate_on_submit():
        to_site = db.session.get(Site, form.to_site_id.data)
        try:
            if to_site is None:
                raise DomainError("Choose a site.")
            service.transfer_patient(
                db.session(),
                current_user,
                utcnow(),
                patient,
                to_site,
                form.reason.data or "",
                timezone=form.timezone.data or None,
            )
        except DomainError as exc:
            form.form_errors.append(exc.message)
        else:
            flash(
                f"{patient.subject_number} now belongs to site {to_site.site_number} "
                f"(time zone {patient.timezone}).",
                "success",
            )
            return redirect(url_for("web.site_home"))
    return _render_patient(patient, transfer_form=form, status=422)
