"""One context-manager protocol for every connector that holds connections."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosesOnExit:
    """``with Connector(...) as c:`` closes it on the way out; subclasses define ``close``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
