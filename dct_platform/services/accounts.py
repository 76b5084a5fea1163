"""Accounts, sign-in with throttling, and API bearer tokens."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, CursorResult, and_, case, delete, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dct_platform import audit, outbox, policy
from dct_platform.errors import (
    Conflict,
    Forbidden,
    PasswordChangeRequired,
    TooManyAttempts,
    Unauthorized,
    ValidationFailed,
)
from dct_platform.mail import OutgoingMail
from dct_platform.models import (
    ApiToken,
    LoginThrottle,
    Site,
    SiteMembership,
    Trial,
    TrialAccess,
    User,
)
from dct_platform.models.users import SITE_ROLES, with_access
from dct_platform.roles import Assignment, Role, assigned_to, is_role, role_label, role_names
from dct_platform.security import (
    hash_password,
    needs_rehash,
    new_token,
    password_problems,
    token_digest,
    verify_password,
)
from dct_platform.timeutil import UTCDateTime, is_valid_timezone


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many sign-in attempts are let through, counted per key within `window`.

    - per (username, client address): `max_failures`, then that address waits out the window;
    - per client address, whatever the username: `max_failures_per_ip`, likewise;
    - per username, from any address: `max_failures_per_username`, then one attempt per
      delay that doubles from `first_delay` up to `max_delay`. Never a hard lock, so that
      someone who knows a username cannot lock its owner out.
    """

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    max_failures_per_ip: int = 50
    max_failures_per_username: int = 20
    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(minutes=15)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ThrottlePolicy:
        return cls(
            max_failures=config["LOGIN_MAX_FAILURES"],
            window=timedelta(seconds=config["LOGIN_FAILURE_WINDOW_SECONDS"]),
            max_failures_per_ip=config["LOGIN_MAX_FAILURES_PER_IP"],
            max_failures_per_username=config.get("LOGIN_MAX_FAILURES_PER_USERNAME", 20),
        )


def create_user(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str,
    email: str | None = None,
    timezone: str = "UTC",
    sites: Iterable[Site] = (),
    trials: Iterable[Trial] = (),
    system: str | None = None,
    must_change_password: bool = False,
    opened_at_enrolment: bool = False,
) -> User:
    """Open an account. A patient's account is opened only at enrolment
    (`opened_at_enrolment`), so that no portal account exists without a study record."""
    if not is_role(role):
        raise ValidationFailed(
            f"Unknown role {role!r}.", {"fields": {"role": [f"one of {', '.join(role_names())}"]}}
        )
    if role == Role.PATIENT and not opened_at_enrolment:
        raise ValidationFailed(
            "Patient accounts are opened at enrolment, with the study record.",
            {"fields": {"role": ["opened at enrolment (POST /api/v1/patients)"]}},
        )
    if system is None:
        _check_may_create(actor, role)
    username = username.strip().lower()
    errors: dict[str, list[str]] = {}
    if not username or len(username) > 80:
        errors["username"] = ["Give a username of 1 to 80 characters."]
    elif session.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"The username {username!r} is taken.", {"fields": {"username": ["taken"]}})
    if problems := password_problems(password, username):
        errors["password"] = problems
    if not is_valid_timezone(timezone):
        errors["timezone"] = [f"Unknown time zone {timezone!r}."]
    sites, trials = list(sites), list(trials)
    errors.update(_assignment_problems(role, sites, trials, "site_ids", "trial_ids"))
    errors.update(_missing_assignment(role, sites, trials))
    if errors:
        raise ValidationFailed("The account could not be created; see details.", {"fields": errors})
    what = f"Create account {username} ({role_label(role)})"
    with audit.acting(session, actor, now, system=system, what=what):
        user = User(
            username=username,
            password_hash=hash_password(password),
            role=role,
            display_name=display_name,
            email=email,
            timezone=timezone,
            must_change_password=must_change_password,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
        session.flush()
        for site in sites:
            session.add(SiteMembership(user_id=user.id, site_id=site.id))
        for trial in trials:
            session.add(TrialAccess(user_id=user.id, trial_id=trial.id))
    return user


def set_password(
    session: Session,
    actor: User | None,
    now: datetime,
    user: User,
    password: str,
    *,
    system: str | None = None,
) -> None:
    if problems := password_problems(password, user.username):
        raise ValidationFailed(
            "The password is not acceptable.", {"fields": {"password": problems}}
        )
    with audit.acting(session, actor, now, system=system, what=f"Set password of {user.username}"):
        _replace_password(session, user, now, password, must_change=user.must_change_password)


def _end_sessions(session: Session, user: User, now: datetime) -> None:
    """Sign the user out everywhere: pages (session version) and API (bearer tokens)."""
    user.session_version += 1
    user.updated_at = now
    for token in session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        token.revoked_at = now


def _replace_password(
    session: Session, user: User, now: datetime, password: str, *, must_change: bool
) -> None:
    user.password_hash = hash_password(password)
    user.must_change_password = must_change
    _end_sessions(session, user, now)


def _assignment_problems(
    role: str, sites: list[Site], trials: list[Trial], sites_field: str, trials_field: str
) -> dict[str, list[str]]:
    """Sites go to roles that work at sites, trials to roles that work across trials."""
    problems: dict[str, list[str]] = {}
    assignment = assigned_to(role)
    if sites and assignment is not Assignment.SITES:
        problems[sites_field] = [
            f"Accounts with the role {role_label(role)} do not belong to sites."
        ]
    if trials and assignment is not Assignment.TRIALS:
        problems[trials_field] = [
            f"Accounts with the role {role_label(role)} are not given whole trials."
        ]
    return problems


def _missing_assignment(role: str, sites: list[Site], trials: list[Trial]) -> dict[str, list[str]]:
    # An account of a site role without a site, or of a trial role without a trial, could
    # do nothing: the policy scopes it to nothing. Disable an account to end its access.
    assignment = assigned_to(role)
    if assignment is Assignment.SITES and not sites:
        return {"site_ids": ["Choose at least one site."]}
    if assignment is Assignment.TRIALS and not trials:
        return {"trial_ids": ["Choose at least one trial."]}
    return {}


def _check_may_create(actor: User | None, role: str) -> None:
    # Administrators manage accounts; site staff open portal accounts for patients they enrol.
    if (
        actor is not None
        and (actor.role == Role.ADMIN or (actor.role in SITE_ROLES and role == Role.PATIENT))
        and actor.is_enabled
    ):
        return
    raise Forbidden("Your role cannot create this kind of account.")


def temporary_password() -> str:
    """A password someone else hands over; its owner must replace it at first sign-in."""
    return secrets.token_urlsafe(12)


def change_own_password(
    session: Session, user: User, now: datetime, current: str, new: str
) -> None:
    """The owner replaces their password; every other session of theirs ends."""
    errors: dict[str, list[str]] = {}
    if not verify_password(user.password_hash, current):
        errors["current_password"] = [_l("This is not your current password.")]
    if problems := password_problems(new, user.username):
        errors["new_password"] = problems
    elif current == new:
        errors["new_password"] = [_l("Choose a password different from the current one.")]
    if errors:
        raise ValidationFailed("The password was not changed; see details.", {"fields": errors})
    with audit.acting(session, user, now, what=f"{user.username} changed their password"):
        _replace_password(session, user, now, new, must_change=False)


def reset_password(session: Session, actor: User, now: datetime, user: User, reason: str) -> str:
    """An administrator issues a temporary password; the owner must change it at sign-in."""
    if not reason.strip():
        raise ValidationFailed(
            "Say why the password is reset.", {"fields": {"reason": ["required"]}}
        )
    if user.id == actor.id:
        # Would sign the administrator out everywhere with a password shown on screen.
        raise Conflict("Change your own password on the password page, not with a reset.")
    password = temporary_password()
    with audit.acting(session, actor, now, reason, what=f"Reset password of {user.username}"):
        _replace_password(session, user, now, password, must_change=True)
    return password


def set_enabled(
    session: Session, actor: User, now: datetime, user: User, enabled: bool, reason: str
) -> None:
    """Disable or re-enable an account; disabling ends its sessions and refuses its tokens."""
    if not reason.strip():
        raise ValidationFailed("Say why.", {"fields": {"reason": ["required"]}})
    if user.id == actor.id and not enabled:
        raise Conflict("You cannot disable your own account.")
    if user.is_enabled == enabled:
        return  # already so: nothing to record, and nobody's sessions end
    what = f"{'Enable' if enabled else 'Disable'} account {user.username}"
    with audit.acting(session, actor, now, reason, what=what):
        user.is_enabled = enabled
        if not enabled:
            _end_sessions(session, user, now)


def set_access(
    session: Session,
    actor: User,
    now: datetime,
    user: User,
    *,
    sites: Iterable[Site],
    trials: Iterable[Trial],
    reason: str,
) -> None:
    """Replace the sites (site roles) or trials (trial roles) an account works on.

    Scope follows at once: the policy reads memberships on every request.
    """
    policy.require_role(actor, Role.ADMIN)
    sites, trials = list(sites), list(trials)
    errors: dict[str, list[str]] = {}
    if not reason.strip():
        errors["reason"] = ["required"]
    errors.update(_assignment_problems(user.role, sites, trials, "site_ids", "trial_ids"))
    errors.update(_missing_assignment(user.role, sites, trials))
    if errors:
        raise ValidationFailed("Access was not changed; see details.", {"fields": errors})
    wanted_sites = {s.id for s in sites}
    led = session.scalars(
        select(Site.site_number).where(
            Site.principal_investigator_id == user.id, Site.id.not_in(wanted_sites)
        )
    ).all()
    if led:
        raise Conflict(
            f"{user.username} is principal investigator of {', '.join(led)}; "
            "appoint another investigator there first."
        )
    wanted_trials = {t.id for t in trials}
    what = f"Change the {'sites' if sites else 'trials'} of {user.username}"
    with audit.acting(session, actor, now, reason, what=what):
        for membership in list(user.site_memberships):
            if membership.site_id not in wanted_sites:
                session.delete(membership)
        for site_id in wanted_sites - user.site_ids:
            session.add(SiteMembership(user_id=user.id, site_id=site_id))
        for access in list(user.trial_access):
            if access.trial_id not in wanted_trials:
                session.delete(access)
        for trial_id in wanted_trials - user.trial_ids:
            session.add(TrialAccess(user_id=user.id, trial_id=trial_id))
        user.updated_at = now
    session.expire(user, ["site_memberships", "trial_access"])


# Kinds of LoginThrottle counters.
PER_USERNAME_AND_ADDRESS = "user_address"
PER_ADDRESS = "address"
PER_USERNAME = "user"


@dataclass(frozen=True)
class _Counter:
    kind: str
    key: str
    limit: int
    slow_down: bool  # past the limit one attempt per growing delay, rather than none


def _counters(username: str, remote_addr: str, policy: ThrottlePolicy) -> list[_Counter]:
    # Always taken in this order, so that two attempts never wait on each other's rows in
    # opposite orders (a deadlock on PostgreSQL). The address goes first in the pair's key:
    # it never contains "|", so no username can make two pairs collide.
    return [
        _Counter(PER_USERNAME_AND_ADDRESS, f"{remote_addr}|{username}", policy.max_failures, False),
        _Counter(PER_ADDRESS, remote_addr, policy.max_failures_per_ip, False),
        _Counter(PER_USERNAME, username, policy.max_failures_per_username, True),
    ]


def _slow_down_delays(policy: ThrottlePolicy) -> list[timedelta]:
    delays = [min(policy.first_delay, policy.max_delay)]
    while timedelta(0) < delays[-1] < policy.max_delay:
        delays.append(min(delays[-1] * 2, policy.max_delay))
    return delays


def _insert(session: Session) -> Any:
    # Both dialects offer INSERT ... ON CONFLICT DO UPDATE ... RETURNING with the same API.
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _at(moment: datetime) -> ColumnElement[datetime]:
    return literal(moment, UTCDateTime())


def _reserve(
    session: Session, counter: _Counter, now: datetime, policy: ThrottlePolicy
) -> datetime | None:
    """Count one attempt against `counter` unless it is throttled; the window's start, or
    None when the attempt must be refused.

    One statement both checks and counts: PostgreSQL locks the row for the conflict update
    and evaluates its WHERE on the newest version, and SQLite runs one writer at a time, so
    however many attempts arrive together, no more than the limit get through.
    """
    t = LoginThrottle.__table__
    since = now - policy.window
    if counter.slow_down:
        # A slowed-down username starts afresh only after a whole quiet window, so that
        # waiting out one window does not buy another batch of fast guesses.
        expired = and_(
            t.c.window_start <= since,
            or_(t.c.next_allowed_at.is_(None), t.c.next_allowed_at <= since),
        )
        allowed = or_(expired, t.c.next_allowed_at.is_(None), t.c.next_allowed_at <= now)
    else:
        expired = t.c.window_start <= since
        allowed = or_(expired, t.c.failures < counter.limit)
    failures = case((expired, 1), else_=t.c.failures + 1)
    values: dict[str, Any] = {
        "failures": failures,
        "window_start": case((expired, _at(now)), else_=t.c.window_start),
    }
    first_next_allowed = None
    if counter.slow_down:
        delays = _slow_down_delays(policy)
        values["next_allowed_at"] = case(
            (failures < counter.limit, case((expired, None), else_=t.c.next_allowed_at)),
            *((failures == counter.limit + i, _at(now + d)) for i, d in enumerate(delays)),
            else_=_at(now + delays[-1]),
        )
        if counter.limit <= 1:
            first_next_allowed = now + delays[0]
    insert = _insert(session)
    statement = (
        insert(t)
        .values(
            kind=counter.kind,
            key=counter.key,
            window_start=now,
            failures=1,
            next_allowed_at=first_next_allowed,
        )
        .on_conflict_do_update(index_elements=[t.c.kind, t.c.key], set_=values, where=allowed)
        .returning(t.c.window_start)
    )
    return session.execute(statement).scalar()


def _give_back(session: Session, counter: _Counter) -> None:
    t = LoginThrottle.__table__
    session.execute(
        update(t)
        .where(t.c.kind == counter.kind, t.c.key == counter.key, t.c.failures > 0)
        .values(failures=t.c.failures - 1)
    )


def _retry_after(session: Session, counter: _Counter, now: datetime, policy: ThrottlePolicy) -> int:
    t = LoginThrottle.__table__
    row = session.execute(
        select(t.c.window_start, t.c.next_allowed_at).where(
            t.c.kind == counter.kind, t.c.key == counter.key
        )
    ).one()
    until: datetime  # the table's columns, unlike the model's, carry no Python types
    if counter.slow_down and row.next_allowed_at is not None:
        until = row.next_allowed_at
    else:
        until = row.window_start + policy.window
    return max(1, math.ceil((until - now).total_seconds()))


def _reserve_attempt(
    session: Session, username: str, remote_addr: str, now: datetime, policy: ThrottlePolicy
) -> tuple[list[_Counter], datetime]:
    """Count the attempt on every counter before its password is checked; the counters and
    the per-username window's start. A refusal gives back what it had counted, so that
    refused attempts (never checked) do not count."""
    counters = _counters(username, remote_addr, policy)
    taken: list[_Counter] = []
    window_start = now
    for counter in counters:
        started = _reserve(session, counter, now, policy)
        if started is None:
            retry_after = _retry_after(session, counter, now, policy)
            for earlier in taken:
                _give_back(session, earlier)
            raise TooManyAttempts(
                "Too many failed sign-in attempts. Wait a few minutes and try again.",
                retry_after=retry_after,
            )
        taken.append(counter)
        window_start = started
    return counters, window_start


def _failures(session: Session, counter: _Counter) -> int:
    t = LoginThrottle.__table__
    return (
        session.scalar(select(t.c.failures).where(t.c.kind == counter.kind, t.c.key == counter.key))
        or 0
    )


def _warn_owner(session: Session, user: User, now: datetime, window_start: datetime) -> None:
    """Tell the owner their account is being guessed at; once per user and window."""
    if not user.email:
        return
    outbox.enqueue(
        session,
        now,
        OutgoingMail(
            to=[user.email],
            subject="Many failed sign-in attempts on your account",
            text=(
                f"Hello {user.display_name},\n\n"
                f"someone has tried many wrong passwords for your account {user.username} "
                f"since {window_start:%Y-%m-%d %H:%M} UTC. Further attempts are slowed down; "
                "you can still sign in with your password.\n\n"
                "If this was not you, choose a new password that is not used anywhere else "
                "(Account > Password) and tell your administrator.\n"
            ),
        ),
        dedup_key=f"sign-in-guessing:{user.id}:{window_start.isoformat()}",
    )


class AccountDisabled(Forbidden):
    code = "account_disabled"

    def __init__(self) -> None:
        super().__init__(
            str(_l("This account is disabled. Ask your site or the administrator to enable it."))
        )


def check_password(
    session: Session,
    username: str,
    password: str,
    *,
    remote_addr: str,
    now: datetime,
    policy: ThrottlePolicy,
    refusal: str = "The username or password is not correct.",
) -> User:
    """The password of `username`, checked under the sign-in throttle: the sign-in page and
    the signing prompt (`dct_platform.signatures`) give a guesser the same few tries.

    The attempt is counted before the password is checked and given back when it is right.
    Callers commit even when this raises, so that a wrong password still counts.
    """
    username = (username or "").strip().lower()[:80]
    remote_addr = (remote_addr or "unknown")[:64]
    counters, window_start = _reserve_attempt(session, username, remote_addr, now, policy)
    # Annotated: User's untyped Flask-Login base makes mypy read `select(User)` as Any.
    user: User | None = session.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user else None, password or ""):
        per_username = counters[-1]
        if user is not None and _failures(session, per_username) >= per_username.limit:
            _warn_owner(session, user, now, window_start)
        raise Unauthorized(refusal)
    assert user is not None  # a hash was verified
    if not user.is_enabled:
        # Said only to whoever knows the password; the attempt still counts.
        raise AccountDisabled()
    pair, *others = counters
    t = LoginThrottle.__table__
    # The right password from this address clears its count there; elsewhere only this
    # attempt is given back, so an attacker's count does not vanish when the owner signs in.
    session.execute(delete(t).where(t.c.kind == pair.kind, t.c.key == pair.key))
    for counter in others:
        _give_back(session, counter)
    return user


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    remote_addr: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> User:
    """Sign in: `check_password`, then the sign-in's bookkeeping."""
    user = check_password(
        session, username, password, remote_addr=remote_addr, now=now, policy=policy
    )
    # The time of the last sign-in is bookkeeping, not regulated data: a Core update of
    # that column alone, which the audited-table guard lets through (migration 0009).
    session.execute(
        update(User)
        .where(User.id == user.id)
        .values(last_login_at=now)
        .execution_options(**{audit.EXEMPT: True})
    )
    if needs_rehash(user.password_hash):
        # A new hash of the same password is still a change of a credential: on the trail.
        with audit.acting(
            session,
            user,
            now,
            "password re-hashed with current parameters",
            what=f"{user.username} signed in",
        ):
            user.password_hash = hash_password(password)
    return user


def change_password_with_credentials(
    session: Session,
    username: str,
    current: str,
    new: str,
    *,
    remote_addr: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> User:
    """For API clients, which cannot get a token with a temporary password: the current
    password stands in for a signed-in session, and wrong ones count like sign-in failures."""
    user = authenticate(session, username, current, remote_addr=remote_addr, now=now, policy=policy)
    change_own_password(session, user, now, current, new)
    return user


def issue_token(
    session: Session, user: User, now: datetime, ttl: timedelta
) -> tuple[str, ApiToken]:
    if user.must_change_password:
        raise PasswordChangeRequired()
    token = new_token()
    record = ApiToken(
        user_id=user.id, token_hash=token_digest(token), created_at=now, expires_at=now + ttl
    )
    session.add(record)
    session.flush()
    return token, record


def resolve_token(session: Session, token: str, now: datetime) -> User | None:
    return (
        session.scalars(
            select(User)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(
                ApiToken.token_hash == token_digest(token),
                ApiToken.revoked_at.is_(None),
                ApiToken.expires_at > now,
                User.is_enabled,
            )
            .options(*with_access())
        )
        .unique()
        .one_or_none()
    )


def revoke_token(session: Session, token: str, now: datetime) -> bool:
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))
    if record is None or record.revoked_at is not None:
        return False
    record.revoked_at = now
    session.flush()
    return True


def purge_stale_auth_records(session: Session, now: datetime, failure_window: timedelta) -> int:
    """Housekeeping: drop expired tokens (after a grace day) and stale sign-in counters."""
    tokens = cast(
        CursorResult[Any],
        session.execute(delete(ApiToken).where(ApiToken.expires_at < now - timedelta(days=1))),
    )
    t = LoginThrottle.__table__
    since = now - failure_window
    # A slowed-down username keeps its counter until its last delay is a window in the past.
    counters = cast(
        CursorResult[Any],
        session.execute(
            delete(t).where(
                t.c.window_start < since,
                or_(t.c.next_allowed_at.is_(None), t.c.next_allowed_at < since),
            )
        ),
    )
    return (tokens.rowcount or 0) + (counters.rowcount or 0)


@dataclass(frozen=True)
class Lockout:
    """How sign-in is held back for an account right now."""

    failures: int
    slowed_until: datetime | None
    blocked_addresses: int

    @property
    def locked(self) -> bool:
        return self.slowed_until is not None or self.blocked_addresses > 0


def _lockout_rows(usernames: list[str]) -> ColumnElement[bool]:
    t = LoginThrottle.__table__
    return or_(
        and_(t.c.kind == PER_USERNAME, t.c.key.in_(usernames)),
        *(
            and_(
                t.c.kind == PER_USERNAME_AND_ADDRESS, t.c.key.endswith(f"|{name}", autoescape=True)
            )
            for name in usernames
        ),
    )


def lockouts(
    session: Session, users: list[User], now: datetime, policy: ThrottlePolicy
) -> dict[int, Lockout]:
    """The accounts among `users` whose sign-in is held back now, in one query."""
    if not users:
        return {}
    by_name = {u.username: u for u in users}
    t = LoginThrottle.__table__
    found: dict[int, Lockout] = {}
    since = now - policy.window
    rows = session.execute(
        select(t.c.kind, t.c.key, t.c.failures, t.c.window_start, t.c.next_allowed_at).where(
            _lockout_rows(list(by_name)), t.c.window_start > since - policy.max_delay
        )
    )
    for kind, key, failures, window_start, next_allowed_at in rows:
        user = by_name.get(key.rsplit("|", 1)[-1])
        if user is None:
            continue
        current = found.get(user.id, Lockout(0, None, 0))
        if kind == PER_USERNAME:
            slowed = next_allowed_at if next_allowed_at and next_allowed_at > now else None
            current = Lockout(failures, slowed, current.blocked_addresses)
        elif window_start > since and failures >= policy.max_failures:
            current = Lockout(current.failures, current.slowed_until, current.blocked_addresses + 1)
        found[user.id] = current
    return {uid: lock for uid, lock in found.items() if lock.locked}


def unlock(session: Session, actor: User, now: datetime, user: User, reason: str) -> None:
    """Lift the sign-in lockout of `user`: their failed attempts are forgotten, from every
    address. Audited with the administrator's reason, like every change of access."""
    policy.require_role(actor, Role.ADMIN)
    if not (reason or "").strip():
        raise ValidationFailed("Say why.", {"fields": {"reason": ["required"]}})
    with audit.acting(session, actor, now, reason, what=f"Unlock sign-in of {user.username}"):
        user.unlocked_at = now
        user.updated_at = now
    session.execute(delete(LoginThrottle.__table__).where(_lockout_rows([user.username])))
