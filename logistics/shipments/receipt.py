"""The patient confirms receipt of a delivery, kit by kit, and reports problems.

A kit counts as dispensed only when the patient says it arrived intact: `KitStatus.DISPENSED`.
A kit the patient says arrived damaged becomes `DAMAGED` (the site asks for it back); a kit
said to be missing keeps its status (`DELIVERED`) and stays on the patient's account, where
`accountability` lists it as a discrepancy until it turns up in a return.

Receipt is confirmed once. A second confirmation is refused (409, `Conflict`) with a message
saying when it was confirmed, rather than quietly ignored: a patient who changed their mind
about a kit must tell the site, which then reports it as a problem; silently overwriting
what was said of a kit would rewrite its accountability.

Kits in quarantine (a temperature excursion on the way) cannot be confirmed at all: the
patient must not use them until the supply manager has decided, and the site contacts them.

Messages are lazily translated: the patient reads them in the portal in their language.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from dct_platform import audit, policy
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.locking import lock_for_update
from dct_platform.models import User
from logistics.shipments.models import KitCondition, Shipment, ShipmentKind
from logistics.shipments.policy import RECEIVE
from logistics.shipments.states import ShipmentStatus
from logistics.supply.models import KitStatus

# What a patient may say of a kit in a delivery ("used" is for returns).
PATIENT_CONDITIONS = (KitCondition.RECEIVED, KitCondition.DAMAGED, KitCondition.MISSING)
MAX_PROBLEM = 500  # one report
MAX_PROBLEMS = 1000  # Shipment.problem_report
MAX_NOTE = 500  # ShipmentKit.condition_note

QUARANTINE_MESSAGE = _l(
    "Do not use the kits in this delivery. They may have become too warm or too cold on the "
    "way. Keep them in their box; your study site will contact you about what to do."
)


def has_quarantined_kits(shipment: Shipment) -> bool:
    return any(sk.kit.status is KitStatus.QUARANTINED for sk in shipment.kits)


def confirm_receipt(
    session: Session,
    actor: User,
    now: datetime,
    shipment: Shipment,
    *,
    kits: dict[int, KitCondition] | None = None,
    note: str | None = None,
) -> Shipment:
    """The patient's word on a delivered delivery: `kits` maps kit ids to what arrived
    (kits not named arrived intact; `None`: all of them). Raises `Forbidden` for anyone
    but the shipment's patient, `Conflict` before delivery, after a confirmation or when a
    kit is in quarantine, `ValidationFailed` for a kit not in the delivery."""
    policy.authorize(actor, RECEIVE, shipment, now=now)
    # A second tap (or a second person) waits here and finds the first one's answer.
    lock_for_update(session, shipment)
    if shipment.kind is not ShipmentKind.DELIVERY:
        raise Conflict(_l("Only a delivery to your home can be confirmed."))
    if shipment.received_at is not None:
        raise Conflict(
            _l(
                "You already confirmed this delivery. If something is wrong, please report a "
                "problem or call your study site."
            )
        )
    if shipment.status is not ShipmentStatus.DELIVERED:
        raise Conflict(
            _l("This delivery has not arrived yet. You can confirm it once it is delivered.")
        )
    if has_quarantined_kits(shipment):
        raise Conflict(QUARANTINE_MESSAGE, {"quarantined": True})
    said = dict(kits or {})
    in_parcel = {sk.kit_id for sk in shipment.kits}
    errors: dict[str, list[str]] = {}
    for kit_id, condition in said.items():
        if kit_id not in in_parcel:
            errors[f"kit-{kit_id}"] = [_l("This kit is not part of this delivery.")]
        elif KitCondition(condition) not in PATIENT_CONDITIONS:
            errors[f"kit-{kit_id}"] = [_l("Choose received, damaged or missing.")]
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        errors["note"] = [_l("Please keep the note under %(n)d characters.", n=MAX_NOTE)]
    if errors:
        raise ValidationFailed(_l("Please check what you said about each kit."), {"fields": errors})
    with audit.acting(session, actor, now, what=f"Confirm receipt of shipment #{shipment.id}"):
        for sk in shipment.kits:
            condition = KitCondition(said.get(sk.kit_id, KitCondition.RECEIVED))
            sk.condition = condition
            sk.recorded_at = now
            sk.condition_note = note
            if condition is KitCondition.RECEIVED:
                sk.kit.status = KitStatus.DISPENSED
                sk.kit.updated_at = now
            elif condition is KitCondition.DAMAGED:
                sk.kit.status = KitStatus.DAMAGED
                sk.kit.updated_at = now
            # Missing: the kit stays delivered, on the patient's account, as a discrepancy.
        shipment.received_at = now
        shipment.received_by_id = actor.id
        shipment.updated_at = now
    return shipment


def report_problem(
    session: Session, actor: User, now: datetime, shipment: Shipment, *, text: str
) -> Shipment:
    """Damage or another problem with a shipment, in the patient's words, for the site and
    the supply manager. Reports add up, newest last; should they outgrow the column, the
    oldest give way there, and stay in full in the audit trail (nothing is lost)."""
    policy.authorize(actor, RECEIVE, shipment, now=now)
    text = " ".join(text.split())
    if not text:
        raise ValidationFailed.on_field("text", _l("Please tell us what the problem is."))
    if len(text) > MAX_PROBLEM:
        raise ValidationFailed.on_field(
            "text", _l("Please keep it under %(n)d characters.", n=MAX_PROBLEM)
        )
    entry = f"{now:%Y-%m-%d %H:%M} UTC: {text}"
    entries = [e for e in (shipment.problem_report or "").split("\n") if e] + [entry]
    while len("\n".join(entries)) > MAX_PROBLEMS:
        entries.pop(0)
    with audit.acting(session, actor, now, what=f"Report a problem with shipment #{shipment.id}"):
        shipment.problem_report = "\n".join(entries)
        shipment.updated_at = now
    return shipment
