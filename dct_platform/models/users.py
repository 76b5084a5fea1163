from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, Table, UniqueConstraint, select
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship, validates

from dct_platform.extensions import Base
from dct_platform.models.mixins import Audited, Timestamped, Versioned, ids_among, names_by_id
from dct_platform.models.trials import Site, Trial
from dct_platform.roles import MAX_NAME_LENGTH, Role, is_role, role_label
from dct_platform.timeutil import UTCDateTime

# The core's roles that its own scopes and rules grant sites or trials to. A package's role
# gets its rights from the scopes and rules its package registers.
SITE_ROLES = frozenset({Role.SITE_STAFF, Role.INVESTIGATOR})
TRIAL_ROLES = frozenset({Role.SUPPLY_MANAGER, Role.TRIAL_MANAGER})


class User(UserMixin, Audited, Versioned, Timestamped, Base):
    __tablename__ = "users"
    __audit_redact__ = frozenset({"password_hash"})
    __audit_noun__ = "Account"
    # Bumped to end sessions; the reason and the action's summary say why.
    __audit_hidden__ = frozenset({"id", "session_version"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.username).where(cls.id.in_(ids)))

    # A patient's portal account carries their real name and e-mail: personal data, shown
    # only where the patient's identity is. Usernames of patients are derived from the
    # pseudonymous subject number; staff accounts are professional contact data.
    __personal_fields__ = frozenset({"display_name", "email"})

    @classmethod
    def personal_records(cls, session: Any, record_ids: set[str]) -> set[str]:
        return ids_among(
            session,
            record_ids,
            lambda ids: select(cls.id).where(cls.id.in_(ids), cls.role == Role.PATIENT),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(200))
    # A declared role's name (dct_platform/roles.py): the registry, not a database enum,
    # knows the roles, so that a feature package can add its own.
    role: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), info={"show": role_label})
    password_hash: Mapped[str] = mapped_column(String(255), info={"label": "Password"})
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", info={"label": "Time zone"})
    is_enabled: Mapped[bool] = mapped_column(default=True, info={"label": "Enabled"})
    # Bumped on password change or disable so existing sessions stop working.
    session_version: Mapped[int] = mapped_column(default=1)
    # Set for passwords someone else chose (a new portal account, a reset): the owner must
    # replace it before doing anything else.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When an administrator last lifted the sign-in lockout: failed attempts before it no
    # longer count. A column of the account, so that the unlock is on the audit trail.
    unlocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    site_memberships: Mapped[list[SiteMembership]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="SiteMembership.site_id"
    )
    trial_access: Mapped[list[TrialAccess]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @validates("role")
    def _known_role(self, _key: str, role: str) -> str:
        if not is_role(role):
            raise ValueError(f"unknown role {role!r}")
        return str(role)

    @property
    def role_label(self) -> str:
        return role_label(self.role)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses disabled accounts through this
        return self.is_enabled

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def site_ids(self) -> frozenset[int]:
        return frozenset(m.site_id for m in self.site_memberships)

    @property
    def trial_ids(self) -> frozenset[int]:
        return frozenset(a.trial_id for a in self.trial_access)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username} {self.role}>"


class SiteMembership(Audited, Base):
    """Site staff and investigators see the patients of the sites they belong to."""

    __tablename__ = "site_memberships"
    __table_args__ = (UniqueConstraint("user_id", "site_id"),)
    __audit_noun__ = "Site membership:"
    __audit_hidden__ = frozenset({"id", "user_id", "site_id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, User.username + " at site " + Site.site_number)
            .join(User, User.id == cls.user_id)
            .join(Site, Site.id == cls.site_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)

    user: Mapped[User] = relationship(back_populates="site_memberships")
    site: Mapped[Site] = relationship()

    def __repr__(self) -> str:
        return f"<SiteMembership user={self.user_id} site={self.site_id}>"


class TrialAccess(Audited, Base):
    """Trial managers and supply managers work across the sites of the trials they hold."""

    __tablename__ = "trial_access"
    __table_args__ = (UniqueConstraint("user_id", "trial_id"),)
    __audit_noun__ = "Trial access:"
    __audit_hidden__ = frozenset({"id", "user_id", "trial_id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, User.username + " on " + Trial.protocol_number)
            .join(User, User.id == cls.user_id)
            .join(Trial, Trial.id == cls.trial_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)

    user: Mapped[User] = relationship(back_populates="trial_access")
    trial: Mapped[Trial] = relationship()

    def __repr__(self) -> str:
        return f"<TrialAccess user={self.user_id} trial={self.trial_id}>"


class ApiToken(Base):
    """Bearer token. Only the SHA-256 of the token is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} user={self.user_id}>"


class LoginThrottle(Base):
    """Sign-in attempts counted per key, shared by every app process, to throttle guessing.

    One row per (kind, key), e.g. ("user", "anna") or ("address", "203.0.113.7"). It is only
    ever changed by a single INSERT ... ON CONFLICT DO UPDATE, so that parallel attempts
    cannot all read the same count and slip past the limit together.
    """

    __tablename__ = "login_throttle"

    if TYPE_CHECKING:
        # Declarative types every __table__ as a FromClause; a class mapped to its own
        # __tablename__ has a Table, which the Core statements that use this one need.
        __table__: ClassVar[Table]

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # Attempts reserved in the window; a successful sign-in gives its reservation back.
    failures: Mapped[int] = mapped_column(default=0)
    # Set once a slowed-down key is past its limit: no attempt is let through before it.
    next_allowed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<LoginThrottle {self.kind} {self.key} {self.failures}>"


def with_access() -> tuple[Any, ...]:
    """Load options that bring accounts with their sites and trials in the same query: the
    policy asks about them on every request, so the caller costs one statement."""
    return (joinedload(User.site_memberships), joinedload(User.trial_access))
