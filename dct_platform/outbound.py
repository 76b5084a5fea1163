"""HTTP calls to outside services (couriers, video providers, ...).

Every session made here has a timeout on every request, because a hung provider must not
hang a request thread or a job worker, and retries only what is safe to send twice.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

DEFAULT_USER_AGENT = "dct-platform/0.1 (+outbound)"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_EXCERPT_CHARS = 300

Timeout = float | tuple[float, float]


class OutboundError(Exception):
    """An outside service failed: no answer, or an answer other than 2xx.

    `status` is None when no answer came at all. `retry_after` is the server's Retry-After in
    seconds, when it sent one, so a job can reschedule itself instead of hammering.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int | None = None,
        body_excerpt: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Retry(Retry):
    """urllib3's Retry, but giving up at once when the server asks for a longer wait than
    `retry_after_max`: sleeping (even a capped time) would block the caller only to be told
    to wait again, and the caller (usually a scheduled job) is better placed to come back."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if response is not None and self.respect_retry_after_header:
            wait = _retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None and wait > self.retry_after_max:
                cause = ResponseError(f"Retry-After {wait:.0f}s exceeds {self.retry_after_max}s")
                # urllib3 types the pool as required, yet its own Retry.increment passes this
                # optional `_pool` on the same way (and ignores the same error there).
                raise MaxRetryError(_pool, url, cause)  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        # A malformed header would otherwise surface as an exception mid-retry; treat it as
        # absent and fall back to the exponential backoff.
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None


class _TimeoutAdapter(HTTPAdapter):
    """Applies a default timeout to requests that name none (requests' default is forever)."""

    def __init__(self, timeout: Timeout, **kwargs: Any) -> None:
        self.default_timeout = timeout
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self.default_timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def http_session(
    retries: int = 3,
    backoff: float = 0.2,
    timeout: Timeout = 5.0,
    user_agent: str = DEFAULT_USER_AGENT,
    *,
    retry_post: bool = False,
    max_retry_after: int = 10,
) -> requests.Session:
    """A session for calling one outside service; close it (or use `with`) when done.

    Retries connection failures, and 429/502/503/504 answers honouring Retry-After up to
    `max_retry_after` seconds, with exponential `backoff`. A request that reached the server
    but got no answer (read timeout) is not retried: it may have been acted upon, and
    retrying would multiply the worst-case wait by `retries`.

    POST is only retried on a 429/5xx with `retry_post=True`, which a caller should set only
    when it sends an idempotency key the provider honours; otherwise a retried POST could
    book a courier twice.
    """
    allowed = Retry.DEFAULT_ALLOWED_METHODS | ({"POST"} if retry_post else set())
    retry = _Retry(
        total=retries,
        read=False,
        other=0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=allowed,
        backoff_factor=backoff,
        respect_retry_after_header=True,
        retry_after_max=max_retry_after,
        # Give the last 5xx back as a response so `call` can report its status and body.
        raise_on_status=False,
    )
    adapter = _TimeoutAdapter(timeout, max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def redact_url(url: str) -> str:
    """The URL without query, fragment or credentials, which may hold API keys or tokens."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _excerpt(response: requests.Response) -> str:
    head = response.content[: _EXCERPT_CHARS * 4]
    try:
        text = head.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset name Python does not know
        text = head.decode("utf-8", errors="replace")
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "..."


def _failure_reason(exc: requests.RequestException) -> str:
    # requests' own messages embed the full URL, query string included, so they are kept out
    # of our message (they stay reachable as __cause__ for debugging).
    if isinstance(exc, requests.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, requests.Timeout):
        return "timed out waiting for the answer"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect"
    return type(exc).__name__


def call(session: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    """Send one request; return the response if 2xx, else raise OutboundError.

    Keyword arguments go to `session.request` (json=, params=, headers=, timeout=, ...).
    """
    method = method.upper()
    safe_url = redact_url(url)
    try:
        response = session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise OutboundError(
            f"{method} {safe_url} failed: {_failure_reason(exc)}", method=method, url=safe_url
        ) from exc
    if 200 <= response.status_code < 300:
        return response
    excerpt = _excerpt(response)
    raise OutboundError(
        f"{method} {safe_url} answered {response.status_code}: {excerpt}",
        method=method,
        url=safe_url,
        status=response.status_code,
        body_excerpt=excerpt,
        retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
    )
