"""Which site and investigator owned a patient at a given time, across transfers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from dct_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import Patient, Site, User
from dct_platform.services import ownership, trials
from dct_platform.services import patients as service
from tests.support.world import World


def test_activity_before_a_transfer_stays_with_the_old_site(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        coord = s.get(User, world.users["coord_berlin"].id)
        anna = s.get(Patient, world.patients["anna"].id)
        moved_at = datetime.now(UTC)
        service.transfer_patient(s, coord, moved_at, anna, s.get(Site, world.tokyo.id), "Relocated")
        s.commit()

        before = ownership.responsibility_at(s, anna.id, moved_at - timedelta(seconds=1))
        after = ownership.responsibility_at(s, anna.id, moved_at)
        assert before.site_id == world.berlin.id
        assert before.investigator_id == world.users["pi_berlin"].id
        assert after.site_id == world.tokyo.id and after.investigator_id is None
        history = service.site_history(s, anna)
        assert [(h.site_id, h.valid_to) for h in history] == [
            (world.berlin.id, moved_at),
            (world.tokyo.id, None),
        ]
        batch = ownership.responsibilities_at(
            s, [(anna.id, moved_at - timedelta(days=1)), (anna.id, moved_at)]
        )
        assert list(batch.values()) == [world.berlin.id, world.tokyo.id]


def test_before_enrolment_there_is_no_owner(app: Flask, world: World) -> None:
    with app.app_context(), pytest.raises(NotFound):
        ownership.owning_site_id_at(
            db.session, world.patients["anna"].id, datetime(2000, 1, 1, tzinfo=UTC)
        )


def test_investigator_at_the_time_follows_pi_changes(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        site = s.get(Site, world.berlin.id)
        admin = s.get(User, world.users["admin"].id)
        from dct_platform.roles import Role
        from dct_platform.services import accounts

        new_pi = accounts.create_user(
            s,
            admin,
            datetime.now(UTC),
            username="pi2",
            password="another long one",
            role=Role.INVESTIGATOR,
            display_name="Dr. Two",
            sites=[site],
        )
        changed_at = datetime.now(UTC)
        trials.appoint_principal_investigator(
            s, admin, changed_at, site, new_pi, reason="PI retired"
        )
        s.commit()
        assert (
            ownership.investigator_id_at(s, site.id, changed_at - timedelta(seconds=1))
            == world.users["pi_berlin"].id
        )
        assert ownership.investigator_id_at(s, site.id, changed_at) == new_pi.id


def test_transfer_rules(app: Flask, world: World) -> None:
    with app.app_context():
        s = db.session
        coord = s.get(User, world.users["coord_berlin"].id)
        anna = s.get(Patient, world.patients["anna"].id)
        now = datetime.now(UTC)
        with pytest.raises(ValidationFailed):
            service.transfer_patient(s, coord, now, anna, s.get(Site, world.tokyo.id), "  ")
        with pytest.raises(Conflict):
            service.transfer_patient(s, coord, now, anna, s.get(Site, world.berlin.id), "same")
        tokyo_coord = s.get(User, world.users["coord_tokyo"].id)
        with pytest.raises(Forbidden):
            service.transfer_patient(s, tokyo_coord, now, anna, s.get(Site, world.tokyo.id), "grab")
        assert s.get(Patient, anna.id).site_id == world.berlin.id
