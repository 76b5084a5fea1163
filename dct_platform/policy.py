"""Who may see and do what: the one place views, API handlers and jobs ask.

Two questions, each answered per model and extended by feature packages for their own
records:
- `visible(actor, Model)`: a WHERE clause selecting the rows the actor may see at all.
  Lists use it directly; single lookups go through `get_visible`, so a record outside the
  actor's scope is indistinguishable from one that does not exist (404).
- `can(actor, action, obj)`: whether the actor may perform `action` on a visible record;
  `authorize` raises 403 when not.

Scope and rule functions receive a `PolicyContext`: the actor, the session (to look at
related tables) and `now` (rights that hold only at certain times, such as a nurse seeing
a patient's address on the visit day). Feature packages declare their own actions with
`declare_action` and register scopes and rules for them from their `init_app`, without
editing this module.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session, object_session
from sqlalchemy.sql.base import ExecutableOption

from dct_platform.errors import Forbidden, NotFound
from dct_platform.extensions import Base
from dct_platform.models import Patient, PatientIdentity, RemoteActivity, Site, Trial, User
from dct_platform.models.users import SITE_ROLES, TRIAL_ROLES
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow

M = TypeVar("M", bound=Base)


@dataclass(frozen=True)
class PolicyContext:
    """What a scope or rule may consult. `now` is the caller's business time when it
    passes one (services do), else the clock at the question."""

    actor: User
    session: Session | None = None
    now: datetime = field(default_factory=utcnow)


ScopeFn = Callable[[PolicyContext], ColumnElement[bool]]
RuleFn = Callable[[PolicyContext, Any], bool]


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


# What each action is called in a sentence: "You are not allowed to <label> this record."
_action_labels: dict[str, str] = {}


def declare_action(name: str, label: str) -> str:
    """Declare an action (a package prefixes its own: "logistics.dispatch")."""
    if name in _action_labels and _action_labels[name] != label:
        raise ValueError(f"action {name!r} is already declared")
    _action_labels[name] = label
    return name


for _action, _label in {
    Action.VIEW: _l("view"),
    Action.EDIT: _l("change"),
    Action.EDIT_PREFERENCES: _l("change the preferences of"),
    Action.VIEW_IDENTITY: _l("see the personal data of"),
    Action.EDIT_IDENTITY: _l("change the personal data of"),
    Action.TRANSFER: _l("transfer"),
    Action.ENROLL: _l("enrol patients at"),
    Action.MANAGE_USERS: _l("manage"),
    Action.VIEW_AUDIT: _l("read the audit trail of"),
    Action.READ_REASONS: _l("read the reasons recorded for"),
}.items():
    declare_action(str(_action), _label)


def action_label(action: str) -> str:
    return _action_labels[str(action)]


_scopes: dict[tuple[type, str], list[ScopeFn]] = defaultdict(list)
_rules: dict[tuple[type, str], list[RuleFn]] = defaultdict(list)


def scope(model: type, *roles: str) -> Callable[[ScopeFn], ScopeFn]:
    """Register which rows of `model` actors with these roles may see (OR-ed with others)."""

    def register(fn: ScopeFn) -> ScopeFn:
        for role in roles:
            _scopes[(model, str(role))].append(fn)
        return fn

    return register


def rule(model: type, action: str) -> Callable[[RuleFn], RuleFn]:
    """Register a permission rule; an action is allowed when any of its rules allows it."""
    if str(action) not in _action_labels:
        raise ValueError(f"declare the action {action!r} with declare_action() first")

    def register(fn: RuleFn) -> RuleFn:
        _rules[(model, str(action))].append(fn)
        return fn

    return register


def _context(
    actor: User, session: Session | None, now: datetime | None, obj: Any = None
) -> PolicyContext:
    if session is None and obj is not None:
        session = object_session(obj)
    return PolicyContext(actor, session, now) if now else PolicyContext(actor, session)


def visible(
    actor: User | None,
    model: type,
    *,
    session: Session | None = None,
    now: datetime | None = None,
) -> ColumnElement[bool]:
    if actor is None or not actor.is_enabled:
        return false()
    fns = _scopes.get((model, str(actor.role)), [])
    if not fns:
        return false()
    ctx = _context(actor, session, now)
    return or_(*(fn(ctx) for fn in fns))


def can(
    actor: User | None,
    action: str,
    obj: Any,
    *,
    session: Session | None = None,
    now: datetime | None = None,
) -> bool:
    if actor is None or not actor.is_enabled:
        return False
    fns = _rules.get((type(obj), str(action)), [])
    if not fns:
        return False
    ctx = _context(actor, session, now, obj)
    return any(fn(ctx, obj) for fn in fns)


def can_role(actor: User | None, *roles: str) -> bool:
    return actor is not None and actor.is_enabled and actor.role in roles


def get_visible(
    session: Session,
    actor: User | None,
    model: type[M],
    ident: Any,
    now: datetime | None = None,
    *,
    load: Sequence[ExecutableOption] = (),
) -> M:
    """The record if `actor` may see it, else NotFound; `load`: loader options for what
    the caller reads next (e.g. its patient), fetched in the same statement."""
    pk = model.__mapper__.primary_key[0]
    condition = visible(actor, model, session=session, now=now)
    obj = session.scalar(select(model).where(pk == ident, condition).options(*load))
    if obj is None:
        raise NotFound(_l("%(record)s %(ident)s was not found", record=model.__name__, ident=ident))
    return obj


def authorize(actor: User | None, action: str, obj: Any, *, now: datetime | None = None) -> None:
    if not can(actor, action, obj, now=now):
        raise Forbidden(
            _l("You are not allowed to %(action)s this record.", action=action_label(action))
        )


def require_role(actor: User | None, *roles: str) -> None:
    if not can_role(actor, *roles):
        raise Forbidden(_l("Your role does not give access to this."))


# --- core records -----------------------------------------------------------------------


@scope(Trial, Role.ADMIN)
@scope(Site, Role.ADMIN)
def _everything(ctx: PolicyContext) -> ColumnElement[bool]:
    return true()


@scope(Trial, *TRIAL_ROLES)
def _trials_held(ctx: PolicyContext) -> ColumnElement[bool]:
    return Trial.id.in_(ctx.actor.trial_ids)


@scope(Trial, *SITE_ROLES)
def _trials_of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return Trial.id.in_(select(Site.trial_id).where(Site.id.in_(ctx.actor.site_ids)))


@scope(Trial, Role.PATIENT)
def _my_trial(ctx: PolicyContext) -> ColumnElement[bool]:
    return Trial.id.in_(select(Patient.trial_id).where(Patient.user_id == ctx.actor.id))


@scope(Site, *TRIAL_ROLES)
def _sites_in_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return Site.trial_id.in_(ctx.actor.trial_ids)


@scope(Site, *SITE_ROLES)
def _my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return Site.id.in_(ctx.actor.site_ids)


@scope(Site, Role.PATIENT)
def _my_site(ctx: PolicyContext) -> ColumnElement[bool]:
    return Site.id.in_(select(Patient.site_id).where(Patient.user_id == ctx.actor.id))


@scope(Patient, Role.PATIENT)
def _myself(ctx: PolicyContext) -> ColumnElement[bool]:
    return Patient.user_id == ctx.actor.id


@scope(Patient, *SITE_ROLES)
def _patients_of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return Patient.site_id.in_(ctx.actor.site_ids)


@scope(Patient, *TRIAL_ROLES)
def _patients_in_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    # Pseudonymous subject records only: PatientIdentity has no scope for these roles.
    return Patient.trial_id.in_(ctx.actor.trial_ids)


@scope(PatientIdentity, Role.PATIENT)
def _my_identity(ctx: PolicyContext) -> ColumnElement[bool]:
    return PatientIdentity.patient_id.in_(select(Patient.id).where(Patient.user_id == ctx.actor.id))


@scope(PatientIdentity, *SITE_ROLES)
def _identities_of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    return PatientIdentity.patient_id.in_(
        select(Patient.id).where(Patient.site_id.in_(ctx.actor.site_ids))
    )


def _owns_patient_site(ctx: PolicyContext, patient: Patient) -> bool:
    return ctx.actor.role in SITE_ROLES and patient.site_id in ctx.actor.site_ids


def _is_the_patient(ctx: PolicyContext, patient: Patient) -> bool:
    return ctx.actor.role == Role.PATIENT and patient.user_id == ctx.actor.id


@rule(Patient, Action.VIEW)
def _view_patient(ctx: PolicyContext, patient: Patient) -> bool:
    return (
        _owns_patient_site(ctx, patient)
        or _is_the_patient(ctx, patient)
        or (ctx.actor.role in TRIAL_ROLES and patient.trial_id in ctx.actor.trial_ids)
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
def _enroll_at_my_site(ctx: PolicyContext, site: Site) -> bool:
    return ctx.actor.role in SITE_ROLES and site.id in ctx.actor.site_ids and site.is_active


@rule(Site, Action.VIEW)
def _view_site(ctx: PolicyContext, site: Site) -> bool:
    return (
        ctx.actor.role == Role.ADMIN
        or (ctx.actor.role in SITE_ROLES and site.id in ctx.actor.site_ids)
        or (ctx.actor.role in TRIAL_ROLES and site.trial_id in ctx.actor.trial_ids)
    )


@scope(User, Role.ADMIN)
def _all_users(ctx: PolicyContext) -> ColumnElement[bool]:
    return true()


@rule(User, Action.MANAGE_USERS)
def _admin_manages_users(ctx: PolicyContext, _user: User) -> bool:
    return ctx.actor.role == Role.ADMIN


# --- remote activities: attributed to the site responsible when they happened -----------


@scope(RemoteActivity, *SITE_ROLES)
def _activities_of_my_sites(ctx: PolicyContext) -> ColumnElement[bool]:
    # A site keeps what happened while it was responsible, and sees a transfer away.
    return or_(
        RemoteActivity.site_id.in_(ctx.actor.site_ids),
        RemoteActivity.related_site_id.in_(ctx.actor.site_ids),
        RemoteActivity.patient_id.in_(
            select(Patient.id).where(Patient.site_id.in_(ctx.actor.site_ids))
        ),
    )


@scope(RemoteActivity, *TRIAL_ROLES)
def _activities_in_my_trials(ctx: PolicyContext) -> ColumnElement[bool]:
    return RemoteActivity.trial_id.in_(ctx.actor.trial_ids)


@scope(RemoteActivity, Role.PATIENT)
def _my_activities(ctx: PolicyContext) -> ColumnElement[bool]:
    return RemoteActivity.patient_id.in_(select(Patient.id).where(Patient.user_id == ctx.actor.id))
