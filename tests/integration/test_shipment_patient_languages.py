"""A German-speaking and a Japanese-speaking patient read their deliveries in their own
language: the page title, the delivery's status, the expected day, the warning on kits in
quarantine, and the messages they get back when they try something not possible yet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from dct_platform import audit
from logistics.shipments.models import Shipment
from logistics.shipments.states import ShipmentStatus
from tests.integration.test_shipment_receipt import NOW, make_delivery, quarantine
from tests.integration.test_shipment_receipt import supply as supply  # the fixture
from tests.support.clients import csrf_token, login, submit
from tests.support.supply import Supply
from tests.support.world import World

GERMAN_MONTHS = [
    "Januar", "Februar", "März", "April", "Mai", "Juni",
    "Juli", "August", "September", "Oktober", "November", "Dezember",
]  # fmt: skip
EXPECTED = NOW.replace(hour=12)  # the same day in Berlin and in Tokyo

# The English of these pages; it shows to an English reader and to nobody else.
ENGLISH = [
    "Your deliveries",
    "My deliveries",
    "Delivered",
    "On its way",
    "Expected on",
    "Delivered on",
    "Do not use",
    "too warm or too cold",
    "Delivery of your study medicine",
    "See the details",
    "Kits:",
]


@dataclass
class Speaker:
    username: str
    zone: str
    language: str
    kits: tuple[str, str, str]  # delivered, of which the first in quarantine; on its way
    title: str
    nav: str
    delivered: str
    on_its_way: str
    warning_title: str
    warning: str
    kit_list: str
    shipment_title: str
    not_arrived: str
    empty_problem: str

    def expected_day(self) -> str:
        d = EXPECTED.date()
        if self.language == "de":
            return f"Voraussichtlich am {self.weekday()}, {d.day}. {GERMAN_MONTHS[d.month - 1]}"
        return f"{d.year}年{d.month}月{d.day}日{self.weekday()}にお届け予定"

    def delivered_on(self) -> str:
        d = NOW.date()  # 9:30 UTC: the same day in Berlin and in Tokyo
        if self.language == "de":
            return f"Zugestellt am {d:%d.%m.%Y}, "
        return f"{d:%Y/%m/%d} 18:30にお届けしました"

    def weekday(self) -> str:
        names = {
            "de": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"],
            "ja": ["月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "土曜日", "日曜日"],
        }
        return names[self.language][EXPECTED.weekday()]


ANNA_DE = Speaker(
    username="anna",
    zone="Europe/Berlin",
    language="de",
    kits=("K-001", "K-002", "K-003"),
    title="Ihre Lieferungen",
    nav="Meine Lieferungen",
    delivered="Zugestellt",
    on_its_way="Unterwegs",
    warning_title="Diese Packungen nicht verwenden",
    warning="Sie sind unterwegs möglicherweise zu warm oder zu kalt geworden.",
    kit_list="Packungen: K-001",
    shipment_title="Lieferung Ihres Studienmedikaments",
    not_arrived="Diese Lieferung ist noch nicht angekommen.",
    empty_problem="Bitte beschreiben Sie das Problem.",
)
KENJI_JA = Speaker(
    username="kenji",
    zone="Asia/Tokyo",
    language="ja",
    kits=("K-101", "K-102", "K-004"),
    title="あなたへのお届け",
    nav="わたしのお届け",
    delivered="お届け済み",
    on_its_way="配送中",
    warning_title="これらのキットは使わないでください",
    warning="配送中に温度が高くなりすぎたり低くなりすぎたりした可能性があります。",
    kit_list="対象のキット：K-101",  # noqa: RUF001 (Japanese writes a full-width colon)
    shipment_title="治験薬のお届け",
    not_arrived="このお届けはまだ届いていません。",
    empty_problem="どのような問題か入力してください。",
)


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def title_of(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.S)
    assert found, "the page has a title"
    return found.group(1)


def english_on(body: str) -> list[str]:
    return [phrase for phrase in ENGLISH if phrase in body]


def deliveries_of(session: Session, world: World, supply: Supply, who: Speaker) -> tuple[int, int]:
    """A delivered delivery with one kit in quarantine, and one still on its way."""
    first, second, third = who.kits
    arrived = make_delivery(session, world, supply, who.username, [first, second])
    quarantine(session, [first])
    coming = make_delivery(
        session, world, supply, who.username, [third], status=ShipmentStatus.IN_TRANSIT
    )
    with audit.acting(session, None, NOW, what="Courier promise", system="test-shipments"):
        shipment = session.get(Shipment, coming)
        assert shipment is not None
        shipment.expected_delivery_at = EXPECTED
    session.commit()
    return arrived, coming


@pytest.mark.parametrize("who", [ANNA_DE, KENJI_JA], ids=["de", "ja"])
def test_patient_reads_deliveries_and_the_quarantine_warning_in_their_language(
    client: FlaskClient, world: World, supply: Supply, session: Session, who: Speaker
) -> None:
    arrived, coming = deliveries_of(session, world, supply, who)
    login(client, who.username, world.password)
    # Before choosing a language the patient reads the English: what must go away below.
    english = text_of(client.get("/portal/deliveries/").get_data(as_text=True))
    assert english_on(english) == ENGLISH

    saved = submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": who.zone, "preferred_language": who.language},
    )
    assert saved.status_code == 302

    page = client.get("/portal/deliveries/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'<html lang="{who.language}">' in html
    assert who.title in title_of(html)
    body = text_of(html)
    for phrase in (who.title, who.nav, who.delivered, who.on_its_way):
        assert phrase in body
    for phrase in (who.expected_day(), who.delivered_on()):
        assert phrase in body
    for phrase in (who.warning_title, who.warning, who.kit_list):
        assert phrase in body
    assert english_on(body) == []

    detail = client.get(f"/portal/deliveries/{arrived}")
    assert detail.status_code == 200
    detail_html = detail.get_data(as_text=True)
    assert who.shipment_title in title_of(detail_html)
    detail_body = text_of(detail_html)
    assert who.warning_title in detail_body and who.warning in detail_body
    assert english_on(detail_body) == []

    # What the patient is told back follows the language too.
    page_of_coming = f"/portal/deliveries/{coming}"
    token = csrf_token(client, page_of_coming)
    too_early = client.post(f"{page_of_coming}/confirm", data={"csrf_token": token})
    assert too_early.status_code == 409
    assert who.not_arrived in text_of(too_early.get_data(as_text=True))
    empty = client.post(f"{page_of_coming}/problem", data={"csrf_token": token, "text": " "})
    assert empty.status_code == 422
    assert who.empty_problem in text_of(empty.get_data(as_text=True))

    refused = client.post(f"/portal/deliveries/{arrived}/confirm", data={"csrf_token": token})
    assert refused.status_code == 409
    assert who.warning in text_of(refused.get_data(as_text=True))


def test_dates_stay_in_the_patients_zone_whatever_the_language(
    client: FlaskClient, world: World, supply: Supply, session: Session
) -> None:
    """A Berlin patient reading Japanese still sees Berlin's day: language is not the zone."""
    _, coming = deliveries_of(session, world, supply, ANNA_DE)
    with audit.acting(session, None, NOW, what="Courier promise", system="test-shipments"):
        shipment = session.get(Shipment, coming)
        assert shipment is not None
        # 23:30 UTC is already the next day in Berlin.
        shipment.expected_delivery_at = NOW.replace(hour=23, minute=30)
    session.commit()
    login(client, "anna", world.password)
    submit(
        client,
        "/portal/profile",
        "/portal/profile",
        {"timezone": "Europe/Berlin", "preferred_language": "ja"},
    )
    body = text_of(client.get("/portal/deliveries/").get_data(as_text=True))
    berlin_day = NOW.date() + timedelta(days=1)
    assert f"{berlin_day.year}年{berlin_day.month}月{berlin_day.day}日" in body
    assert "お届け予定" in body
