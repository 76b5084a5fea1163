"""`POST /api/v1/courier/webhook`: the courier's status updates, signed by the courier.

Public to the user-token check: the courier has no user token. Instead every request
carries `X-Courier-Signature: sha256=<hex>`, an HMAC-SHA256 of `<timestamp>.<raw body>`
with COURIER_WEBHOOK_SECRET, and `X-Courier-Timestamp` (Unix seconds) no more than five
minutes off the server's clock, so that a captured request cannot be replayed later. The
signature is checked on the raw bytes before the body is parsed: an unsigned request is
answered 401 and nothing is stored.

Answers: 200 for an update applied, a duplicate, an unchanged status or a refused
impossible move (refusing is our decision, logged on the shipment; the courier retrying
it would change nothing); 404 for a tracking number no shipment has, with nothing stored,
so the courier retries it: it can come before the booking's own commit.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from dct_platform.api.schemas import doc
from dct_platform.errors import NotFound, Unauthorized
from dct_platform.extensions import db
from dct_platform.timeutil import utcnow
from logistics.courier import tracking
from logistics.shipments.states import COURIER_STATUSES

SIGNATURE_HEADER = "X-Courier-Signature"
TIMESTAMP_HEADER = "X-Courier-Timestamp"
MAX_SKEW_SECONDS = 300

blp = Blueprint(
    "courier_api",
    __name__,
    url_prefix="/api/v1/courier",
    description="Status updates sent by the courier, signed with the shared webhook secret",
)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value the courier sends for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _check_signature() -> None:
    secret = current_app.config["COURIER_WEBHOOK_SECRET"]
    sent = request.headers.get(SIGNATURE_HEADER, "")
    stamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not secret:
        # An unset secret would make every signature "valid" for an empty key.
        raise Unauthorized("The courier webhook is not configured on this server.")
    if not sent or not stamp:
        raise Unauthorized(f"Sign the request: {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}.")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_SKEW_SECONDS:
        raise Unauthorized(f"{TIMESTAMP_HEADER} is not within five minutes of the server's time.")
    expected = signature(secret, stamp, request.get_data(cache=True))
    if not hmac.compare_digest(expected.encode(), sent.encode()):
        raise Unauthorized("The webhook signature is wrong.")


@blp.before_request
def _signed_only() -> None:
    # Before the body is parsed: an unsigned request learns nothing about the inputs.
    _check_signature()


class CourierUpdateSchema(Schema):
    message_id = fields.String(
        required=True, validate=validate.Length(1, 120),
        metadata=doc("The courier's unique id of this update; a repeat is applied once"),
    )  # fmt: skip
    tracking_number = fields.String(required=True, validate=validate.Length(1, 80))
    status = fields.String(
        required=True, validate=validate.OneOf(sorted(COURIER_STATUSES)),
        metadata=doc("The shipment's new status"),
    )  # fmt: skip
    occurred_at = fields.AwareDateTime(
        required=True, metadata=doc("When the courier scanned it, with its UTC offset")
    )
    location = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class UpdateAnswerSchema(Schema):
    outcome = fields.String(
        metadata=doc("applied, duplicate (seen before), unchanged, or refused (impossible)")
    )
    status = fields.String(metadata=doc("The shipment's status now"))
    detail = fields.String(allow_none=True, metadata=doc("Why an update was refused"))


@blp.route("/webhook")
class Webhook(MethodView):
    @blp.arguments(CourierUpdateSchema)
    @blp.response(200, UpdateAnswerSchema)
    @blp.alt_response(401, description="Missing, stale or wrong signature")
    @blp.alt_response(404, description="No shipment has that tracking number (yet): retry")
    @blp.doc(security=[{"courierSignature": []}])
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Take in one status update of a shipment; a repeat is answered `duplicate`.

        Sign `<X-Courier-Timestamp>.<raw body>` with HMAC-SHA256 and the shared secret."""
        session = db.session()
        result = tracking.apply_update(
            session, utcnow(), courier=current_app.config["COURIER_NAME"],
            message_id=body["message_id"], tracking_number=body["tracking_number"],
            status=body["status"], occurred_at=body["occurred_at"],
            location=body["location"], source="webhook",
        )  # fmt: skip
        if result.outcome == tracking.UNKNOWN:
            raise NotFound("No shipment has that tracking number.")
        return {"outcome": result.outcome, "status": result.status, "detail": result.detail}
