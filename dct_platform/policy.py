"""Who may see and do what: the one place views, API handlers and jobs ask.

Two questions, each answered per model and extended by feature packages for their own
records:
- `visible(actor, Model)`: a WHERE clause selecting the rows the actor may see at all.
  Lists use it directly; single lookups go through `get_visible`, so a record outside the
  actor's scope is indistinguishable from one that does not exist (404).
- `can(actor, action, obj)`: whether the actor may perform `action` on a visible record;
  `authorize` raises 403 when not.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

from dct_platform.errors import Forbidden, NotFound
from dct_platform.models import Patient, PatientIdentity, Site, Trial, User
from dct_platform.models.users import SITE_ROLES, TRIAL_ROLES, Role

M = TypeVar("M")
ScopeFn = Callable[[User], ColumnElement[bool]]
RuleFn = Callable[[User, Any], bool]


class Action(enum.StrEnum):
    VIEW = "view"
    EDIT = "edit"
    EDIT_PREFERENCES = "edit_preferences"
    VIEW_IDENTITY = "view_identity"
    EDIT_IDENTITY = "edit_identity"
    TRANSFER = "transfer"
    ENROLL = "enroll"
    MANAGE_USERS = "manage_users"
    VIEW_AUDIT = "view_audit"
    # Free-text reasons (e.g. why a patient moved) may name people or health details, so
    # pseudonymous oversight roles do not read them.
    READ_REASONS = "read_reasons"


_scopes: dict[tuple[type, Role], list[ScopeFn]] = defaultdict(list)
_rules: dict[tuple[type, str], list[RuleFn]] = defaultdict(list)


def scope(model: type, *roles: Role) -> Callable[[ScopeFn], ScopeFn]:
    """Register which rows of `model` actors with these roles may see (OR-ed with others)."""

    def register(fn: ScopeFn) -> ScopeFn:
        for role in roles:
            _scopes[(model, role)].append(fn)
        return fn

    return register


def rule(model: type, action: str) -> Callable[[RuleFn], RuleFn]:
    """Register a permission rule; an action is allowed when any of its rules allows it."""

    def register(fn: RuleFn) -> RuleFn:
        _rules[(model, str(action))].append(fn)
        return fn

    return register


def visible(actor: User | None, model: type) -> ColumnElement[bool]:
    if actor is None or not actor.is_enabled:
        return false()
    fns = _scopes.get((model, actor.role), [])
    if not fns:
        return false()
    return or_(*(fn(actor) for fn in fns))


def can(actor: User | None, action: str, obj: Any) -> bool:
    if actor is None or not actor.is_enabled:
        return False
    return any(fn(actor, obj) for fn in _rules.get((type(obj), str(action)), []))


def can_role(actor: User | None, *roles: Role) -> bool:
    return actor is not None and actor.is_enabled and actor.role in roles


def get_visible(session: Session, actor: User | None, model: type[M], ident: Any) -> M:
    pk = model.__mapper__.primary_key[0]  # type: ignore[attr-defined]
    obj = session.scalar(select(model).where(pk == ident, visible(actor, model)))
    if obj is None:
        raise NotFound(f"{model.__name__} {ident} was not found")
    return obj


def authorize(actor: User | None, action: str, obj: Any) -> None:
    if not can(actor, action, obj):
        raise Forbidden(f"You are not allowed to {str(action).replace('_', ' ')} this record.")


def require_role(actor: User | None, *roles: Role) -> None:
    if not can_role(actor, *roles):
        raise Forbidden("Your role does not give access to this.")


# --- core records -----------------------------------------------------------------------


@scope(Trial, Role.ADMIN)
@scope(Site, Role.ADMIN)
def _everything(actor: User) -> ColumnElement[bool]:
    return true()


@scope(Trial, *TRIAL_ROLES)
def _trials_held(actor: User) -> ColumnElement[bool]:
    return Trial.id.in_(actor.trial_ids)


@scope(Trial, *SITE_ROLES)
def _trials_of_my_sites(actor: User) -> ColumnElement[bool]:
    return Trial.id.in_(select(Site.trial_id).where(Site.id.in_(actor.site_ids)))


@scope(Trial, Role.PATIENT)
def _my_trial(actor: User) -> ColumnElement[bool]:
    return Trial.id.in_(select(Patient.trial_id).where(Patient.user_id == actor.id))


@scope(Site, *TRIAL_ROLES)
def _sites_in_my_trials(actor: User) -> ColumnElement[bool]:
    return Site.trial_id.in_(actor.trial_ids)


@scope(Site, *SITE_ROLES)
def _my_sites(actor: User) -> ColumnElement[bool]:
    return Site.id.in_(actor.site_ids)


@scope(Site, Role.PATIENT)
def _my_site(actor: User) -> ColumnElement[bool]:
    return Site.id.in_(select(Patient.site_id).where(Patient.user_id == actor.id))


@scope(Patient, Role.PATIENT)
def _myself(actor: User) -> ColumnElement[bool]:
    return Patient.user_id == actor.id


@scope(Patient, *SITE_ROLES)
def _patients_of_my_sites(actor: User) -> ColumnElement[bool]:
    return Patient.site_id.in_(actor.site_ids)


@scope(Patient, *TRIAL_ROLES)
def _patients_in_my_trials(actor: User) -> ColumnElement[bool]:
    # Pseudonymous subject records only: PatientIdentity has no scope for these roles.
    return Patient.trial_id.in_(actor.trial_ids)


@scope(PatientIdentity, Role.PATIENT)
def _my_identity(actor: User) -> ColumnElement[bool]:
    return PatientIdentity.patient_id.in_(select(Patient.id).where(Patient.user_id == actor.id))


@scope(PatientIdentity, *SITE_ROLES)
def _identities_of_my_sites(actor: User) -> ColumnElement[bool]:
    return PatientIdentity.patient_id.in_(
        select(Patient.id).where(Patient.site_id.in_(actor.site_ids))
    )


def _owns_patient_site(actor: User, patient: Patient) -> bool:
    return actor.role in SITE_ROLES and patient.site_id in actor.site_ids


def _is_the_patient(actor: User, patient: Patient) -> bool:
    return actor.role is Role.PATIENT and patient.user_id == actor.id


@rule(Patient, Action.VIEW)
def _view_patient(actor: User, patient: Patient) -> bool:
    return (
        _owns_patient_site(actor, patient)
        or _is_the_patient(actor, patient)
        or (actor.role in TRIAL_ROLES and patient.trial_id in actor.trial_ids)
    )


rule(Patient, Action.EDIT)(_owns_patient_site)
rule(Patient, Action.TRANSFER)(_owns_patient_site)
rule(Patient, Action.VIEW_IDENTITY)(_owns_patient_site)
rule(Patient, Action.VIEW_IDENTITY)(_is_the_patient)
rule(Patient, Action.EDIT_IDENTITY)(_owns_patient_site)
rule(Patient, Action.EDIT_IDENTITY)(_is_the_patient)
rule(Patient, Action.EDIT_PREFERENCES)(_owns_patient_site)
rule(Patient, Action.EDIT_PREFERENCES)(_is_the_patient)
rule(Patient, Action.READ_REASONS)(_owns_patient_site)
rule(Patient, Action.READ_REASONS)(_is_the_patient)


@rule(Site, Action.ENROLL)
def _enroll_at_my_site(actor: User, site: Site) -> bool:
    return actor.role in SITE_ROLES and site.id in actor.site_ids and site.is_active


@rule(Site, Action.VIEW)
def _view_site(actor: User, site: Site) -> bool:
    return (
        actor.role is Role.ADMIN
        or (actor.role in SITE_ROLES and site.id in actor.site_ids)
        or (actor.role in TRIAL_ROLES and site.trial_id in actor.trial_ids)
    )


@scope(User, Role.ADMIN)
def _all_users(actor: User) -> ColumnElement[bool]:
    return true()


@rule(User, Action.MANAGE_USERS)
def _admin_manages_users(actor: User, _user: User) -> bool:
    return actor.role is Role.ADMIN
