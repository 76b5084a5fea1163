from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from dct_platform import policy
from dct_platform.api.etags import ETAG_HEADER, check_if_match, etag
from dct_platform.api.schemas import (
    EnrolledPatientSchema,
    IdentityChangeSchema,
    IdentityReplaceSchema,
    IdentitySchema,
    PatientCreateSchema,
    PatientQuerySchema,
    PatientSchema,
    PatientUpdateSchema,
    SiteAssignmentSchema,
    StatusChangeSchema,
    StatusHistorySchema,
    TimezonePeriodSchema,
    TransferSchema,
)
from dct_platform.auth import api_actor
from dct_platform.errors import NotFound
from dct_platform.extensions import db
from dct_platform.models import Patient, Site
from dct_platform.policy import Action
from dct_platform.services import patient_status
from dct_platform.services import patients as service
from dct_platform.services.enrolment import enrol_with_portal_account
from dct_platform.services.patient_lists import PatientCriteria, find_patients
from dct_platform.services.patient_status import Consent
from dct_platform.timeutil import utcnow

blp = Blueprint(
    "patients_api",
    __name__,
    url_prefix="/api/v1/patients",
    description="Subject records, personal data and site transfers",
)


def _patient(patient_id: int) -> Patient:
    return policy.get_visible(db.session(), api_actor(), Patient, patient_id)


def _identity_input(body: dict[str, Any]) -> service.IdentityInput:
    # The schema has checked each field's type; a field left out is None.
    fields: dict[str, Any] = {k: body.get(k) for k in service.IDENTITY_FIELDS}
    return service.IdentityInput(**fields)


@blp.route("")
class Patients(MethodView):
    @blp.arguments(PatientQuerySchema, location="query")
    @blp.response(200, PatientSchema(many=True))
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> list[Patient]:
        """Subject records the caller may see (pseudonymous: no names or addresses), found,
        filtered and ordered as on the patient list page."""
        found = find_patients(
            db.session(),
            api_actor(),
            PatientCriteria(
                q=args.get("q", ""),
                status=args.get("status"),
                site_id=args.get("site_id"),
                sort=args["sort"],
                page=pagination_parameters.page,
                page_size=pagination_parameters.page_size,
            ),
        )
        pagination_parameters.item_count = found.total
        return found.patients

    @blp.arguments(PatientCreateSchema)
    @blp.response(201, EnrolledPatientSchema)
    @blp.alt_response(
        403, description="The caller may not enrol patients at that site (`forbidden`)"
    )
    @blp.alt_response(404, description="No such site for the caller")
    @blp.alt_response(409, description="The subject number is taken in this trial (`conflict`)")
    def post(self, body: dict[str, Any]) -> _Enrolled:
        """Enrol a patient at one of the caller's sites, with the consent they signed and,
        with `create_account`, their portal account (as the enrolment page does)."""
        actor = api_actor()
        site = policy.get_visible(db.session(), actor, Site, body["site_id"])
        identity = _identity_input(body["identity"]) if body.get("identity") else None
        consent = Consent(body["consent_date"], body["consent_version"])
        if body["create_account"]:
            assert identity is not None  # the schema requires it with an account
            enrolled = enrol_with_portal_account(
                db.session(),
                actor,
                utcnow(),
                site=site,
                subject_number=body["subject_number"],
                timezone=body["timezone"],
                preferred_language=body["preferred_language"],
                status=body["status"],
                baseline_date=body["baseline_date"],
                arm=body["arm"],
                identity=identity,
                consent=consent,
                create_account=True,
            )
            account = {
                "username": enrolled.username,
                "temporary_password": enrolled.temporary_password,
            }
            return _Enrolled(enrolled.patient, account)
        patient = service.enroll_patient(
            db.session(),
            actor,
            utcnow(),
            site=site,
            subject_number=body["subject_number"],
            timezone=body["timezone"],
            preferred_language=body["preferred_language"],
            status=body["status"],
            baseline_date=body["baseline_date"],
            arm=body["arm"],
            identity=identity,
            consent=consent,
        )
        return _Enrolled(patient, None)


@dataclass(frozen=True)
class _Enrolled:
    """The new record, answered with the portal account opened with it (once)."""

    patient: Patient
    portal_account: dict[str, str | None] | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.patient, name)


Versioned = tuple[Any, dict[str, str]]

CHANGED_MEANWHILE = (
    "Someone else changed the record at the same time; reload it and try again (`stale_record`)"
)
IF_MATCH_FAILED = (
    "If-Match is not the record's current ETag: it changed since it was read "
    "(`precondition_failed`)"
)
IDENTITY_FORBIDDEN = "The caller may not change this patient's personal data (`forbidden`)"


@blp.route("/<int:patient_id>")
class PatientDetail(MethodView):
    @blp.response(200, PatientSchema, headers=ETAG_HEADER)
    @blp.alt_response(404, description="No such patient for the caller")
    def get(self, patient_id: int) -> Versioned:
        patient = _patient(patient_id)
        return patient, etag(patient)

    @blp.arguments(PatientUpdateSchema)
    @blp.response(200, PatientSchema, headers=ETAG_HEADER)
    @blp.alt_response(
        403, description="The caller may not change this record, or these fields (`forbidden`)"
    )
    @blp.alt_response(404, description="No such patient for the caller")
    @blp.alt_response(409, description=CHANGED_MEANWHILE)
    @blp.alt_response(412, description=IF_MATCH_FAILED)
    def patch(self, body: dict[str, Any], patient_id: int) -> Versioned:
        """Change the baseline (site staff, with a reason), or time zone and language. The
        status has its own endpoint, POST /api/v1/patients/{id}/status."""
        reason = body.pop("reason", None)
        patient = _patient(patient_id)
        check_if_match(patient)
        service.update_patient(db.session(), api_actor(), utcnow(), patient, body, reason)
        return patient, etag(patient)


@blp.route("/<int:patient_id>/identity")
class PatientIdentityResource(MethodView):
    @blp.response(200, IdentitySchema, headers=ETAG_HEADER)
    @blp.alt_response(
        403, description="The caller may not see this patient's personal data (`forbidden`)"
    )
    @blp.alt_response(
        404, description="No such patient for the caller, or no personal data is recorded"
    )
    def get(self, patient_id: int) -> Versioned:
        """Name, contact and home address: the patient and their site only."""
        identity = service.get_identity(db.session(), api_actor(), _patient(patient_id))
        if identity is None:
            raise NotFound("No personal data is recorded for this patient.")
        return identity, etag(identity)

    @blp.arguments(IdentityReplaceSchema)
    @blp.response(200, IdentitySchema, headers=ETAG_HEADER)
    @blp.alt_response(403, description=IDENTITY_FORBIDDEN)
    @blp.alt_response(404, description="No such patient for the caller")
    @blp.alt_response(409, description=CHANGED_MEANWHILE)
    @blp.alt_response(412, description=IF_MATCH_FAILED)
    def put(self, body: dict[str, Any], patient_id: int) -> Versioned:
        """Record or replace personal data: every field is sent (null clears one); replacing
        stored data needs a reason. To change some fields only, use PATCH."""
        actor = api_actor()
        patient = _patient(patient_id)
        if (current := service.get_identity(db.session(), actor, patient)) is not None:
            check_if_match(current)
        identity = service.save_identity(
            db.session(), actor, utcnow(), patient, _identity_input(body), body.get("reason")
        )
        return identity, etag(identity)

    @blp.arguments(IdentityChangeSchema(partial=True))
    @blp.response(200, IdentitySchema, headers=ETAG_HEADER)
    @blp.alt_response(403, description=IDENTITY_FORBIDDEN)
    @blp.alt_response(
        404,
        description="No such patient for the caller, or no personal data is recorded yet "
        "(record it with PUT)",
    )
    @blp.alt_response(409, description=CHANGED_MEANWHILE)
    @blp.alt_response(412, description=IF_MATCH_FAILED)
    def patch(self, body: dict[str, Any], patient_id: int) -> Versioned:
        """Correct the fields sent, with a reason; the others stay as they are."""
        actor = api_actor()
        patient = _patient(patient_id)
        reason = body.pop("reason", None)
        if (current := service.get_identity(db.session(), actor, patient)) is not None:
            check_if_match(current)
        identity = service.change_identity(db.session(), actor, utcnow(), patient, body, reason)
        return identity, etag(identity)


@blp.route("/<int:patient_id>/status")
class PatientStatusResource(MethodView):
    @blp.arguments(StatusChangeSchema)
    @blp.response(200, PatientSchema, headers=ETAG_HEADER)
    @blp.alt_response(403, description="The caller may not change this record (`forbidden`)")
    @blp.alt_response(404, description="No such patient for the caller")
    @blp.alt_response(
        409,
        description="The protocol does not allow that change from the current status, or "
        "someone changed the record meanwhile (`conflict`, `stale_record`)",
    )
    @blp.alt_response(412, description=IF_MATCH_FAILED)
    def post(self, body: dict[str, Any], patient_id: int) -> Versioned:
        """Change the patient's study status as of the day it took effect, with a reason
        (site staff and investigators of the patient's site)."""
        patient = _patient(patient_id)
        check_if_match(patient)
        patient_status.change_status(
            db.session(),
            api_actor(),
            utcnow(),
            patient,
            body["status"],
            body["effective_on"],
            body["reason"],
        )
        return patient, etag(patient)


@blp.route("/<int:patient_id>/status-history")
class PatientStatusHistory(MethodView):
    @blp.response(200, StatusHistorySchema(many=True))
    @blp.alt_response(404, description="No such patient for the caller")
    def get(self, patient_id: int) -> list[Any]:
        """Every status change of the patient, oldest first, with its day and reason."""
        patient = _patient(patient_id)
        policy.authorize(api_actor(), Action.READ_REASONS, patient)
        return patient_status.status_history(db.session(), patient)


@blp.route("/<int:patient_id>/transfer")
class PatientTransfer(MethodView):
    @blp.arguments(TransferSchema)
    @blp.response(200, PatientSchema)
    @blp.alt_response(403, description="The caller may not transfer this patient (`forbidden`)")
    @blp.alt_response(
        404, description="No such patient for the caller, or no such site in the patient's trial"
    )
    @blp.alt_response(
        409,
        description="The patient already belongs to that site, or the site is not active "
        "(`conflict`)",
    )
    def post(self, body: dict[str, Any], patient_id: int) -> Patient:
        """Transfer the patient to another site of the trial, and from the same instant to
        another time zone when `timezone` is sent."""
        actor = api_actor()
        patient = _patient(patient_id)
        to_site = db.session.get(Site, body["to_site_id"])
        if to_site is None:
            raise NotFound(f"Site {body['to_site_id']} was not found.")
        service.transfer_patient(
            db.session(),
            actor,
            utcnow(),
            patient,
            to_site,
            body["reason"],
            timezone=body.get("timezone"),
        )
        return patient


@blp.route("/<int:patient_id>/site-history")
class PatientSiteHistory(MethodView):
    @blp.response(200, SiteAssignmentSchema(many=True))
    @blp.alt_response(404, description="No such patient for the caller")
    def get(self, patient_id: int) -> list[dict[str, Any]]:
        """Which site owned the patient, over which periods. Trial and supply managers get
        no free-text reasons (`reason_withheld`): they work from pseudonymous data."""
        actor = api_actor()
        patient = _patient(patient_id)
        may_read = policy.can(actor, policy.Action.READ_REASONS, patient)
        return [
            {
                "site_id": a.site_id,
                "valid_from": a.valid_from,
                "valid_to": a.valid_to,
                "reason": a.reason if may_read else None,
                "reason_withheld": not may_read and a.reason is not None,
            }
            for a in service.site_history(db.session(), patient)
        ]


@blp.route("/<int:patient_id>/timezone-history")
class PatientTimezoneHistory(MethodView):
    @blp.response(200, TimezonePeriodSchema(many=True))
    @blp.alt_response(404, description="No such patient for the caller")
    def get(self, patient_id: int) -> list[dict[str, Any]]:
        """Which time zone the patient lived by, over which periods (read-only; a change of
        the patient's `timezone` or a transfer with a `timezone` adds a period). Trial and
        supply managers get no free-text reasons (`reason_withheld`)."""
        actor = api_actor()
        patient = _patient(patient_id)
        may_read = policy.can(actor, policy.Action.READ_REASONS, patient)
        return [
            {
                "timezone": p.timezone,
                "valid_from": p.valid_from,
                "valid_to": p.valid_to,
                "reason": p.reason if may_read else None,
                "reason_withheld": not may_read and p.reason is not None,
            }
            for p in service.timezone_history(db.session(), patient)
        ]
