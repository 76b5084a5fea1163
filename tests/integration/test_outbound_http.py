"""Outbound HTTP against a real server on 127.0.0.1: retries, timeouts and error reporting."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from dct_platform.outbound import DEFAULT_USER_AGENT, OutboundError, call, http_session
from tests.support.loopback_http import LoopbackHTTPServer
from tests.support.smtp import free_port

# Fast backoff: the tests prove that retries happen, not how long urllib3 sleeps.
BACKOFF = 0.01


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests honours *_PROXY variables even for 127.0.0.1; without them every request
    # provably goes straight to the loopback server.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as s:
        yield s


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with http_session(retries=3, backoff=BACKOFF, timeout=2.0) as s:
        yield s


def test_get_succeeds_after_two_503s(server: LoopbackHTTPServer, session: requests.Session) -> None:
    server.respond("/v1/status", 503, times=2)
    server.respond("/v1/status", 200, json={"ok": True})

    response = call(session, "GET", server.url_for("/v1/status"))

    assert response.json() == {"ok": True}
    assert [r.method for r in server.requests] == ["GET", "GET", "GET"]
    assert server.pending() == 0


def test_get_gives_up_after_retries_with_the_last_status(
    server: LoopbackHTTPServer, session: requests.Session
) -> None:
    server.respond("/v1/status", 502, json={"error": "upstream down"}, times=None)

    with pytest.raises(OutboundError) as caught:
        call(session, "GET", server.url_for("/v1/status"))

    assert caught.value.status == 502
    assert "upstream down" in (caught.value.body_excerpt or "")
    assert len(server.requests) == 4  # the first try and 3 retries


def test_post_is_not_retried_by_default(
    server: LoopbackHTTPServer, session: requests.Session
) -> None:
    server.respond("/v1/pickups", 503)
    server.respond("/v1/pickups", 201, json={"id": "P-1"})

    with pytest.raises(OutboundError) as caught:
        call(session, "POST", server.url_for("/v1/pickups"), json={"kit": "K-7"})

    assert caught.value.status == 503
    assert len(server.requests) == 1, "a non-idempotent POST must not be sent twice"


def test_post_is_retried_when_allowed(server: LoopbackHTTPServer) -> None:
    server.respond("/v1/pickups", 503)
    server.respond("/v1/pickups", 201, json={"id": "P-1"})

    with http_session(backoff=BACKOFF, retry_post=True) as session:
        response = call(
            session,
            "POST",
            server.url_for("/v1/pickups"),
            json={"kit": "K-7"},
            headers={"Idempotency-Key": "pickup-K-7"},
        )

    assert response.status_code == 201
    sent = server.requests_to("/v1/pickups", "POST")
    assert len(sent) == 2
    # The retry is the same request, key and body included, which makes it safe.
    assert all(r.headers["Idempotency-Key"] == "pickup-K-7" for r in sent)
    assert all(r.json() == {"kit": "K-7"} for r in sent)


def test_404_raises_with_status_and_body_excerpt_and_is_not_retried(
    server: LoopbackHTTPServer, session: requests.Session
) -> None:
    server.respond("/v1/kits/K-9", 404, json={"message": "kit K-9 unknown"})

    with pytest.raises(OutboundError, match="answered 404") as caught:
        call(session, "GET", server.url_for("/v1/kits/K-9"))

    error = caught.value
    assert (error.status, error.method) == (404, "GET")
    assert error.url == server.url_for("/v1/kits/K-9")
    assert "kit K-9 unknown" in (error.body_excerpt or "")
    assert len(server.requests) == 1


def test_long_error_body_is_cut_to_an_excerpt(
    server: LoopbackHTTPServer, session: requests.Session
) -> None:
    server.respond("/v1/x", 500, body="<html>\n" + "boom " * 2000 + "</html>")

    with pytest.raises(OutboundError) as caught:
        call(session, "GET", server.url_for("/v1/x"))

    excerpt = caught.value.body_excerpt or ""
    assert excerpt.startswith("<html> boom boom")
    assert len(excerpt) <= 303


def test_default_timeout_applies_to_every_request(server: LoopbackHTTPServer) -> None:
    server.respond("/v1/slow", 200, json={}, delay=5)

    with http_session(retries=3, backoff=BACKOFF, timeout=0.3) as session:
        started = time.monotonic()
        with pytest.raises(OutboundError, match="timed out") as caught:
            call(session, "GET", server.url_for("/v1/slow"))
        elapsed = time.monotonic() - started

        # Not retried: the server may have acted on it, and retries would multiply the wait.
        assert len(server.requests) == 1
        assert caught.value.status is None
        assert 0.25 < elapsed < 1.5

        # A plain session call, not through `call`, gets the default timeout too.
        server.respond("/v1/slow", 200, json={}, delay=5)
        with pytest.raises(requests.Timeout):
            session.get(server.url_for("/v1/slow"))


def test_a_timeout_given_per_call_wins(server: LoopbackHTTPServer) -> None:
    server.respond("/v1/slow", 200, json={"done": True}, delay=0.5)

    with http_session(timeout=0.1) as session:
        response = call(session, "GET", server.url_for("/v1/slow"), timeout=3)

    assert response.json() == {"done": True}


def test_429_retry_after_is_honoured(server: LoopbackHTTPServer, session: requests.Session) -> None:
    server.respond("/v1/rooms", 429, headers={"Retry-After": "1"})
    server.respond("/v1/rooms", 200, json=[])

    started = time.monotonic()
    response = call(session, "GET", server.url_for("/v1/rooms"))

    assert response.json() == []
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.9


def test_a_retry_after_longer_than_allowed_gives_up_at_once(server: LoopbackHTTPServer) -> None:
    server.respond("/v1/rooms", 429, headers={"Retry-After": "3600"}, json={"error": "quota"})

    with http_session(backoff=BACKOFF, max_retry_after=5) as session:
        started = time.monotonic()
        with pytest.raises(OutboundError) as caught:
            call(session, "GET", server.url_for("/v1/rooms"))

    assert (caught.value.status, caught.value.retry_after) == (429, 3600)
    assert len(server.requests) == 1
    assert time.monotonic() - started < 1


def test_connection_refused_raises_without_status() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/status"  # nothing listens there

    with http_session(retries=2, backoff=BACKOFF) as session, pytest.raises(OutboundError) as e:
        call(session, "GET", url)

    assert e.value.status is None
    assert "could not connect" in str(e.value)


def test_secrets_in_the_url_stay_out_of_the_error(
    server: LoopbackHTTPServer, session: requests.Session
) -> None:
    server.respond("/v1/rooms", 401, json={"error": "bad key"})

    with pytest.raises(OutboundError) as caught:
        call(session, "GET", server.url_for("/v1/rooms"), params={"api_key": "SECRET-123"})

    assert "SECRET-123" not in str(caught.value)
    assert "SECRET-123" not in caught.value.url
    assert server.requests[0].query == {"api_key": ["SECRET-123"]}


def test_requests_carry_the_user_agent(server: LoopbackHTTPServer) -> None:
    server.respond("/v1/status", 200, json={})

    with http_session() as default, http_session(user_agent="dct-courier/1.0") as custom:
        call(default, "GET", server.url_for("/v1/status"))
        server.respond("/v1/status", 200, json={})
        call(custom, "GET", server.url_for("/v1/status"))

    assert [r.headers["User-Agent"] for r in server.requests] == [
        DEFAULT_USER_AGENT,
        "dct-courier/1.0",
    ]
    assert server.unscripted == []


def test_a_malformed_retry_after_falls_back_to_backoff(
    server: LoopbackHTTPServer, session: requests.Session
) -> None:
    server.respond("/v1/rooms", 503, headers={"Retry-After": "soon-ish"})
    server.respond("/v1/rooms", 200, json=[])

    assert call(session, "GET", server.url_for("/v1/rooms")).json() == []
    assert len(server.requests) == 2
