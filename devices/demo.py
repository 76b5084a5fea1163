"""The devices' part of the demo (`make demo`, `dct seed-demo`): wristbands worn by a third
of the demo's patients, a week of their readings, and the file a simulator streams from.

The seeder registers the model "Acme Pulse Band" (heart rate, steps), issues a unit to every
third demo patient (by subject number) from their enrolment or 14 days ago, whichever is
later, gives each a credential, and backfills about seven days of readings through the
real write path (`ingestion.ingest`, as the API stores them): heart rate every 5-15
minutes with a day and night pattern, steps per quarter hour while the patient is up in
their own zone, hours off the wrist (charging, a shower), uploads a few hours apart and,
now and then, a day's worth arriving late. Three units tell a story the device-health job
picks up as soon as the demo starts: one went silent two days ago, one is low on battery,
one has a clock running behind.

`instance/demo-devices.json` lists `{serial, model, subject_number, token}` per unit
(mode 0600, like the logins). Running the seed again keeps the units, keeps the tokens of
the file that still work (a fresh credential otherwise, revoking the old) and backfills
only units without any data. `scripts/simulate-devices.py` streams from the file; the
patterns below (`Wearer`, `BEHAVIOURS`) are shared with it, so live data looks like the
history.
"""

from __future__ import annotations

import bisect
import enum
import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import demo as core_demo
from dct_platform.models import Patient
from devices import ingestion, registry
from devices.models import DeviceBatch, DeviceKind, DeviceModel, DeviceUnit

SYSTEM = core_demo.SYSTEM
MANUFACTURER, MODEL_NAME = "Acme", "Pulse Band"
MODEL = f"{MANUFACTURER} {MODEL_NAME}"
MODEL_METRICS = ("heart_rate", "step_count")
FIRMWARE, APP_VERSION = "4.2.1", "2.8.0"
FILE_NAME = "demo-devices.json"
# Units are issued at the patient's enrolment or this long ago, whichever is later.
ISSUED_BEFORE = timedelta(days=14)
HISTORY = timedelta(days=7)
SILENT_SINCE = timedelta(days=2)
# Where a clock that drifts ends up after the week of history (and the simulator keeps it).
CLOCK_BEHIND_SECONDS = 260.0
LOW_BATTERY_PERCENT = 8
ISSUE_REASON = "Demo: wristband for remote monitoring"


class Behaviour(enum.StrEnum):
    NORMAL = "normal"
    SILENT = "silent"  # stopped sending two days ago: a "No data" alert
    LOW_BATTERY = "low_battery"  # not charged for days: a "Low battery" alert
    CLOCK_DRIFT = "clock_drift"  # its clock fell behind: a "Clock off" alert


# Patients still in the study, one per site.
BEHAVIOURS = {
    "DE-101-004": Behaviour.SILENT,
    "JP-301-003": Behaviour.LOW_BATTERY,
    "US-201-005": Behaviour.CLOCK_DRIFT,
}


def behaviour(subject_number: str) -> Behaviour:
    return BEHAVIOURS.get(subject_number, Behaviour.NORMAL)


def wearers(subject_numbers: Iterable[str]) -> list[str]:
    """Every third of the demo's patients, by subject number: who gets a wristband."""
    return sorted(subject_numbers)[::3]


def serial_number(index: int) -> str:
    return f"APB-24-{index + 1:04d}"


def demo_timezone(subject_number: str) -> str:
    """The zone a demo patient was enrolled in, from the subject number alone (what the
    simulator knows); the seed itself reads the patient's zone."""
    site, _, n = subject_number.rpartition("-")
    try:
        return core_demo.patient_timezone(site, int(n))
    except (StopIteration, ValueError):
        return "UTC"


def rng_for(*parts: object) -> random.Random:
    """A generator seeded from `parts`: the same patient always looks the same."""
    return random.Random("|".join(map(str, parts)))  # noqa: S311  (simulated data, not secrets)


@dataclass(frozen=True)
class Wearer:
    """How a patient's days look to a wristband: when they sleep, how their heart beats,
    how much they walk. All times are the patient's own local times."""

    zone: ZoneInfo
    resting: float  # resting heart rate, beats/min
    wake: float  # local hour of getting up
    sleep: float  # local hour of going to bed
    activity: float  # scales walking

    @classmethod
    def of(cls, subject_number: str, zone: str) -> Wearer:
        rng = rng_for("wearer", subject_number)
        return cls(
            zone=ZoneInfo(zone),
            resting=rng.uniform(58, 76),
            wake=rng.uniform(6.0, 8.0),
            sleep=rng.uniform(21.5, 23.5),
            activity=rng.uniform(0.6, 1.3),
        )

    def local_hour(self, at: datetime) -> float:
        local = at.astimezone(self.zone)
        return local.hour + local.minute / 60

    def awake(self, hour: float) -> bool:
        return self.wake <= hour < self.sleep

    def walk_chance(self, hour: float) -> float:
        """The chance that the patient is walking in a minute at this local hour."""
        if not self.awake(hour):
            return 0.0
        busy = 9 <= hour < 12 or 15 <= hour < 18
        return 0.035 * self.activity * (1.7 if busy else 1.0)

    def minute_steps(self, hour: float, rng: random.Random) -> float:
        """Steps in one minute at this local hour: a walk now and then, pottering about
        otherwise, none asleep."""
        if not self.awake(hour):
            return 0.0
        if rng.random() < self.walk_chance(hour):
            return rng.uniform(70, 100)
        return rng.uniform(0, 4) * self.activity

    def heart_rate(self, hour: float, walking: bool, rng: random.Random) -> int:
        if not self.awake(hour):
            # Lowest in the small hours, rising towards waking.
            into_night = (hour - self.sleep) % 24
            mean = self.resting - 7 + 3 * math.cos(math.pi * into_night / 8)
            spread = 2.0
        else:
            day = (hour - self.wake) / max(self.sleep - self.wake, 1)
            mean = self.resting + 6 + 5 * math.sin(math.pi * day)
            spread = 4.0
            if walking:
                mean += rng.uniform(18, 35)
        return round(min(170.0, max(42.0, rng.gauss(mean, spread))))


def _stamp(at: datetime, zone: ZoneInfo) -> str:
    """A time as the band writes it: local, with its offset, to the second."""
    return at.astimezone(zone).isoformat(timespec="seconds")


def heart_rate_reading(at: datetime, value: int, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "metric": "heart_rate",
        "value": value,
        "unit": "beats/min",
        "time": _stamp(at, zone),
        "id": f"hr-{int(at.timestamp())}",
    }


def steps_reading(start: datetime, end: datetime, steps: int, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "metric": "step_count",
        "value": steps,
        "unit": "steps",
        "start": _stamp(start, zone),
        "end": _stamp(end, zone),
        "id": f"st-{int(start.timestamp())}-{int(end.timestamp())}",
    }


# --- a week of history ----------------------------------------------------------------


@dataclass
class HistoryBatch:
    """One upload of the phone app: what the band recorded since the last one."""

    received_at: datetime
    readings: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)


def _local(day: date, hour: float, zone: ZoneInfo) -> datetime:
    minutes = round(hour * 60)
    clock = time(min(minutes // 60, 23), minutes % 60)
    return datetime.combine(day, clock, zone).astimezone(UTC)


def _off_wrist(
    wearer: Wearer, rng: random.Random, start: datetime, end: datetime, charge_until: datetime
) -> tuple[list[tuple[datetime, datetime]], list[datetime]]:
    """Periods the band is off the wrist (sorted) and the times it came off the charger:
    charging every third evening, a shower most days, now and then a morning it was
    forgotten on the bedside table."""
    gaps: list[tuple[datetime, datetime]] = []
    charged: list[datetime] = []
    first = start.astimezone(wearer.zone).date()
    days = (end - start).days + 2
    charge_day = rng.randrange(3)
    for i in range(days):
        day = first + timedelta(days=i)
        if i % 3 == charge_day:
            off = _local(day, rng.uniform(18.5, 20.5), wearer.zone)
            on = off + timedelta(minutes=rng.uniform(75, 120))
            if on <= charge_until:
                gaps.append((off, on))
                charged.append(on)
        if rng.random() < 0.7:
            off = _local(day, rng.uniform(wearer.wake, wearer.wake + 2), wearer.zone)
            gaps.append((off, off + timedelta(minutes=rng.uniform(25, 70))))
        if rng.random() < 0.3:
            off = _local(day, rng.uniform(wearer.wake + 2, wearer.sleep - 5), wearer.zone)
            gaps.append((off, off + timedelta(hours=rng.uniform(2, 4))))
    gaps.sort()
    return gaps, charged


def _recorded(
    wearer: Wearer,
    rng: random.Random,
    start: datetime,
    end: datetime,
    gaps: list[tuple[datetime, datetime]],
) -> list[tuple[datetime, datetime | None, int]]:
    """What the band measured in [start, end): (time or interval start, interval end,
    value), minute by minute, heart rate every 5-15 minutes and steps per quarter hour."""
    gap_starts = [g[0] for g in gaps]

    def worn(at: datetime) -> bool:
        i = bisect.bisect_right(gap_starts, at) - 1
        return i < 0 or at >= gaps[i][1]

    out: list[tuple[datetime, datetime | None, int]] = []
    # Quarter hours fall on the same instants in UTC for every zone of the demo.
    t = start.replace(second=0, microsecond=0)
    t += timedelta(minutes=(-t.minute) % 15)
    next_heart = t + timedelta(minutes=rng.uniform(0, 10))
    quarter_steps, quarter_worn = 0.0, False
    # The zone's offset, looked up again on every hour (when daylight saving changes).
    offset = t.astimezone(wearer.zone).utcoffset() or timedelta(0)
    while t < end:
        if t.minute == 0:
            offset = t.astimezone(wearer.zone).utcoffset() or timedelta(0)
        local = t + offset
        hour = local.hour + local.minute / 60
        on = worn(t)
        walking = False
        if on:
            steps = wearer.minute_steps(hour, rng)
            walking = steps > 40
            quarter_steps += steps
            quarter_worn = quarter_worn or wearer.awake(hour)
        if t >= next_heart:
            moment = next_heart.replace(microsecond=0)
            if on:
                out.append((moment, None, wearer.heart_rate(hour, walking, rng)))
            # Every 5-15 minutes; at rest in the night the band samples less often.
            next_heart += timedelta(minutes=rng.uniform(5 if wearer.awake(hour) else 10, 15))
        t += timedelta(minutes=1)
        if t.minute % 15 == 0:
            if quarter_worn and t <= end:
                out.append((t - timedelta(minutes=15), t, round(quarter_steps)))
            quarter_steps, quarter_worn = 0.0, False
    out.sort(key=lambda r: r[1] or r[0])
    return out


def history(
    subject_number: str,
    zone: str,
    start: datetime,
    now: datetime,
    kind: Behaviour,
) -> list[HistoryBatch]:
    """The uploads a band worn from `start` made until `now` (a silent one stops two days
    before), readings and status included."""
    wearer = Wearer.of(subject_number, zone)
    rng = rng_for("history", subject_number)
    end = (
        now - SILENT_SINCE - timedelta(hours=rng.uniform(0, 3)) if kind is Behaviour.SILENT else now
    )
    end -= timedelta(minutes=rng.uniform(2, 20))  # the last upload was a few minutes ago
    # A band left uncharged for days ends the week nearly flat.
    charge_until = now - timedelta(days=3.6) if kind is Behaviour.LOW_BATTERY else now
    gaps, charged = _off_wrist(wearer, rng, start, end, charge_until)
    recorded = _recorded(wearer, rng, start, end, gaps)

    # Uploads a few hours apart (the phone app syncs in the background); once in a while
    # the phone is away for more than a day and the next upload brings it all, late.
    uploads: list[datetime] = []
    at = start + timedelta(hours=rng.uniform(1, 4))
    away: tuple[datetime, datetime] | None = None
    if kind is Behaviour.NORMAL and rng.random() < 0.5:
        leaves = start + (end - start) * rng.uniform(0.2, 0.6)
        away = (leaves, leaves + timedelta(hours=rng.uniform(26, 32)))
    while at < end:
        if away is None or not away[0] <= at < away[1]:
            uploads.append(at)
        at += timedelta(hours=rng.uniform(5, 10))
    uploads.append(end)

    # Charged last some hours before the history starts.
    charges = [start - timedelta(hours=rng.uniform(10, 40)), *(c for c in charged if c > start)]
    last_charge = charges[-1]
    # The low one drains from its last charge to LOW_BATTERY_PERCENT at the last upload.
    hours_on_last_charge = max((end - last_charge).total_seconds() / 3600, 1.0)
    low_drain = (100 - LOW_BATTERY_PERCENT) / hours_on_last_charge
    normal_drain = rng.uniform(0.9, 1.15)

    def battery(at: datetime) -> int:
        since = charges[bisect.bisect_right(charges, at) - 1] if at >= charges[0] else charges[0]
        hours = (at - since).total_seconds() / 3600
        if kind is Behaviour.LOW_BATTERY and since == last_charge:
            return max(1, round(100 - low_drain * hours))
        return max(21, round(100 - normal_drain * hours))

    def clock_offset(at: datetime) -> timedelta:
        if kind is Behaviour.CLOCK_DRIFT:
            seconds = CLOCK_BEHIND_SECONDS * (at - start) / (now - start)
            return -timedelta(seconds=round(seconds))
        return timedelta(0)

    batches = [HistoryBatch(u + timedelta(seconds=rng.uniform(1, 40))) for u in uploads]
    ends = uploads
    for moment, until, value in recorded:
        i = bisect.bisect_left(ends, until or moment)
        if i == len(ends):
            continue
        stamped = moment + clock_offset(moment)
        batches[i].readings.append(
            steps_reading(stamped, until + clock_offset(moment), value, wearer.zone)
            if until is not None
            else heart_rate_reading(stamped, value, wearer.zone)
        )
    batches = [b for b in batches if b.readings]
    for n, batch in enumerate(batches):
        signal = rng.choices(("good", "fair", "poor"), (80, 17, 3))[0]
        # A poor signal now and then, but not in the latest report: no alert for that.
        if n == len(batches) - 1 and signal == "poor":
            signal = "fair"
        batch.status = {
            "battery_percent": battery(batch.received_at),
            "signal": signal,
            "device_time": (batch.received_at + clock_offset(batch.received_at)).isoformat(),
        }
    return batches


def _backfill(
    session: Session,
    unit: DeviceUnit,
    token_id: int,
    patient: Patient,
    since: datetime,
    now: datetime,
    settings: ingestion.IngestSettings,
) -> None:
    start = max(since, now - HISTORY) + timedelta(minutes=5)
    batches = history(
        patient.subject_number, patient.timezone, start, now, behaviour(patient.subject_number)
    )
    for n, batch in enumerate(batches):
        if n in (0, len(batches) - 1):  # first and last seen
            registry.report_versions(session, unit, batch.received_at, FIRMWARE, APP_VERSION)
        body = {
            "readings": batch.readings,
            "firmware_version": FIRMWARE,
            "app_version": APP_VERSION,
            "status": batch.status,
        }
        ingestion.ingest(
            session,
            unit,
            token_id,
            json.dumps(body).encode(),
            list(batch.readings),
            batch.received_at,
            settings=settings,
            status=ingestion.UnitStatus(
                battery_percent=batch.status["battery_percent"],
                signal=batch.status["signal"],
                device_time=datetime.fromisoformat(batch.status["device_time"]),
            ),
        )


# --- the seeder -----------------------------------------------------------------------


def _model(session: Session, now: datetime) -> DeviceModel:
    model = session.scalar(
        select(DeviceModel).where(
            DeviceModel.manufacturer == MANUFACTURER, DeviceModel.model_name == MODEL_NAME
        )
    )
    if model is None:
        model = registry.register_model(
            session,
            None,
            now - ISSUED_BEFORE - timedelta(days=1),
            manufacturer=MANUFACTURER,
            model_name=MODEL_NAME,
            kind=DeviceKind.WEARABLE,
            metrics=MODEL_METRICS,
            min_firmware="4.0.0",
            system=SYSTEM,
        )
    return model


def _tokens_in(path: Path) -> dict[str, str]:
    """serial -> token of an earlier run's file, if it is there and readable."""
    try:
        rows = json.loads(path.read_text())
        return {row["serial"]: row["token"] for row in rows if isinstance(row["token"], str)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def seed(
    session: Session,
    now: datetime,
    seeded: core_demo.Seeded,
    settings: ingestion.IngestSettings,
) -> list[dict[str, str]]:
    """Provision the demo's wristbands (see the module's docstring); the rows of the file."""
    model = _model(session, now)
    path = seeded.instance_path / FILE_NAME
    known = _tokens_in(path)
    patients = {p.subject_number: p for p in seeded.patients}
    rows: list[dict[str, str]] = []
    for index, subject in enumerate(wearers(patients)):
        patient = patients[subject]
        serial = serial_number(index)
        unit = session.scalar(
            select(DeviceUnit).where(
                DeviceUnit.model_id == model.id, DeviceUnit.serial_number == serial
            )
        )
        provision_at = now
        if unit is None:
            issued = max(patient.created_at, now - ISSUED_BEFORE)
            unit = registry.register_unit(session, None, issued, model, serial, system=SYSTEM)
            registry.issue_to_patient(
                session, None, issued, unit, patient, ISSUE_REASON, system=SYSTEM
            )
            # Set up before its first upload of the history.
            provision_at = max(issued, now - HISTORY)
        elif unit.retired_at is not None:
            continue  # taken out of the study by hand: leave it so
        held = registry.current_assignment(session, unit)
        if held is None:  # taken back by hand: the demo hands it out again
            held = registry.issue_to_patient(
                session, None, now, unit, patient, ISSUE_REASON, system=SYSTEM
            )
        elif held.patient_id != patient.id:
            continue  # given to someone else by hand
        token = known.get(serial)
        credential = registry.credential(session, token) if token else None
        if token is None or credential is None or credential.unit_id != unit.id:
            token = registry.provision_token(session, None, provision_at, unit, system=SYSTEM)
            credential = registry.credential(session, token)
            assert credential is not None  # provisioned just now
        has_data = session.scalar(select(DeviceBatch.id).where(DeviceBatch.unit_id == unit.id))
        if has_data is None:
            _backfill(session, unit, credential.id, patient, held.valid_from, now, settings)
        rows.append({"serial": serial, "model": MODEL, "subject_number": subject, "token": token})
    seeded.write_after_commit(
        FILE_NAME,
        rows,
        f"Demo devices: {len(rows)} {MODEL} wristbands, with their credentials in {path}.\n"
        "  Stream live readings from them: .venv/bin/python scripts/simulate-devices.py",
    )
    return rows


def _settings(app: Flask) -> ingestion.IngestSettings:
    config = app.config
    return ingestion.IngestSettings(
        future_tolerance=timedelta(seconds=config["DEVICE_FUTURE_TOLERANCE_SECONDS"]),
        late_after=timedelta(seconds=config["DEVICE_LATE_AFTER_SECONDS"]),
        clock_drift=timedelta(seconds=config["DEVICE_CLOCK_DRIFT_SECONDS"]),
    )


def init_app(app: Flask) -> None:
    def seed_devices(session: Session, now: datetime, seeded: core_demo.Seeded) -> None:
        seed(session, now, seeded, _settings(app))

    core_demo.register_demo_seeder(app, "devices", seed_devices)
