"""Marshmallow schemas for every JSON input and output of the core API."""

from __future__ import annotations

import copy
from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, missing, validate

from dct_platform.input_guard import MAX_ID
from dct_platform.models.patients import PatientStatus
from dct_platform.models.trials import TrialPhase, TrialStatus
from dct_platform.roles import is_role, role_names

ID_RANGE_MESSAGE = f"Must be a whole number from 1 to {MAX_ID}."
# More ids than anyone works on; also keeps `IN (...)` under the databases' parameter limits.
MAX_IDS_PER_LIST = 1000
# The e-mail columns' width (RFC 5321's limit); marshmallow's Email validator has no maximum.
EMAIL_LENGTH = validate.Length(max=254)


class Id(fields.Integer):
    """The id of a stored record: a whole number from 1 to 2**31 - 1 (the columns are 32-bit).

    Strict: a JSON body must send an integer, so 2.5 or "2" is refused instead of being
    truncated to another record's id. `from_text=True` is for query strings, which carry
    text: plain ASCII digits only, never "2.5", " 2" or "+2"."""

    def __init__(self, *, from_text: bool = False, **kwargs: Any) -> None:
        super().__init__(
            strict=True,
            validate=validate.Range(min=1, max=MAX_ID, error=ID_RANGE_MESSAGE),
            **kwargs,
        )
        self.from_text = from_text

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if self.from_text and isinstance(value, str) and value.isascii() and value.isdigit():
            if len(value.lstrip("0")) > len(str(MAX_ID)):  # never hand int() 5,000 digits
                raise ValidationError(ID_RANGE_MESSAGE)
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class IdList(fields.List):
    """A JSON list of ids, at most MAX_IDS_PER_LIST of them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Id(), validate=validate.Length(max=MAX_IDS_PER_LIST), **kwargs)


class RoleName(fields.String):
    """A declared role's name (dct_platform/roles.py), checked when the request arrives:
    feature packages declare roles after this module is imported. The OpenAPI document
    lists the declared roles (`document_roles`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={ROLE_MARKER: True}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        name = super()._deserialize(value, attr, data, **kwargs)
        if not is_role(name):
            raise ValidationError(f"Must be one of: {', '.join(role_names())}.")
        return name


ROLE_MARKER = "x-dct-role"


def document_roles(components: dict[str, Any]) -> None:
    """Fill in the role names in the OpenAPI schemas once every package has declared its."""
    for component in components.values():
        for prop in component.get("properties", {}).values():
            if prop.pop(ROLE_MARKER, False):
                prop["enum"] = role_names()


# Output times: aware, in UTC. Input times must use `InputDateTime`, which refuses values
# without an offset instead of guessing their zone.
UtcDateTime = fields.AwareDateTime
InputDateTime = fields.AwareDateTime
_tz = {"default_timezone": UTC}


class HealthSchema(Schema):
    status = fields.String(required=True)
    database = fields.String(required=True)
    time = UtcDateTime(**_tz)


class TokenRequestSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=80))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=1024)
    )


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    username = fields.String()
    display_name = fields.String()
    role = RoleName()
    role_label = fields.String(dump_only=True)
    timezone = fields.String()
    email = fields.String(allow_none=True)
    is_enabled = fields.Boolean()
    site_ids = fields.Method("_site_ids")
    trial_ids = fields.Method("_trial_ids")

    def _site_ids(self, user: object) -> list[int]:
        return sorted(user.site_ids)  # type: ignore[attr-defined]

    def _trial_ids(self, user: object) -> list[int]:
        return sorted(user.trial_ids)  # type: ignore[attr-defined]


class UserCreateSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=80))
    password = fields.String(required=True, load_only=True)
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = RoleName(required=True)
    email = fields.Email(load_default=None, allow_none=True, validate=EMAIL_LENGTH)
    timezone = fields.String(load_default="UTC")
    site_ids = IdList(load_default=list)
    trial_ids = IdList(load_default=list)


class UserAccessSchema(Schema):
    site_ids = IdList(load_default=list)
    trial_ids = IdList(load_default=list)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_at = UtcDateTime(**_tz)
    user = fields.Nested(UserSchema)


class TrialSchema(Schema):
    id = fields.Integer()
    protocol_number = fields.String()
    title = fields.String()
    phase = fields.Enum(TrialPhase, by_value=True)
    status = fields.Enum(TrialStatus, by_value=True)
    sponsor = fields.Function(lambda t: t.sponsor.name)


class TrialCreateSchema(Schema):
    sponsor = fields.String(required=True, validate=validate.Length(min=1, max=200))
    protocol_number = fields.String(required=True, validate=validate.Length(min=1, max=64))
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    phase = fields.Enum(TrialPhase, by_value=True, required=True)
    status = fields.Enum(TrialStatus, by_value=True, load_default=TrialStatus.PLANNING)


class SiteCreateSchema(Schema):
    site_number = fields.String(required=True, validate=validate.Length(min=1, max=32))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    country = fields.String(required=True)
    timezone = fields.String(required=True)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    email = fields.Email(load_default=None, allow_none=True, validate=EMAIL_LENGTH)


class InvestigatorAppointmentSchema(Schema):
    investigator_id = Id(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class SiteSchema(Schema):
    id = fields.Integer()
    trial_id = fields.Integer()
    site_number = fields.String()
    name = fields.String()
    country = fields.String()
    timezone = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    principal_investigator = fields.Function(
        lambda s: s.principal_investigator.display_name if s.principal_investigator else None
    )
    is_active = fields.Boolean()


class PatientSchema(Schema):
    id = fields.Integer()
    trial_id = fields.Integer()
    subject_number = fields.String()
    site_id = fields.Integer()
    enrolling_site_id = fields.Integer()
    status = fields.Enum(PatientStatus, by_value=True)
    timezone = fields.String()
    preferred_language = fields.String()
    baseline_date = fields.Date(allow_none=True)
    created_at = UtcDateTime(**_tz)
    updated_at = UtcDateTime(**_tz)


class IdentitySchema(Schema):
    given_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    family_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    date_of_birth = fields.Date(load_default=None, allow_none=True)
    email = fields.Email(load_default=None, allow_none=True, validate=EMAIL_LENGTH)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    address_line1 = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )
    address_line2 = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )
    postal_code = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=20)
    )
    city = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    region = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    country = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[A-Z]{2}$", error="Use a two-letter ISO 3166 country code."),
    )


_IDENTITY_REASON = fields.String(
    load_default=None,
    allow_none=True,
    validate=validate.Length(max=500),
    metadata={"description": "Why stored personal data is corrected; required for a correction"},
)


def _all_required(name: str, base: type[Schema]) -> type[Schema]:
    """`base` with every field required (null still allowed where base allows it)."""
    declared = {}
    for key, field in base._declared_fields.items():
        declared[key] = copy.copy(field)
        declared[key].required = True
        declared[key].load_default = missing
    return Schema.from_dict(declared, name=name)


class IdentityReplaceSchema(_all_required("IdentityFields", IdentitySchema)):  # type: ignore[misc]
    """PUT replaces the whole record: every field must be sent, null to clear one, so that
    a client that forgot a field never erases personal data by accident."""

    reason = _IDENTITY_REASON


class IdentityChangeSchema(IdentitySchema):
    """PATCH changes only the fields sent (load it with `partial=True`)."""

    reason = _IDENTITY_REASON


class PatientCreateSchema(Schema):
    site_id = Id(required=True)
    subject_number = fields.String(required=True, validate=validate.Length(min=1, max=32))
    timezone = fields.String(required=True)
    preferred_language = fields.String(load_default="en")
    status = fields.Enum(PatientStatus, by_value=True, load_default=PatientStatus.SCREENING)
    baseline_date = fields.Date(load_default=None, allow_none=True)
    identity = fields.Nested(IdentitySchema, load_default=None, allow_none=True)


class PatientUpdateSchema(Schema):
    """Send `If-Match` with the ETag you read to be refused (412) if the record changed since."""

    status = fields.Enum(PatientStatus, by_value=True)
    timezone = fields.String()
    preferred_language = fields.String()
    baseline_date = fields.Date(allow_none=True)
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class PatientQuerySchema(Schema):
    site_id = Id(from_text=True)
    status = fields.Enum(PatientStatus, by_value=True)


class TransferSchema(Schema):
    to_site_id = Id(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    timezone = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=64),
        metadata={
            "description": "The patient's IANA time zone from the transfer on, when the "
            "patient moves with the site (usually the target site's zone); omit or null "
            "to keep the current zone"
        },
    )


class SiteAssignmentSchema(Schema):
    site_id = fields.Integer()
    valid_from = UtcDateTime(**_tz)
    valid_to = UtcDateTime(allow_none=True, **_tz)
    reason = fields.String(allow_none=True)
    reason_withheld = fields.Boolean(
        metadata={"description": "A reason exists but the caller's role does not read it"}
    )


class TimezonePeriodSchema(Schema):
    timezone = fields.String(metadata={"description": "IANA time zone in force"})
    valid_from = UtcDateTime(**_tz)
    valid_to = UtcDateTime(allow_none=True, **_tz, metadata={"description": "null: still open"})
    reason = fields.String(allow_none=True)
    reason_withheld = fields.Boolean(
        metadata={"description": "A reason exists but the caller's role does not read it"}
    )


class AuditQuerySchema(Schema):
    table = fields.String()
    record_id = fields.String()


class AuditEntrySchema(Schema):
    id = fields.Integer()
    seq = fields.Integer(
        allow_none=True, metadata={"description": "Place in the sealed chain; null until sealed"}
    )
    action_id = fields.Integer(allow_none=True, metadata={"description": "The user action"})
    occurred_at = UtcDateTime(**_tz)
    recorded_at = UtcDateTime(**_tz)
    actor_id = fields.Integer(allow_none=True)
    actor_name = fields.String()
    action = fields.String()
    table_name = fields.String()
    record_id = fields.String()
    field = fields.String(allow_none=True)
    old_value = fields.String(allow_none=True)
    new_value = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    entry_hash = fields.String(allow_none=True)


class AuditVerificationSchema(Schema):
    ok = fields.Boolean()
    checked = fields.Integer()
    broken_seq = fields.Integer(allow_none=True)
    problem = fields.String(allow_none=True)
