"""Marshmallow schemas for every JSON input and output of the core API."""

from __future__ import annotations

import copy
from datetime import UTC
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    missing,
    pre_load,
    validate,
    validates_schema,
)
from sqlalchemy.orm import object_session

from dct_platform.input_guard import MAX_ID
from dct_platform.models import Site, User
from dct_platform.models.patients import PatientStatus
from dct_platform.models.trials import TrialPhase, TrialStatus
from dct_platform.roles import is_role, role_names
from dct_platform.services.patient_lists import DEFAULT_SORT, SORTS

ID_RANGE_MESSAGE = f"Must be a whole number from 1 to {MAX_ID}."
# More ids than anyone works on; also keeps `IN (...)` under the databases' parameter limits.
MAX_IDS_PER_LIST = 1000
# The e-mail columns' width (RFC 5321's limit); marshmallow's Email validator has no maximum.
EMAIL_LENGTH = validate.Length(max=254)


def doc(description: str, example: Any = None, **more: Any) -> dict[str, Any]:
    """A field's documentation in the OpenAPI document: what it is, and an example value."""
    metadata = {"description": description, **more}
    if example is not None:
        metadata["example"] = example
    return metadata


TIMEZONE_DOC = "IANA time zone of a place (e.g. Europe/Berlin), or UTC"
# Written at enrolment or by the randomisation, never answered: the trial may be blinded,
# and whoever could read a patient's arm beside the kits shipped to them would read the
# kits' arms too.
ARM_DOC = "The treatment arm, as the trial names it. Write-only: never answered (blinding)"
REASON_DOC = "Why, for the audit trail"


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


class IdList(fields.List[int]):
    """A JSON list of ids, at most MAX_IDS_PER_LIST of them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Id(), validate=validate.Length(max=MAX_IDS_PER_LIST), **kwargs)


class RoleName(fields.String):
    """A declared role's name (dct_platform/roles.py), checked when the request arrives:
    feature packages declare roles after this module is imported. The OpenAPI document
    lists the declared roles (`document_roles`)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {**kwargs.pop("metadata", {}), ROLE_MARKER: True}
        super().__init__(metadata=metadata, **kwargs)

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
class UtcDateTime(fields.AwareDateTime):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)


InputDateTime = fields.AwareDateTime


class HealthSchema(Schema):
    status = fields.String(required=True)
    database = fields.String(required=True)
    time = UtcDateTime()


class TokenRequestSchema(Schema):
    username = fields.String(
        required=True,
        validate=validate.Length(min=1, max=80),
        metadata=doc("Sign-in name", "coord_berlin"),
    )
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=1024)
    )


_ID_LIST = {"type": "array", "items": {"type": "integer"}}


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    username = fields.String(metadata=doc("Sign-in name", "coord_berlin"))
    display_name = fields.String(metadata=doc("Name shown to other users", "Dr. Mia Weber"))
    role = RoleName(metadata=doc("The account's role", "site_staff"))
    role_label = fields.String(dump_only=True, metadata=doc("The role's name for people"))
    timezone = fields.String(metadata=doc(TIMEZONE_DOC, "Europe/Berlin"))
    email = fields.String(allow_none=True, metadata=doc("Contact e-mail", "mia@site.example"))
    is_enabled = fields.Boolean(metadata=doc("False: the account may not sign in"))
    site_ids = fields.Method("_site_ids", metadata=doc("Sites the account works on", **_ID_LIST))
    trial_ids = fields.Method("_trial_ids", metadata=doc("Trials the account works on", **_ID_LIST))

    def _site_ids(self, user: User) -> list[int]:
        return sorted(user.site_ids)

    def _trial_ids(self, user: User) -> list[int]:
        return sorted(user.trial_ids)


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


class UserQuerySchema(Schema):
    q = fields.String(
        validate=validate.Length(max=100),
        metadata=doc("Part of the username, or of a staff member's name", "coord"),
    )
    role = RoleName(metadata=doc("Only accounts of this role", "site_staff"))
    site_id = Id(from_text=True, metadata=doc("Only accounts that belong to this site"))


class LockoutSchema(Schema):
    failures = fields.Integer(metadata=doc("Failed sign-in attempts counted"))
    slowed_until = UtcDateTime(
        allow_none=True, metadata=doc("No attempt is let through before this time")
    )
    blocked_addresses = fields.Integer(metadata=doc("Addresses refused for this account"))


class UserDetailSchema(UserSchema):
    lockout = fields.Nested(
        LockoutSchema,
        allow_none=True,
        metadata=doc("How sign-in is held back now; null when it is not"),
    )
    unlocked_at = UtcDateTime(
        allow_none=True, metadata=doc("When an administrator last lifted a lockout")
    )
    last_login_at = UtcDateTime(allow_none=True)


class ReasonSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=doc(REASON_DOC, "The user called and was identified"),
    )


class TemporaryPasswordSchema(Schema):
    username = fields.String(required=True)
    temporary_password = fields.String(
        required=True, metadata=doc("Shown once; its owner must replace it at first sign-in")
    )


class TokenSchema(Schema):
    access_token = fields.String(
        required=True,
        metadata=doc("Send as `Authorization: Bearer <token>`; shown only this once"),
    )
    token_type = fields.String(required=True, metadata=doc("Always Bearer", "Bearer"))
    expires_at = UtcDateTime(metadata=doc("When the token stops working"))
    user = fields.Nested(UserSchema, metadata=doc("The token's owner"))


class TrialSchema(Schema):
    id = fields.Integer()
    protocol_number = fields.String(metadata=doc("The sponsor's protocol number", "DCT-001"))
    title = fields.String()
    phase = fields.Enum(TrialPhase, by_value=True)
    status = fields.Enum(TrialStatus, by_value=True)
    sponsor = fields.Function(
        lambda t: t.sponsor.name, metadata=doc("The sponsor's name", "Acme Pharma", type="string")
    )
    title_translations = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata=doc("The title in patients' languages, by language code", {"de": "Studie"}),
    )
    protocol_version = fields.String(
        metadata=doc("The protocol version in force; home-visit staff need training on it", "2.1")
    )


class TrialCreateSchema(Schema):
    sponsor = fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata=doc("The sponsor's name; created if new", "Acme Pharma"),
    )
    protocol_number = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata=doc("Unique among trials", "DCT-001"),
    )
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    phase = fields.Enum(TrialPhase, by_value=True, required=True)
    status = fields.Enum(TrialStatus, by_value=True, load_default=TrialStatus.PLANNING)
    protocol_version = fields.String(
        load_default="1.0",
        validate=validate.Length(min=1, max=20),
        metadata=doc("The protocol version in force", "1.0"),
    )
    title_translations = fields.Dict(
        keys=fields.String(validate=validate.Length(max=16)),
        values=fields.String(validate=validate.Length(max=300)),
        load_default=dict,
        validate=validate.Length(max=20),
        metadata=doc(
            "The title as patients read it in their language, by language code",
            {"de": "Fernüberwachung bei Herzinsuffizienz", "ja": "心不全の遠隔モニタリング"},
        ),
    )


class SiteCreateSchema(Schema):
    site_number = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata=doc("Unique within the trial", "B1"),
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    country = fields.String(required=True, metadata=doc("ISO 3166 two-letter code", "DE"))
    timezone = fields.String(required=True, metadata=doc(TIMEZONE_DOC, "Europe/Berlin"))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    email = fields.Email(load_default=None, allow_none=True, validate=EMAIL_LENGTH)
    enrolment_target = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(min=0, max=100_000),
        metadata=doc("How many patients the site is to enrol", 12),
    )


class InvestigatorAppointmentSchema(Schema):
    investigator_id = Id(required=True, metadata=doc("The user id of an investigator"))
    reason = fields.String(
        required=True, validate=validate.Length(min=1, max=500), metadata=doc(REASON_DOC)
    )


class SiteSchema(Schema):
    id = fields.Integer()
    trial_id = fields.Integer()
    site_number = fields.String(metadata=doc("Unique within the trial", "B1"))
    name = fields.String(metadata=doc("The site's name", "Charité Berlin"))
    country = fields.String(metadata=doc("ISO 3166 two-letter code", "DE"))
    timezone = fields.String(metadata=doc(TIMEZONE_DOC, "Europe/Berlin"))
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    enrolment_target = fields.Integer(
        allow_none=True, metadata=doc("How many patients the site is to enrol; null: no target")
    )
    principal_investigator = fields.Function(
        lambda s: s.principal_investigator.display_name if s.principal_investigator else None,
        metadata=doc(
            "The principal investigator's name; null while none is appointed",
            type="string",
            nullable=True,
        ),
    )
    is_active = fields.Boolean(metadata=doc("False: the site takes no new patients"))


def _site_number(patient: Any) -> str | None:
    # By id through the session's identity map: a transfer sets `site_id`, and the `site`
    # relationship may still hold the site the patient left.
    session = object_session(patient)
    site = session.get(Site, patient.site_id) if session is not None else patient.site
    return site.site_number if site is not None else None


class PatientSchema(Schema):
    id = fields.Integer()
    trial_id = fields.Integer()
    subject_number = fields.String(metadata=doc("Pseudonymous subject number", "B1-001"))
    site_id = fields.Integer(metadata=doc("The site responsible for the patient now"))
    site_number = fields.Function(
        _site_number, metadata=doc("The number of that site", "B1", type="string")
    )
    enrolling_site_id = fields.Integer(metadata=doc("The site that enrolled the patient"))
    status = fields.Enum(PatientStatus, by_value=True)
    timezone = fields.String(metadata=doc("The patient's time zone (IANA)", "Europe/Berlin"))
    preferred_language = fields.String(metadata=doc("Language of the portal", "de"))
    baseline_date = fields.Date(allow_none=True, metadata=doc("Day 1 of the patient's schedule"))
    consent_date = fields.Date(
        allow_none=True, metadata=doc("The day the informed consent was signed", "2026-01-05")
    )
    consent_version = fields.String(
        allow_none=True, metadata=doc("The version of the consent form signed", "3.0")
    )
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


def _optional_text(max_length: int, description: str, example: str) -> fields.String:
    return fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=max_length),
        metadata=doc(description + "; null if not recorded", example),
    )


class IdentitySchema(Schema):
    given_name = fields.String(
        required=True, validate=validate.Length(min=1, max=100), metadata=doc("Given name", "Anna")
    )
    family_name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata=doc("Family name", "Schmidt"),
    )
    date_of_birth = fields.Date(
        load_default=None,
        allow_none=True,
        metadata=doc("Date of birth; null if not recorded", "1970-04-01"),
    )
    email = fields.Email(
        load_default=None,
        allow_none=True,
        validate=EMAIL_LENGTH,
        metadata=doc("E-mail address; null if not recorded", "anna@example.org"),
    )
    phone = _optional_text(40, "With the country code", "+49 30 1234567")
    address_line1 = _optional_text(200, "Street and number", "Hauptstraße 1")
    address_line2 = _optional_text(200, "More of the address", "3rd floor")
    postal_code = _optional_text(20, "Postal code", "10115")
    city = _optional_text(100, "City", "Berlin")
    region = _optional_text(100, "State, province or region", "Berlin")
    country = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[A-Z]{2}$", error="Use a two-letter ISO 3166 country code."),
        metadata=doc("ISO 3166 two-letter code; null if not recorded", "DE"),
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


# The base is built at run time (IdentitySchema with every field required); mypy cannot
# take a class computed by a call as a base, though it is a Schema like any other.
class IdentityReplaceSchema(_all_required("IdentityFields", IdentitySchema)):  # type: ignore[misc]
    """PUT replaces the whole record: every field must be sent, null to clear one, so that
    a client that forgot a field never erases personal data by accident."""

    reason = _IDENTITY_REASON


class IdentityChangeSchema(IdentitySchema):
    """PATCH changes only the fields sent (load it with `partial=True`)."""

    reason = _IDENTITY_REASON


class PatientCreateSchema(Schema):
    site_id = Id(required=True, metadata=doc("One of the caller's sites"))
    subject_number = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata=doc("Unique within the trial", "B1-001"),
    )
    timezone = fields.String(required=True, metadata=doc(TIMEZONE_DOC, "Europe/Berlin"))
    preferred_language = fields.String(load_default="en", metadata=doc("en, de or ja", "de"))
    status = fields.Enum(PatientStatus, by_value=True, load_default=PatientStatus.SCREENING)
    baseline_date = fields.Date(load_default=None, allow_none=True)
    arm = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=40),
        metadata=doc(ARM_DOC, "A"),
    )  # fmt: skip
    consent_date = fields.Date(
        required=True,
        metadata=doc("The day the patient signed the informed consent (not in the future)"),
    )
    consent_version = fields.String(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata=doc("The version of the consent form signed", "3.0 of 2025-12-01"),
    )
    identity = fields.Nested(IdentitySchema, load_default=None, allow_none=True)
    create_account = fields.Boolean(
        load_default=False,
        metadata=doc(
            "Open the patient's portal account too (needs `identity`); its temporary "
            "password is in the answer, once"
        ),
    )

    @validates_schema
    def _account_needs_a_name(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("create_account") and not data.get("identity"):
            raise ValidationError(
                "A portal account needs the patient's name: send `identity`.", "identity"
            )


class PortalAccountSchema(Schema):
    username = fields.String(required=True, metadata=doc("The patient's sign-in name"))
    temporary_password = fields.String(
        required=True, metadata=doc("Shown once; the patient replaces it at first sign-in")
    )


class EnrolledPatientSchema(PatientSchema):
    portal_account = fields.Nested(
        PortalAccountSchema, allow_none=True, metadata=doc("Only when `create_account` was set")
    )


class StatusChangeSchema(Schema):
    status = fields.Enum(
        PatientStatus, by_value=True, required=True, metadata=doc("The new status")
    )
    effective_on = fields.Date(
        required=True, metadata=doc("The day it took effect at the site (not in the future)")
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=doc(REASON_DOC, "Eligibility confirmed"),
    )


class StatusHistorySchema(Schema):
    from_status = fields.Enum(PatientStatus, by_value=True)
    to_status = fields.Enum(PatientStatus, by_value=True)
    effective_on = fields.Date()
    reason = fields.String()
    changed_at = UtcDateTime(metadata=doc("When it was recorded"))


class PatientUpdateSchema(Schema):
    """Send `If-Match` with the ETag you read to be refused (412) if the record changed since."""

    timezone = fields.String()
    preferred_language = fields.String()
    baseline_date = fields.Date(allow_none=True)
    arm = fields.String(
        allow_none=True, validate=validate.Length(max=40), metadata=doc(ARM_DOC, "A")
    )
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))

    @pre_load
    def _status_has_its_own_endpoint(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict) and "status" in data:
            raise ValidationError(
                "Change the status with POST /api/v1/patients/{id}/status, "
                "with the day it took effect and a reason.",
                "status",
            )
        return data


class PatientQuerySchema(Schema):
    q = fields.String(
        validate=validate.Length(max=100),
        metadata=doc("Part of the subject number, or of the name where the caller may see it"),
    )
    site_id = Id(from_text=True, metadata=doc("Only patients of this site"))
    status = fields.Enum(PatientStatus, by_value=True, metadata=doc("Only patients in this status"))
    sort = fields.String(
        load_default=DEFAULT_SORT,
        validate=validate.OneOf(list(SORTS)),
        metadata=doc("Order: subject, -subject, status, enrolled, -enrolled", "subject"),
    )


class TransferSchema(Schema):
    to_site_id = Id(required=True, metadata=doc("Another site of the patient's trial"))
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=doc(REASON_DOC, "The patient moved to Hamburg"),
    )
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
    valid_from = UtcDateTime(metadata=doc("Responsible from (inclusive)"))
    valid_to = UtcDateTime(
        allow_none=True, metadata=doc("Until (exclusive); null: still responsible")
    )
    reason = fields.String(allow_none=True)
    reason_withheld = fields.Boolean(
        metadata={"description": "A reason exists but the caller's role does not read it"}
    )


class TimezonePeriodSchema(Schema):
    timezone = fields.String(metadata={"description": "IANA time zone in force"})
    valid_from = UtcDateTime()
    valid_to = UtcDateTime(allow_none=True, metadata={"description": "null: still open"})
    reason = fields.String(allow_none=True)
    reason_withheld = fields.Boolean(
        metadata={"description": "A reason exists but the caller's role does not read it"}
    )


class AuditQuerySchema(Schema):
    table = fields.String(
        validate=validate.Length(max=100), metadata=doc("Only entries of this table", "patients")
    )
    record_id = fields.String(
        validate=validate.Length(max=100),
        metadata=doc("Only entries of this record (with `table`)", "12"),
    )
    actor = fields.String(
        validate=validate.Length(max=120),
        metadata=doc("Only entries of this username (or system:<job>)", "coord_berlin"),
    )
    subject = fields.String(
        validate=validate.Length(max=32),
        metadata=doc("Only entries of this patient's records, by subject number", "B1-001"),
    )
    since = InputDateTime(metadata=doc("Only entries at or after this time (with offset)"))
    until = InputDateTime(metadata=doc("Only entries before this time (with offset)"))


class AuditEntrySchema(Schema):
    id = fields.Integer()
    seq = fields.Integer(
        allow_none=True, metadata={"description": "Place in the sealed chain; null until sealed"}
    )
    action_id = fields.Integer(allow_none=True, metadata={"description": "The user action"})
    occurred_at = UtcDateTime()
    recorded_at = UtcDateTime()
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
