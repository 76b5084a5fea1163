"""A German or a Japanese patient meets only their own language: on the portal pages, on
error pages, in form errors, in the time-zone list and in the study's title."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dct_platform.errors import ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import Trial
from dct_platform.services import trials
from dct_platform.timeutil import utcnow
from tests.support.clients import login, submit
from tests.support.world import SYSTEM, World

# English a patient could meet on these pages; none of it may show in German or Japanese.
ENGLISH = [
    "Your study site",
    "Say this number",
    "My details",
    "Time zone",
    "Not found",
    "Not allowed",
    "Your role does not give access",
    "The requested URL was not found",
    "Go to your home page",
    "Unknown time zone",
    "Not a valid choice",
    "This field is required",
    "Europe/Berlin",
    "Europe ",
    "Suggested for you",
    "Change this when you travel",
    "Sign out",
]

GERMAN = {
    "home": ["Ihr Studienzentrum"],
    "profile": ["Zeitzone", "Europa", "Für Sie vorgeschlagen"],
    "404": ["Nicht gefunden", "Diese Seite gibt es nicht"],
    "403": ["Mit Ihrer Rolle haben Sie keinen Zugriff auf diese Seite."],
    "405": ["Hier nicht möglich"],
    "bad zone": ["Unbekannte Zeitzone. Bitte wählen Sie Ihre Zeitzone aus der Liste."],
    "bad language": ["Bitte wählen Sie eine Sprache aus der Liste."],
}
JAPANESE = {
    "home": ["治験実施施設"],
    "profile": ["タイムゾーン", "ヨーロッパ", "おすすめ", "東京"],
    "404": ["このページは存在しないか、ご利用いただけません。"],
    "403": ["現在のご利用区分では、このページにアクセスできません。"],
    "405": ["この操作はできません"],
    "bad zone": ["不明なタイムゾーンです。リストからタイムゾーンを選んでください。"],
    "bad language": ["リストから言語を選んでください。"],
}


def visible_text(html: str) -> str:
    """What the patient reads: the text and the list's group labels, not the tags, option
    values or other attributes."""
    labelled = re.sub(r'<optgroup label="([^"]*)">', r" \1 ", html)
    return re.sub(r"<[^>]*>", " ", labelled)


def speaks(client: FlaskClient, username: str, password: str, language: str) -> None:
    login(client, username, password)
    saved = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Europe/Berlin", "preferred_language": language},
    )
    assert saved.status_code == 302


def assert_in_language(text: str, expected: list[str]) -> None:
    for phrase in expected:
        assert phrase in text
    english = [phrase for phrase in ENGLISH if phrase in text]
    assert english == []


@pytest.mark.parametrize(("language", "phrases"), [("de", GERMAN), ("ja", JAPANESE)])
def test_patient_meets_no_english_on_pages_errors_and_form_errors(
    client: FlaskClient, world: World, language: str, phrases: dict[str, list[str]]
) -> None:
    speaks(client, "anna", world.password, language)

    home = client.get("/portal/")
    assert home.status_code == 200
    assert_in_language(visible_text(home.get_data(as_text=True)), phrases["home"])

    profile = client.get("/portal/profile")
    assert_in_language(visible_text(profile.get_data(as_text=True)), phrases["profile"])

    missing = client.get("/portal/no-such-page")
    assert missing.status_code == 404
    assert_in_language(visible_text(missing.get_data(as_text=True)), phrases["404"])

    staff_page = client.get("/site")
    assert staff_page.status_code == 403
    assert_in_language(visible_text(staff_page.get_data(as_text=True)), phrases["403"])

    wrong_method = client.delete("/portal/")
    assert wrong_method.status_code == 405
    assert_in_language(visible_text(wrong_method.get_data(as_text=True)), phrases["405"])

    bad_zone = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Europe/Atlantis", "preferred_language": language},
    )
    assert bad_zone.status_code == 422
    assert_in_language(visible_text(bad_zone.get_data(as_text=True)), phrases["bad zone"])

    bad_language = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Europe/Berlin", "preferred_language": "klingon"},
    )
    assert bad_language.status_code == 422
    assert_in_language(visible_text(bad_language.get_data(as_text=True)), phrases["bad language"])


def test_english_patient_still_reads_the_specific_reason_for_a_refusal(
    client: FlaskClient, world: World
) -> None:
    login(client, "anna", world.password)
    refused = client.get("/site")
    assert refused.status_code == 403
    text = visible_text(refused.get_data(as_text=True))
    assert "Not allowed" in text and "Your role does not give access to this." in text
    missing = visible_text(client.get("/portal/no-such-page").get_data(as_text=True))
    # The framework's stock sentence gives way to one that says what to do.
    assert "Not found" in missing and "Please check the address." in missing
    assert "If you entered the URL manually" not in missing


def options(html: str) -> list[tuple[str, list[str]]]:
    """The time-zone list as (group label, zone values), in page order."""
    select = re.search(r'<select[^>]*id="timezone".*?</select>', html, re.S)
    assert select, "the time zone is chosen from a list"
    return [
        (label, re.findall(r'value="([^"]*)"', body))
        for label, body in re.findall(
            r'<optgroup label="([^"]*)">(.*?)</optgroup>', select[0], re.S
        )
    ]


def test_time_zone_list_is_grouped_and_starts_with_the_likely_zones(
    client: FlaskClient, world: World
) -> None:
    login(client, "anna", world.password)
    moved = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "America/New_York", "preferred_language": "de"},
    )
    assert moved.status_code == 302
    html = client.get("/portal/profile").get_data(as_text=True)
    assert 'name="timezone" type="text"' not in html
    groups = options(html)
    # Her current zone, then her Berlin site's zone, before any region.
    assert groups[0] == ("Für Sie vorgeschlagen", ["America/New_York", "Europe/Berlin"])
    labels = [label for label, _zones in groups]
    assert labels[1:4] == ["Europa", "Amerika", "Asien"]
    europe = dict(groups)["Europa"]
    assert "Europe/Paris" in europe and "Europe/Berlin" not in europe  # listed once, on top
    assert "Asia/Tokyo" in dict(groups)["Asien"]
    assert re.search(r'<option selected value="America/New_York">New York \(', html)


def test_a_japanese_patient_reads_the_study_title_in_japanese(
    app: Flask, client: FlaskClient, world: World
) -> None:
    with app.app_context():
        trial = db.session.get(Trial, world.trial.id)
        trials.set_title_translations(
            db.session,
            None,
            utcnow(),
            trial,
            {"ja": "在宅での血圧管理に関する試験"},
            system=SYSTEM,
        )
        db.session.commit()
    speaks(client, "kenji", world.password, "ja")
    home = visible_text(client.get("/portal/").get_data(as_text=True))
    assert "在宅での血圧管理に関する試験" in home and "Test trial" not in home

    # A German patient has no German title yet: the study's own title, not a blank.
    other = client.application.test_client()
    speaks(other, "anna", world.password, "de")
    german = visible_text(other.get("/portal/").get_data(as_text=True))
    assert "Test trial" in german and "在宅" not in german


def test_translated_titles_change_only_through_the_audit_trail(app: Flask, world: World) -> None:
    with app.app_context():
        with pytest.raises(DBAPIError, match="refused"):
            db.session.execute(
                text("UPDATE trials SET title_translations = :t WHERE id = :id"),
                {"t": '{"ja": "無断の変更"}', "id": world.trial.id},
            )
        db.session.rollback()
        trial = db.session.get(Trial, world.trial.id)
        assert trial.title_in("ja") == "Test trial"
        with pytest.raises(ValidationFailed):
            trials.set_title_translations(
                db.session, None, utcnow(), trial, {"Japanese": "試験"}, system=SYSTEM
            )
