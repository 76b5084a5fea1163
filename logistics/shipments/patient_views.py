"""The patient's deliveries in the portal: where the next one is (in plain words, with the
expected day in the patient's own zone and the courier's timeline), confirming what
arrived kit by kit, and reporting a problem.

These pages live here rather than in `patient_portal`, which a back-office package may not
import; they extend the same base template and wear the same classes, and the nav item is
added for the patient role. Kits are shown by number only, never by arm.

Every change goes through `receipt`, which checks that the patient acts on their own
delivery; a delivery that is not theirs is not found (404), whoever asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from babel.dates import format_date, format_time
from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from dct_platform import policy
from dct_platform.errors import DomainError, NotFound
from dct_platform.extensions import db
from dct_platform.i18n import current_language
from dct_platform.models import Patient
from dct_platform.navigation import add_nav_item
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from dct_platform.timeutil import zone as timezone
from dct_platform.web.guards import roles_required
from logistics.shipments import excursions, receipt
from logistics.shipments.models import (
    KitCondition,
    MessageOutcome,
    Shipment,
    ShipmentKind,
    ShipmentKit,
    TrackingEvent,
)
from logistics.shipments.states import FINISHED, ShipmentStatus

bp = Blueprint(
    "patient_shipments", __name__, url_prefix="/portal/deliveries", template_folder="../templates"
)

S = ShipmentStatus
# What each status means to a patient waiting at home.
PLAIN: dict[ShipmentStatus, object] = {
    S.REQUESTED: _l("Your site has ordered it"),
    S.CANCELLED: _l("Cancelled"),
    S.CREATED: _l("Being packed"),
    S.BOOKED: _l("Packed, waiting for the courier"),
    S.PICKED_UP: _l("On its way"),
    S.IN_TRANSIT: _l("On its way"),
    S.OUT_FOR_DELIVERY: _l("Arriving today"),
    S.DELIVERED: _l("Delivered"),
    S.FAILED_ATTEMPT: _l("The courier missed you and will try again"),
    S.RETURNED_TO_SENDER: _l("Could not be delivered. Your site will contact you."),
    S.LOST: _l("Lost on the way. Your site will contact you."),
}
RETURN_PLAIN: dict[ShipmentStatus, object] = {
    S.CREATED: _l("The courier will come to collect it"),
    S.BOOKED: _l("The courier will come to collect it"),
    S.PICKED_UP: _l("Collected, on its way back"),
    S.IN_TRANSIT: _l("Collected, on its way back"),
    S.OUT_FOR_DELIVERY: _l("Collected, on its way back"),
    S.DELIVERED: _l("Back at the depot"),
}
CONDITIONS = {
    KitCondition.RECEIVED: _l("I have it, it is fine"),
    KitCondition.DAMAGED: _l("It arrived damaged"),
    KitCondition.MISSING: _l("It was not in the box"),
}
SAID = {
    KitCondition.RECEIVED: _l("Received"),
    KitCondition.DAMAGED: _l("Damaged"),
    KitCondition.MISSING: _l("Missing"),
    KitCondition.USED: _l("Used"),
}


@dataclass
class Step:
    status: str
    when: str
    where: str | None


@dataclass
class DeliveryRow:
    id: int
    title: str
    status: str
    expected: str | None
    delivered: str | None
    kits: list[tuple[int, str, str | None]]  # kit id, number, what the patient said
    quarantined: bool
    can_confirm: bool
    confirmed: bool
    is_return: bool
    finished: bool
    timeline: list[Step] = field(default_factory=list)


def _me() -> Patient:
    patient = db.session.scalar(select(Patient).where(policy.visible(current_user, Patient)))
    if patient is None:
        raise NotFound(
            _l("Your account is not linked to a study record yet. Please call your study site.")
        )
    return patient


def _day(instant: datetime, zone: str) -> str:
    return str(format_date(instant.astimezone(timezone(zone)), "full", locale=current_language()))


def _when(instant: datetime, zone: str) -> str:
    local = instant.astimezone(timezone(zone))
    clock = format_time(local, "short", locale=current_language())
    day = format_date(local, "medium", locale=current_language())
    return str(_("%(day)s, %(time)s", day=day, time=clock))


_KNOWN = frozenset(s.value for s in ShipmentStatus)


def _plain_status(status: ShipmentStatus, is_return: bool) -> str:
    if is_return:
        return str(RETURN_PLAIN.get(status, PLAIN[status]))
    return str(PLAIN[status])


def _plain(shipment: Shipment) -> str:
    return _plain_status(shipment.status, shipment.kind is ShipmentKind.RETURN)


def _row(
    shipment: Shipment, patient: Patient, timeline: Sequence[TrackingEvent] = ()
) -> DeliveryRow:
    zone = patient.timezone
    is_return = shipment.kind is ShipmentKind.RETURN
    quarantined = receipt.has_quarantined_kits(shipment)
    kits = [
        (sk.kit_id, sk.kit.kit_number, str(SAID[sk.condition]) if sk.condition else None)
        for sk in shipment.kits
    ]
    expected = None
    if shipment.expected_delivery_at and shipment.status not in FINISHED:
        expected = _day(shipment.expected_delivery_at, zone)
    return DeliveryRow(
        id=shipment.id,
        title=str(_("Return of kits") if is_return else _("Delivery of your study medicine")),
        status=_plain(shipment),
        expected=expected,
        delivered=_when(shipment.delivered_at, zone) if shipment.delivered_at else None,
        kits=kits,
        quarantined=quarantined,
        can_confirm=(
            not is_return
            and shipment.status is ShipmentStatus.DELIVERED
            and shipment.received_at is None
            and not quarantined
        ),
        confirmed=shipment.received_at is not None,
        is_return=is_return,
        finished=shipment.status in FINISHED,
        timeline=[
            Step(
                _plain_status(ShipmentStatus(e.status), is_return),
                _when(e.occurred_at, zone),
                e.location,
            )
            for e in timeline
            if e.status in _KNOWN
        ],
    )


def _mine(patient: Patient) -> list[Shipment]:
    return list(
        db.session.scalars(
            select(Shipment)
            .where(
                Shipment.patient_id == patient.id,
                policy.visible(current_user, Shipment),
                Shipment.status != ShipmentStatus.CANCELLED,
            )
            .options(selectinload(Shipment.kits).selectinload(ShipmentKit.kit))
            .order_by(Shipment.requested_at.desc(), Shipment.id.desc())
        )
    )


def _shipment(shipment_id: int) -> Shipment:
    found = db.session.scalar(
        select(Shipment).where(Shipment.id == shipment_id, policy.visible(current_user, Shipment))
    )
    if found is None:
        raise NotFound(_l("We could not find this delivery."))
    return found


@bp.get("/")
@roles_required(Role.PATIENT)
def index() -> str:
    patient = _me()
    rows = [_row(s, patient) for s in _mine(patient)]
    waiting = [r for r in rows if not r.is_return and (not r.finished or r.can_confirm)]
    # The next delivery: the oldest still to come or to confirm.
    upcoming = waiting[-1] if waiting else None
    return render_template(
        "shipments/patient_deliveries.html",
        upcoming=upcoming,
        others=[r for r in rows if r is not upcoming],
        notices=excursions.quarantine_notice(db.session(), patient),
    )


def _detail(
    shipment: Shipment,
    *,
    errors: dict[str, list[str]] | None = None,
    problems: list[str] | None = None,
    chosen: dict[int, str] | None = None,
    problem_text: str = "",
    note: str = "",
    status: int = 200,
) -> tuple[str, int]:
    patient = _me()
    timeline = list(
        db.session.scalars(
            select(TrackingEvent)
            .where(
                TrackingEvent.shipment_id == shipment.id,
                TrackingEvent.outcome == MessageOutcome.APPLIED,
            )
            .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
        )
    )
    row = _row(shipment, patient, timeline)
    # The excursion's own words (rejected kits go back, replacements come), else ours.
    notice = next(
        (
            n.message
            for n in excursions.quarantine_notice(db.session(), patient)
            if n.shipment_id == shipment.id
        ),
        str(receipt.QUARANTINE_MESSAGE),
    )
    return render_template(
        "shipments/patient_delivery.html",
        row=row,
        conditions=CONDITIONS,
        errors=errors or {},
        problems=problems or [],
        chosen=chosen or {},
        problem_text=problem_text,
        note=note,
        quarantine_message=notice,
    ), status


@bp.get("/<int:shipment_id>")
@roles_required(Role.PATIENT)
def detail(shipment_id: int) -> tuple[str, int]:
    return _detail(_shipment(shipment_id))


@bp.post("/<int:shipment_id>/confirm")
@roles_required(Role.PATIENT)
def confirm(shipment_id: int) -> Response | tuple[str, int]:
    shipment = _shipment(shipment_id)
    said: dict[int, KitCondition] = {}
    chosen: dict[int, str] = {}
    errors: dict[str, list[str]] = {}
    # Only a delivery that may be confirmed is asked about kit by kit; otherwise the
    # service says why not (already confirmed, not arrived, quarantined).
    confirmable = _row(shipment, _me()).can_confirm
    for sk in shipment.kits if confirmable else ():
        raw = request.form.get(f"kit-{sk.kit_id}", "")
        chosen[sk.kit_id] = raw
        try:
            condition = KitCondition(raw)
        except ValueError:
            condition = None
        if condition not in CONDITIONS or condition is None:
            errors[f"kit-{sk.kit_id}"] = [
                _("Please say whether you have kit %(kit)s.", kit=sk.kit.kit_number)
            ]
        else:
            said[sk.kit_id] = condition
    note = request.form.get("note", "")
    if errors:
        return _detail(
            shipment, errors=errors, chosen=chosen, note=note, status=422,
            problems=[_("Please answer for each kit.")],
        )  # fmt: skip
    try:
        receipt.confirm_receipt(
            db.session(), current_user, utcnow(), shipment, kits=said, note=note
        )
    except DomainError as exc:
        db.session.rollback()
        fields = {k: [str(m) for m in v] for k, v in exc.details.get("fields", {}).items()}
        return _detail(
            _shipment(shipment_id), errors=fields, chosen=chosen, note=note,
            problems=[str(exc.message)], status=exc.status,
        )  # fmt: skip
    db.session.commit()
    flash(_("Thank you. We have noted what you received."), "success")
    return redirect(url_for("patient_shipments.detail", shipment_id=shipment_id))


@bp.post("/<int:shipment_id>/problem")
@roles_required(Role.PATIENT)
def problem(shipment_id: int) -> Response | tuple[str, int]:
    shipment = _shipment(shipment_id)
    text = request.form.get("text", "")
    try:
        receipt.report_problem(db.session(), current_user, utcnow(), shipment, text=text)
    except DomainError as exc:
        db.session.rollback()
        fields = {k: [str(m) for m in v] for k, v in exc.details.get("fields", {}).items()}
        return _detail(
            _shipment(shipment_id), errors=fields, problem_text=text,
            problems=[str(exc.message)], status=exc.status,
        )  # fmt: skip
    db.session.commit()
    flash(_("Thank you. Your study site and the supply team will see your message."), "success")
    return redirect(url_for("patient_shipments.detail", shipment_id=shipment_id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(app, [Role.PATIENT], _l("My deliveries"), "patient_shipments.index", order=40)
