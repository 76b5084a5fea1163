"""Stream wristband readings into a running demo, as the patients' phones would.

Start the demo with `make demo`, then in another terminal:

    .venv/bin/python scripts/simulate-devices.py

It reads the units and credentials the demo seed wrote (`instance/demo-devices.json`) and,
every few seconds, has each unit send what it just measured to
`POST /api/v1/devices/readings`: a heart rate and the steps since its last batch, following
the patient's day in their own time zone (asleep at night), with the unit's status
(battery slowly draining, signal, its own clock). Each batch carries an `Idempotency-Key`
and is retried with the same key when the demo does not answer or answers 5xx. Now and
then a unit comes off the wrist (a gap in its data) or its phone is out of reach and the
batches go later, minutes to hours old. One unit stays silent, one keeps a low battery
and one a clock running behind, so the device-health alerts stay up. A line per batch,
and a summary on Ctrl+C (or after --seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import requests

try:
    from devices.demo import (
        APP_VERSION,
        CLOCK_BEHIND_SECONDS,
        FILE_NAME,
        FIRMWARE,
        LOW_BATTERY_PERCENT,
        Behaviour,
        Wearer,
        behaviour,
        demo_timezone,
        heart_rate_reading,
        rng_for,
        steps_reading,
    )
except ImportError:  # pragma: no cover - run outside the project's environment
    sys.exit("Run it with the project's Python: .venv/bin/python scripts/simulate-devices.py")

ROOT = Path(__file__).resolve().parents[1]
ENDPOINT = "/api/v1/devices/readings"
ATTEMPTS = 5  # per batch, with growing pauses, before it waits for the next round
GIVE_UP_AFTER = 3  # batches in a row that got no answer at all: the demo is gone
# How often, on average per unit, in seconds (whatever --interval is):
GAP_EVERY = 15 * 60  # the band comes off the wrist for a while
AWAY_EVERY = 40 * 60  # the phone is out of reach: batches wait and go late
HOLD_EVERY = 20 * 60  # one batch is held back and goes some minutes late
LONG_HOLD_EVERY = 2 * 3600  # ... or hours late
DRAIN_PER_SECOND = 1 / 180  # battery: one percent every three minutes


class DemoGone(Exception):
    pass


@dataclass
class Batch:
    readings: list[dict[str, Any]]
    measured_at: datetime
    release_at: datetime
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    body: bytes | None = None  # fixed at the first attempt: a retry sends the same bytes


@dataclass
class Unit:
    serial: str
    subject: str
    token: str
    kind: Behaviour
    wearer: Wearer
    started: datetime

    def __post_init__(self) -> None:
        self.rng = rng_for("live", self.serial, self.started.isoformat())
        low = self.kind is Behaviour.LOW_BATTERY
        self.battery = float(LOW_BATTERY_PERCENT) if low else self.rng.uniform(45, 95)
        self.last_end: datetime | None = None
        self.minute: datetime | None = None
        self.step_rate = 0.0
        self.carry = 0.0
        self.off_until: datetime | None = None
        self.away_until: datetime | None = None
        self.held: list[Batch] = []
        self.refused = False

    @property
    def label(self) -> str:
        return f"{self.serial}  {self.subject:10}"

    def clock_offset(self, now: datetime) -> timedelta:
        if self.kind is Behaviour.CLOCK_DRIFT:
            # Behind, and falling further behind as it runs.
            lag = CLOCK_BEHIND_SECONDS + (now - self.started).total_seconds() / 600
            return -timedelta(seconds=round(lag))
        return timedelta(0)

    def measure(self, now: datetime) -> list[dict[str, Any]]:
        """What the band measured since its last batch: a heart rate now, and its steps."""
        if self.off_until is not None:
            if now < self.off_until:
                return []
            self.off_until, self.last_end = None, None  # back on: counting starts afresh
        hour = self.wearer.local_hour(now)
        minute = now.replace(second=0, microsecond=0)
        if minute != self.minute:
            self.minute, self.step_rate = minute, self.wearer.minute_steps(hour, self.rng)
        walking = self.step_rate > 40
        offset, zone = self.clock_offset(now), self.wearer.zone
        at = now.replace(microsecond=0)
        readings = [
            heart_rate_reading(at + offset, self.wearer.heart_rate(hour, walking, self.rng), zone)
        ]
        if self.last_end is not None and at > self.last_end and self.wearer.awake(hour):
            steps = self.step_rate * (at - self.last_end).total_seconds() / 60 + self.carry
            self.carry = steps - int(steps)
            readings.append(steps_reading(self.last_end + offset, at + offset, int(steps), zone))
        self.last_end = at
        return readings

    def status(self, now: datetime) -> dict[str, Any]:
        return {
            "battery_percent": max(1, min(100, round(self.battery))),
            "signal": self.rng.choices(("good", "fair"), (85, 15))[0],
            "device_time": (now + self.clock_offset(now)).isoformat(),
        }


@dataclass
class Totals:
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    late: int = 0
    gaps: int = 0
    retries: int = 0
    unanswered: int = 0  # no answer after every attempt: kept to send again
    refused: int = 0  # answered 4xx: dropped
    units: set[str] = field(default_factory=set)


def _now() -> datetime:
    return datetime.now(UTC)


def _ago(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Simulator:
    def __init__(self, url: str, units: list[Unit], interval: float) -> None:
        self.url, self.units, self.interval = url.rstrip("/"), units, interval
        self.http = requests.Session()
        self.totals = Totals()
        self.unanswered = 0

    def run(self, seconds: float | None) -> None:
        streaming = [u for u in self.units if u.kind is not Behaviour.SILENT]
        if not streaming:
            return
        start = time.monotonic()
        deadline = start + seconds if seconds is not None else None
        # Spread over the interval, so the demo gets a steady trickle rather than bursts.
        due = {
            u.serial: start + self.interval * i / len(streaming) for i, u in enumerate(streaming)
        }
        while streaming:
            unit = min(streaming, key=lambda u: due[u.serial])
            when = due[unit.serial]
            if deadline is not None and when > deadline:
                break
            time.sleep(max(0.0, when - time.monotonic()))
            self.tick(unit, _now())
            # Behind after a slow answer (or a laptop asleep): carry on from now, no burst.
            due[unit.serial] = max(when + self.interval, time.monotonic())
            streaming = [u for u in streaming if not u.refused]
        self.flush()

    def tick(self, unit: Unit, now: datetime) -> None:
        unit.battery -= DRAIN_PER_SECOND * self.interval
        if unit.kind is Behaviour.LOW_BATTERY:
            unit.battery = max(unit.battery, 3.0)  # nearly flat, never quite
        elif unit.battery < 25 and unit.off_until is None:
            unit.battery = 100.0  # charged (off the wrist meanwhile)
            self._gap(unit, now, "on its charger")
        rng = unit.rng
        if unit.off_until is None and self._happens(unit, GAP_EVERY):
            self._gap(unit, now, "off the wrist")
        if unit.away_until is None and self._happens(unit, AWAY_EVERY):
            unit.away_until = now + timedelta(seconds=rng.uniform(60, 240))
            print(
                f"{now:%H:%M:%S}  {unit.label}  phone out of reach for "
                f"{_ago(unit.away_until - now)}: its batches will arrive late"
            )
        readings = unit.measure(now)
        if readings:
            batch = Batch(readings, now, now)
            if unit.away_until is not None and now < unit.away_until:
                batch.release_at = unit.away_until
            elif self._happens(unit, HOLD_EVERY):
                batch.release_at = now + timedelta(seconds=rng.uniform(20, 180))
            elif self._happens(unit, LONG_HOLD_EVERY):  # for a demo left running
                batch.release_at = now + timedelta(seconds=rng.uniform(900, 7200))
            unit.held.append(batch)
        if unit.away_until is not None and now >= unit.away_until:
            unit.away_until = None
        for batch in [b for b in unit.held if b.release_at <= now]:
            if not self.send(unit, batch, now):
                break  # keep the order: the rest wait with it

    def _happens(self, unit: Unit, every: float) -> bool:
        """True about once every `every` seconds of this unit's streaming."""
        return unit.rng.random() < self.interval / every

    def _gap(self, unit: Unit, now: datetime, where: str) -> None:
        unit.off_until = now + timedelta(seconds=unit.rng.uniform(30, 240))
        self.totals.gaps += 1
        print(f"{now:%H:%M:%S}  {unit.label}  {where} for {_ago(unit.off_until - now)} (a gap)")

    def flush(self) -> None:
        """Send what is still held back: the phones came back in reach."""
        for unit in self.units:
            if unit.refused:
                continue
            for batch in list(unit.held):
                if not self.send(unit, batch, _now(), attempts=2):
                    break

    def send(self, unit: Unit, batch: Batch, now: datetime, attempts: int = ATTEMPTS) -> bool:
        """Post `batch`, retrying with the same key; False when it must wait (no answer)."""
        if batch.body is None:
            batch.body = json.dumps(
                {
                    "readings": batch.readings,
                    "firmware_version": FIRMWARE,
                    "app_version": APP_VERSION,
                    "status": unit.status(now),
                }
            ).encode()
        headers = {
            "Authorization": f"Bearer {unit.token}",
            "Content-Type": "application/json",
            "Idempotency-Key": batch.key,
        }
        response = None
        for attempt in range(attempts):
            try:
                response = self.http.post(
                    self.url + ENDPOINT, data=batch.body, headers=headers, timeout=15
                )
            except (requests.ConnectionError, requests.Timeout):
                problem = "no answer"
            else:
                if response.status_code < 500:
                    break
                problem = f"HTTP {response.status_code}"
            response = None
            if attempt + 1 < attempts:
                pause = 0.5 * 2**attempt
                self.totals.retries += 1
                print(
                    f"{_now():%H:%M:%S}  {unit.label}  {problem}; retrying in {pause:.1f} s "
                    "with the same Idempotency-Key"
                )
                time.sleep(pause)
        if response is None:
            self.totals.unanswered += 1
            self.unanswered += 1
            print(f"{_now():%H:%M:%S}  {unit.label}  no answer; the batch waits for the next round")
            if self.unanswered >= GIVE_UP_AFTER:
                raise DemoGone(self.url)
            return False
        self.unanswered = 0
        unit.held.remove(batch)
        self._report(unit, batch, response)
        return True

    def _report(self, unit: Unit, batch: Batch, response: requests.Response) -> None:
        sent = _now()
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code == 401:
            unit.refused = True
            print(
                f"{sent:%H:%M:%S}  {unit.label}  credential refused: run the demo seed again "
                "(`dct seed-demo`) for a file that works; this unit stops"
            )
            return
        if response.status_code != 200:
            message = answer.get("message", response.text[:200])
            print(f"{sent:%H:%M:%S}  {unit.label}  refused ({response.status_code}): {message}")
            self.totals.refused += 1
            return
        t = self.totals
        t.batches += 1
        t.units.add(unit.serial)
        rejected = answer.get("rejected", [])
        t.stored += answer.get("stored", 0)
        t.duplicates += answer.get("duplicates", 0)
        t.rejected += len(rejected)
        line = (
            f"{sent:%H:%M:%S}  {unit.label}  stored {answer.get('stored', 0)}, "
            f"duplicates {answer.get('duplicates', 0)}, rejected {len(rejected)}"
        )
        if sent - batch.measured_at > timedelta(seconds=15):
            t.late += 1
            line += f"  (sent late: measured {_ago(sent - batch.measured_at)} ago)"
        if answer.get("clock_drift"):
            line += f"  (clock off by {answer.get('clock_offset_seconds', 0):.0f} s)"
        print(line)
        for item in rejected[:3]:
            print(f"    reading {item.get('index')}: {item.get('reason')}")

    def summary(self, elapsed: float) -> str:
        t = self.totals
        silent = [u.serial for u in self.units if u.kind is Behaviour.SILENT]
        held = sum(len(u.held) for u in self.units)
        lines = [
            f"Sent {t.batches} batches from {len(t.units)} devices in {elapsed:.0f} s: "
            f"{t.stored} readings stored, {t.duplicates} duplicates, {t.rejected} rejected.",
            f"Sent late: {t.late}; gaps: {t.gaps}; retries: {t.retries}; "
            f"unanswered: {t.unanswered}; refused: {t.refused}.",
        ]
        if silent:
            lines.append(f"Kept silent: {', '.join(silent)}.")
        if held:
            lines.append(f"Held back and not sent: {held} batches.")
        return "\n".join(lines)


def _default_file() -> Path:
    instance = os.environ.get("DCT_INSTANCE_PATH")
    return (Path(instance) if instance else ROOT / "instance") / FILE_NAME


def _load(path: Path, started: datetime) -> list[Unit]:
    if not path.exists():
        raise SystemExit(
            f"No device list at {path}.\n"
            "Run `make demo` first (its seed writes the file), or point --file at it."
        )
    try:
        rows = json.loads(path.read_text())
        units = [
            Unit(
                serial=str(row["serial"]),
                subject=str(row["subject_number"]),
                token=str(row["token"]),
                kind=behaviour(str(row["subject_number"])),
                wearer=Wearer.of(row["subject_number"], demo_timezone(row["subject_number"])),
                started=started,
            )
            for row in rows
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(
            f"{path} is not the device list the demo seed writes ({exc.__class__.__name__}: "
            f"{exc}). Run `make demo` again to rewrite it."
        ) from None
    if not units:
        raise SystemExit(f"{path} lists no devices. Run `make demo` again to provision them.")
    return units


def _check_demo(url: str) -> None:
    try:
        answer = requests.get(url.rstrip("/") + "/healthz", timeout=5)
    except (requests.ConnectionError, requests.Timeout):
        raise SystemExit(
            f"Nothing answers at {url}.\n"
            "Start the demo first (`make demo` in another terminal), or give its address "
            "with --url."
        ) from None
    if answer.status_code != 200:
        raise SystemExit(f"{url}/healthz answered {answer.status_code}: is the demo running there?")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    port = os.environ.get("PORT", "5000")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--file",
        type=Path,
        default=_default_file(),
        help="the devices the demo seed provisioned (default: instance/demo-devices.json)",
    )
    parser.add_argument(
        "--url",
        default=f"http://127.0.0.1:{port}",
        help="the running demo (default: http://127.0.0.1:$PORT, 5000 unless PORT is set)",
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between a unit's batches (5)"
    )
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be above 0")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    started = _now()
    units = _load(args.file, started)
    _check_demo(args.url)
    simulator = Simulator(args.url, units, args.interval)
    print(
        f"Streaming from {len(units)} devices to {args.url} every {args.interval:g} s "
        f"({args.file}). Ctrl+C stops."
    )
    for unit in units:
        if unit.kind is Behaviour.SILENT:
            print(f"  {unit.label}  stays silent: its 'No data' alert stays up")
        elif unit.kind is Behaviour.LOW_BATTERY:
            print(f"  {unit.label}  keeps a low battery")
        elif unit.kind is Behaviour.CLOCK_DRIFT:
            print(f"  {unit.label}  has a clock running {CLOCK_BEHIND_SECONDS:.0f} s behind")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    clock = time.monotonic()
    code = 0
    try:
        simulator.run(args.seconds)
    except KeyboardInterrupt:
        print()
    except DemoGone:
        print(f"The demo at {args.url} stopped answering; stopping.", file=sys.stderr)
        code = 1
    print(simulator.summary(time.monotonic() - clock))
    return code


if __name__ == "__main__":
    sys.exit(main())
