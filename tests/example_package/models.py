from __future__ import annotations

from datetime import date

from sqlalchemy import Date, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from dct_platform.extensions import Base
from dct_platform.models.mixins import Audited


class ExampleHomeVisit(Audited, Base):
    """A home visit on a local date, assigned to a nurse."""

    __tablename__ = "example_home_visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    nurse_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    visit_date: Mapped[date] = mapped_column(Date())
