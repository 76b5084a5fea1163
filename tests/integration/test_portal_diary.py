"""The patient's diary in the portal: the list of what is due, coming, missed and done, in
the patient's zone and language; the form of one diary, stored through `entries.submit`
once however often it is sent; the item's own message for a wrong answer; a clear page
when the window is closed or not open yet; nobody else's diary."""

# German and Japanese are written with their own dashes and full-width question marks,
# which RUF001 takes for look-alikes of ASCII ones.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from dct_platform.extensions import db
from dct_platform.models import Patient, Trial, User
from dct_platform.timeutil import utcnow
from devices.ediary import entries, schedules
from devices.ediary.demo_instruments import DAILY_SYMPTOMS
from devices.ediary.models import Entry, Occurrence, ScheduleKind
from tests.integration.test_portal_languages import visible_text
from tests.support.clients import csrf_token, login, submit
from tests.support.clock import TestClock
from tests.support.queries import statements_of
from tests.support.world import World
from tests.unit.test_ediary_instruments import ALL_TYPES

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
# The form's fields for DAILY_SYMPTOMS' answers, as a browser sends them; the hours in a
# German patient's way of writing them.
FORM = {
    "q-wellbeing": "6",
    "q-pain": "yes",
    "q-pain_intensity": "3",
    "q-nausea": "mild",
    "q-symptoms": ["headache", "fatigue"],
    "q-hours_slept": "7,5",
    "q-sleep_quality": "good",
    "q-anything_else": "  Slept badly  ",
}
STORED = {
    "wellbeing": 6,
    "pain": True,
    "pain_intensity": 3,
    "nausea": "mild",
    "symptoms": ["headache", "fatigue"],
    "hours_slept": 7.5,
    "sleep_quality": "good",
    "anything_else": "Slept badly",
}
_CLIENT_ID = re.compile(r'name="client_id" value="([^"]+)"')


@dataclass(frozen=True)
class Diary:
    first_day: date


def _at(day: date, clock: str, zone: ZoneInfo = BERLIN) -> datetime:
    hour, minute = (int(x) for x in clock.split(":"))
    return datetime.combine(day, time(hour, minute), zone)


def _add_schedule(
    app: Flask, world: World, definition: dict[str, Any], first: date, patient: str | None = None
) -> None:
    with app.app_context():
        s, now = db.session(), utcnow()
        version = schedules.add_version(s, None, now, definition, system="test")
        trial = s.get(Trial, world.trial.id)
        assert trial is not None
        only = s.get(Patient, world.patients[patient].id) if patient else None
        schedules.add_schedule(
            s, None, now, trial=trial, version=version, kind=ScheduleKind.DAILY,
            window_start="18:00", window_end="24:00", first_date=first, patient=only,
            system="test",
        )  # fmt: skip
        s.commit()


@pytest.fixture
def diary(app: Flask, world: World, clock: TestClock) -> Diary:
    """The daily symptom diary for the trial's patients, 18:00 to midnight on each one's
    own clock, from tomorrow (Berlin) on."""
    first = (utcnow().astimezone(BERLIN) + timedelta(days=1)).date()
    _add_schedule(app, world, DAILY_SYMPTOMS, first)
    return Diary(first)


def _refresh(app: Flask, clock: TestClock, at: datetime) -> None:
    clock.freeze(at)
    with app.app_context():
        schedules.refresh(db.session(), utcnow())
        db.session.commit()


def _occurrence_id(app: Flask, world: World, patient: str, day: date) -> int:
    with app.app_context():
        found = db.session.scalar(
            select(Occurrence.id).where(
                Occurrence.patient_id == world.patients[patient].id, Occurrence.local_date == day
            )
        )
        assert found is not None, f"no diary of {patient} on {day}"
        return found


def _entries(app: Flask) -> list[Entry]:
    with app.app_context():
        found = list(db.session.scalars(select(Entry).order_by(Entry.id)))
        db.session.expunge_all()
        return found


def _submit_directly(app: Flask, world: World, occurrence_id: int) -> None:
    with app.app_context():
        s = db.session()
        anna = s.get(Patient, world.patients["anna"].id)
        user = s.get(User, world.users["anna"].id)
        assert anna is not None and user is not None
        entries.submit(s, user, anna, occurrence_id, STORED, utcnow(), client_id="earlier")
        s.commit()


def _form(client: FlaskClient, occurrence_id: int) -> tuple[str, str]:
    """The form page's CSRF token and client id, as the browser has them."""
    page = client.get(f"/portal/diary/{occurrence_id}")
    assert page.status_code == 200, page.status_code
    html = page.get_data(as_text=True)
    match = _CLIENT_ID.search(html)
    assert match, "the form carries a client id"
    return csrf_token(client, f"/portal/diary/{occurrence_id}"), match.group(1)


def _send(
    client: FlaskClient, occurrence_id: int, form: dict[str, Any], client_id: str, token: str
) -> TestResponse:
    body = {
        "csrf_token": token,
        "client_id": client_id,
        "device_time": "2026-03-10T20:00:02+01:00",
        **form,
    }
    return client.post(f"/portal/diary/{occurrence_id}", data=body)


def _section(html: str, testid: str) -> str:
    match = re.search(rf'<section[^>]*data-testid="{testid}".*?</section>', html, re.S)
    assert match, f"no section {testid}"
    return visible_text(match.group(0))


def _day(day: date, language: str = "en") -> str:
    return str(format_date(day, "full", locale=language))


def _speaks(client: FlaskClient, world: World, username: str, language: str) -> None:
    login(client, username, world.password)
    saved = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Asia/Tokyo" if username == "kenji" else "Europe/Berlin",
         "preferred_language": language},
    )  # fmt: skip
    assert saved.status_code == 302


def _compact(text: str) -> str:
    # Babel writes "6:00 PM" with a narrow no-break space; the page's text is read as words.
    return " ".join(text.replace("\u202f", " ").split())


def test_the_list_shows_due_coming_missed_and_done_on_the_patients_clock(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    day = diary.first_day
    _refresh(app, clock, _at(day, "20:00"))
    _submit_directly(app, world, _occurrence_id(app, world, "anna", day))
    _refresh(app, clock, _at(day + timedelta(days=2), "20:00"))

    login(client, "anna", world.password)
    html = client.get("/portal/diary/").get_data(as_text=True)
    assert "Times are shown in your time zone: Berlin (Germany)." in html
    due = _compact(_section(html, "diary-due-section"))
    assert _day(day + timedelta(days=2)) in due
    assert "Open until midnight today." in due and "Closes in 4 hours." in due
    assert (
        f'href="/portal/diary/{_occurrence_id(app, world, "anna", day + timedelta(days=2))}"'
        in html
    )
    coming = _compact(_section(html, "diary-coming-section"))
    assert _day(day + timedelta(days=3)) in coming and "Opens at 6:00 PM tomorrow." in coming
    missed = _compact(_section(html, "diary-missed-section"))
    assert _day(day + timedelta(days=1)) in missed and "Not filled in." in missed
    done = _compact(_section(html, "diary-done-section"))
    assert _day(day) in done and "at 8:00 PM." in done
    assert _day(day + timedelta(days=2)) not in missed + done + coming

    # Kenji lives in Tokyo: at the same instant it is early morning of the next day there,
    # his evening of day+2 is over and that of day+3 opens this evening.
    other = app.test_client()
    login(other, "kenji", world.password)
    tokyo = other.get("/portal/diary/").get_data(as_text=True)
    assert "Times are shown in your time zone: Tokyo (Japan)." in tokyo
    assert "Nothing to fill in right now." in _section(tokyo, "diary-due-section")
    coming = _compact(_section(tokyo, "diary-coming-section"))
    assert _day(day + timedelta(days=3)) in coming and "Opens at 6:00 PM today." in coming
    assert _day(day + timedelta(days=2)) in _section(tokyo, "diary-missed-section")

    # The home page sums it up, with the button to the diary due.
    home = client.get("/portal/").get_data(as_text=True)
    summary = _compact(visible_text(home))
    assert "My diary" in summary and "Closes in 4 hours." in summary
    assert "Missed in the last 7 days: 1" in summary
    assert 'data-testid="diary-fill"' in home


def test_the_form_stores_through_the_one_write_path_and_a_resend_stores_once(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    day = diary.first_day
    _refresh(app, clock, _at(day, "20:00"))
    occurrence = _occurrence_id(app, world, "anna", day)
    login(client, "anna", world.password)
    token, client_id = _form(client, occurrence)

    sent = _send(client, occurrence, FORM, client_id, token)
    assert sent.status_code == 302
    assert sent.headers["Location"] == f"/portal/diary/?saved={occurrence}"
    [entry] = _entries(app)
    assert entry.answers == STORED and entry.occurrence_id == occurrence
    assert (entry.source, entry.client_id, entry.late) == ("portal", client_id, False)
    assert entry.device_time == "2026-03-10T20:00:02+01:00"

    # The network dropped before the answer arrived: the browser sends it again.
    again = _send(client, occurrence, FORM, client_id, token)
    assert (again.status_code, again.headers["Location"]) == (
        sent.status_code,
        sent.headers["Location"],
    )
    assert len(_entries(app)) == 1

    confirmation = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert f"Thank you — your diary for {_day(day)} is saved." in confirmation
    assert _day(day) in _section(confirmation, "diary-done-section")
    assert "Nothing to fill in right now." in _section(confirmation, "diary-due-section")

    # From another tab with another client id: saved already, and said so.
    other_tab = _send(client, occurrence, FORM, "another-tab", token)
    assert other_tab.status_code == 409
    assert "This diary is filled in. Thank you!" in other_tab.get_data(as_text=True)
    assert len(_entries(app)) == 1
    # A page copied from this diary's sends its client id with tomorrow's: asked again,
    # with a new one.
    tomorrow = _occurrence_id(app, world, "anna", day + timedelta(days=1))
    copied = _send(client, tomorrow, FORM, client_id, token)
    assert copied.status_code == 409
    html = copied.get_data(as_text=True)
    assert "Please check your answers and send them again." in html
    assert f'name="client_id" value="{client_id}"' not in html
    assert len(_entries(app)) == 1
    # The form itself now says it is done.
    page = client.get(f"/portal/diary/{occurrence}").get_data(as_text=True)
    assert "This diary is filled in." in page and 'name="client_id"' not in page


def test_questions_the_answers_skip_are_not_required_and_not_stored(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    _refresh(app, clock, _at(diary.first_day, "23:30"))
    occurrence = _occurrence_id(app, world, "anna", diary.first_day)
    login(client, "anna", world.password)
    token, client_id = _form(client, occurrence)
    # No pain, yet an intensity left over from an earlier choice (no JavaScript to hide it).
    form = {**FORM, "q-pain": "no", "q-pain_intensity": "8", "q-symptoms": []}
    assert _send(client, occurrence, form, client_id, token).status_code == 302
    [entry] = _entries(app)
    assert "pain_intensity" not in entry.answers and entry.answers["pain"] is False
    assert "symptoms" not in entry.answers


def test_wrong_answers_are_shown_at_their_question_with_422(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    _refresh(app, clock, _at(diary.first_day, "20:00"))
    occurrence = _occurrence_id(app, world, "anna", diary.first_day)
    login(client, "anna", world.password)
    token, client_id = _form(client, occurrence)
    form = {**FORM, "q-wellbeing": "", "q-pain_intensity": "", "q-hours_slept": "30"}
    refused = _send(client, occurrence, form, client_id, token)
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "There is a problem" in html and "data-error-summary" in html
    hours = re.search(r'id="q-hours_slept-question".*?</div>\s*</div>', html, re.S)
    assert hours and "Must be between 0 and 24 hours." in hours.group(0)
    assert 'value="30"' in hours.group(0) and 'aria-invalid="true"' in hours.group(0)
    assert (
        'aria-describedby="q-hours_slept-help q-hours_slept-hint q-hours_slept-unit q-hours_slept-error"'
        in hours.group(0)
    )
    wellbeing = re.search(r'id="q-wellbeing-question".*?</fieldset>', html, re.S)
    assert wellbeing and "This question needs an answer." in wellbeing.group(0)
    assert '<a href="#q-wellbeing-0">' in html  # the summary leads to the first choice
    # The intensity is asked (pain: yes) and needs its answer too.
    assert html.count("This question needs an answer.") == 4  # two in the summary, two inline
    # What was answered stays answered, and the same client id goes with the next try.
    assert 'id="q-nausea-1" name="q-nausea" value="mild" checked' in html
    assert f'name="client_id" value="{client_id}"' in html
    assert _entries(app) == []


def test_a_closed_window_and_one_not_open_yet_say_so(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    day = diary.first_day
    _refresh(app, clock, _at(day, "20:00"))
    today, tomorrow = (_occurrence_id(app, world, "anna", d) for d in (day, day + timedelta(1)))
    login(client, "anna", world.password)
    token, client_id = _form(client, today)

    early = client.get(f"/portal/diary/{tomorrow}")
    assert early.status_code == 200
    text = _compact(visible_text(early.get_data(as_text=True)))
    assert "This diary is not open yet." in text and "Opens at 6:00 PM tomorrow." in text

    # The patient took too long: midnight passed before they pressed "Save".
    clock.freeze(_at(day + timedelta(days=1), "00:00"))
    late = _send(client, today, FORM, client_id, token)
    assert late.status_code == 422
    message = "The time for this diary is over: it can no longer be filled in."
    assert message in late.get_data(as_text=True)
    assert "tel:+49301234567" in late.get_data(as_text=True)
    assert _entries(app) == []
    reopened = client.get(f"/portal/diary/{today}")
    assert reopened.status_code == 200 and message in reopened.get_data(as_text=True)
    assert 'name="client_id"' not in reopened.get_data(as_text=True)


def test_another_patients_diary_is_not_found(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    _refresh(app, clock, _at(diary.first_day, "20:00"))
    annas = _occurrence_id(app, world, "anna", diary.first_day)
    login(client, "kenji", world.password)
    assert client.get(f"/portal/diary/{annas}").status_code == 404
    token = csrf_token(client, "/portal/diary/")
    stolen = _send(client, annas, FORM, "kenji-1", token)
    assert stolen.status_code == 404
    assert _entries(app) == []
    staff = app.test_client()
    login(staff, "coord_berlin", world.password)
    assert staff.get("/portal/diary/").status_code == 403
    assert staff.get(f"/portal/diary/{annas}").status_code == 403


def test_a_german_patient_reads_the_diary_in_german(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    day = diary.first_day
    _refresh(app, clock, _at(day, "20:00"))
    occurrence = _occurrence_id(app, world, "anna", day)
    _speaks(client, world, "anna", "de")

    listing = _compact(visible_text(client.get("/portal/diary/").get_data(as_text=True)))
    for phrase in [
        "Mein Tagebuch",
        "Jetzt auszufüllen",
        "Tägliches Symptomtagebuch",
        f"Für {_day(day, 'de')}",
        "Heute bis Mitternacht geöffnet.",
        "Noch 4 Stunden geöffnet.",
        "Ausfüllen",
        "Zeiten in Ihrer Zeitzone: Berlin (Deutschland).",
    ]:
        assert phrase in listing, phrase

    token, client_id = _form(client, occurrence)
    page = _compact(visible_text(client.get(f"/portal/diary/{occurrence}").get_data(as_text=True)))
    for phrase in [
        "Wie gut fühlen Sie sich heute insgesamt?",
        "Ja",
        "Nein",
        "Leicht",
        "Kopfschmerzen",
        "Zum Beispiel 7,5 für siebeneinhalb Stunden.",
        "Eine Zahl von 0 bis 24.",
        "Stunden",
        "(freiwillig)",
        "Nur wenn Sie „Ja“ geantwortet haben auf: Hatten Sie heute Schmerzen?",
        "Mein Tagebuch speichern",
    ]:
        assert phrase in page, phrase

    refused = _send(
        client, occurrence, {**FORM, "q-wellbeing": "", "q-hours_slept": "30,5"}, client_id, token
    )
    assert refused.status_code == 422
    text = _compact(visible_text(refused.get_data(as_text=True)))
    assert "Diese Frage muss beantwortet werden." in text
    assert "Der Wert muss zwischen 0 und 24 Stunden liegen." in text
    english = ["needs an answer", "Must be between", "Daily symptom diary", "Fill in", "Save my diary",
               "How strong", "Open until", "Closes in", "Yes", "optional"]  # fmt: skip
    assert [e for e in english if e in listing + page + text] == []

    sent = _send(client, occurrence, FORM, client_id, token)
    thanks = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert f"Vielen Dank – Ihr Tagebuch für {_day(day, 'de')} ist gespeichert." in thanks


def test_a_japanese_patient_reads_the_diary_in_japanese(
    app: Flask, world: World, diary: Diary, clock: TestClock
) -> None:
    day = diary.first_day
    _refresh(app, clock, _at(day, "20:00", TOKYO))
    occurrence = _occurrence_id(app, world, "kenji", day)
    client = app.test_client()
    _speaks(client, world, "kenji", "ja")
    listing = _compact(visible_text(client.get("/portal/diary/").get_data(as_text=True)))
    assert "毎日の症状日誌" in listing and "入力する" in listing and "わたしの日誌" in listing
    page = _compact(visible_text(client.get(f"/portal/diary/{occurrence}").get_data(as_text=True)))
    assert "今日の全体的な体調はいかがですか？" in page and "日誌を保存する" in page
    assert "Save my diary" not in page and "Fill in" not in listing


def test_every_item_type_has_its_control_and_a_local_time_gets_the_patients_offset(
    app: Flask, client: FlaskClient, world: World, clock: TestClock
) -> None:
    first = (utcnow().astimezone(BERLIN) + timedelta(days=1)).date()
    _add_schedule(app, world, ALL_TYPES, first, patient="anna")
    _refresh(app, clock, _at(first, "19:00"))
    occurrence = _occurrence_id(app, world, "anna", first)
    login(client, "anna", world.password)
    html = client.get(f"/portal/diary/{occurrence}").get_data(as_text=True)
    assert 'type="radio" id="q-feeling-0" name="q-feeling" value="good"' in html
    assert 'type="checkbox" id="q-where-1" name="q-where" value="back"' in html
    assert all(f'name="q-back_pain" value="{n}"' in html for n in range(11))
    assert 'name="q-took_medicine" value="yes"' in html and 'value="no"' in html
    assert 'type="datetime-local" id="q-last_dose"' in html
    assert re.search(r'<input type="text" inputmode="decimal"[^>]*id="q-temperature"', html)
    assert '<span class="unit" id="q-temperature-unit">°C</span>' in html
    assert 'type="date" id="q-visit_day"' in html
    assert '<textarea id="q-notes" name="q-notes" rows="4" maxlength="20"' in html
    # Skip logic for the script: each dependent question names its condition.
    assert 'data-question="q-back_pain" data-show-if="q-where" data-show-value="back"' in html
    assert 'data-show-if="q-back_pain" data-show-value="10"' in html

    token, client_id = _form(client, occurrence)
    form = {
        "q-feeling": "bad", "q-where": ["back", "head"], "q-back_pain": "10",
        "q-took_medicine": "yes", "q-last_dose": "2026-03-29T02:30", "q-temperature": "37.2",
        "q-steps": "4200", "q-visit_day": "2026-04-01", "q-notes": "",
    }  # fmt: skip
    assert _send(client, occurrence, form, client_id, token).status_code == 302
    [entry] = _entries(app)
    # In Berlin's spring-forward gap: 02:30 is read as 03:30 summer time, as calendars do.
    assert entry.answers == {
        "feeling": "bad", "where": ["head", "back"], "back_pain": 10, "took_medicine": True,
        "last_dose": "2026-03-29T03:30:00+02:00", "temperature": 37.2, "steps": 4200,
        "visit_day": "2026-04-01",
    }  # fmt: skip


def test_the_list_costs_the_same_statements_however_many_diaries(
    app: Flask, client: FlaskClient, world: World, diary: Diary, clock: TestClock
) -> None:
    day = diary.first_day
    _refresh(app, clock, _at(day, "20:00"))
    login(client, "anna", world.password)

    def count() -> int:
        with statements_of(app) as statements:
            assert client.get("/portal/diary/").status_code == 200
        return len(statements)

    few = count()
    _add_schedule(app, world, ALL_TYPES, day, patient="anna")
    for later in range(1, 5):
        _refresh(app, clock, _at(day + timedelta(days=later), "20:00"))
    with app.app_context():
        shown = db.session.scalar(
            select(func.count(Occurrence.id)).where(
                Occurrence.patient_id == world.patients["anna"].id
            )
        )
    assert shown is not None and shown >= 8
    assert count() == few
