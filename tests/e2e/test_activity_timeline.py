"""A site enrols and transfers a patient; each site's remote-activity pages show what
happened while it was responsible, and the new site sees the patient's whole story."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.e2e.flows import sign_in
from tests.support.live_server import LiveServer
from tests.support.world import World


def _rows(page: Page) -> list[list[str]]:
    return [
        [cell.inner_text().strip() for cell in row.locator("td").all()]
        for row in page.get_by_test_id("activity-row").all()
    ]


def test_enrolment_and_transfer_appear_on_the_right_sites(
    page: Page, browser: Browser, live_server: LiveServer, world: World, snapshot: object
) -> None:
    sign_in(page, "coord_berlin", world.password)
    # The main navigation's link: the patient list has a link of the same name.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Enrol a patient").click()
    page.get_by_label("Subject number").fill("B1-300")
    page.get_by_label("Status").select_option("enrolled")
    page.get_by_label("Consent signed on").fill("2026-03-01")
    page.get_by_label("Consent form version").fill("v2.0")
    page.get_by_label("Given name").fill("Greta")
    page.get_by_label("Family name").fill("Neumann")
    page.get_by_label("Open a portal account").uncheck()
    page.get_by_role("button", name="Enrol").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Subject B1-300")

    page.get_by_label("Transfer to site").select_option(label="T1: Tokyo (JP)")
    page.get_by_label("Reason", exact=False).last.fill("Moved to Tokyo for work")
    page.get_by_role("button", name="Transfer").click()
    expect(page.locator(".flash-success")).to_contain_text("now belongs to site T1")

    page.get_by_role("link", name="Remote activity").click()
    expect(page.get_by_test_id("activity-heading")).to_have_text("Remote activity")
    berlin = [r for r in _rows(page) if "B1-300" in r]
    # Newest first: the transfer away (attributed to Tokyo, from Berlin), then the enrolment.
    assert [r[1] for r in berlin] == ["Site transfer", "Enrolment"]
    assert berlin[0][3] == "T1 (from B1)" and berlin[1][3] == "B1"
    assert berlin[1][4] == "Pi_Berlin"  # the investigator responsible at enrolment
    snapshot(page, "berlin")  # type: ignore[operator]

    tokyo_context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}
    )
    tokyo = tokyo_context.new_page()
    try:
        sign_in(tokyo, "coord_tokyo", world.password)
        tokyo.goto("/activity")
        rows = [r for r in _rows(tokyo) if "B1-300" in r]
        assert [r[1] for r in rows] == ["Site transfer", "Enrolment"]
        tokyo.get_by_role("link", name="B1-300").first.click()
        expect(tokyo.get_by_test_id("activity-heading")).to_have_text("Activity of B1-300")
        timeline = _rows(tokyo)
        assert [(r[1], r[2]) for r in timeline] == [
            ("Site transfer", "T1 (from B1)"),
            ("Enrolment", "B1"),
        ]
        assert "Moved to Tokyo for work" not in tokyo.content()  # free text stays in the history
        tokyo.screenshot(path="test-artifacts/activity_timeline__tokyo_phone.png", full_page=True)
    finally:
        tokyo_context.close()
