"""Sponsors, trials and sites."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import audit, policy
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.locking import lock_for_update
from dct_platform.models import Site, SiteInvestigatorPeriod, SiteMembership, Sponsor, Trial, User
from dct_platform.models.trials import TrialPhase, TrialStatus
from dct_platform.roles import Role
from dct_platform.services.periods import close_open_period
from dct_platform.timeutil import is_valid_timezone

_COUNTRY = re.compile(r"^[A-Z]{2}$")
# A language code as the portal's languages are named ("de", "ja", "pt-BR"); the portal
# shows a translation to patients of that language and the default title to the others.
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
TITLE_LENGTH = 300


def _title_translations(translations: Mapping[str, object] | None) -> dict[str, str]:
    """The translations to store, blank ones dropped; refused when a code or title is bad.

    Typed as loosely as it checks: JSON from the API or a seed file can hold anything."""
    cleaned: dict[str, str] = {}
    problems: list[str] = []
    for language, title in (translations or {}).items():
        if not isinstance(language, str) or not _LANGUAGE.match(language):
            problems.append(f"{language!r} is not a language code such as de or ja.")
        elif not isinstance(title, str):
            problems.append(f"The {language} title must be text.")
        elif len(title.strip()) > TITLE_LENGTH:
            problems.append(f"The {language} title is longer than {TITLE_LENGTH} characters.")
        elif title.strip():
            cleaned[language] = title.strip()
    if problems:
        raise ValidationFailed(
            "The title translations were not accepted; see details.",
            {"fields": {"title_translations": problems}},
        )
    return cleaned


def _require_admin(actor: User | None, system: str | None) -> None:
    # Study set-up is an administrator's job; seeds and migrations act as named systems.
    if system is None:
        policy.require_role(actor, Role.ADMIN)


def get_or_create_sponsor(
    session: Session, actor: User | None, now: datetime, name: str, *, system: str | None = None
) -> Sponsor:
    sponsor = session.scalar(select(Sponsor).where(Sponsor.name == name))
    return sponsor or create_sponsor(session, actor, now, name, system=system)


def create_sponsor(
    session: Session, actor: User | None, now: datetime, name: str, *, system: str | None = None
) -> Sponsor:
    _require_admin(actor, system)
    with audit.acting(session, actor, now, system=system, what=f"Create sponsor {name}"):
        sponsor = Sponsor(name=name, created_at=now, updated_at=now)
        session.add(sponsor)
    return sponsor


def create_trial(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    sponsor: Sponsor,
    protocol_number: str,
    title: str,
    phase: TrialPhase,
    status: TrialStatus = TrialStatus.PLANNING,
    title_translations: dict[str, str] | None = None,
    protocol_version: str = "1.0",
    system: str | None = None,
) -> Trial:
    _require_admin(actor, system)
    translations = _title_translations(title_translations)
    if session.scalar(select(Trial.id).where(Trial.protocol_number == protocol_number)):
        raise Conflict(f"A trial with protocol number {protocol_number} exists.")
    what = f"Create trial {protocol_number}"
    with audit.acting(session, actor, now, system=system, what=what):
        trial = Trial(
            sponsor_id=sponsor.id,
            protocol_number=protocol_number,
            title=title,
            title_translations=translations,
            phase=phase,
            status=status,
            protocol_version=protocol_version,
            created_at=now,
            updated_at=now,
        )
        session.add(trial)
    return trial


def set_title_translations(
    session: Session,
    actor: User | None,
    now: datetime,
    trial: Trial,
    translations: dict[str, str],
    *,
    reason: str | None = None,
    system: str | None = None,
) -> None:
    """Replace the trial's translated titles (a language left out loses its title)."""
    _require_admin(actor, system)
    cleaned = _title_translations(translations)
    # No row lock: the trial's version makes a concurrent second change fail (409) instead
    # of silently replacing the first.
    if cleaned == (trial.title_translations or {}):
        return
    what = f"Translate the title of trial {trial.protocol_number}"
    with audit.acting(session, actor, now, reason, system=system, what=what):
        # A new dict, not an edit in place: the JSON column notices only a new value.
        trial.title_translations = cleaned
        trial.updated_at = now


def create_site(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    trial: Trial,
    site_number: str,
    name: str,
    country: str,
    timezone: str,
    phone: str | None = None,
    email: str | None = None,
    enrolment_target: int | None = None,
    system: str | None = None,
) -> Site:
    _require_admin(actor, system)
    errors: dict[str, list[str]] = _target_problems(enrolment_target)
    if not _COUNTRY.match(country):
        errors["country"] = ["Use the two-letter ISO 3166 country code, e.g. DE."]
    if not is_valid_timezone(timezone):
        errors["timezone"] = [
            f"Unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin."
        ]
    if errors:
        raise ValidationFailed("The site could not be created; see details.", {"fields": errors})
    if session.scalar(
        select(Site.id).where(Site.trial_id == trial.id, Site.site_number == site_number)
    ):
        raise Conflict(f"Site {site_number} already exists in {trial.protocol_number}.")
    what = f"Create site {site_number} in {trial.protocol_number}"
    with audit.acting(session, actor, now, system=system, what=what):
        site = Site(
            trial_id=trial.id,
            site_number=site_number,
            name=name,
            country=country,
            timezone=timezone,
            phone=phone,
            email=email,
            enrolment_target=enrolment_target,
            created_at=now,
            updated_at=now,
        )
        session.add(site)
    return site


MAX_TARGET = 100_000


def _target_problems(target: int | None) -> dict[str, list[str]]:
    if target is not None and not 0 <= target <= MAX_TARGET:
        return {"enrolment_target": [f"Give a whole number from 0 to {MAX_TARGET}."]}
    return {}


def set_enrolment_target(
    session: Session,
    actor: User | None,
    now: datetime,
    site: Site,
    target: int | None,
    reason: str,
    *,
    system: str | None = None,
) -> None:
    """How many patients the site is to enrol (None: no target set)."""
    _require_admin(actor, system)
    errors = _target_problems(target)
    if not (reason or "").strip():
        errors["reason"] = ["Say why the target changes."]
    if errors:
        raise ValidationFailed("The target was not changed; see details.", {"fields": errors})
    what = f"Set the enrolment target of site {site.site_number}"
    with audit.acting(session, actor, now, reason, system=system, what=what):
        site.enrolment_target = target
        site.updated_at = now


def appoint_principal_investigator(
    session: Session,
    actor: User | None,
    now: datetime,
    site: Site,
    investigator: User,
    *,
    reason: str | None = None,
    system: str | None = None,
) -> None:
    """Make `investigator` the site's PI from `now`, closing the previous PI's period.

    A change of responsibility needs a reason; appointing the PI already in post changes
    nothing. Concurrent appointments queue on the site's row.
    """
    _require_admin(actor, system)
    if investigator.role != Role.INVESTIGATOR:
        raise ValidationFailed(
            "Only a user with the investigator role can be principal investigator.",
            {"fields": {"investigator_id": ["not an investigator"]}},
        )
    if system is None and not (reason and reason.strip()):
        raise ValidationFailed(
            "Say why the principal investigator changes.", {"fields": {"reason": ["required"]}}
        )
    lock_for_update(session, site)
    if site.principal_investigator_id == investigator.id:
        return
    what = f"Appoint {investigator.username} principal investigator of site {site.site_number}"
    with audit.acting(session, actor, now, reason, system=system, what=what):
        close_open_period(
            session,
            SiteInvestigatorPeriod,
            SiteInvestigatorPeriod.site_id == site.id,
            now,
            "principal investigator",
        )
        session.add(
            SiteInvestigatorPeriod(site_id=site.id, investigator_id=investigator.id, valid_from=now)
        )
        site.principal_investigator_id = investigator.id
        site.updated_at = now
        if not session.scalar(
            select(SiteMembership.id).where(
                SiteMembership.site_id == site.id, SiteMembership.user_id == investigator.id
            )
        ):
            session.add(SiteMembership(site_id=site.id, user_id=investigator.id))
