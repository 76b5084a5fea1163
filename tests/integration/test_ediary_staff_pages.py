"""The site's pages of a patient's diary: the list of their diaries over a period with each
one's state on the patient's clock, one entry with its answers in words and its
corrections, and the correction of one answer with a reason, which the audit trail keeps.
Only the staff of the patient's site correct; the trial manager reads; staff of another
site see nothing (404) and a patient is refused (403)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from dct_platform.extensions import db
from dct_platform.models import AuditAction, AuditEntry, Trial
from dct_platform.timeutil import format_local, utcnow
from devices.ediary import schedules
from devices.ediary.demo_instruments import DAILY_SYMPTOMS
from devices.ediary.models import ChangeRequest, Entry, ScheduleKind
from tests.support.clients import csrf_token, login
from tests.support.clock import TestClock
from tests.support.ediary import ANSWERS, BERLIN, local, occurrence, refresh, submit
from tests.support.world import World


@dataclass(frozen=True)
class History:
    """Anna's diaries: day 0 on time, day 1 missed, day 2 late, day 3 still open now, and
    the days the occurrences job writes ahead (upcoming)."""

    first: date
    on_time: int  # entry ids
    late: int


def _late_allowed_diary(app: Flask, world: World) -> date:
    """The daily symptom diary, 18:00 to midnight, late entries for two more hours."""
    first = (utcnow().astimezone(BERLIN) + timedelta(days=1)).date()
    with app.app_context():
        s, now = db.session(), utcnow()
        version = schedules.add_version(s, None, now, DAILY_SYMPTOMS, system="test")
        trial = s.get(Trial, world.trial.id)
        assert trial is not None
        schedules.add_schedule(
            s, None, now, trial=trial, version=version, kind=ScheduleKind.DAILY,
            window_start="18:00", window_end="24:00", first_date=first,
            late_allowed_minutes=120, system="test",
        )  # fmt: skip
        s.commit()
    return first


@pytest.fixture
def history(app: Flask, world: World, clock: TestClock) -> History:
    first = _late_allowed_diary(app, world)
    anna = world.patients["anna"].id
    clock.freeze(local(first, "12:00:00"))
    refresh(app, clock())
    clock.freeze(local(first, "20:00:00"))
    on_time = submit(app, world, occurrence(app, anna, first).id, ANSWERS, "d0").entry.id
    day2 = first + timedelta(days=2)
    clock.freeze(local(day2, "12:00:00"))
    refresh(app, clock())
    clock.freeze(local(day2 + timedelta(days=1), "00:30:00"))
    late = submit(app, world, occurrence(app, anna, day2).id, ANSWERS, "d2").entry.id
    clock.freeze(local(first + timedelta(days=3), "19:00:00"))
    refresh(app, clock())  # day 1 is marked missed; day 3 is open
    return History(first, on_time, late)


def _signed_in(app: Flask, username: str, password: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, username, password).status_code == 302
    return client


def _text(fragment: str) -> str:
    """What a fragment of HTML reads as, in one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _rows(page: str, testid: str) -> list[str]:
    table = re.search(rf'data-testid="{testid}">(.*?)</table>', page, re.S)
    assert table, f"no table {testid}"
    return [_text(r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S)[1:]]


def _correct(
    client: FlaskClient, entry_id: int, link_id: str, data: dict[str, object]
) -> TestResponse:
    url = f"/diary/entries/{entry_id}/corrections/{link_id}"
    return client.post(url, data={"csrf_token": csrf_token(client, url), **data})


def _answers(app: Flask, entry_id: int) -> dict[str, object]:
    with app.app_context():
        entry = db.session.get(Entry, entry_id)
        assert entry is not None
        return dict(entry.answers)


def _corrections(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ChangeRequest)) or 0


def test_staff_see_the_patients_diaries_with_states_and_local_times(
    app: Flask, world: World, history: History
) -> None:
    staff = _signed_in(app, "coord_berlin", world.password)
    anna = world.patients["anna"].id
    response = staff.get(f"/diary/patients/{anna}?days=7")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Diary of subject B1-anna" in page and "B1 · Berlin" in page
    rows = _rows(page, "diary-table")
    day = [history.first + timedelta(days=n) for n in range(6)]
    states = [(r.split(" Daily symptom diary")[0], r) for r in rows]
    # Newest first: the days written ahead, today's open one, then late, missed, on time.
    assert [s for s, _ in states] == [d.strftime("%a %d %b %Y") for d in reversed(day)]
    assert [r.split("version 1 ")[1].split(" ")[0] for r in rows[:2]] == ["upcoming"] * 2
    assert "still open" in rows[2]
    late, missed, on_time = rows[3], rows[4], rows[5]
    submitted_late = format_local(local(day[3], "00:30:00"), "Europe/Berlin")
    assert "late" in late and f"{submitted_late} Europe/Berlin" in late
    assert "missed" in missed and "View" not in missed
    submitted = format_local(local(day[0], "20:00:00"), "Europe/Berlin")
    assert submitted.startswith(f"{day[0].isoformat()} 20:00 ")  # the patient's evening
    assert "on time" in on_time and submitted in on_time and "View" in on_time
    assert f'href="/diary/entries/{history.on_time}"' in page
    assert f'href="/site/patients/{anna}"' in page  # the subject's record, one link away


def test_the_compliance_page_links_to_the_diary_and_draws_the_threshold(
    app: Flask, world: World, history: History
) -> None:
    staff = _signed_in(app, "coord_berlin", world.password)
    page = staff.get("/diary/compliance?days=30").get_data(as_text=True)
    anna = world.patients["anna"].id
    assert f'href="/diary/patients/{anna}?days=30">B1-anna</a>' in page
    assert "with a dashed line at the 80% threshold" in page
    assert staff.get(f"/diary/patients/{anna}?days=5").status_code == 422
    assert "Choose a period of 7, 14, 30, 90 days." in (
        staff.get(f"/diary/patients/{anna}?days=%C2%B2").get_data(as_text=True)
    )


def test_the_entry_shows_its_answers_in_words(
    app: Flask, world: World, history: History, clock: TestClock
) -> None:
    staff = _signed_in(app, "coord_berlin", world.password)
    page = staff.get(f"/diary/entries/{history.on_time}").get_data(as_text=True)
    answers = _rows(page, "answers")
    assert answers[0].startswith("Overall, how well do you feel today?") and " 6 " in answers[0]
    assert "Have you had any pain today? Yes" in answers[1]
    assert "How bad was any nausea today? Mild" in answers[3]
    assert "Which of these did you have today? not answered" in answers[4]
    assert "How many hours did you sleep last night? 7.5 hours" in answers[5]
    assert "How well did you sleep last night? Well" in answers[6]
    assert page.count("Correct this answer") == 8  # every question is asked
    facts = _text(re.search(r'data-testid="entry-facts">(.*?)</dl>', page, re.S).group(1))  # type: ignore[union-attr]
    assert "Daily symptom diary, version 1" in facts
    assert "Source Patient portal" in facts and "Timeliness on time" in facts
    assert "Device clock not reported" in facts
    assert f"{history.first.isoformat()} 20:00" in facts and "(Europe/Berlin)" in facts
    assert "19:00 UTC" in facts or "18:00 UTC" in facts  # the same instant in UTC

    # Without pain, its strength is not asked.
    anna = world.patients["anna"].id
    today = history.first + timedelta(days=3)
    no_pain = {k: v for k, v in ANSWERS.items() if k != "pain_intensity"} | {"pain": False}
    entry = submit(app, world, occurrence(app, anna, today).id, no_pain, "d3").entry.id
    page = staff.get(f"/diary/entries/{entry}").get_data(as_text=True)
    answers = _rows(page, "answers")
    assert "How strong was your pain at its worst today?" in answers[2]
    assert "not asked" in answers[2] and "Correct this answer" not in answers[2]
    assert page.count("Correct this answer") == 7


def test_a_correction_with_a_reason_changes_the_answer_and_the_trail_keeps_it(
    app: Flask, world: World, history: History
) -> None:
    staff = _signed_in(app, "coord_berlin", world.password)
    form = staff.get(f"/diary/entries/{history.on_time}/corrections/hours_slept")
    assert form.status_code == 200
    page = form.get_data(as_text=True)
    assert 'name="q-hours_slept" value="7.5"' in page  # the recorded answer, to change
    assert 'maxlength="500"' in page and "Recorded answer: <strong>7.5 hours</strong>" in page

    reason = "Patient called: she misread the question"
    done = _correct(
        staff, history.on_time, "hours_slept", {"q-hours_slept": "6,5", "reason": reason}
    )
    assert done.status_code == 302
    assert done.headers["Location"] == f"/diary/entries/{history.on_time}"
    assert _answers(app, history.on_time)["hours_slept"] == 6.5

    page = staff.get(done.headers["Location"]).get_data(as_text=True)
    assert "Answer corrected." in page
    [row] = _rows(page, "corrections")
    assert "Coord_Berlin" in row and "How many hours did you sleep last night?" in row
    assert f"from 7.5 hours → to 6.5 hours {reason}" in row
    assert "How many hours did you sleep last night? 6.5 hours" in _rows(page, "answers")[5]
    with app.app_context():
        action = db.session.scalar(
            select(AuditAction)
            .join(AuditEntry, AuditEntry.action_id == AuditAction.id)
            .where(AuditEntry.table_name == "ediary_entries", AuditEntry.field == "answers")
            .order_by(AuditAction.id.desc())
        )
        assert action is not None
        assert (action.reason, action.actor_name) == (reason, "coord_berlin")

    # The list counts it.
    anna = world.patients["anna"].id
    listed = _rows(staff.get(f"/diary/patients/{anna}").get_data(as_text=True), "diary-table")
    [corrected] = [r for r in listed if "on time" in r]
    assert corrected.endswith(f"\u2013 1 View the entry of {history.first.strftime('%d %b %Y')}")


def test_removing_an_optional_answer_and_choosing_labels_are_corrections_too(
    app: Flask, world: World, history: History
) -> None:
    staff = _signed_in(app, "coord_berlin", world.password)
    added = _correct(
        staff,
        history.late,
        "symptoms",
        {"q-symptoms": ["fatigue", "headache"], "reason": "Told at the visit"},
    )
    assert added.status_code == 302
    assert _answers(app, history.late)["symptoms"] == ["headache", "fatigue"]
    removed = _correct(staff, history.late, "symptoms", {"reason": "Entered by mistake"})
    assert removed.status_code == 302
    assert "symptoms" not in _answers(app, history.late)
    page = staff.get(f"/diary/entries/{history.late}").get_data(as_text=True)
    newest, oldest = _rows(page, "corrections")
    assert "from Headache, Tiredness → to no answer Entered by mistake" in newest
    assert "from no answer → to Headache, Tiredness Told at the visit" in oldest
    assert "Timeliness late" in _text(page)


def test_a_correction_without_a_reason_is_refused_and_nothing_changes(
    app: Flask, world: World, history: History
) -> None:
    staff = _signed_in(app, "coord_berlin", world.password)
    refused = _correct(
        staff, history.on_time, "hours_slept", {"q-hours_slept": "6", "reason": "   "}
    )
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "There is a problem" in page
    assert '<a href="#reason">Reason for the correction: Say why the answer is corrected' in page
    assert 'id="reason-error"' in page and 'aria-invalid="true"' in page
    assert 'name="q-hours_slept" value="6"' in page  # what they typed stays
    assert _answers(app, history.on_time)["hours_slept"] == 7.5
    assert _corrections(app) == 0
    too_long = _correct(
        staff, history.on_time, "hours_slept", {"q-hours_slept": "6", "reason": "x" * 501}
    )
    assert too_long.status_code == 422 and _corrections(app) == 0


def test_a_value_out_of_range_is_refused_at_the_question(
    app: Flask, world: World, history: History
) -> None:
    staff = _signed_in(app, "coord_berlin", world.password)
    refused = _correct(
        staff, history.on_time, "hours_slept", {"q-hours_slept": "30", "reason": "Typo"}
    )
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "Must be between 0 and 24 hours." in page
    assert 'href="#q-hours_slept">How many hours did you sleep last night?: Must be' in page
    assert 'name="q-hours_slept" value="30"' in page and ">Typo</textarea>" in page
    for value, message in [
        ("seven", "Enter a number."),
        ("7.25", "Use at most one decimal place."),
        ("", "This question needs an answer."),
    ]:
        again = _correct(
            staff, history.on_time, "hours_slept", {"q-hours_slept": value, "reason": "Typo"}
        )
        assert again.status_code == 422 and message in again.get_data(as_text=True)
    same = _correct(
        staff, history.on_time, "hours_slept", {"q-hours_slept": "7.5", "reason": "Typo"}
    )
    assert same.status_code == 422
    assert "The new value is the same as the recorded one." in same.get_data(as_text=True)
    bad_choice = _correct(staff, history.on_time, "nausea", {"q-nausea": "x", "reason": "Typo"})
    assert bad_choice.status_code == 422
    assert "Choose from the answers shown." in bad_choice.get_data(as_text=True)
    assert _answers(app, history.on_time) == ANSWERS
    assert _corrections(app) == 0


def test_an_answer_that_other_answers_depend_on_is_explained_not_stored(
    app: Flask, world: World, history: History
) -> None:
    """No pain would leave its strength answered but no longer asked, and pain where there
    was none would ask its strength without an answer: the service corrects one answer at
    a time and refuses both, and the page says which answer is in the way."""
    staff = _signed_in(app, "coord_berlin", world.password)
    refused = _correct(staff, history.on_time, "pain", {"q-pain": "no", "reason": "Misread"})
    assert refused.status_code == 422
    page = _text(refused.get_data(as_text=True))
    assert "This change does not fit the other answers of the entry" in page
    strength = "How strong was your pain at its worst today?"
    assert re.search(rf"“{re.escape(strength)} \(0 = no pain[^”]*” has an answer, and would no "
                     "longer be asked.", page)  # fmt: skip
    assert _answers(app, history.on_time)["pain"] is True

    anna = world.patients["anna"].id
    today = history.first + timedelta(days=3)
    no_pain = {k: v for k, v in ANSWERS.items() if k != "pain_intensity"} | {"pain": False}
    entry = submit(app, world, occurrence(app, anna, today).id, no_pain, "d3").entry.id
    refused = _correct(staff, entry, "pain", {"q-pain": "yes", "reason": "Misread"})
    assert refused.status_code == 422
    assert "would then be asked, and has no answer." in _text(refused.get_data(as_text=True))
    assert _corrections(app) == 0


def test_unknown_and_skipped_questions_and_a_missing_token_get_a_clear_4xx(
    app: Flask, world: World, history: History
) -> None:
    staff = _signed_in(app, "coord_berlin", world.password)
    entry = history.on_time
    assert staff.get(f"/diary/entries/{entry}/corrections/nope").status_code == 404
    assert _correct(staff, entry, "nope", {"reason": "x"}).status_code == 404
    assert staff.get(f"/diary/entries/{entry}/corrections/{'x' * 5000}").status_code == 404
    assert staff.get("/diary/entries/999999").status_code == 404
    assert staff.get("/diary/patients/999999").status_code == 404
    no_token = staff.post(
        f"/diary/entries/{entry}/corrections/hours_slept",
        data={"q-hours_slept": "6", "reason": "x"},
    )
    assert no_token.status_code == 400
    # Without pain, its strength was not asked: nothing to correct.
    anna = world.patients["anna"].id
    today = history.first + timedelta(days=3)
    no_pain = {k: v for k, v in ANSWERS.items() if k != "pain_intensity"} | {"pain": False}
    skipped = submit(app, world, occurrence(app, anna, today).id, no_pain, "d3").entry.id
    url = f"/diary/entries/{skipped}/corrections/pain_intensity"
    assert staff.get(url).status_code == 409
    posted = _correct(staff, skipped, "pain_intensity", {"q-pain_intensity": "3", "reason": "x"})
    assert posted.status_code == 409
    assert _corrections(app) == 0


def test_staff_of_another_site_find_nothing(app: Flask, world: World, history: History) -> None:
    tokyo = _signed_in(app, "coord_tokyo", world.password)
    anna, entry = world.patients["anna"].id, history.on_time
    assert tokyo.get(f"/diary/patients/{anna}").status_code == 404
    assert tokyo.get(f"/diary/entries/{entry}").status_code == 404
    assert tokyo.get(f"/diary/entries/{entry}/corrections/hours_slept").status_code == 404
    posted = tokyo.post(
        f"/diary/entries/{entry}/corrections/hours_slept",
        data={"csrf_token": csrf_token(tokyo, "/diary/compliance"), "q-hours_slept": "6",
              "reason": "Not mine"},
    )  # fmt: skip
    assert posted.status_code == 404
    assert _answers(app, entry) == ANSWERS


def test_a_patient_cannot_read_or_correct_on_these_pages(
    app: Flask, world: World, history: History
) -> None:
    patient = _signed_in(app, "anna", world.password)
    anna, entry = world.patients["anna"].id, history.on_time
    assert patient.get(f"/diary/patients/{anna}").status_code == 403
    assert patient.get(f"/diary/entries/{entry}").status_code == 403
    assert patient.get(f"/diary/entries/{entry}/corrections/hours_slept").status_code == 403
    posted = patient.post(
        f"/diary/entries/{entry}/corrections/hours_slept",
        data={"csrf_token": csrf_token(patient, "/portal/diary/"), "q-hours_slept": "6",
              "reason": "I slept less"},
    )  # fmt: skip
    assert posted.status_code == 403
    assert _answers(app, entry) == ANSWERS and _corrections(app) == 0


def test_the_trial_manager_reads_but_does_not_correct(
    app: Flask, world: World, history: History
) -> None:
    manager = _signed_in(app, "manager", world.password)
    anna, entry = world.patients["anna"].id, history.on_time
    listed = manager.get(f"/diary/patients/{anna}")
    assert listed.status_code == 200
    assert "/site/patients/" not in listed.get_data(as_text=True)  # not a page of theirs
    page = manager.get(f"/diary/entries/{entry}")
    assert page.status_code == 200
    assert "Yes" in page.get_data(as_text=True)
    assert "Correct this answer" not in page.get_data(as_text=True)
    assert manager.get(f"/diary/entries/{entry}/corrections/hours_slept").status_code == 403
    posted = manager.post(
        f"/diary/entries/{entry}/corrections/hours_slept",
        data={"csrf_token": csrf_token(manager, "/diary/compliance"), "q-hours_slept": "6",
              "reason": "Looks wrong"},
    )  # fmt: skip
    assert posted.status_code == 403
    assert _answers(app, entry) == ANSWERS and _corrections(app) == 0


def test_the_style_sheet_of_the_pages_is_served(app: Flask) -> None:
    response = app.test_client().get("/diary/static/ediary/staff.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert b".choice" in response.data
    response.close()
