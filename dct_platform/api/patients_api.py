from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from dct_platform import policy
from dct_platform.api.schemas import (
    IdentitySchema,
    IdentityUpdateSchema,
    PatientCreateSchema,
    PatientQuerySchema,
    PatientSchema,
    PatientUpdateSchema,
    SiteAssignmentSchema,
    TransferSchema,
)
from dct_platform.auth import api_actor
from dct_platform.errors import NotFound
from dct_platform.extensions import db
from dct_platform.models import Patient, PatientIdentity, Site
from dct_platform.services import patients as service
from dct_platform.timeutil import utcnow

blp = Blueprint(
    "patients_api",
    __name__,
    url_prefix="/api/v1/patients",
    description="Subject records, personal data and site transfers",
)


def _patient(patient_id: int) -> Patient:
    return policy.get_visible(db.session, api_actor(), Patient, patient_id)


def _identity_input(body: dict[str, Any]) -> service.IdentityInput:
    return service.IdentityInput(**{k: body.get(k) for k in service.IDENTITY_FIELDS})


@blp.route("")
class Patients(MethodView):
    @blp.arguments(PatientQuerySchema, location="query")
    @blp.response(200, PatientSchema(many=True))
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> list[Patient]:
        """Subject records the caller may see (pseudonymous: no names or addresses)."""
        actor = api_actor()
        query = select(Patient).where(policy.visible(actor, Patient))
        if "site_id" in args:
            query = query.where(Patient.site_id == args["site_id"])
        if "status" in args:
            query = query.where(Patient.status == args["status"])
        count = db.session.scalar(select(db.func.count()).select_from(query.subquery())) or 0
        pagination_parameters.item_count = count
        page, size = pagination_parameters.page, pagination_parameters.page_size
        return list(
            db.session.scalars(
                query.order_by(Patient.subject_number).offset((page - 1) * size).limit(size)
            )
        )

    @blp.arguments(PatientCreateSchema)
    @blp.response(201, PatientSchema)
    @blp.alt_response(403, description="Not staff of that site")
    @blp.alt_response(409, description="Subject number taken")
    def post(self, body: dict[str, Any]) -> Patient:
        """Enrol a patient at one of the caller's sites."""
        actor = api_actor()
        site = policy.get_visible(db.session, actor, Site, body["site_id"])
        identity = _identity_input(body["identity"]) if body.get("identity") else None
        return service.enroll_patient(
            db.session,
            actor,
            utcnow(),
            site=site,
            subject_number=body["subject_number"],
            timezone=body["timezone"],
            preferred_language=body["preferred_language"],
            status=body["status"],
            baseline_date=body["baseline_date"],
            identity=identity,
        )


@blp.route("/<int:patient_id>")
class PatientDetail(MethodView):
    @blp.response(200, PatientSchema)
    @blp.alt_response(404, description="No such patient for the caller")
    def get(self, patient_id: int) -> Patient:
        return _patient(patient_id)

    @blp.arguments(PatientUpdateSchema)
    @blp.response(200, PatientSchema)
    @blp.alt_response(403, description="Not allowed to change this record")
    def patch(self, body: dict[str, Any], patient_id: int) -> Patient:
        """Change status or baseline (site staff, with a reason), or time zone and language."""
        reason = body.pop("reason", None)
        return service.update_patient(
            db.session, api_actor(), utcnow(), _patient(patient_id), body, reason
        )


@blp.route("/<int:patient_id>/identity")
class PatientIdentityResource(MethodView):
    @blp.response(200, IdentitySchema)
    @blp.alt_response(403, description="The caller's role never sees personal data")
    def get(self, patient_id: int) -> PatientIdentity:
        """Name, contact and home address: the patient and their site only."""
        identity = service.get_identity(db.session, api_actor(), _patient(patient_id))
        if identity is None:
            raise NotFound("No personal data is recorded for this patient.")
        return identity

    @blp.arguments(IdentityUpdateSchema)
    @blp.response(200, IdentitySchema)
    def put(self, body: dict[str, Any], patient_id: int) -> PatientIdentity:
        """Record or correct personal data; a correction needs a reason."""
        return service.save_identity(
            db.session,
            api_actor(),
            utcnow(),
            _patient(patient_id),
            _identity_input(body),
            body.get("reason"),
        )


@blp.route("/<int:patient_id>/transfer")
class PatientTransfer(MethodView):
    @blp.arguments(TransferSchema)
    @blp.response(200, PatientSchema)
    def post(self, body: dict[str, Any], patient_id: int) -> Patient:
        """Transfer the patient to another site of the trial."""
        actor = api_actor()
        patient = _patient(patient_id)
        to_site = db.session.get(Site, body["to_site_id"])
        if to_site is None:
            raise NotFound(f"Site {body['to_site_id']} was not found.")
        service.transfer_patient(db.session, actor, utcnow(), patient, to_site, body["reason"])
        return patient


@blp.route("/<int:patient_id>/site-history")
class PatientSiteHistory(MethodView):
    @blp.response(200, SiteAssignmentSchema(many=True))
    def get(self, patient_id: int) -> list[Any]:
        """Which site owned the patient, over which periods."""
        return service.site_history(db.session, _patient(patient_id))
