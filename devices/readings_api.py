"""A patient's device readings for whoever may see the patient, with a user's bearer token:
`GET /api/v1/patients/{id}/readings` as JSON, and `.../observations` as a FHIR R4 Bundle."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields, validate

from dct_platform import policy
from dct_platform.api.schemas import InputDateTime, UtcDateTime, doc
from dct_platform.auth import api_actor
from dct_platform.extensions import db
from dct_platform.models import Patient
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from devices import exports
from devices.exports import DEFAULT_LIMIT, DEFAULT_SPAN, MAX_LIMIT, MAX_SPAN, ExportedReading
from devices.metrics import METRICS
from devices.policy import DATA_READERS

FHIR_JSON = "application/fhir+json"
NOT_FOUND = "No such patient for the caller"

blp = Blueprint(
    "device_readings_api",
    __name__,
    url_prefix="/api/v1/patients",
    description="A patient's device readings, as JSON or as FHIR R4 Observations",
)


class ReadingQuerySchema(Schema):
    metric = fields.String(
        validate=validate.OneOf(tuple(METRICS)),
        metadata=doc("Only readings of this metric; all metrics when left out", "heart_rate"),
    )
    start = InputDateTime(
        data_key="from",
        metadata=doc(
            f"Readings that began at or after this time (with offset); default "
            f"{DEFAULT_SPAN.days} days before `to`",
            "2026-03-03T00:00:00+00:00",
        ),
    )
    end = InputDateTime(
        data_key="to",
        metadata=doc(
            f"Readings that began before this time (with offset); default now. At most "
            f"{MAX_SPAN.days} days after `from`",
            "2026-03-10T00:00:00+00:00",
        ),
    )
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata=doc("At most this many readings, the oldest first", DEFAULT_LIMIT),
    )


class DeviceReadingSchema(Schema):
    subject_number = fields.String(metadata=doc("The patient's subject number", "B1-001"))
    site_number = fields.String(
        metadata=doc("The site responsible for the patient when the reading was taken", "B1")
    )
    metric = fields.String(metadata=doc("Metric code", "heart_rate"))
    metric_label = fields.String(metadata=doc("The metric's name", "Heart rate"))
    value = fields.Float(metadata=doc("In the metric's canonical unit", 72))
    unit = fields.String(metadata=doc("The canonical unit's symbol", "beats/min"))
    unit_ucum = fields.String(metadata=doc("The canonical unit's UCUM code", "/min"))
    effective_start = UtcDateTime(metadata=doc("When it was measured, or its interval began"))
    effective_end = UtcDateTime(
        allow_none=True, metadata=doc("When its interval ended; null for an instant")
    )
    received_at = UtcDateTime(metadata=doc("When the platform received it"))
    late = fields.Boolean(metadata=doc("It arrived later than the study allows after it was taken"))
    device_serial = fields.String(metadata=doc("Serial number of the device", "SN-1"))
    device_reading_id = fields.String(
        allow_none=True, metadata=doc("The device's own id of the reading, if it sent one")
    )


# The Bundle as documented: what the platform sends, open to everything else FHIR allows
# (INCLUDE), since a FHIR reader must accept elements it does not know.
class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class FhirCodingSchema(_Open):
    system = fields.String()
    code = fields.String()
    display = fields.String()


class FhirCodeableConceptSchema(_Open):
    coding = fields.List(fields.Nested(FhirCodingSchema))
    text = fields.String()


class FhirIdentifierSchema(_Open):
    system = fields.String()
    value = fields.String()


class FhirReferenceSchema(_Open):
    type = fields.String(metadata=doc("Patient or Device"))
    identifier = fields.Nested(FhirIdentifierSchema)
    display = fields.String()


class FhirQuantitySchema(_Open):
    value = fields.Float()
    unit = fields.String(metadata=doc("The unit as people write it", "beats/min"))
    system = fields.String(metadata=doc("UCUM", "http://unitsofmeasure.org"))
    code = fields.String(metadata=doc("UCUM code", "/min"))


class FhirPeriodSchema(_Open):
    start = fields.String(metadata=doc("FHIR dateTime", "2026-03-09T08:00:00Z"))
    end = fields.String(metadata=doc("FHIR dateTime", "2026-03-09T09:00:00Z"))


class FhirObservationSchema(_Open):
    resource_type = fields.String(
        data_key="resourceType", metadata=doc("Always Observation", "Observation")
    )
    identifier = fields.List(
        fields.Nested(FhirIdentifierSchema),
        metadata=doc("The platform's stable key of the reading: unit, time, device's key"),
    )
    status = fields.String(metadata=doc("Always final", "final"))
    category = fields.List(fields.Nested(FhirCodeableConceptSchema))
    code = fields.Nested(FhirCodeableConceptSchema, metadata=doc("LOINC where one fits"))
    subject = fields.Nested(FhirReferenceSchema, metadata=doc("By subject number"))
    effective_date_time = fields.String(
        data_key="effectiveDateTime",
        metadata=doc("When it was measured (an instant)", "2026-03-09T08:00:00Z"),
    )
    effective_period = fields.Nested(
        FhirPeriodSchema,
        data_key="effectivePeriod",
        metadata=doc("The interval it covers (e.g. steps)"),
    )
    issued = fields.String(metadata=doc("When the platform received it", "2026-03-09T08:05:00Z"))
    value_quantity = fields.Nested(FhirQuantitySchema, data_key="valueQuantity")
    device = fields.Nested(FhirReferenceSchema, metadata=doc("By serial number"))


class FhirBundleEntrySchema(_Open):
    full_url = fields.String(
        data_key="fullUrl", metadata=doc("urn:uuid:..., the same for the same reading")
    )
    resource = fields.Nested(FhirObservationSchema)


class FhirBundleSchema(_Open):
    resource_type = fields.String(data_key="resourceType", metadata=doc("Always Bundle", "Bundle"))
    type = fields.String(metadata=doc("Always collection", "collection"))
    timestamp = fields.String(metadata=doc("When the Bundle was made", "2026-03-10T09:30:00Z"))
    entry = fields.List(fields.Nested(FhirBundleEntrySchema))


def _filters(args: dict[str, Any]) -> dict[str, Any]:
    start, end = exports.reading_window(args.get("start"), args.get("end"), utcnow())
    return {"metric": args.get("metric"), "start": start, "end": end, "limit": args["limit"]}


def _patient(patient_id: int) -> Patient:
    actor = api_actor()
    # Clinical data: the patient's site, the trial's managers and the patient themselves.
    policy.require_role(actor, *DATA_READERS, Role.PATIENT)
    return policy.get_visible(db.session(), actor, Patient, patient_id)


@blp.route("/<int:patient_id>/readings")
class PatientReadings(MethodView):
    @blp.arguments(ReadingQuerySchema, location="query")
    @blp.response(200, DeviceReadingSchema(many=True))
    @blp.alt_response(404, description=NOT_FOUND)
    def get(self, args: dict[str, Any], patient_id: int) -> list[ExportedReading]:
        """The patient's device readings that began in [`from`, `to`), oldest first, each
        with the site responsible at its time. To read on past `limit`, ask again from the
        last reading's `effective_start` (readings of that instant come again)."""
        filters = _filters(args)
        return exports.readings_for(db.session(), _patient(patient_id), **filters)


@blp.route("/<int:patient_id>/observations")
class PatientObservations(MethodView):
    @blp.arguments(ReadingQuerySchema, location="query")
    @blp.response(200, FhirBundleSchema, content_type=FHIR_JSON)
    @blp.alt_response(404, description=NOT_FOUND)
    def get(self, args: dict[str, Any], patient_id: int) -> Response:
        """The same readings as a FHIR R4 Bundle (collection) of Observations: LOINC codes,
        UCUM units, an effective period for intervals, the subject and device by number."""
        filters = _filters(args)
        patient = _patient(patient_id)
        bundle = exports.observation_bundle(db.session(), patient, **filters, now=utcnow())
        return Response(bundle.model_dump_json(), mimetype=FHIR_JSON)
