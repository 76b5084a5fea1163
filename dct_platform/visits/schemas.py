"""Marshmallow schemas of the visits API (`visits/api.py`): every input and output, with
the descriptions and examples the OpenAPI document shows.

Times are UTC instants with their offset, in and out (`InputDateTime` refuses a time
without an offset); window dates are local dates of the patient's calendar, and `local`
renders an instant on the patient's clock with the zone's name."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from dct_platform.api.schemas import REASON_DOC, Id, InputDateTime, RoleName, UtcDateTime, doc
from dct_platform.roles import Role
from dct_platform.visits import availability, record, unscheduled
from dct_platform.visits.models import (
    BookingStatus,
    Modality,
    PlannedStatus,
    RequestStatus,
    RoomStatus,
)

MODALITIES = [m.value for m in Modality]
REASON = validate.Length(min=1, max=500)
WHEN_DOC = "With its UTC offset, e.g. 2026-03-10T09:00:00Z or 2026-03-10T10:00:00+01:00"


# --- shared pieces -------------------------------------------------------------------------


class LocalTimeLabelSchema(Schema):
    """An instant, or a start and end, as they read on a clock of a named zone."""

    zone = fields.String(metadata=doc("The IANA zone read in", "Europe/Berlin"))
    date = fields.Date(metadata=doc("The local date it starts on", "2026-03-10"))
    starts = fields.String(metadata=doc("Local start time HH:MM", "10:00"))
    ends = fields.String(metadata=doc("Local end time HH:MM", "10:30"))
    abbreviation = fields.String(metadata=doc("The zone's abbreviation at the start", "CET"))
    end_abbreviation = fields.String(
        metadata=doc("At the end: another one when the slot spans a change", "CET")
    )
    text = fields.String(metadata=doc("For people", "2026-03-10 10:00-10:30 CET"))


class VisitBookingSummarySchema(Schema):
    """A booking as lists show it; never the video room's link (GET .../join gives it)."""

    id = fields.Integer()
    starts_at = UtcDateTime()
    ends_at = UtcDateTime()
    staff_id = fields.Integer()
    staff_name = fields.String(metadata=doc("Who runs the visit", "Dr. Mia Weber"))
    status = fields.Enum(BookingStatus, by_value=True)
    room_status = fields.Enum(
        RoomStatus,
        by_value=True,
        metadata=doc("Whether the video room is made: pending, ready or failed"),
    )
    local = fields.Nested(
        LocalTimeLabelSchema, metadata=doc("The visit's time on the patient's clock")
    )


class VisitDeviationSchema(Schema):
    id = fields.Integer()
    planned_visit_id = fields.Integer()
    patient_id = fields.Integer()
    kind = fields.String(metadata=doc("What deviated", "visit_out_of_window"))
    detail = fields.String(
        metadata=doc(
            "What happened, for people",
            "Week 4 done on 2026-04-09, 2 days after its window (2026-03-31 to 2026-04-07)",
        )
    )
    occurred_at = UtcDateTime()
    recorded_at = UtcDateTime()


# --- planned visits ------------------------------------------------------------------------


class PlannedVisitQuerySchema(Schema):
    patient_id = Id(from_text=True, metadata=doc("Only this patient's visits"))
    status = fields.Enum(
        PlannedStatus, by_value=True, metadata=doc("Only visits in this status", "planned")
    )


class PlannedVisitSchema(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    subject_number = fields.String(metadata=doc("The patient's subject number", "B1-001"))
    site_id = fields.Integer(metadata=doc("The site responsible for the visit"))
    definition_id = fields.Integer(
        allow_none=True, metadata=doc("The protocol visit; null for an unscheduled visit")
    )
    name = fields.String(metadata=doc("The visit's name", "Week 4 video visit"))
    zone = fields.String(
        metadata=doc("The patient's zone, which the dates are in", "Europe/Berlin")
    )
    target_date = fields.Date(metadata=doc("The day the protocol aims at (patient's calendar)"))
    window_first = fields.Date(metadata=doc("First day it may be done (patient's calendar)"))
    window_last = fields.Date(metadata=doc("Last day it may be done (patient's calendar)"))
    modalities = fields.List(
        fields.String(), metadata=doc("How it may be done: " + ", ".join(MODALITIES))
    )
    duration_minutes = fields.Integer()
    staff_role = fields.String(metadata=doc("The role of who runs it", "investigator"))
    status = fields.Enum(PlannedStatus, by_value=True)
    modality = fields.String(allow_none=True, metadata=doc("How it was done, once done"))
    done_at = UtcDateTime(allow_none=True)
    out_of_window = fields.Boolean(
        metadata=doc("Done on a day outside its window: a protocol deviation")
    )
    unscheduled_reason = fields.String(
        allow_none=True,
        metadata=doc(
            "Why the patient asked for it (unscheduled visits); the patient and the site "
            "read it, null for trial managers"
        ),
    )
    booking = fields.Nested(
        VisitBookingSummarySchema,
        allow_none=True,
        metadata=doc("The booking that holds it (booked, started or completed); null: none"),
    )
    deviations = fields.List(fields.Nested(VisitDeviationSchema))


class DeviationQuerySchema(Schema):
    patient_id = Id(from_text=True, metadata=doc("Only this patient's deviations"))


class SlotQuerySchema(Schema):
    staff_id = Id(from_text=True, metadata=doc("Only this staff member's slots"))


class VisitSlotSchema(Schema):
    starts_at = UtcDateTime()
    ends_at = UtcDateTime()
    staff_id = fields.Integer()
    staff_name = fields.String(metadata=doc("Who runs the visit", "Dr. Mia Weber"))
    local = fields.Nested(LocalTimeLabelSchema, metadata=doc("The slot on the patient's clock"))


class LocalProviderVisitSchema(Schema):
    done_at = InputDateTime(required=True, metadata=doc("When the visit took place. " + WHEN_DOC))
    provider_name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata=doc("The provider who did it", "Praxis Dr. Schmidt"),
    )
    provider_address = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata=doc("Where", "Hauptstr. 1, 10115 Berlin"),
    )
    results = fields.String(
        required=True,
        validate=validate.Length(min=1, max=record.MAX_NOTES),
        metadata=doc("The results, from the provider's report", "BP 120/80, weight 72 kg"),
    )


# --- bookings ------------------------------------------------------------------------------


class BookingCreateSchema(Schema):
    planned_visit_id = Id(required=True, metadata=doc("The planned visit to book"))
    staff_id = Id(required=True, metadata=doc("Who runs it: `staff_id` of a free slot"))
    starts_at = InputDateTime(
        required=True, metadata=doc("`starts_at` of a free slot. " + WHEN_DOC)
    )


class RescheduleSchema(Schema):
    staff_id = Id(required=True, metadata=doc("`staff_id` of a free slot"))
    starts_at = InputDateTime(
        required=True, metadata=doc("`starts_at` of a free slot. " + WHEN_DOC)
    )
    reason = fields.String(
        required=True, validate=REASON, metadata=doc(REASON_DOC, "The patient is travelling")
    )


class VisitReasonSchema(Schema):
    reason = fields.String(
        required=True, validate=REASON, metadata=doc(REASON_DOC, "The patient is unwell")
    )


class CompleteVisitSchema(Schema):
    notes = fields.String(
        required=True,
        validate=validate.Length(min=1, max=record.MAX_NOTES),
        metadata=doc("The visit notes", "No adverse events reported."),
    )
    location_type = fields.String(
        load_default="patient_home",
        validate=validate.OneOf(list(record.LOCATION_TYPES)),
        metadata=doc("Where the patient was: " + ", ".join(record.LOCATION_TYPES), "other"),
    )


class NoShowSchema(Schema):
    notes = fields.String(
        load_default="",
        validate=validate.Length(max=record.MAX_NOTES),
        metadata=doc("What the site tried", "Called twice, no answer."),
    )


class VisitBookingSchema(VisitBookingSummarySchema):
    planned_visit_id = fields.Integer()
    visit_name = fields.String(metadata=doc("The planned visit's name", "Week 4 video visit"))
    patient_id = fields.Integer()
    site_id = fields.Integer()
    sequence = fields.Integer(
        metadata=doc("Bumped on every change, as the calendar invitation carries it")
    )
    started_at = UtcDateTime(allow_none=True)
    ended_at = UtcDateTime(allow_none=True)
    location_type = fields.String(allow_none=True)
    notes = fields.String(
        allow_none=True,
        metadata=doc("The visit notes: the site's staff only (null for other callers)"),
    )


class JoinLinkSchema(Schema):
    url = fields.String(metadata=doc("The video room's link", "https://meet.jit.si/dct-..."))


# --- unscheduled visit requests ------------------------------------------------------------


class VisitRequestCreateSchema(Schema):
    category = fields.String(
        required=True,
        validate=validate.OneOf(list(unscheduled.CATEGORIES)),
        metadata=doc("What it is about: " + ", ".join(unscheduled.CATEGORIES), "side_effect"),
    )
    details = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=unscheduled.MAX_DETAILS),
        metadata=doc("In the patient's words", "Rash on my arm since yesterday"),
    )


class VisitRequestQuerySchema(Schema):
    status = fields.Enum(
        RequestStatus, by_value=True, metadata=doc("Only requests in this status", "open")
    )
    site_id = Id(from_text=True, metadata=doc("Only the queue of this site"))


class VisitRequestSchema(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    subject_number = fields.String(metadata=doc("The patient's subject number", "B1-001"))
    site_id = fields.Integer(metadata=doc("The site whose queue it is in"))
    category = fields.String(metadata=doc("side_effect or other"))
    details = fields.String(
        allow_none=True,
        metadata=doc("In the patient's words; the patient and the site read it, null for others"),
    )
    requested_at = UtcDateTime()
    status = fields.Enum(RequestStatus, by_value=True)
    planned_visit_id = fields.Integer(allow_none=True, metadata=doc("The visit planned for it"))
    handled_at = UtcDateTime(allow_none=True)


class PlanRequestSchema(Schema):
    first_day = fields.Date(
        required=True, metadata=doc("First day of the window, on the patient's calendar")
    )
    last_day = fields.Date(required=True, metadata=doc("Last day (up to 60 days after the first)"))
    duration_minutes = fields.Integer(
        load_default=30,
        validate=validate.Range(5, 480, error="A visit lasts from 5 to 480 minutes."),
    )
    modalities = fields.List(
        fields.String(validate=validate.OneOf(MODALITIES)),
        load_default=lambda: [Modality.TELEHEALTH.value],
        validate=validate.Length(min=1, max=len(MODALITIES)),
        metadata=doc("How it may be done", ["telehealth"]),
    )
    staff_role = RoleName(
        load_default=Role.INVESTIGATOR.value, metadata=doc("Who runs it", "investigator")
    )


# --- the protocol schedule -----------------------------------------------------------------


class DefinitionQuerySchema(Schema):
    trial_id = Id(from_text=True, metadata=doc("Only this trial's schedule"))


class VisitDefinitionCreateSchema(Schema):
    trial_id = Id(required=True)
    code = fields.String(
        required=True, validate=validate.Length(min=1, max=20), metadata=doc("Short code", "W4")
    )
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=120),
        metadata=doc("Name", "Week 4 video visit"),
    )
    target_day = fields.Integer(
        required=True,
        validate=validate.Range(1, 10_000, error="Study days run from day 1 (the baseline)."),
        metadata=doc("Study day it aims at; day 1 is the baseline date", 29),
    )
    window_before_days = fields.Integer(
        load_default=0,
        validate=validate.Range(0, 365, error="From 0 to 365 days."),
        metadata=doc("How many days early it may be done", 3),
    )
    window_after_days = fields.Integer(
        load_default=0,
        validate=validate.Range(0, 365, error="From 0 to 365 days."),
        metadata=doc("How many days late it may be done", 3),
    )
    modalities = fields.List(
        fields.String(validate=validate.OneOf(MODALITIES)),
        required=True,
        validate=validate.Length(min=1, max=len(MODALITIES)),
        metadata=doc("How it may be done", ["telehealth", "home_nurse"]),
    )
    duration_minutes = fields.Integer(
        required=True,
        validate=validate.Range(5, 480, error="A visit lasts from 5 to 480 minutes."),
        metadata=doc("How long", 30),
    )
    staff_role = RoleName(required=True, metadata=doc("Who runs it", "investigator"))


class VisitDefinitionSchema(Schema):
    id = fields.Integer()
    trial_id = fields.Integer()
    code = fields.String()
    name = fields.String()
    target_day = fields.Integer()
    window_before_days = fields.Integer()
    window_after_days = fields.Integer()
    modalities = fields.List(fields.String())
    duration_minutes = fields.Integer()
    staff_role = fields.String()
    active = fields.Boolean()


# --- staff availability --------------------------------------------------------------------

CLOCK = validate.Length(max=10)


class AvailabilityQuerySchema(Schema):
    site_id = Id(from_text=True, metadata=doc("Only at this site"))
    user_id = Id(from_text=True, metadata=doc("Only this staff member's"))


class WeeklyHoursCreateSchema(Schema):
    user_id = Id(required=True, metadata=doc("A member of the site"))
    site_id = Id(required=True)
    weekday = fields.Integer(
        required=True,
        validate=validate.Range(0, 6, error="The weekday is 0 (Monday) to 6 (Sunday)."),
        metadata=doc("0 Monday .. 6 Sunday", 0),
    )
    start_time = fields.String(
        required=True, validate=CLOCK, metadata=doc("Local time of the site, HH:MM", "09:00")
    )
    end_time = fields.String(
        required=True,
        validate=CLOCK,
        metadata=doc("HH:MM, or 24:00; at or before the start: the next day", "17:00"),
    )


class WeeklyHoursSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    staff_name = fields.String()
    site_id = fields.Integer()
    weekday = fields.Integer(metadata=doc("0 Monday .. 6 Sunday"))
    start_time = fields.String(metadata=doc("Local time of the site", "09:00"))
    end_time = fields.String(metadata=doc("Local time of the site", "17:00"))


class ExceptionQuerySchema(AvailabilityQuerySchema):
    since = fields.Date(metadata=doc("Only on or after this date", "2026-03-01"))


class AvailabilityExceptionCreateSchema(Schema):
    user_id = Id(required=True, metadata=doc("A member of the site"))
    site_id = Id(required=True)
    day = fields.Date(required=True, metadata=doc("A local date of the site", "2026-03-12"))
    available = fields.Boolean(
        required=True,
        metadata=doc("false: off (the whole day without times); true: extra hours", False),
    )
    start_time = fields.String(
        load_default=None, allow_none=True, validate=CLOCK, metadata=doc("HH:MM", "13:00")
    )
    end_time = fields.String(
        load_default=None, allow_none=True, validate=CLOCK, metadata=doc("HH:MM", "17:00")
    )
    note = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=availability.MAX_NOTE),
        metadata=doc("Why", "Training"),
    )


class AvailabilityExceptionSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    staff_name = fields.String()
    site_id = fields.Integer()
    day = fields.Date()
    available = fields.Boolean()
    start_time = fields.String(allow_none=True)
    end_time = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class HolidayQuerySchema(Schema):
    site_id = Id(from_text=True, metadata=doc("Only this site's"))
    since = fields.Date(metadata=doc("Only on or after this date", "2026-01-01"))


class HolidayCreateSchema(Schema):
    site_id = Id(required=True)
    day = fields.Date(required=True, metadata=doc("A local date of the site", "2026-05-01"))
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=availability.MAX_HOLIDAY_NAME),
        metadata=doc("Its name", "Labour Day"),
    )


class HolidaySchema(Schema):
    id = fields.Integer()
    site_id = fields.Integer()
    day = fields.Date()
    name = fields.String()
