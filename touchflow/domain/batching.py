"""Work in slices: bound parameters per query, items per provider call.

One rule for every tier: ``IN (...)`` lists stay under :data:`IN_LIMIT`
bound parameters (SQLite's historical limit is 999; PostgreSQL's driver is
fine with more, but one size keeps plans and tests alike on both).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = ["IN_LIMIT", "chunks"]

T = TypeVar("T")

#: Bound parameters per ``IN (...)`` query.
IN_LIMIT = 900


def chunks(items: Sequence[T], size: int = IN_LIMIT) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items``, each at most ``size`` long, in order."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]
