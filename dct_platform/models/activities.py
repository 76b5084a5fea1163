from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dct_platform.extensions import Base
from dct_platform.timeutil import UTCDateTime


class RemoteActivity(Base):
    """One remote activity of a patient, attributed to the site and investigator that were
    responsible for the patient when it happened.

    Every capability records its activities here (a televisit, a home visit, a shipment,
    a device batch, a diary entry...), with a reference to its own record, so that site
    oversight reads one timeline. The responsible site is fixed at the activity's time: a
    later transfer does not move past activities to the new site.
    """

    __tablename__ = "remote_activities"
    __table_args__ = (
        # A capability records each of its records once, however often it is told to.
        UniqueConstraint("activity_type", "record_table", "record_id"),
        Index("ix_remote_activities_site_time", "site_id", "occurred_at"),
        Index("ix_remote_activities_patient_time", "patient_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_type: Mapped[str] = mapped_column(String(64))
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    investigator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Another site concerned, e.g. the site a patient was transferred away from.
    related_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    originator_kind: Mapped[str] = mapped_column(String(16))
    originator_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    originator_ref: Mapped[str | None] = mapped_column(String(120))
    modality: Mapped[str | None] = mapped_column(String(32))
    location_type: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    package: Mapped[str] = mapped_column(String(64))
    record_table: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    # Pseudonymous by rule: no names, addresses or free text about the patient.
    summary: Mapped[str] = mapped_column(String(200))

    def __repr__(self) -> str:
        return f"<RemoteActivity {self.id} {self.activity_type} patient={self.patient_id}>"
