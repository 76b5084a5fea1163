"""A site coordinator corrects a patient's diary answer in the browser: from the compliance
page to the patient's diaries, to one entry, to the correction form; a correction without
a reason is refused and explained, one with a reason is saved, said so, and listed in the
entry's history. axe-core checks every page as the coordinator sees it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from playwright.sync_api import Page, expect

from dct_platform.extensions import db
from devices.ediary.models import ChangeRequest, Entry
from tests.e2e.accessibility import failing, run_axe
from tests.e2e.flows import sign_in
from tests.support.clock import TestClock
from tests.support.ediary import ANSWERS, daily_diary, local, occurrence, refresh, submit
from tests.support.live_server import LiveServer
from tests.support.world import World

LOADED = "img => img.complete && img.naturalWidth > 0"


def _entry(app: Flask, entry_id: int) -> tuple[dict[str, object], int]:
    with app.app_context():
        entry = db.session.get(Entry, entry_id)
        assert entry is not None
        answers = dict(entry.answers)
        corrections = db.session.query(ChangeRequest).count()
        db.session.remove()
        return answers, corrections


def test_a_coordinator_corrects_an_answer_with_a_reason(
    app: Flask,
    page: Page,
    live_server: LiveServer,
    world: World,
    clock: TestClock,
    snapshot: Callable[[Page, str], None],
) -> None:
    # Anna filled in the first evening's diary, missed the second; the third is open now.
    first = daily_diary(app, world).first_day
    anna = world.patients["anna"].id
    clock.freeze(local(first, "12:00:00"))
    refresh(app, clock())
    clock.freeze(local(first, "20:15:00"))
    entry_id = submit(app, world, occurrence(app, anna, first).id, ANSWERS, "d0").entry.id
    clock.freeze(local(first + timedelta(days=2), "19:00:00"))
    refresh(app, clock())

    sign_in(page, "coord_berlin", world.password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Diary compliance").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Diary compliance")
    chart = page.get_by_role("img", name=re.compile("dashed line at the 80% threshold"))
    assert chart.evaluate(LOADED)
    assert failing(run_axe(page)) == []
    snapshot(page, "compliance")

    page.get_by_test_id("compliance-table").get_by_role("link", name="B1-anna").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Diary of subject B1-anna")
    rows = page.get_by_test_id("diary-row")
    day = first.strftime("%a %d %b %Y")
    done = rows.filter(has_text=day)
    expect(done).to_contain_text("on time")
    expect(done).to_contain_text(f"{first.isoformat()} 20:15")
    expect(rows.filter(has_text="missed")).to_have_count(1)
    expect(rows.filter(has_text="still open")).to_have_count(1)
    assert failing(run_axe(page)) == []
    snapshot(page, "patient-diary")

    done.get_by_role("link", name=re.compile("^View the entry of")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Daily symptom diary of {day}")
    answers = page.get_by_test_id("answers")
    hours = answers.locator("tr", has_text="How many hours did you sleep")
    expect(hours).to_contain_text("7.5 hours")
    expect(answers.locator("tr", has_text="How bad was any nausea")).to_contain_text("Mild")
    expect(page.get_by_test_id("no-corrections")).to_be_visible()
    assert failing(run_axe(page)) == []
    snapshot(page, "entry")

    hours.get_by_role("link", name=re.compile("^Correct this answer")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Correct an answer")
    expect(page.get_by_test_id("recorded")).to_have_text("Recorded answer: 7.5 hours")
    field = page.get_by_label(re.compile("How many hours did you sleep"))
    expect(field).to_have_value("7.5")
    assert failing(run_axe(page)) == []
    snapshot(page, "form")

    # No reason: refused, explained, nothing stored, the new value kept in the field.
    field.fill("6,5")
    page.get_by_role("button", name="Save the correction").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Say why the answer is corrected")
    reason = page.get_by_label("Reason for the correction")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value("6,5")
    assert _entry(app, entry_id) == (ANSWERS, 0)
    assert failing(run_axe(page)) == []
    snapshot(page, "no-reason")

    reason.fill("Patient called: she slept six and a half hours, not seven and a half")
    page.get_by_role("button", name="Save the correction").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Daily symptom diary of {day}")
    expect(page.get_by_role("status")).to_have_text("Answer corrected.")
    expect(hours).to_contain_text("6.5 hours")
    history = page.get_by_test_id("corrections").locator("tbody tr")
    expect(history).to_have_count(1)
    expect(history).to_contain_text("Coord_Berlin")
    expect(history).to_contain_text("How many hours did you sleep last night?")
    expect(history).to_contain_text("7.5 hours")
    expect(history).to_contain_text("6.5 hours")
    expect(history).to_contain_text("Patient called: she slept six and a half hours")
    assert failing(run_axe(page)) == []
    snapshot(page, "corrected")
    answers_now, corrections = _entry(app, entry_id)
    assert answers_now == {**ANSWERS, "hours_slept": 6.5} and corrections == 1
