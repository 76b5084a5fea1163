"""Realistic demo data: one trial, three sites in three time zones, 30 patients, every role.

Safe to run again: existing records are found by their natural keys and kept; logins that no
longer match the passwords in `instance/demo-logins.json` are reset so that the file always works.

Feature packages add their own demo data without editing this module: `init_app` calls
`register_demo_seeder(app, name, fn)`, and `seed_and_report` calls each `fn(session, now,
seeded)` after the core seed, in the same transaction. `seeded` (`Seeded`) holds what the core
made (trial, sites, the demo's patients) and the instance folder; a seeder that writes a file
asks for it with `seeded.write_after_commit(...)`, so nothing is written unless everything
committed. A seeder must be as safe to run again as the core seed.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform.extensions import db
from dct_platform.models import Patient, Site, Sponsor, Trial, User
from dct_platform.models.patients import PatientStatus
from dct_platform.models.trials import TrialPhase, TrialStatus
from dct_platform.roles import Role
from dct_platform.security import verify_password
from dct_platform.services import accounts, trials
from dct_platform.services import patients as patient_service
from dct_platform.timeutil import utcnow

SYSTEM = "demo-seed"
PROTOCOL = "DCT-HF-301"


@dataclass(frozen=True)
class DemoSite:
    number: str
    name: str
    country: str
    timezone: str
    language: str
    city: str
    phone: str
    given: tuple[str, ...]
    family: tuple[str, ...]


SITES = (
    DemoSite(
        "DE-101",
        "Charité Research Clinic Berlin",
        "DE",
        "Europe/Berlin",
        "de",
        "Berlin",
        "+49 30 5550 1010",
        ("Anna", "Lukas", "Marie", "Jonas", "Lea", "Felix", "Sophie", "Paul", "Emma", "Ben"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Hoffmann"),
    ),
    DemoSite(
        "US-201",
        "Hudson Valley Cardiology Research",
        "US",
        "America/New_York",
        "en",
        "New York",
        "+1 212 555 0120",
        ("James", "Olivia", "Noah", "Ava", "Liam", "Mia", "Ethan", "Harper", "Lucas", "Ella"),
        ("Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez"),
    ),
    DemoSite(
        "JP-301",
        "Tokyo Metropolitan Heart Center",
        "JP",
        "Asia/Tokyo",
        "ja",
        "Tokyo",
        "+81 3 5550 0130",
        ("Haruto", "Yui", "Sota", "Hina", "Yuto", "Mei", "Riku", "Sakura", "Kaito", "Aoi"),
        ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura"),
    ),
)
PATIENTS_PER_SITE = 10
STATUSES = (PatientStatus.ENROLLED,) * 7 + (
    PatientStatus.SCREENING,
    PatientStatus.COMPLETED,
    PatientStatus.WITHDRAWN,
)


def patient_timezone(site_number: str, n: int) -> str:
    """The zone the demo enrols patient `n` of site `site_number` in: the site's, except
    every fourth New York patient, who lives in Chicago."""
    spec = next(s for s in SITES if s.number == site_number)
    return "America/Chicago" if (spec.number == "US-201" and n % 4 == 0) else spec.timezone


@dataclass
class Login:
    role: str
    username: str
    password: str
    site: str | None


class _Seeder:
    def __init__(self, session: Session, now: datetime, known: dict[str, str]) -> None:
        self.session, self.now, self.known = session, now, known
        self.logins: list[Login] = []
        self.seeded_patients: list[Patient] = []

    def user(
        self,
        username: str,
        role: str,
        name: str,
        tz: str,
        *,
        sites: Iterable[Site] = (),
        trials_: Iterable[Trial] = (),
        site_label: str | None = None,
    ) -> User:
        password = self.known.get(username) or secrets.token_urlsafe(9)
        user = self.session.scalar(select(User).where(User.username == username))
        if user is None:
            user = accounts.create_user(
                self.session,
                None,
                self.now,
                username=username,
                password=password,
                role=role,
                display_name=name,
                timezone=tz,
                sites=sites,
                trials=trials_,
                email=f"{username}@demo.dct.invalid",
                system=SYSTEM,
                # The seed enrols each patient right after opening the account.
                opened_at_enrolment=role == Role.PATIENT,
            )
        elif not verify_password(user.password_hash, password):
            accounts.set_password(self.session, None, self.now, user, password, system=SYSTEM)
        self.logins.append(Login(str(role), username, password, site_label))
        return user

    def structure(self) -> tuple[Trial, list[Site]]:
        sponsor = self.session.scalar(
            select(Sponsor).where(Sponsor.name == "Northwind Therapeutics")
        )
        if sponsor is None:
            sponsor = trials.create_sponsor(
                self.session, None, self.now, "Northwind Therapeutics", system=SYSTEM
            )
        trial = self.session.scalar(select(Trial).where(Trial.protocol_number == PROTOCOL))
        if trial is None:
            trial = trials.create_trial(
                self.session,
                None,
                self.now,
                sponsor=sponsor,
                protocol_number=PROTOCOL,
                title="Remote monitoring of NW-204 in chronic heart failure",
                title_translations={
                    "de": "Fernüberwachung von NW-204 bei chronischer Herzinsuffizienz",
                    "ja": "慢性心不全におけるNW-204の遠隔モニタリング",
                },
                phase=TrialPhase.PHASE_3,
                status=TrialStatus.ACTIVE,
                system=SYSTEM,
            )
        sites = []
        for spec in SITES:
            site = self.session.scalar(
                select(Site).where(Site.trial_id == trial.id, Site.site_number == spec.number)
            )
            if site is None:
                site = trials.create_site(
                    self.session,
                    None,
                    self.now,
                    trial=trial,
                    site_number=spec.number,
                    name=spec.name,
                    country=spec.country,
                    timezone=spec.timezone,
                    phone=spec.phone,
                    email=f"study.{spec.number.lower()}@demo.dct.invalid",
                    enrolment_target=12,
                    system=SYSTEM,
                )
            sites.append(site)
        return trial, sites

    def people(self, trial: Trial, sites: list[Site]) -> dict[str, User]:
        staff: dict[str, User] = {}
        for spec, site in zip(SITES, sites, strict=True):
            code = spec.number.lower().replace("-", "")
            staff[spec.number] = self.user(
                f"coord.{code}",
                Role.SITE_STAFF,
                f"{spec.given[2]} {spec.family[3]} (coordinator)",
                spec.timezone,
                sites=[site],
                site_label=spec.number,
            )
            pi = self.user(
                f"pi.{code}",
                Role.INVESTIGATOR,
                f"Dr. {spec.given[1]} {spec.family[0]}",
                spec.timezone,
                sites=[site],
                site_label=spec.number,
            )
            if site.principal_investigator_id != pi.id:
                trials.appoint_principal_investigator(
                    self.session, None, self.now - timedelta(days=120), site, pi, system=SYSTEM
                )
        for i, (spec, tz) in enumerate(
            [
                (SITES[0], "Europe/Berlin"),
                (SITES[0], "Europe/Berlin"),
                (SITES[1], "America/New_York"),
                (SITES[2], "Asia/Tokyo"),
            ],
            start=1,
        ):
            self.user(f"nurse{i}", Role.NURSE, f"{spec.given[-i]} {spec.family[-i]} (nurse)", tz)
        self.user(
            "supply", Role.SUPPLY_MANAGER, "Sam Supply (depot)", "Europe/Amsterdam", trials_=[trial]
        )
        self.user(
            "trialmanager",
            Role.TRIAL_MANAGER,
            "Tara Manager (CRO)",
            "Europe/London",
            trials_=[trial],
        )
        self.user("admin", Role.ADMIN, "Platform administrator", "UTC")
        return staff

    def patients(self, trial: Trial, sites: list[Site]) -> None:
        for s_index, (spec, site) in enumerate(zip(SITES, sites, strict=True)):
            for n in range(1, PATIENTS_PER_SITE + 1):
                subject = f"{spec.number}-{n:03d}"
                username = f"patient.{subject.lower().replace('-', '')}"
                given, family = spec.given[n - 1], spec.family[(n + s_index) % len(spec.family)]
                user = self.user(
                    username, Role.PATIENT, given, spec.timezone, site_label=spec.number
                )
                known = self.session.scalar(
                    select(Patient).where(
                        Patient.trial_id == trial.id, Patient.subject_number == subject
                    )
                )
                if known is not None:
                    self.seeded_patients.append(known)
                    continue
                tz = patient_timezone(spec.number, n)
                identity = patient_service.IdentityInput(
                    given_name=given,
                    family_name=family,
                    date_of_birth=date(1950 + (n * 3) % 40, n % 12 + 1, n + 3),
                    email=f"{username}@demo.dct.invalid",
                    phone=f"+00 555 {s_index}{n:03d}",
                    address_line1=f"{10 + n} Example Street",
                    postal_code=f"{s_index + 1}{n:04d}",
                    city=spec.city,
                    country=spec.country,
                )
                patient = patient_service.enroll_patient(
                    self.session,
                    None,
                    self.now - timedelta(days=90 - n),
                    site=site,
                    subject_number=subject,
                    timezone=tz,
                    preferred_language=spec.language,
                    status=STATUSES[n - 1],
                    baseline_date=(self.now - timedelta(days=60 - n)).date(),
                    identity=identity,
                    user=user,
                    system=SYSTEM,
                )
                self.seeded_patients.append(patient)

    def transfer(self, staff: dict[str, User], sites: list[Site], trial: Trial) -> None:
        """One patient moved from New York to Berlin, so site history is visible in the demo."""
        patient = self.session.scalar(
            select(Patient).where(
                Patient.trial_id == trial.id, Patient.subject_number == "US-201-010"
            )
        )
        if patient is not None and patient.site_id == sites[1].id:
            moved_at = self.now - timedelta(days=5)
            patient_service.transfer_patient(
                self.session,
                staff["US-201"],
                moved_at,
                patient,
                sites[0],
                "Patient relocated to Berlin for work",
            )
            # The new site records the patient's new home zone, as it would after a move.
            patient_service.update_patient(
                self.session, staff["DE-101"], moved_at, patient, {"timezone": "Europe/Berlin"}
            )


@dataclass
class Seeded:
    """What the core seed made, handed to each feature package's demo seeder."""

    instance_path: Path
    trial: Trial
    sites: list[Site]
    # The demo's own patients (not any added by hand since), in subject-number order.
    patients: list[Patient]
    _after_commit: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _seeder: _Seeder | None = field(default=None, repr=False)

    def account(self, username: str, role: str, name: str, zone: str) -> User:
        """A demo account of a package's role (its own assignment kept by the package),
        listed in `demo-logins.json` with the others; found again on a second seed."""
        assert self._seeder is not None
        return self._seeder.user(username, role, name, zone)

    def password_of(self, username: str) -> str:
        """The password of a listed demo login, for a seeder that acts as that person where
        the platform asks for the password again (an investigator's signature)."""
        assert self._seeder is not None
        return next(x.password for x in self._seeder.logins if x.username == username)

    def write_after_commit(self, name: str, data: Any, message: str | None = None) -> Path:
        """Write `data` as JSON to `name` in the instance folder, readable by its owner only,
        once the whole seed has committed (and `message` after the logins); nothing if it
        fails. The file is replaced whole, never left half-written."""
        path = self.instance_path / name

        def write() -> None:
            write_private_json(path, data)
            if message:
                click.echo(message)

        self._after_commit.append(write)
        return path

    def run_after_commit(self) -> None:
        for step in self._after_commit:
            step()


# fn(session, now, seeded): adds a package's demo data; it only flushes, never commits.
DemoSeeder = Callable[[Session, datetime, Seeded], None]
_SEEDERS = "dct_demo_seeders"


def register_demo_seeder(app: Flask, name: str, fn: DemoSeeder) -> None:
    """Have `seed_and_report` call `fn` after the core seed, in the order registered."""
    seeders: dict[str, DemoSeeder] = app.extensions.setdefault(_SEEDERS, {})
    if seeders.get(name, fn) is not fn:
        raise ValueError(f"A demo seeder named {name!r} is registered already.")
    seeders[name] = fn


def demo_seeders(app: Flask) -> dict[str, DemoSeeder]:
    return dict(app.extensions.get(_SEEDERS, {}))


def seed_core(
    session: Session, now: datetime, known_passwords: dict[str, str], instance_path: Path
) -> tuple[list[Login], Seeded]:
    seeder = _Seeder(session, now, known_passwords)
    trial, sites = seeder.structure()
    staff = seeder.people(trial, sites)
    seeder.patients(trial, sites)
    seeder.transfer(staff, sites, trial)
    patients = sorted(seeder.seeded_patients, key=lambda p: p.subject_number)
    return seeder.logins, Seeded(instance_path, trial, sites, patients, _seeder=seeder)


def seed(
    session: Session,
    now: datetime,
    known_passwords: dict[str, str],
    instance_path: Path = Path("instance"),
) -> list[Login]:
    """The core's demo data only, without the feature packages' seeders."""
    return seed_core(session, now, known_passwords, instance_path)[0]


def logins_path(app: Flask) -> Path:
    return Path(app.instance_path) / "demo-logins.json"


def write_private_json(path: Path, data: Any) -> None:
    """`data` as JSON in `path`, mode 0600: written to a new file beside it and renamed
    over it, so a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(partial, 0o600)  # O_CREAT's mode only applies to a new file
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def seed_and_report(app: Flask) -> list[Login]:
    path = logins_path(app)
    known: dict[str, str] = {}
    if path.exists():
        try:
            known = {row["username"]: row["password"] for row in json.loads(path.read_text())}
        except (ValueError, KeyError, TypeError):
            known = {}
    with app.app_context():
        session = db.session()
        try:
            now = utcnow()
            logins, seeded = seed_core(session, now, known, Path(app.instance_path))
            for fn in demo_seeders(app).values():
                fn(session, now, seeded)
            session.commit()
        except BaseException:
            # Nothing half-done: no row of this run stays, and no file is written.
            session.rollback()
            raise
    write_private_json(path, [login.__dict__ for login in logins])
    click.echo(f"Demo logins (also in {path}):")
    shown = [x for x in logins if x.role != Role.PATIENT.value or x.username.endswith("001")]
    # Packages add roles with long names ("logistics.provider_coordinator"): fit the widest.
    width = max(len(x.role) for x in shown)
    for login in shown:
        click.echo(
            f"  {login.role:{width}} {login.username:24} {login.password:16} {login.site or ''}"
        )
    click.echo(
        f"  ... and {sum(1 for x in logins if x.role == 'patient') - 3} more patients in the file"
    )
    seeded.run_after_commit()
    return logins
