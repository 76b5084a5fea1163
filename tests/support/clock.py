"""A clock tests control: the app reads it through `dct_platform.timeutil.utcnow()`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class TestClock:
    """Follows the system clock until a test freezes it; `advance` moves it either way.

    Following the system clock by default keeps tests that compare with the wall clock
    (token lifetimes, "recorded just now") true, while a test that needs a fixed instant
    or a jump into the future asks for one.
    """

    __test__ = False  # not a test class, despite its name

    def __init__(self) -> None:
        self._lock = threading.Lock()  # live servers read the clock from other threads
        self._frozen_at: datetime | None = None
        self._offset = timedelta()

    def __call__(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop time at `at` (its current reading by default) and return that instant."""
        if at is not None and (at.tzinfo is None or at.utcoffset() is None):
            raise ValueError("freeze at a timezone-aware instant")
        instant = (at or self()).astimezone(UTC)
        with self._lock:
            self._frozen_at = instant
        return instant

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by `delta`, frozen or not, and return the new reading."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
            else:
                self._offset += delta
        return self()
