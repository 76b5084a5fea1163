"""Video room providers: the HTTP provider against a real server on 127.0.0.1 (what it sends,
how it retries, how it fails), locally named Jitsi rooms, and choosing one from settings."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dct_platform.outbound import OutboundError
from dct_platform.visits.rooms import (
    DEFAULT_JITSI_BASE_URL,
    HttpRooms,
    JitsiRooms,
    Room,
    provider_from_config,
)
from tests.support.loopback_http import LoopbackHTTPServer
from tests.support.smtp import free_port

TOKEN = "vid-token-0123456789"
STARTS = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
ENDS = STARTS + timedelta(minutes=30)
CREATED = {"id": "room-7", "join_url": "https://video.example.org/j/Xy7kQ2"}


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests honours *_PROXY variables even for 127.0.0.1; without them every request
    # provably goes straight to the loopback server.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def rooms(outside_service: LoopbackHTTPServer) -> Iterator[HttpRooms]:
    # The provider's own session, as production builds it: its retry policy is under test.
    with HttpRooms(outside_service.url_for("/api"), TOKEN, timeout=2.0) as provider:
        yield provider


def create(provider: HttpRooms | JitsiRooms, booking_ref: str = "booking-42") -> Room:
    return provider.create_room(booking_ref=booking_ref, starts_at=STARTS, ends_at=ENDS)


# -- HttpRooms: the request ----------------------------------------------------------------


def test_room_is_created_with_json_bearer_token_and_idempotency_key(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    outside_service.respond("/api/rooms", 201, json=CREATED, method="POST")

    room = create(rooms)

    assert room == Room(url=CREATED["join_url"], provider="http", external_id="room-7")
    (sent,) = outside_service.requests
    assert (sent.method, sent.path) == ("POST", "/api/rooms")
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Idempotency-Key"] == "booking-42"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json() == {
        "reference": "booking-42",
        "starts_at": "2026-03-09T14:00:00+00:00",
        "ends_at": "2026-03-09T14:30:00+00:00",
    }
    assert outside_service.unscripted == []


def test_times_are_sent_in_utc_whatever_zone_they_come_in(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    outside_service.respond("/api/rooms", 200, json=CREATED)
    berlin_winter = timezone(timedelta(hours=1))

    rooms.create_room(
        booking_ref="booking-42",
        starts_at=STARTS.astimezone(berlin_winter),
        ends_at=ENDS.astimezone(berlin_winter),
    )

    body = outside_service.requests[0].json()
    assert (body["starts_at"], body["ends_at"]) == (
        "2026-03-09T14:00:00+00:00",
        "2026-03-09T14:30:00+00:00",
    )


def test_a_trailing_slash_on_the_base_url_does_not_double_up(
    outside_service: LoopbackHTTPServer,
) -> None:
    outside_service.respond("/api/rooms", 201, json=CREATED)

    with HttpRooms(outside_service.url_for("/api/"), TOKEN) as provider:
        create(provider)

    assert [r.path for r in outside_service.requests] == ["/api/rooms"]


# -- HttpRooms: retries --------------------------------------------------------------------


def test_two_503s_then_201_give_one_room_with_the_same_key_each_time(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    outside_service.respond("/api/rooms", 503, json={"error": "busy"}, times=2)
    outside_service.respond("/api/rooms", 201, json=CREATED)

    room = create(rooms)

    assert room.url == CREATED["join_url"]
    sent = outside_service.requests_to("/api/rooms", "POST")
    assert len(sent) == 3
    # Identical requests: the provider can tell the retries are the same room.
    assert {r.headers["Idempotency-Key"] for r in sent} == {"booking-42"}
    assert len({r.body for r in sent}) == 1
    assert outside_service.pending() == 0


def test_a_provider_outage_gives_up_with_the_last_status(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    outside_service.respond("/api/rooms", 502, json={"error": "upstream down"}, times=None)

    with pytest.raises(OutboundError, match="answered 502") as caught:
        create(rooms)

    assert caught.value.status == 502
    assert "upstream down" in (caught.value.body_excerpt or "")
    assert len(outside_service.requests) == 4  # the first try and 3 retries, then the job's turn


def test_401_names_the_status_and_is_not_retried(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    outside_service.respond("/api/rooms", 401, json={"error": "invalid token"})
    outside_service.respond("/api/rooms", 201, json=CREATED)

    with pytest.raises(OutboundError, match="answered 401") as caught:
        create(rooms)

    error = caught.value
    assert (error.status, error.method) == (401, "POST")
    assert error.url == outside_service.url_for("/api/rooms")
    assert "invalid token" in (error.body_excerpt or "")
    assert TOKEN not in str(error)
    assert len(outside_service.requests) == 1


def test_a_slow_provider_times_out_without_a_retry(outside_service: LoopbackHTTPServer) -> None:
    # The provider may have made the room before we gave up: resending is left to the job,
    # whose retry carries the same Idempotency-Key.
    outside_service.respond("/api/rooms", 201, json=CREATED, delay=5)

    with HttpRooms(outside_service.url_for("/api"), TOKEN, timeout=0.3) as provider:
        started = time.monotonic()
        with pytest.raises(OutboundError, match="timed out") as caught:
            create(provider)

    assert time.monotonic() - started < 2
    assert caught.value.status is None
    assert len(outside_service.requests) == 1


def test_connection_refused_raises_without_a_status() -> None:
    closed = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there

    with HttpRooms(closed, TOKEN) as provider, pytest.raises(OutboundError) as caught:
        create(provider)

    assert caught.value.status is None
    assert "could not connect" in str(caught.value)


# -- HttpRooms: answers that are not a usable room -----------------------------------------


@pytest.mark.parametrize(
    ("status", "answer", "reason"),
    [
        (201, {"id": "room-7"}, "without a join_url"),
        (201, {"id": "room-7", "join_url": ""}, "without a join_url"),
        (201, {"id": "room-7", "join_url": None}, "without a join_url"),
        (201, {"id": "room-7", "join_url": "http://video.example.org/j/Xy7kQ2"}, "not an https"),
        (201, {"id": "room-7", "join_url": "javascript:alert(1)"}, "not an https"),
        (201, {"id": "room-7", "join_url": "https:///no-host"}, "not an https"),
        (201, ["https://video.example.org/j/Xy7kQ2"], "JSON list instead of an object"),
        (201, {"id": {"nested": 1}, "join_url": CREATED["join_url"]}, "id that is neither"),
        (202, {"status": "pending"}, "instead of 200 or 201"),
    ],
)
def test_an_answer_without_a_usable_https_join_url_raises(
    outside_service: LoopbackHTTPServer,
    rooms: HttpRooms,
    status: int,
    answer: object,
    reason: str,
) -> None:
    outside_service.respond("/api/rooms", status, json=answer)

    with pytest.raises(OutboundError, match=reason) as caught:
        create(rooms)

    assert caught.value.status == status
    assert caught.value.url == outside_service.url_for("/api/rooms")
    assert len(outside_service.requests) == 1


def test_a_body_that_is_not_json_raises(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    outside_service.respond("/api/rooms", 201, body="<html>Created</html>")

    with pytest.raises(OutboundError, match="not JSON"):
        create(rooms)


def test_an_http_join_url_is_not_quoted_in_the_error(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    # Whoever holds the link can join the visit; errors end up in logs.
    outside_service.respond("/api/rooms", 201, json={"join_url": "http://video.example.org/j/S"})

    with pytest.raises(OutboundError) as caught:
        create(rooms)

    assert "/j/S" not in str(caught.value)


def test_a_numeric_id_and_a_missing_id_are_accepted(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    outside_service.respond("/api/rooms", 201, json={"id": 981, "join_url": CREATED["join_url"]})
    outside_service.respond("/api/rooms", 200, json={"join_url": CREATED["join_url"]})

    assert create(rooms, "booking-1").external_id == "981"
    assert create(rooms, "booking-2").external_id is None


# -- HttpRooms: refused before anything is sent --------------------------------------------


def test_a_booking_ref_unfit_for_a_header_is_refused_before_sending(
    outside_service: LoopbackHTTPServer, rooms: HttpRooms
) -> None:
    for ref in ("", "booking 42", "booking-42\r\nX-Evil: 1", "ä" * 3):
        with pytest.raises(ValueError, match="booking_ref"):
            create(rooms, ref)

    assert outside_service.requests == []


def test_naive_or_reversed_times_are_refused(rooms: HttpRooms) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rooms.create_room(booking_ref="b-1", starts_at=datetime(2026, 3, 9, 14), ends_at=ENDS)
    with pytest.raises(ValueError, match="end after it starts"):
        rooms.create_room(booking_ref="b-1", starts_at=ENDS, ends_at=STARTS)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://video.example.org/api", "must use https"),
        ("ftp://video.example.org/api", "must use https"),
        ("https://video.example.org/api?key=1", "not a base URL"),
        ("video.example.org/api", "not a base URL"),
        ("https://user:pw@video.example.org/api", "credentials"),
    ],
)
def test_an_unsafe_base_url_is_refused(base_url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpRooms(base_url, TOKEN)


def test_the_token_stays_out_of_the_repr() -> None:
    with HttpRooms("https://video.example.org/api", TOKEN) as provider:
        assert TOKEN not in repr(provider)


# -- JitsiRooms ----------------------------------------------------------------------------


def test_jitsi_rooms_are_distinct_unguessable_and_free_of_the_booking_ref() -> None:
    jitsi = JitsiRooms()

    rooms = [create(jitsi, "booking-42") for _ in range(200)]

    urls = [room.url for room in rooms]
    assert len(set(urls)) == 200
    for room in rooms:
        # Letters and digits only (Jitsi lowercases room names): 32 base32 characters are
        # 160 random bits, and nothing else is in the path.
        assert re.fullmatch(r"https://meet\.jit\.si/dct-[a-z2-7]{32}", room.url), room.url
        assert "booking-42" not in room.url
        assert (room.provider, room.external_id) == ("jitsi", None)


def test_jitsi_uses_a_self_hosted_server(outside_service: LoopbackHTTPServer) -> None:
    room = create(JitsiRooms("https://video.site-101.example.org/meet/"))

    assert re.fullmatch(r"https://video\.site-101\.example\.org/meet/dct-[a-z2-7]{32}", room.url)
    assert outside_service.requests == []  # nothing is sent anywhere


def test_jitsi_refuses_a_plain_http_server() -> None:
    with pytest.raises(ValueError, match="https"):
        JitsiRooms("http://meet.example.org")


# -- provider_from_config ------------------------------------------------------------------


def test_jitsi_is_the_default() -> None:
    provider = provider_from_config({})

    assert isinstance(provider, JitsiRooms)
    assert provider.base_url == DEFAULT_JITSI_BASE_URL
    assert provider.name == "jitsi"


def test_jitsi_with_its_own_server() -> None:
    provider = provider_from_config(
        {"VIDEO_PROVIDER": "Jitsi", "VIDEO_JITSI_BASE_URL": "https://meet.example.org"}
    )

    assert isinstance(provider, JitsiRooms)
    assert provider.base_url == "https://meet.example.org"


def test_http_provider_from_settings_creates_rooms(outside_service: LoopbackHTTPServer) -> None:
    outside_service.respond("/v2/rooms", 201, json=CREATED)

    provider = provider_from_config(
        {
            "VIDEO_PROVIDER": "http",
            "VIDEO_HTTP_BASE_URL": outside_service.url_for("/v2"),
            "VIDEO_HTTP_TOKEN": TOKEN,
        }
    )

    assert isinstance(provider, HttpRooms)
    with provider:
        assert create(provider).url == CREATED["join_url"]
    assert outside_service.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"VIDEO_PROVIDER": "http"}, "VIDEO_HTTP_BASE_URL and VIDEO_HTTP_TOKEN are not set"),
        (
            {"VIDEO_PROVIDER": "http", "VIDEO_HTTP_BASE_URL": "https://video.example.org"},
            "VIDEO_HTTP_TOKEN is not set",
        ),
        (
            {"VIDEO_PROVIDER": "http", "VIDEO_HTTP_TOKEN": TOKEN, "VIDEO_HTTP_BASE_URL": "  "},
            "VIDEO_HTTP_BASE_URL is not set",
        ),
        (
            {
                "VIDEO_PROVIDER": "http",
                "VIDEO_HTTP_BASE_URL": "http://x.org",
                "VIDEO_HTTP_TOKEN": "t",
            },
            "VIDEO_HTTP_BASE_URL: .*must use https",
        ),
        ({"VIDEO_JITSI_BASE_URL": "http://meet.example.org"}, "VIDEO_JITSI_BASE_URL: .*https"),
        ({"VIDEO_PROVIDER": "zoom"}, "VIDEO_PROVIDER must be 'jitsi' or 'http', not 'zoom'"),
    ],
)
def test_a_wrong_configuration_names_the_setting(config: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        provider_from_config(config)
