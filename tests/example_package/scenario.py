"""Run the example package on a fresh database and print what it could do, as JSON.

Run in its own process by tests/integration/test_feature_package.py: the package's tables
and rules must not leak into the other tests' platform.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from dct_platform import audit, create_app, policy
from dct_platform.config import DEFAULT_FEATURE_PACKAGES
from dct_platform.extensions import db
from dct_platform.migrate import current_heads, script_heads, upgrade
from dct_platform.models import AuditEntry, Patient, User
from tests.example_package.models import ExampleHomeVisit
from tests.example_package.policy import SEE_ADDRESS
from tests.support.world import build_world


def main(database_url: str, instance: Path) -> dict[str, Any]:
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SECRET_KEY": "example",
            "FEATURE_PACKAGES": (*DEFAULT_FEATURE_PACKAGES, "tests.example_package"),
        },
        instance_path=str(instance),
    )
    upgrade(app)
    found: dict[str, Any] = {
        "heads_applied": current_heads(app) == script_heads(app),
        "branches": sorted(script_heads(app)),
    }
    with app.app_context():
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        found["models_match_migrations"] = diff == []

        s = db.session
        now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
        world = build_world(s, now)
        anna = s.get(Patient, world.patients["anna"].id)
        nurse = s.get(User, world.users["nurse"].id)
        visit_day = now.astimezone(ZoneInfo(anna.timezone)).date() + timedelta(days=1)
        with audit.acting(s, None, now, system="example"):
            s.add(ExampleHomeVisit(patient_id=anna.id, nurse_id=nurse.id, visit_date=visit_day))
        s.commit()

        found["nurse_sees"] = sorted(
            p.subject_number
            for p in s.scalars(select(Patient).where(policy.visible(nurse, Patient)))
        )
        at = {
            "the day before": now,
            "the visit day": datetime.combine(visit_day, time(8), ZoneInfo(anna.timezone)),
            "the day after": datetime.combine(
                visit_day + timedelta(days=1), time(8), ZoneInfo(anna.timezone)
            ),
        }
        found["address_visible"] = {
            label: policy.can(nurse, SEE_ADDRESS, anna, now=when) for label, when in at.items()
        }
        found["audited"] = sorted(
            s.scalars(
                select(AuditEntry.field).where(AuditEntry.table_name == "example_home_visits")
            )
        )
        try:
            s.execute(text("DELETE FROM example_home_visits"))
            found["unaudited_delete"] = "allowed"
        except DBAPIError as exc:
            found["unaudited_delete"] = "refused" if "refused" in str(exc) else str(exc)
        s.rollback()
        found["forbidden_message"] = ""
        try:
            policy.authorize(nurse, SEE_ADDRESS, anna, now=now)
        except Exception as exc:
            found["forbidden_message"] = str(exc)
        db.engine.dispose()
    return found


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
