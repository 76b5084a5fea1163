"""What every server a test runs in the background shares: `with Server() as s:`."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class BackgroundServer:
    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
