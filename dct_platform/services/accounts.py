"""Accounts, sign-in with throttling, and API bearer tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dct_platform import audit, policy
from dct_platform.errors import (
    Conflict,
    Forbidden,
    TooManyAttempts,
    Unauthorized,
    ValidationFailed,
)
from dct_platform.models import (
    ApiToken,
    LoginFailure,
    Site,
    SiteMembership,
    Trial,
    TrialAccess,
    User,
)
from dct_platform.models.users import SITE_ROLES, TRIAL_ROLES, Role
from dct_platform.security import (
    hash_password,
    needs_rehash,
    new_token,
    password_problems,
    token_digest,
    verify_password,
)
from dct_platform.timeutil import is_valid_timezone


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    max_failures_per_ip: int = 50


def create_user(
    session: Session,
    actor: User | None,
    now: datetime,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str,
    email: str | None = None,
    timezone: str = "UTC",
    sites: Iterable[Site] = (),
    trials: Iterable[Trial] = (),
    system: str | None = None,
    must_change_password: bool = False,
) -> User:
    if system is None:
        _check_may_create(actor, role)
    username = username.strip().lower()
    errors: dict[str, list[str]] = {}
    if not username or len(username) > 80:
        errors["username"] = ["Give a username of 1 to 80 characters."]
    elif session.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"The username {username!r} is taken.", {"fields": {"username": ["taken"]}})
    if problems := password_problems(password):
        errors["password"] = problems
    if not is_valid_timezone(timezone):
        errors["timezone"] = [f"Unknown time zone {timezone!r}."]
    sites, trials = list(sites), list(trials)
    if sites and role not in SITE_ROLES:
        errors["sites"] = ["Only site staff and investigators belong to sites."]
    if trials and role not in TRIAL_ROLES:
        errors["trials"] = ["Only trial and supply managers are given whole trials."]
    if errors:
        raise ValidationFailed("The account could not be created; see details.", {"fields": errors})
    with audit.acting(session, actor, now, system=system):
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
    if problems := password_problems(password):
        raise ValidationFailed(
            "The password is not acceptable.", {"fields": {"password": problems}}
        )
    with audit.acting(session, actor, now, system=system):
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


def _check_may_create(actor: User | None, role: Role) -> None:
    # Administrators manage accounts; site staff open portal accounts for patients they enrol.
    allowed = actor is not None and (
        actor.role is Role.ADMIN or (actor.role in SITE_ROLES and role is Role.PATIENT)
    )
    if allowed and actor.is_enabled:  # type: ignore[union-attr]
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
    if problems := password_problems(new):
        errors["new_password"] = problems
    elif current == new:
        errors["new_password"] = [_l("Choose a password different from the current one.")]
    if errors:
        raise ValidationFailed("The password was not changed; see details.", {"fields": errors})
    with audit.acting(session, user, now, "password changed by its owner"):
        _replace_password(session, user, now, new, must_change=False)


def reset_password(session: Session, actor: User, now: datetime, user: User, reason: str) -> str:
    """An administrator issues a temporary password; the owner must change it at sign-in."""
    if not reason.strip():
        raise ValidationFailed(
            "Say why the password is reset.", {"fields": {"reason": ["required"]}}
        )
    password = temporary_password()
    with audit.acting(session, actor, now, reason):
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
    with audit.acting(session, actor, now, reason):
        user.is_enabled = enabled
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
    if sites and user.role not in SITE_ROLES:
        errors["site_ids"] = ["Only site staff and investigators belong to sites."]
    if trials and user.role not in TRIAL_ROLES:
        errors["trial_ids"] = ["Only trial and supply managers are given whole trials."]
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
    with audit.acting(session, actor, now, reason):
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


def _check_throttle(
    session: Session, username: str, remote_addr: str, now: datetime, policy: ThrottlePolicy
) -> None:
    since = now - policy.window
    by_user = session.scalar(
        select(func.count()).where(
            LoginFailure.username == username, LoginFailure.occurred_at > since
        )
    )
    by_ip = session.scalar(
        select(func.count()).where(
            LoginFailure.remote_addr == remote_addr, LoginFailure.occurred_at > since
        )
    )
    if (by_user or 0) >= policy.max_failures or (by_ip or 0) >= policy.max_failures_per_ip:
        raise TooManyAttempts(
            "Too many failed sign-in attempts. Wait a few minutes and try again.",
            retry_after=int(policy.window.total_seconds()),
        )


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    remote_addr: str,
    now: datetime,
    policy: ThrottlePolicy,
) -> User:
    """Check a username and password; failures are recorded and throttle further tries.

    The failure row is flushed with the caller's transaction: callers commit even when this
    raises, so that a wrong password still counts.
    """
    username = (username or "").strip().lower()
    _check_throttle(session, username, remote_addr, now, policy)
    user = session.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user else None, password or "") or not (
        user and user.is_enabled
    ):
        session.add(
            LoginFailure(username=username[:80], remote_addr=remote_addr[:64], occurred_at=now)
        )
        session.flush()
        raise Unauthorized("The username or password is not correct.")
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    # last_login_at and rehashing are bookkeeping, not regulated data changes; they stay out
    # of the audit trail deliberately by going through a Core update.
    values: dict[str, object] = {"last_login_at": now}
    if needs_rehash(user.password_hash):
        values["password_hash"] = hash_password(password)
    session.execute(
        update(User)
        .where(User.id == user.id)
        .values(**values)
        .execution_options(**{audit.EXEMPT: True})
    )
    return user


def issue_token(
    session: Session, user: User, now: datetime, ttl: timedelta
) -> tuple[str, ApiToken]:
    token = new_token()
    record = ApiToken(
        user_id=user.id, token_hash=token_digest(token), created_at=now, expires_at=now + ttl
    )
    session.add(record)
    session.flush()
    return token, record


def resolve_token(session: Session, token: str, now: datetime) -> User | None:
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        return None
    if not record.user.is_enabled:
        return None
    return record.user


def revoke_token(session: Session, token: str, now: datetime) -> bool:
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))
    if record is None or record.revoked_at is not None:
        return False
    record.revoked_at = now
    session.flush()
    return True


def purge_stale_auth_records(session: Session, now: datetime, failure_window: timedelta) -> int:
    """Housekeeping: drop expired tokens (after a grace day) and old sign-in failures."""
    tokens = session.execute(delete(ApiToken).where(ApiToken.expires_at < now - timedelta(days=1)))
    failures = session.execute(
        delete(LoginFailure).where(LoginFailure.occurred_at < now - failure_window)
    )
    return (tokens.rowcount or 0) + (failures.rowcount or 0)
