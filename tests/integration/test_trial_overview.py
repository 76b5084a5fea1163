"""The trial manager's overview: totals per status and each site's enrolment against its
target, on cards that never clip."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dct_platform.errors import ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import Site, User
from dct_platform.services import trials
from dct_platform.timeutil import utcnow
from tests.support.clients import login
from tests.support.world import World


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_overview_shows_totals_and_enrolment_against_each_target(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with app.app_context():
        admin = db.session.get(User, world.users["admin"].id)
        berlin = db.session.get(Site, world.berlin.id)
        trials.set_enrolment_target(db.session, admin, utcnow(), berlin, 4, "protocol v2")
        with pytest.raises(ValidationFailed):
            trials.set_enrolment_target(db.session, admin, utcnow(), berlin, -1, "typo")
        db.session.commit()
    login(client, "manager", world.password)
    html = client.get("/trial").get_data(as_text=True)
    text = _text(html)
    totals = _text(html.split('data-testid="trial-totals"')[1].split("</dl>")[0])
    assert "Enrolled to date 2 of 4" in totals and "Screening 0" in totals
    berlin_card = _text(html.split('data-testid="site-B1"')[1].split("</li>")[0])
    assert "Enrolled 1 of 4 (25%)" in berlin_card
    assert "Principal investigator: Pi_Berlin" in berlin_card
    tokyo_card = _text(html.split('data-testid="site-T1"')[1].split("</li>")[0])
    assert "Enrolled 1 · no enrolment target set" in tokyo_card
    assert "<table" not in html  # cards, not a table that clips on a phone
    assert "T-001" in text
