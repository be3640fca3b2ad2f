"""Filters the store's queries, and the services' queries over its tables, share."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["owner_is"]


def owner_is(col: Any, owner: str | Collection[str]) -> Any:
    """``col = owner``, or ``col IN owners`` for a viewer's team (an empty set matches nothing).

    ``owner`` as :meth:`~touchflow.services.reporting.ReportQuery.owner_filter` gives it:
    one email, or the set of emails a viewer may see.
    """
    return col == owner if isinstance(owner, str) else col.in_(sorted(owner))
