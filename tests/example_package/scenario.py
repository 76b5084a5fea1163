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
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from dct_platform import create_app, events, policy
from dct_platform.config import DEFAULT_FEATURE_PACKAGES
from dct_platform.extensions import db
from dct_platform.migrate import current_heads, script_heads, upgrade
from dct_platform.models import AuditEntry, EventDelivery, Patient, RemoteActivity, User
from dct_platform.services import accounts
from dct_platform.timeutil import utcnow
from tests.example_package.policy import COORDINATOR, SEE_ADDRESS
from tests.example_package.services import book_visit
from tests.support.clients import login, token_for
from tests.support.world import PASSWORD, build_world


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
        coordinator = s.get(User, world.users["coord_berlin"].id)
        # A booking that rolls back emits nothing...
        book_visit(s, coordinator, now, anna, nurse, visit_day)
        s.rollback()
        found["deliveries_after_rollback"] = s.scalar(
            select(func.count(EventDelivery.id)).where(
                EventDelivery.receiver_id == "example.activity-timeline"
            )
        )
        # ...one that commits is delivered after the commit.
        anna = s.get(Patient, world.patients["anna"].id)
        nurse = s.get(User, world.users["nurse"].id)
        book_visit(s, coordinator, now, anna, nurse, visit_day)
        found["timeline_before_commit"] = s.scalar(
            select(func.count(RemoteActivity.id)).where(
                RemoteActivity.package == "tests.example_package"
            )
        )
        s.commit()
        report = events.deliver_due(s, now, "example")
        found["delivered"] = str(report)
        found["activities"] = [
            (a.activity_type, a.site_id == world.berlin.id, a.status)
            for a in s.scalars(
                select(RemoteActivity).where(RemoteActivity.package == "tests.example_package")
            )
        ]

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
        found.update(_the_package_role(app, world))
        db.engine.dispose()
    return found


def _the_package_role(app: Any, world: Any) -> dict[str, Any]:
    """An administrator gives an account the package's role; it lands on the package's page."""
    berlin_id = world.berlin.id
    db.session.close()  # requests get sessions of their own; SQLite has one writer
    client = app.test_client()
    admin = token_for(client, "admin", PASSWORD)
    openapi = client.get("/api/v1/openapi.json").get_json()
    role_property = openapi["components"]["schemas"]["UserCreate"]["properties"]["role"]
    body = {
        "username": "coordinator",
        "password": "a long temporary passphrase",
        "display_name": "Cora Coordinator",
    }
    unknown = client.post("/api/v1/users", headers=admin, json={**body, "role": "example.nobody"})
    created = client.post("/api/v1/users", headers=admin, json={**body, "role": COORDINATOR})
    with_sites = client.post(
        "/api/v1/users",
        headers=admin,
        json={**body, "username": "c2", "role": COORDINATOR, "site_ids": [berlin_id]},
    )
    user = db.session.scalar(select(User).where(User.username == "coordinator"))
    # The first sign-in's password change, done by the owner as the page would.
    accounts.change_own_password(
        db.session, user, utcnow(), "a long temporary passphrase", "the coordinator's own"
    )
    db.session.commit()
    db.session.close()
    pages = app.test_client()
    signed_in = login(pages, "coordinator", "the coordinator's own")
    home = pages.get(signed_in.headers["Location"], follow_redirects=True)
    staff_page = pages.get("/site")
    user = db.session.scalar(select(User).where(User.username == "coordinator"))
    return {
        "role_documented": COORDINATOR in role_property.get("enum", []),
        "unknown_role": (unknown.status_code, unknown.get_json()["details"]["fields"]["role"]),
        "created": (created.status_code, created.get_json()["role"]),
        "role_label": created.get_json()["role_label"],
        "sites_refused": with_sites.get_json()["details"]["fields"].get("site_ids"),
        "coordinator_sees": sorted(
            p.subject_number
            for p in db.session.scalars(select(Patient).where(policy.visible(user, Patient)))
        ),
        "home": (home.request.path, home.status_code),
        "home_shows": "Home visits" in home.get_data(as_text=True)
        and "B1-anna" in home.get_data(as_text=True),
        "staff_page": staff_page.status_code,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
