"""Video rooms for booked visits, from whichever provider the deployment configures.

`JitsiRooms` (the default) needs no account and no network: a Jitsi room exists as soon as
someone opens its URL, so the room name itself is the only protection and is made
unguessable. `HttpRooms` asks a provider's API for a room. The link is sent to the patient
and site staff, so no provider puts booking references, patient or site names in it.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import requests

from dct_platform.outbound import OutboundError, call, http_session, redact_url

DEFAULT_JITSI_BASE_URL = "https://meet.jit.si"
JITSI_ROOM_PREFIX = "dct-"
# 20 random bytes in base32: 32 characters of a-z and 2-7, 160 bits. Jitsi lowercases room
# names (they become XMPP MUC addresses), so mixed case would add length but no entropy.
_JITSI_ROOM_BYTES = 20
# Sent as a header and used by the provider as a key: printable ASCII, no spaces.
_BOOKING_REF = re.compile(r"[\x21-\x7e]{1,200}")
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class Room:
    url: str  # the join link
    provider: str  # "jitsi" or "http"
    external_id: str | None = None  # the provider's id for the room, when it has one


class RoomProvider(Protocol):
    name: str

    def create_room(self, *, booking_ref: str, starts_at: datetime, ends_at: datetime) -> Room:
        """A room for the booking `booking_ref`, usable from `starts_at` to `ends_at`.

        Asking again for the same booking must not create a second room at the provider.
        Raises OutboundError when the provider cannot be reached or refuses.
        """
        ...


class JitsiRooms:
    """Rooms on a Jitsi Meet server, named locally; nothing is sent anywhere."""

    name = "jitsi"

    def __init__(self, base_url: str = DEFAULT_JITSI_BASE_URL) -> None:
        self.base_url = _base_url(base_url, allow_loopback_http=False)

    def create_room(self, *, booking_ref: str, starts_at: datetime, ends_at: datetime) -> Room:
        # booking_ref is deliberately unused: anything derived from it would be guessable by
        # whoever knows (or can enumerate) booking references.
        _check_times(starts_at, ends_at)
        token = base64.b32encode(secrets.token_bytes(_JITSI_ROOM_BYTES)).decode("ascii").lower()
        return Room(url=f"{self.base_url}/{JITSI_ROOM_PREFIX}{token}", provider=self.name)


class HttpRooms:
    """Rooms created by a provider API: POST {base_url}/rooms with a bearer token.

    The booking reference goes as the Idempotency-Key, so a POST retried after a 502/503/504
    or 429, or a whole job run again, gets the room already made instead of a second one.
    Call `close()` (or use `with`) when done with a provider that made its own session.
    """

    name = "http"

    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        if not api_token or not api_token.strip():
            raise ValueError("api_token is empty")
        # The token travels in a header on every request: plain http would expose it to the
        # network, except on loopback (local stand-ins and tests).
        self.base_url = _base_url(base_url, allow_loopback_http=True)
        self._token = api_token.strip()
        self._timeout = timeout
        self._owns_session = session is None
        # retry_post is only safe because every POST carries the Idempotency-Key; a session
        # passed in keeps its own retry policy.
        self._session = session or http_session(timeout=timeout, retry_post=True)

    def create_room(self, *, booking_ref: str, starts_at: datetime, ends_at: datetime) -> Room:
        _check_times(starts_at, ends_at)
        if not _BOOKING_REF.fullmatch(booking_ref):
            raise ValueError(
                f"booking_ref must be 1-200 printable ASCII characters without spaces: "
                f"{booking_ref!r}"
            )
        url = f"{self.base_url}/rooms"
        response = call(
            self._session,
            "POST",
            url,
            json={
                "reference": booking_ref,
                "starts_at": starts_at.astimezone(UTC).isoformat(),
                "ends_at": ends_at.astimezone(UTC).isoformat(),
            },
            headers={
                "Authorization": f"Bearer {self._token}",
                "Idempotency-Key": booking_ref,
                "Accept": "application/json",
            },
            timeout=self._timeout,
        )
        return self._room_from(response)

    def _room_from(self, response: requests.Response) -> Room:
        url = redact_url(response.url)
        status = response.status_code

        def failure(reason: str) -> OutboundError:
            return OutboundError(
                f"POST {url} answered {status} {reason}", method="POST", url=url, status=status
            )

        if status not in (200, 201):
            # A 202 or 204 means "no room yet" or "no body": either way there is no link to
            # send, and treating it as success would book a visit nobody can join.
            raise failure("instead of 200 or 201")
        try:
            body = response.json()
        except ValueError:
            raise failure("with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise failure(f"with a JSON {type(body).__name__} instead of an object")
        join_url = body.get("join_url")
        if not isinstance(join_url, str) or not join_url:
            keys = ", ".join(sorted(body)[:10]) or "none"
            raise failure(f"without a join_url (keys: {keys})")
        parts = urlsplit(join_url)
        # Only the scheme is quoted back: the link itself admits whoever holds it.
        if parts.scheme != "https" or not parts.hostname or re.search(r"[\x00-\x20]", join_url):
            raise failure(f"with a join_url that is not an https URL (scheme {parts.scheme!r})")
        room_id = body.get("id")
        if room_id is not None and (
            isinstance(room_id, bool) or not isinstance(room_id, str | int)
        ):
            raise failure(f"with an id that is neither a string nor a number: {room_id!r}")
        return Room(
            url=join_url,
            provider=self.name,
            external_id=None if room_id is None else str(room_id),
        )

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the token: reprs end up in logs and error reports.
        return f"HttpRooms(base_url={self.base_url!r})"


def provider_from_config(config: Mapping[str, Any]) -> RoomProvider:
    """The provider the settings name.

    VIDEO_PROVIDER: "jitsi" (default) or "http". For jitsi, VIDEO_JITSI_BASE_URL (default
    https://meet.jit.si); for http, VIDEO_HTTP_BASE_URL and VIDEO_HTTP_TOKEN, both required.
    Raises ValueError naming the setting that is missing or wrong.
    """
    choice = _setting(config, "VIDEO_PROVIDER").lower() or "jitsi"
    if choice == "jitsi":
        base_url = _setting(config, "VIDEO_JITSI_BASE_URL") or DEFAULT_JITSI_BASE_URL
        try:
            return JitsiRooms(base_url)
        except ValueError as exc:
            raise ValueError(f"VIDEO_JITSI_BASE_URL: {exc}") from None
    if choice == "http":
        names = ("VIDEO_HTTP_BASE_URL", "VIDEO_HTTP_TOKEN")
        missing = [name for name in names if not _setting(config, name)]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ValueError(f"VIDEO_PROVIDER is 'http' but {' and '.join(missing)} {verb} not set")
        try:
            return HttpRooms(_setting(config, names[0]), _setting(config, names[1]))
        except ValueError as exc:
            raise ValueError(f"VIDEO_HTTP_BASE_URL: {exc}") from None
    raise ValueError(f"VIDEO_PROVIDER must be 'jitsi' or 'http', not {choice!r}")


def _setting(config: Mapping[str, Any], name: str) -> str:
    value = config.get(name)
    return "" if value is None else str(value).strip()


def _base_url(url: str, *, allow_loopback_http: bool) -> str:
    parts = urlsplit(url.strip())
    if parts.query or parts.fragment or not parts.hostname:
        raise ValueError(f"{url!r} is not a base URL (scheme and host, optionally a path)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials do not belong in the URL")
    secure = parts.scheme == "https"
    if not secure and not (allow_loopback_http and parts.scheme == "http"):
        raise ValueError(f"{redact_url(url)!r} must use https")
    if not secure and not _is_loopback(parts.hostname):
        raise ValueError(f"{redact_url(url)!r} must use https (plain http only on loopback)")
    return url.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_times(starts_at: datetime, ends_at: datetime) -> None:
    for label, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{label} must be timezone-aware, got {value!r}")
    if ends_at <= starts_at:
        raise ValueError("a room must end after it starts")
