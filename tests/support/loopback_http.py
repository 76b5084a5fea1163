"""A real HTTP server on 127.0.0.1 that answers from a script and records every request.

Stands in for outside services (courier, video provider, ...) in adapter tests:

    with LoopbackHTTPServer() as server:
        server.respond("/v1/jobs", 503, times=2)
        server.respond("/v1/jobs", 201, json={"id": "J-1"}, method="POST")
        ...  # code under test calls f"{server.url}/v1/jobs"
        assert [r.method for r in server.requests] == ["POST", "POST", "POST"]

Scripted answers for one path are used in the order given, each `times` times (None: for
ever). A request nothing was scripted for gets 404 with an explanatory JSON body and is also
listed in `.unscripted`, so a test can tell "the code asked for the wrong path" apart from a
404 it scripted.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import socket
import sys
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

from tests.support.background import BackgroundServer

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return jsonlib.loads(self.body)


@dataclass
class ScriptedResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    method: str | None = None  # None answers any method
    times: int | None = 1  # None: never used up

    def matches(self, method: str) -> bool:
        return self.method is None or self.method == method


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients keep connections alive, as with real services; every answer
    # therefore carries Content-Length.
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        loopback = self.server.loopback
        split = urlsplit(self.path)
        body = self._read_body()
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=CaseInsensitiveDict(self.headers.items()),
            body=body,
        )
        scripted = loopback._take_response(request)
        # Waiting on the stop event rather than sleeping lets stop() end slow answers at once.
        if scripted.delay and loopback._stopping.wait(scripted.delay):
            self.close_connection = True
            return
        try:
            self.send_response(scripted.status)
            for name, value in scripted.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(scripted.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(scripted.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (typically its timeout, which is what the test wanted).
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; `.requests` is the log


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    loopback: LoopbackHTTPServer

    def process_request(self, request: Any, client_address: Any) -> None:
        self.loopback._track(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.loopback._untrack(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer, or stop() cutting kept-alive connections, is normal.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class LoopbackHTTPServer(BackgroundServer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[ScriptedResponse]] = defaultdict(deque)
        self._requests: list[RecordedRequest] = []
        self._unscripted: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LoopbackHTTPServer:
        server = _Server((HOST, 0), _Handler)
        server.loopback = self
        self._server = server
        self._stopping.clear()
        # A short poll interval keeps stop() (and so each test) fast.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="loopback-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Wakes handler threads blocked reading from a kept-alive connection.
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    # -- the test's side -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. http://127.0.0.1:54321."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    def respond(
        self,
        path: str,
        status: int = 200,
        json: Any = None,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        *,
        body: bytes | str | None = None,
        method: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Script the next answer(s) for `path` (exact match, query string ignored).

        Give `json` (sent as application/json) or a raw `body`. `method` restricts the
        answer to one HTTP method; `delay` holds the answer back that many seconds.
        """
        if json is not None and body is not None:
            raise ValueError("give json or body, not both")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for ever")
        all_headers = dict(headers or {})
        if json is not None:
            payload = jsonlib.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            payload = body.encode()
            all_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            payload = body or b""
        scripted = ScriptedResponse(
            status=status,
            body=payload,
            headers=all_headers,
            delay=delay,
            method=method.upper() if method else None,
            times=times,
        )
        with self._lock:
            self._scripts[path].append(scripted)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.path == path and (method is None or r.method == method.upper())
        ]

    @property
    def unscripted(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._unscripted)

    def pending(self) -> int:
        """How many scripted answers (with a finite `times`) have not been used yet."""
        with self._lock:
            return sum(s.times for q in self._scripts.values() for s in q if s.times is not None)

    # -- the handler's side ----------------------------------------------------------------

    def _take_response(self, request: RecordedRequest) -> ScriptedResponse:
        """Record `request` and use up the answer scripted for it (recorded first, so a test
        sees the request even when the client times out waiting for the answer)."""
        with self._lock:
            self._requests.append(request)
            queue = self._scripts.get(request.path, deque())
            for scripted in queue:
                if scripted.matches(request.method):
                    if scripted.times is not None:
                        scripted.times -= 1
                        if scripted.times == 0:
                            queue.remove(scripted)
                    return scripted
            self._unscripted.append(request)
        explanation = {
            "error": "nothing scripted for this request",
            "method": request.method,
            "path": request.path,
        }
        return ScriptedResponse(
            status=404,
            body=jsonlib.dumps(explanation).encode(),
            headers={"Content-Type": "application/json"},
        )

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
