"""Marshmallow schemas of the shipments API (`shipments/api.py`).

Pseudonymous: a shipment names its patient by subject number, its site, and the city and
country it goes to; never a name, street or postcode. Kits are shown by number, lot and
expiry; the treatment arm only to the unblinded supply manager (`kit_view`). Instants are
UTC with their offset; dates (the next resupply) are the patient's calendar days.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from dct_platform.api.schemas import REASON_DOC, Id, UtcDateTime, doc
from logistics.shipments.excursions import MAX_REASON
from logistics.shipments.models import Decision, KitCondition, OrderReason, ShipmentKind
from logistics.shipments.orders import MAX_KITS, MAX_NOTE
from logistics.shipments.receipt import MAX_NOTE as MAX_RECEIPT_NOTE
from logistics.shipments.receipt import MAX_PROBLEM
from logistics.shipments.states import ShipmentStatus

# --- inputs ----------------------------------------------------------------------------------


class ShipmentQuerySchema(Schema):
    status = fields.List(
        fields.Enum(ShipmentStatus, by_value=True),
        validate=validate.Length(max=len(ShipmentStatus)),
        metadata=doc("Only shipments in these statuses (repeat the parameter)", ["requested"]),
    )
    site_id = Id(from_text=True, metadata=doc("Only shipments of this site"))
    patient_id = Id(from_text=True, metadata=doc("Only shipments to this patient"))


class ShipmentRequestSchema(Schema):
    patient_id = Id(required=True, metadata=doc("The patient the kits go to"))
    product_id = Id(required=True, metadata=doc("The investigational product"))
    kit_count = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(1, MAX_KITS, error=f"Ask for 1 to {MAX_KITS} kits."),
        metadata=doc("How many kits", 2),
    )
    next_resupply = fields.Date(
        required=True,
        metadata=doc(
            "When the next resupply is due, on the patient's calendar: the kits must expire "
            "after it",
            "2026-04-07",
        ),
    )
    note = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_NOTE),
        metadata=doc("For the investigator who releases it"),
    )


class ReleaseSchema(Schema):
    password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=1000),
        metadata=doc("The investigator's password, re-entered to sign the release"),
    )


class CancelSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_NOTE),
        metadata=doc(REASON_DOC, "The patient is switched to the site pharmacy"),
    )


class KitReceiptSchema(Schema):
    kit_id = Id(required=True, metadata=doc("A kit of the delivery"))
    condition = fields.Enum(
        KitCondition, by_value=True, required=True,
        metadata=doc("received (it is fine), damaged, or missing (not in the box)"),
    )  # fmt: skip


class ReceiptSchema(Schema):
    """The patient's word on a delivered delivery. Kits not named arrived intact."""

    kits = fields.List(
        fields.Nested(KitReceiptSchema), load_default=list, validate=validate.Length(max=MAX_KITS)
    )
    note = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=MAX_RECEIPT_NOTE)
    )

    @validates_schema
    def _each_kit_once(self, data: dict[str, Any], **_kwargs: Any) -> None:
        ids = [k["kit_id"] for k in data.get("kits", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError("Name each kit once.", field_name="kits")


class ProblemSchema(Schema):
    text = fields.String(
        required=True, validate=validate.Length(min=1, max=MAX_PROBLEM),
        metadata=doc("What is wrong, in the patient's words", "The cool pack was warm."),
    )  # fmt: skip


class DecisionSchema(Schema):
    decision = fields.Enum(
        Decision, by_value=True, required=True,
        metadata=doc("release (the kits may be used) or reject (a replacement is ordered)"),
    )  # fmt: skip
    reason = fields.String(
        required=True, validate=validate.Length(min=1, max=MAX_REASON),
        metadata=doc(REASON_DOC, "Stability data allow 4 hours at up to 15 °C"),
    )  # fmt: skip


# --- outputs ---------------------------------------------------------------------------------


class SignatureSchema(Schema):
    printed_name = fields.String(metadata=doc("Who signed", "Dr. Weber"))
    meaning = fields.String(metadata=doc("The meaning's code", "logistics.release"))
    meaning_label = fields.String(metadata=doc("What the signature means"))
    signed_at = UtcDateTime()
    valid = fields.Boolean(
        metadata=doc("False once what the release covers changed after the signature")
    )


class ShipmentSchema(Schema):
    """A shipment as lists show it."""

    id = fields.Integer()
    kind = fields.Enum(ShipmentKind, by_value=True)
    reason = fields.Enum(OrderReason, by_value=True)
    status = fields.Enum(ShipmentStatus, by_value=True)
    status_label = fields.String(metadata=doc("The status in words", "Waiting for release"))
    patient_id = fields.Integer()
    subject_number = fields.String(metadata=doc("The patient's subject number", "B1-001"))
    site_id = fields.Integer(metadata=doc("The site responsible when it was ordered"))
    site_number = fields.String()
    site_name = fields.String()
    investigator_id = fields.Integer(
        allow_none=True, metadata=doc("The investigator responsible when it was ordered")
    )
    product_id = fields.Integer()
    product_code = fields.String()
    depot_id = fields.Integer()
    depot_name = fields.String()
    kit_count = fields.Integer()
    next_resupply_date = fields.Date()
    destination_city = fields.String(allow_none=True, metadata=doc("Never the street", "Berlin"))
    destination_country = fields.String(allow_none=True, metadata=doc("ISO 3166 code", "DE"))
    requested_at = UtcDateTime()
    requested_by_id = fields.Integer(allow_none=True, metadata=doc("None: the schedule"))
    request_note = fields.String(
        allow_none=True, metadata=doc("Free text: answered to the patient's site only")
    )
    released_at = UtcDateTime(allow_none=True)
    released_by_id = fields.Integer(allow_none=True)
    released_by_name = fields.String(allow_none=True)
    cancelled_reason = fields.String(allow_none=True)
    replaces_id = fields.Integer(allow_none=True)
    courier = fields.String(allow_none=True)
    tracking_number = fields.String(allow_none=True)
    expected_delivery_at = UtcDateTime(allow_none=True)
    delivered_at = UtcDateTime(allow_none=True)
    received_at = UtcDateTime(allow_none=True)
    excursion_at = UtcDateTime(allow_none=True)


class ShipmentKitSchema(Schema):
    id = fields.Integer()
    kit_number = fields.String()
    product_code = fields.String()
    lot = fields.String()
    expiry_date = fields.Date()
    depot_id = fields.Integer()
    status = fields.String()
    arm = fields.String(metadata=doc("Only for the unblinded supply manager"))
    condition = fields.String(allow_none=True, metadata=doc("What was said of it on arrival"))


class TrackingEventSchema(Schema):
    status = fields.String()
    occurred_at = UtcDateTime()
    recorded_at = UtcDateTime()
    source = fields.String(metadata=doc("webhook, poll or platform"))
    location = fields.String(allow_none=True)
    outcome = fields.String(metadata=doc("applied, refused (an impossible move) or unchanged"))
    detail = fields.String(allow_none=True)


class ShipmentDetailSchema(ShipmentSchema):
    kits = fields.List(fields.Nested(ShipmentKitSchema))
    tracking = fields.List(fields.Nested(TrackingEventSchema), metadata=doc("Oldest first"))
    release_signature = fields.Nested(SignatureSchema, allow_none=True)


class DispositionSchema(Schema):
    """A temperature excursion of a shipment and the supply manager's decision on it."""

    id = fields.Integer()
    shipment_id = fields.Integer()
    opened_at = UtcDateTime()
    finding = fields.String(metadata=doc("The rule broken, in words"))
    worst_c = fields.Float(metadata=doc("The worst reading, °C"))
    minutes_out_of_range = fields.Integer()
    decision = fields.Enum(Decision, by_value=True, allow_none=True)
    decided_at = UtcDateTime(allow_none=True)
    decision_reason = fields.String(allow_none=True)
    replacement_id = fields.Integer(
        allow_none=True, metadata=doc("The replacement shipment a rejection ordered")
    )
