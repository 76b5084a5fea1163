"""The retry policy and helpers of dct_platform.outbound, without a network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dct_platform.outbound import _retry_after_seconds, http_session, redact_url


def _retry_of(retries: int = 3, backoff: float = 0.2, retry_post: bool = False) -> Retry:
    with http_session(retries=retries, backoff=backoff, retry_post=retry_post) as session:
        adapter = session.get_adapter("https://example.org")
        assert isinstance(adapter, HTTPAdapter)
        return adapter.max_retries


def test_post_and_patch_are_not_retried_unless_allowed() -> None:
    default = _retry_of()
    assert "GET" in default.allowed_methods
    assert "POST" not in default.allowed_methods
    assert "PATCH" not in default.allowed_methods
    assert "POST" in _retry_of(retry_post=True).allowed_methods
    assert "PATCH" not in _retry_of(retry_post=True).allowed_methods


def test_retry_policy_matches_the_documented_one() -> None:
    retry = _retry_of(retries=4, backoff=0.5)
    assert retry.total == 4
    assert retry.backoff_factor == 0.5
    assert set(retry.status_forcelist) == {429, 502, 503, 504}
    assert retry.read is False  # a request that reached the server is never resent
    assert retry.raise_on_status is False


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("", None), (None, None), ("soon", None)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert _retry_after_seconds(header) == expected


def test_retry_after_as_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=90), usegmt=True)

    assert 80 < (_retry_after_seconds(later) or 0) <= 90
    assert _retry_after_seconds(earlier) == 0.0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example.org/v1/rooms?api_key=S3CRET#x", "https://api.example.org/v1/rooms"),
        ("https://user:pw@api.example.org:8443/v1", "https://api.example.org:8443/v1"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
