"""Patients read the portal in their language; staff pages stay in one language."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.clients import login, submit
from tests.support.world import World

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("language", "greeting", "nav"),
    [("de", "Hallo, Anna", "Meine Angaben"), ("ja", "こんにちは、Annaさん", "登録情報")],
)
def test_patient_sees_the_portal_in_their_language(
    client: FlaskClient, world: World, language: str, greeting: str, nav: str
) -> None:
    login(client, "anna", world.password)
    saved = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Europe/Berlin", "preferred_language": language},
    )
    assert saved.status_code == 302
    html = client.get("/portal/").get_data(as_text=True)
    assert f'<html lang="{language}">' in html
    assert greeting in html and nav in html
    assert "Your study site" not in html


def test_form_errors_follow_the_patients_language(client: FlaskClient, world: World) -> None:
    login(client, "anna", world.password)
    submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Europe/Berlin", "preferred_language": "de"},
    )
    wrong = submit(
        client,
        "/account/password",
        "/account/password",
        {
            "current_password": "not it",
            "new_password": "ein neues passwort",
            "confirm": "ein neues passwort",
        },
    )
    assert wrong.status_code == 422
    assert "Das ist nicht Ihr bisheriges Passwort." in wrong.get_data(as_text=True)


def test_sign_in_page_follows_the_browser_language(app: Flask, world: World) -> None:
    client = app.test_client()
    html = client.get("/login", headers={"Accept-Language": "ja,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="ja">' in html and "ログイン" in html
    english = (
        app.test_client().get("/login", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    )
    assert '<html lang="en">' in english and "Sign in" in english


def test_staff_pages_stay_english_whatever_the_browser_says(app: Flask, world: World) -> None:
    client = app.test_client()
    login(client, "coord_berlin", world.password)
    html = client.get("/site", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="en">' in html and "Sign out" in html and "Abmelden" not in html


def test_only_translated_languages_are_offered(client: FlaskClient, world: World) -> None:
    login(client, "anna", world.password)
    html = client.get("/portal/profile").get_data(as_text=True)
    assert 'value="de"' in html and 'value="ja"' in html and 'value="fr"' not in html


def test_catalogues_are_complete_and_compiled() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import translations
    finally:
        sys.path.pop(0)
    assert translations.problems() == []


def test_patient_home_offers_a_one_tap_call_to_the_site(client: FlaskClient, world: World) -> None:
    login(client, "anna", world.password)
    html = client.get("/portal/").get_data(as_text=True)
    assert 'href="tel:+49301234567"' in html and "Call +49 30 1234 567" in html
