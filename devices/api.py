"""`POST /api/v1/devices/readings`: a unit sends its readings with its own credential.

User tokens do not work here and device tokens work nowhere else: the endpoint is public
to the platform's user-token check and checks the device token itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from dct_platform.api.schemas import doc
from dct_platform.auth import bearer_token
from dct_platform.errors import Unauthorized
from dct_platform.extensions import db
from dct_platform.timeutil import utcnow
from devices import ingestion, registry
from devices.models import DeviceToken

MAX_READINGS = 5000
SIGNALS = ("good", "fair", "poor", "none")

blp = Blueprint(
    "devices_api",
    __name__,
    url_prefix="/api/v1/devices",
    description="Readings sent by devices, with a device credential",
)


class UnitStatusSchema(Schema):
    battery_percent = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, 100),
        metadata=doc("Battery charge left, 0-100"),
    )
    signal = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(SIGNALS),
        metadata=doc("Connection quality the unit sees: " + ", ".join(SIGNALS)),
    )
    device_time = fields.AwareDateTime(
        load_default=None, allow_none=True,
        metadata=doc("The unit's own clock when it sent the batch, with its offset; "
                     "a unit whose clock disagrees with the server's is flagged"),
    )  # fmt: skip


class ItemsAsSent(fields.List[Any]):
    """A list whose items are checked one by one later, with a reason each
    (devices/readings.py): marshmallow's own pass over 5,000 raw items cost an upload 5%
    for nothing."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        return value


class ReadingBatchSchema(Schema):
    readings = ItemsAsSent(
        fields.Raw(),
        load_default=list,
        validate=validate.Length(max=MAX_READINGS),
        metadata=doc(
            "Native readings: {metric, value, unit, time} (or start and end for an interval), "
            "optional id; or Open mHealth data points ({header, body})",
            [{"metric": "heart_rate", "value": 72, "unit": "beats/min",
              "time": "2026-03-10T08:00:00+01:00", "id": "r-1"}],
        ),
    )  # fmt: skip
    firmware_version = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=40)
    )
    app_version = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=40)
    )
    status = fields.Nested(UnitStatusSchema, load_default=None, allow_none=True)


class RejectionSchema(Schema):
    index = fields.Integer(metadata=doc("Position of the item in `readings`"))
    reason = fields.String(metadata=doc("Why it was not stored"))


class IngestAnswerSchema(Schema):
    batch_id = fields.Integer()
    format = fields.String(metadata=doc("native or openmhealth"))
    received = fields.Integer()
    stored = fields.Integer(metadata=doc("New readings stored by this batch"))
    duplicates = fields.Integer(metadata=doc("Readings already stored before"))
    late = fields.Integer(metadata=doc("Stored readings that arrived late"))
    rejected = fields.List(fields.Nested(RejectionSchema))
    clock_offset_seconds = fields.Float(
        metadata=doc("The unit's clock minus the server's, when the batch sent device_time")
    )
    clock_drift = fields.Boolean(
        metadata=doc("True when that offset is beyond the tolerance: set the unit's clock")
    )


def _device() -> DeviceToken:
    token = bearer_token()
    if token is None:
        raise Unauthorized("Send the device credential: Authorization: Bearer <device token>.")
    found = registry.credential(db.session(), token)
    if found is None:
        raise Unauthorized("The device credential is invalid or revoked.")
    return found


@blp.route("/readings")
class Readings(MethodView):
    @blp.arguments(ReadingBatchSchema)
    @blp.response(200, IngestAnswerSchema)
    @blp.alt_response(401, description="No, or an invalid or revoked, device credential")
    @blp.alt_response(409, description="The Idempotency-Key was used for another batch")
    @blp.doc(security=[{"deviceToken": []}])
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store a batch of readings once each. Valid readings are stored even when others
        are refused; send the same `Idempotency-Key` header to retry and get the same
        answer."""
        token = _device()
        unit, now = token.unit, utcnow()
        session = db.session()
        if body["firmware_version"]:
            registry.report_versions(
                session, unit, now, body["firmware_version"], body["app_version"]
            )
        key = request.headers.get("Idempotency-Key", "").strip()[:200] or None
        config = current_app.config
        return ingestion.ingest(
            session,
            unit,
            token.id,
            request.get_data(cache=True),
            body["readings"],
            now,
            idempotency_key=key,
            settings=ingestion.IngestSettings(
                future_tolerance=timedelta(seconds=config["DEVICE_FUTURE_TOLERANCE_SECONDS"]),
                late_after=timedelta(seconds=config["DEVICE_LATE_AFTER_SECONDS"]),
                clock_drift=timedelta(seconds=config["DEVICE_CLOCK_DRIFT_SECONDS"]),
            ),
            status=ingestion.UnitStatus(**body["status"]) if body["status"] else None,
        )
