"""A small courier for tests and the demo: a real HTTP server on loopback.

- `POST /v1/shipments` (Bearer API key, Idempotency-Key honoured) books and answers a
  tracking number and an expected delivery time;
- `GET /v1/shipments/<tracking>/events` lists the shipment's updates, oldest first;
- `advance(tracking, status)` records an update and POSTs it, HMAC-signed, to the
  platform's webhook, retrying with backoff (in a background thread) while the platform
  is down;
- `down(...)` makes it answer 503 with Retry-After until `up()`; `drop_webhooks` makes it
  record updates without sending them (a webhook lost on the way).

`start_simulator(...)` starts one and returns it; `.url` is its base URL.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from logistics.courier.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

HOST = "127.0.0.1"
_EVENTS_PATH = re.compile(r"^/v1/shipments/([^/]+)/events$")


@dataclass
class Received:
    """A request the simulator received, as sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class SimShipment:
    tracking_number: str
    reference: str
    booking: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)


class CourierSimulator:
    def __init__(
        self,
        *,
        api_key: str,
        webhook_url: str | None = None,
        webhook_secret: str = "",
        retry_delays: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.retry_delays = retry_delays
        self.clock = clock
        self.received: list[Received] = []
        self.webhooks_sent: list[tuple[bytes, int | None]] = []  # (body, status or None)
        self.shipments: dict[str, SimShipment] = {}
        self.drop_webhooks = False
        self._down_retry_after: int | None = None
        self._numbers = itertools.count(1)
        self._messages = itertools.count(1)
        self._lock = threading.Lock()
        self._senders: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "the simulator is not running"
        return f"http://{HOST}:{self._server.server_port}"

    def start(self) -> CourierSimulator:
        self._server = ThreadingHTTPServer((HOST, 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.wait_webhooks(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> CourierSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def down(self, retry_after: int = 1) -> None:
        """Answer every API call 503 with Retry-After until `up()`."""
        self._down_retry_after = retry_after

    def up(self) -> None:
        self._down_retry_after = None

    def advance(
        self, tracking_number: str, status: str, *, location: str | None = None,
        occurred_at: datetime | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Record a status update and send its webhook (in the background)."""
        with self._lock:
            shipment = self.shipments[tracking_number]
            update = {
                "message_id": f"MSG-{next(self._messages):06d}",
                "tracking_number": tracking_number,
                "status": status,
                "occurred_at": (occurred_at or self.clock()).astimezone(UTC).isoformat(),
                "location": location,
            }
            shipment.events.append(update)
        if self.webhook_url and not self.drop_webhooks:
            self.send_webhook(update)
        return update

    def send_webhook(self, update: dict[str, Any]) -> threading.Thread:
        """POST `update` (again) to the platform, retrying while it is down."""
        thread = threading.Thread(target=self._deliver, args=(update,), daemon=True)
        self._senders.append(thread)
        thread.start()
        return thread

    def wait_webhooks(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._senders):
            thread.join(max(0.0, deadline - time.monotonic()))

    def requests_received(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    # -- webhook delivery -----------------------------------------------------------------

    def _deliver(self, update: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        body = json.dumps(update).encode()
        for delay in (*self.retry_delays, None):
            stamp = str(int(time.time()))
            status: int | None
            try:
                response = requests.post(
                    self.webhook_url, data=body, timeout=5,
                    headers={"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                             SIGNATURE_HEADER: signature(self.webhook_secret, stamp, body)},
                )  # fmt: skip
                status = response.status_code
            except requests.RequestException:
                status = None
            with self._lock:
                self.webhooks_sent.append((body, status))
            # A 4xx other than 404 (not booked yet) is final: resending changes nothing.
            if status is not None and (status < 400 or (status < 500 and status != 404)):
                return
            if delay is None:
                return
            time.sleep(delay)

    # -- the API --------------------------------------------------------------------------

    def _book(self, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        reference = key or body.get("reference")
        if not reference or not isinstance(body.get("deliver_to"), dict):
            return 422, {"error": "reference and deliver_to are required"}
        with self._lock:
            for shipment in self.shipments.values():
                if shipment.reference == reference:
                    return 200, self._booking_answer(shipment)
            number = f"SIM{next(self._numbers):08d}"
            shipment = SimShipment(number, reference, body)
            self.shipments[number] = shipment
            return 201, self._booking_answer(shipment)

    def _booking_answer(self, shipment: SimShipment) -> dict[str, Any]:
        expected = self.clock().astimezone(UTC) + timedelta(days=2)
        return {"tracking_number": shipment.tracking_number,
                "expected_delivery_at": expected.isoformat()}  # fmt: skip

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.received.append(Received(method, path, headers, body))
        if self._down_retry_after is not None:
            return 503, {"error": "down"}, {"Retry-After": str(self._down_retry_after)}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "bad API key"}, {}
        if method == "POST" and path == "/v1/shipments":
            try:
                data = json.loads(body)
            except ValueError:
                return 400, {"error": "not JSON"}, {}
            status, answer = self._book(data, headers.get("idempotency-key"))
            return status, answer, {}
        match = _EVENTS_PATH.match(path)
        if method == "GET" and match:
            with self._lock:
                shipment = self.shipments.get(match.group(1))
                if shipment is None:
                    return 404, {"error": "unknown tracking number"}, {}
                return 200, {"events": list(shipment.events)}, {}
        return 404, {"error": "no such endpoint"}, {}


def _handler(sim: CourierSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer, extra = sim.handle(method, self.path, headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the booking's body holds an address: keep it out of stderr

    return Handler


def start_simulator(
    *, api_key: str, webhook_url: str | None = None, webhook_secret: str = ""
) -> CourierSimulator:
    """A running simulator (stop it with `.stop()`); `.url` is its base URL."""
    return CourierSimulator(
        api_key=api_key, webhook_url=webhook_url, webhook_secret=webhook_secret
    ).start()
