"""eDiary in FHIR R4: questionnaires in and out as `Questionnaire`, entries out as
`QuestionnaireResponse`."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields
from sqlalchemy import select

from dct_platform import policy
from dct_platform.api.schemas import doc
from dct_platform.auth import api_actor
from dct_platform.errors import NotFound, ValidationFailed
from dct_platform.extensions import db
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from devices.ediary import schedules
from devices.ediary.fhir_questionnaire import to_questionnaire, to_questionnaire_response
from devices.ediary.models import Entry, Instrument, InstrumentVersion
from devices.policy import DATA_READERS

FHIR_JSON = "application/fhir+json"
# Who defines questionnaires: the trial's managers and administrators.
AUTHORS = (Role.TRIAL_MANAGER, Role.ADMIN)

blp = Blueprint(
    "ediary_fhir_api",
    __name__,
    url_prefix="/api/v1/ediary",
    description="eDiary questionnaires and entries as FHIR R4 resources",
)


class FhirResourceSchema(Schema):
    class Meta:
        unknown = INCLUDE

    resource_type = fields.String(data_key="resourceType", metadata=doc("The FHIR type"))
    id = fields.String()


class VersionSchema(Schema):
    code = fields.String()
    version = fields.Integer()
    title = fields.String()
    published_at = fields.DateTime(allow_none=True)


def version_by_code(code: str, version: int) -> InstrumentVersion:
    row = db.session.scalar(
        select(InstrumentVersion)
        .join(Instrument, Instrument.id == InstrumentVersion.instrument_id)
        .where(Instrument.code == code, InstrumentVersion.version == version)
    )
    if row is None:
        raise NotFound(f"Questionnaire {code} version {version} was not found.")
    return row


def _fhir(resource: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(resource), status=status, mimetype=FHIR_JSON)


@blp.route("/questionnaires")
class Questionnaires(MethodView):
    @blp.response(200, VersionSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Every questionnaire version, by code and version."""
        policy.require_role(api_actor(), *DATA_READERS, *AUTHORS)
        rows = db.session.execute(
            select(Instrument.code, InstrumentVersion.version, Instrument.title,
                   InstrumentVersion.published_at)
            .join(Instrument, Instrument.id == InstrumentVersion.instrument_id)
            .order_by(Instrument.code, InstrumentVersion.version)
        )  # fmt: skip
        return [dict(r._mapping) for r in rows]

    @blp.response(201, FhirResourceSchema, content_type=FHIR_JSON)
    @blp.alt_response(409, description="This code and version exist already")
    @blp.doc(
        requestBody={
            "required": True,
            "content": {FHIR_JSON: {"schema": {"type": "object"}}, "application/json": {
                "schema": {"type": "object"}}},
            "description": "A FHIR R4 Questionnaire (the platform's subset: see the README)",
        }
    )  # fmt: skip
    def post(self) -> Response:
        """Import a FHIR R4 Questionnaire as a new, published version. What the platform
        cannot express (groups, several enableWhen, value sets...) is refused, named."""
        actor = api_actor()
        policy.require_role(actor, *AUTHORS)
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise ValidationFailed("Send a FHIR Questionnaire as a JSON object.")
        version = schedules.import_questionnaire(db.session(), actor, utcnow(), body)
        return _fhir(to_questionnaire(schedules.instrument_of(version)), 201)


@blp.route("/questionnaires/<string:code>/<int:version>")
class QuestionnaireVersion(MethodView):
    @blp.response(200, FhirResourceSchema, content_type=FHIR_JSON)
    @blp.alt_response(404, description="No such questionnaire version")
    def get(self, code: str, version: int) -> Response:
        """One version as a FHIR R4 Questionnaire."""
        policy.require_role(api_actor(), *DATA_READERS, *AUTHORS, Role.PATIENT)
        return _fhir(to_questionnaire(schedules.instrument_of(version_by_code(code, version))))


@blp.route("/entries/<int:entry_id>/fhir")
class EntryResponse(MethodView):
    @blp.response(200, FhirResourceSchema, content_type=FHIR_JSON)
    @blp.alt_response(404, description="No such entry for the caller")
    def get(self, entry_id: int) -> Response:
        """The entry as a FHIR R4 QuestionnaireResponse (as corrected, if it was)."""
        actor = api_actor()
        policy.require_role(actor, *DATA_READERS, Role.PATIENT)
        entry = policy.get_visible(db.session(), actor, Entry, entry_id)
        instrument = schedules.instrument_of(entry.occurrence.schedule.instrument_version)
        patient = entry.occurrence.patient
        return _fhir(
            to_questionnaire_response(
                instrument,
                entry.answers,
                subject_reference=f"Patient/{patient.subject_number}",
                authored=entry.submitted_at,
                response_id=f"ediary-entry-{entry.id}",
            )
        )
