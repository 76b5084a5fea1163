from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Enum, ForeignKey, String, UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dct_platform.extensions import Base
from dct_platform.models.mixins import (
    Audited,
    Timestamped,
    Versioned,
    names_by_id,
    period_constraints,
)
from dct_platform.timeutil import UTCDateTime

if TYPE_CHECKING:
    from dct_platform.models.users import User


def enum_column(enum_cls: type[enum.Enum], name: str) -> Enum:
    # Stored as the enum values (lower-case words) in a VARCHAR with a CHECK, portable to SQLite.
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class TrialPhase(enum.StrEnum):
    PHASE_1 = "I"
    PHASE_1_2 = "I/II"
    PHASE_2 = "II"
    PHASE_2_3 = "II/III"
    PHASE_3 = "III"
    PHASE_4 = "IV"


class TrialStatus(enum.StrEnum):
    PLANNING = "planning"
    RECRUITING = "recruiting"
    ACTIVE = "active"
    CLOSED = "closed"


class Sponsor(Audited, Timestamped, Base):
    __tablename__ = "sponsors"
    __audit_noun__ = "Sponsor"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.name).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)

    trials: Mapped[list[Trial]] = relationship(back_populates="sponsor")

    def __repr__(self) -> str:
        return f"<Sponsor {self.id} {self.name!r}>"


class Trial(Audited, Versioned, Timestamped, Base):
    __tablename__ = "trials"
    __audit_noun__ = "Trial"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.protocol_number).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    sponsor_id: Mapped[int] = mapped_column(ForeignKey("sponsors.id"), index=True)
    protocol_number: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    # The title as patients read it in their language ({"ja": "...", "de": "..."}); the
    # portal falls back to `title` for a language without one.
    title_translations: Mapped[dict[str, str]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'"), info={"label": "Title translations"}
    )
    phase: Mapped[TrialPhase] = mapped_column(enum_column(TrialPhase, "trial_phase"))
    status: Mapped[TrialStatus] = mapped_column(enum_column(TrialStatus, "trial_status"))
    # The protocol version in force (amendments bump it; the trail keeps the history):
    # staff who run a trial's visits at home must be trained on it.
    protocol_version: Mapped[str] = mapped_column(
        String(20), default="1.0", server_default="1.0", info={"label": "Protocol version"}
    )

    # Every trial shown names its sponsor: loaded with the trial, not one query per trial.
    sponsor: Mapped[Sponsor] = relationship(back_populates="trials", lazy="joined")
    sites: Mapped[list[Site]] = relationship(back_populates="trial", order_by="Site.site_number")

    def title_in(self, language: object) -> str:
        """The title in `language` (a code or a babel Locale; "de-AT" falls back to "de"),
        else the default title."""
        code = str(language or "").replace("_", "-")
        translations = self.title_translations or {}
        return translations.get(code) or translations.get(code.split("-")[0]) or self.title

    def __repr__(self) -> str:
        return f"<Trial {self.id} {self.protocol_number}>"


class Site(Audited, Versioned, Timestamped, Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("trial_id", "site_number"),)
    __audit_noun__ = "Site"

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(session, select(cls.id, cls.site_number).where(cls.id.in_(ids)))

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    site_number: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64), info={"label": "Time zone"})
    # How patients reach their site: shown on every patient's home page.
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    principal_investigator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    # How many patients the site is to enrol; the trial overview shows progress against it.
    enrolment_target: Mapped[int | None] = mapped_column()

    trial: Mapped[Trial] = relationship(back_populates="sites")
    principal_investigator: Mapped[User | None] = relationship(
        foreign_keys=[principal_investigator_id]
    )

    def __repr__(self) -> str:
        return f"<Site {self.id} {self.site_number} {self.timezone}>"


class SiteInvestigatorPeriod(Audited, Base):
    """Who was the site's principal investigator, and when: remote work is attributed to
    the investigator responsible at the time it happened, not to today's."""

    __tablename__ = "site_investigator_periods"
    # One principal investigator at a time, as for patient ownership (migration 0004).
    __table_args__ = period_constraints("site_investigator_periods", "site_id")
    __audit_noun__ = "Principal investigator of site"
    __audit_hidden__ = frozenset({"id", "site_id"})

    @classmethod
    def audit_names(cls, session: Any, ids: list[int]) -> dict[int, str]:
        return names_by_id(
            session,
            select(cls.id, Site.site_number)
            .join(Site, Site.id == cls.site_id)
            .where(cls.id.in_(ids)),
        )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    investigator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<SiteInvestigatorPeriod site={self.site_id} pi={self.investigator_id}>"
