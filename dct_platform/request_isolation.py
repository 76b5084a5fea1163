"""Each request starts from an empty context, whatever the server inherited.

Flask reuses an application context that is already active instead of pushing a new one,
and `g` (where the signed-in user is cached) lives on that context. A server started from
inside one, as gunicorn launched by a CLI command is, would then share one `g` between
all requests of a worker: the previous caller's identity answering the next request.
Running every request in a fresh `contextvars.Context` makes that impossible for any
server, present or future, instead of relying on each launcher to get it right.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FreshContextPerRequest:
    def __init__(self, wsgi_app: WSGIApp) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return contextvars.Context().run(self.wsgi_app, environ, start_response)
