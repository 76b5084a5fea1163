"""The courier's HTTP API, through `dct_platform.outbound` (timeouts, retries with backoff,
Retry-After).

Two calls: `book` a pickup (a delivery goes from the depot to the patient's home, a return
from the patient's home to the depot) and `updates` of one shipment, for polling. The
booking carries the patient's delivery address: it is the only call that does, and the
address is never logged, nor kept in an error message (the courier's answer to a booking is
not quoted either, since it may echo the address back).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from flask import Flask

from dct_platform.outbound import OutboundError, call, http_session

SETTINGS: dict[str, str] = {
    "COURIER_NAME": "simcourier",
    "COURIER_URL": "",
    "COURIER_API_KEY": "",
    "COURIER_WEBHOOK_SECRET": "",
}
# Polling asks the courier about a shipment whose last update is older than this.
POLL_SETTINGS: dict[str, float] = {"COURIER_POLL_AFTER_MINUTES": 30}


def init_settings(app: Flask) -> None:
    for name, default in SETTINGS.items():
        app.config.setdefault(name, os.environ.get(name, default))
    for name, number in POLL_SETTINGS.items():
        app.config.setdefault(name, float(os.environ.get(name, number)))


@dataclass(frozen=True)
class Address:
    """Where the courier picks up or delivers. Only ever built for the booking call."""

    name: str
    line1: str
    line2: str | None
    postal_code: str | None
    city: str | None
    country: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "line1": self.line1,
            "line2": self.line2,
            "postal_code": self.postal_code,
            "city": self.city,
            "country": self.country,
        }

    def __repr__(self) -> str:
        # Keeps the address out of tracebacks and logs that print the object.
        return "<Address (personal data)>"


@dataclass(frozen=True)
class Booking:
    tracking_number: str
    expected_delivery_at: datetime | None


@dataclass(frozen=True)
class Update:
    """One status update as the courier reports it."""

    message_id: str
    tracking_number: str
    status: str
    occurred_at: datetime
    location: str | None = None


class CourierError(Exception):
    """The courier could not be reached or refused; the message holds no personal data."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise CourierError(f"the courier's {what} is not a time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CourierError(f"the courier's {what} is not a time") from None
    if parsed.tzinfo is None:
        raise CourierError(f"the courier's {what} has no UTC offset")
    return parsed


def parse_update(item: Any) -> Update:
    """An update from the courier's JSON (webhook body or poll answer)."""
    if not isinstance(item, dict):
        raise CourierError("an update is not an object")
    for key in ("message_id", "tracking_number", "status"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise CourierError(f"an update has no {key}")
    location = item.get("location")
    return Update(
        message_id=item["message_id"][:120],
        tracking_number=item["tracking_number"],
        status=item["status"],
        occurred_at=_parse_time(item.get("occurred_at"), "occurred_at"),
        location=location[:200] if isinstance(location, str) else None,
    )


class CourierClient:
    """`with CourierClient(url, api_key, name=...) as courier: courier.book(...)`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        name: str,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        session: requests.Session | None = None,
    ) -> None:
        if not base_url:
            raise CourierError("COURIER_URL is not configured")
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._api_key = api_key
        self._timeout = timeout
        self._owns_session = session is None
        # POSTs are retried only because every booking carries an Idempotency-Key the
        # courier honours: a retried booking gets the first one's tracking number.
        self._session = session or http_session(
            retries=retries, backoff=backoff, timeout=timeout, retry_post=True
        )

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> CourierClient:
        return cls(
            config["COURIER_URL"], config["COURIER_API_KEY"], name=config["COURIER_NAME"], **kwargs
        )

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> CourierClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json", **extra}

    def book(
        self,
        *,
        reference: str,
        pickup: Address | dict[str, Any],
        deliver_to: Address | dict[str, Any],
        parcels: int,
        pickup_after: datetime,
    ) -> Booking:
        """Book a pickup; `reference` is our id for it, sent as the Idempotency-Key."""
        body = {
            "reference": reference,
            "pickup": pickup.as_json() if isinstance(pickup, Address) else pickup,
            "deliver_to": deliver_to.as_json() if isinstance(deliver_to, Address) else deliver_to,
            "parcels": parcels,
            "pickup_after": pickup_after.isoformat(),
        }
        try:
            response = call(
                self._session,
                "POST",
                f"{self.base_url}/v1/shipments",
                json=body,
                headers=self._headers(**{"Idempotency-Key": reference}),
                timeout=self._timeout,
            )
        except OutboundError as exc:
            # Not `str(exc)`: it quotes the answer's body, which may echo the address.
            status = f"answered {exc.status}" if exc.status else "could not be reached"
            raise CourierError(
                f"booking with {self.name} failed: the courier {status}",
                retry_after=exc.retry_after,
            ) from None
        try:
            data = response.json()
            tracking = data["tracking_number"]
        except (ValueError, KeyError, TypeError):
            raise CourierError(
                f"{self.name} answered a booking without a tracking number"
            ) from None
        if not isinstance(tracking, str) or not 0 < len(tracking) <= 80:
            raise CourierError(f"{self.name} answered an unusable tracking number")
        expected = data.get("expected_delivery_at")
        return Booking(
            tracking_number=tracking,
            expected_delivery_at=_parse_time(expected, "expected_delivery_at")
            if expected
            else None,
        )

    def updates(self, tracking_number: str) -> list[Update]:
        """Every status update the courier has for one shipment, oldest first."""
        try:
            response = call(
                self._session,
                "GET",
                f"{self.base_url}/v1/shipments/{quote(tracking_number, safe='')}/events",
                headers=self._headers(),
                timeout=self._timeout,
            )
            data = response.json()
        except OutboundError as exc:
            raise CourierError(str(exc), retry_after=exc.retry_after) from None
        except ValueError:
            raise CourierError(f"{self.name} answered updates that are not JSON") from None
        items = data.get("events") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise CourierError(f"{self.name} answered updates without an events list")
        return [parse_update(item) for item in items]
