"""Serve a Flask app over real HTTP on a free local port, for browser tests.

werkzeug's threaded development server runs in a daemon thread. Stopping waits (briefly)
for requests still being handled, so that a test's database teardown never races a
request that holds a connection or a lock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from tests.support.background import BackgroundServer

HOST = "127.0.0.1"


class _InFlight:
    """WSGI middleware that knows which requests are being handled right now.

    A request counts while the app handles it and while its body is being sent. The body
    is followed by a generator, because werkzeug skips `close()` when the browser drops
    the connection mid-response (as it does when a page navigates away during a load);
    the generator's `finally` still runs when it is closed or dropped.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._ids = itertools.count()
        self._active: dict[int, str] = {}
        self._idle = threading.Condition()

    def _enter(self, environ: dict[str, Any]) -> int:
        with self._idle:
            key = next(self._ids)
            self._active[key] = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
            return key

    def _leave(self, key: int) -> None:
        with self._idle:
            self._active.pop(key, None)
            self._idle.notify_all()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        key = self._enter(environ)
        try:
            body = self.app(environ, start_response)
        finally:
            self._leave(key)
        return self._send(environ, body)

    def _send(self, environ: dict[str, Any], body: Iterable[bytes]) -> Iterator[bytes]:
        key = self._enter(environ)
        try:
            yield from body
        finally:
            try:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            finally:
                self._leave(key)

    def wait_idle(self, timeout: float) -> list[str]:
        """Wait until no request is handled; the requests still running after `timeout`."""
        with self._idle:
            self._idle.wait_for(lambda: not self._active, timeout=timeout)
            return list(self._active.values())


class LiveServer(BackgroundServer):
    """`with LiveServer(app) as server: page.goto(server.url + "/login")`."""

    def __init__(self, app: Flask, host: str = HOST, shutdown_timeout: float = 10.0) -> None:
        self.app = app
        self.host = host
        self.shutdown_timeout = shutdown_timeout
        self._wsgi = _InFlight(app)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the live server is not running"
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LiveServer:
        assert self._server is None, "the live server is already running"
        # Port 0: the OS picks a free port, so parallel runs never collide.
        self._server = make_server(self.host, 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"live-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()  # returns once serve_forever has left its loop: no new requests
        server.server_close()
        if thread is not None:
            thread.join(self.shutdown_timeout)
        still_running = self._wsgi.wait_idle(self.shutdown_timeout)
        if still_running:
            raise RuntimeError(
                f"live server stopped, but after {self.shutdown_timeout}s these requests "
                f"are still being handled: {', '.join(still_running)}"
            )
