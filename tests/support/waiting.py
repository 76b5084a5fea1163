"""Waiting for something to happen instead of sleeping for a guessed while."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], object],
    timeout: float,
    interval: float = 0.1,
    *,
    message: str | Callable[[], str] = "",
) -> object:
    """Call `predicate` until it returns something true and return that.

    Fails the test with `message` (a callable is only asked when it fails, e.g. to show a
    process's output) once `timeout` seconds have passed without it.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            raise AssertionError(
                f"waited {timeout:g} s in vain for {what or getattr(predicate, '__name__', 'it')}"
            )
        time.sleep(interval)
