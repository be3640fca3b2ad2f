"""Stored forecast results: one row per key, a claim while it is computed, then the result.

The key is what a result depends on (:class:`ForecastKey`). A row with status
``computing`` is a claim: whoever inserted it computes, everyone else waits or
serves an older result; a claim older than ``stale_after`` (its process died)
can be taken over. ``done`` rows hold the JSON result; a few per scope are kept
so a page view always has the latest one to show, marked stale, while the next
one is computed. See docs/forecast.md ("On the dashboard").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from touchflow.store.prebuilt import per_dialect
from touchflow.store.schema import forecast_results

__all__ = [
    "ForecastKey",
    "StoredForecast",
    "claim",
    "fresh_result",
    "latest_result",
    "release",
    "store_result",
]

COMPUTING = "computing"
DONE = "done"
KEEP = 3  # done results kept per scope and settings: the latest ones


@dataclass(frozen=True)
class ForecastKey:
    """What a stored forecast depends on."""

    scope: str  # "all", or "owners:<hash>" for a manager's team or a rep
    settings_key: str  # a hash of the pipeline settings and the method's parameters
    as_of_day: date
    deals_version: str

    def columns(self) -> dict[str, Any]:
        """The key's columns of ``forecast_results`` (named as the fields)."""
        return asdict(self)

    def where(self) -> Any:
        c = forecast_results.c
        return and_(*(c[name] == value for name, value in self.columns().items()))


@dataclass(frozen=True)
class StoredForecast:
    key: ForecastKey
    as_of: datetime
    computed_at: datetime
    result: dict[str, Any]


def _stored(row: Any) -> StoredForecast:
    return StoredForecast(
        key=ForecastKey(row.scope, row.settings_key, row.as_of_day, row.deals_version),
        as_of=row.as_of,
        computed_at=row.computed_at,
        result=row.result,
    )


def fresh_result(conn: Connection, key: ForecastKey) -> StoredForecast | None:
    """The result computed for exactly ``key``, if there is one."""
    c = forecast_results.c
    row = conn.execute(select(forecast_results).where(key.where(), c.status == DONE)).first()
    return _stored(row) if row is not None else None


def latest_result(conn: Connection, scope: str, settings_key: str) -> StoredForecast | None:
    """The newest result of ``scope`` with these settings, whatever its day and deals."""
    c = forecast_results.c
    row = conn.execute(
        select(forecast_results)
        .where(c.scope == scope, c.settings_key == settings_key, c.status == DONE)
        .order_by(c.computed_at.desc())
        .limit(1)
    ).first()
    return _stored(row) if row is not None else None


@per_dialect
def _insert_claim(insert: Any) -> Any:
    return (
        insert(forecast_results)
        .on_conflict_do_nothing(
            index_elements=["scope", "settings_key", "as_of_day", "deals_version"]
        )
        .returning(forecast_results.c.scope)  # a row back: this caller inserted it
    )


def claim(conn: Connection, key: ForecastKey, now: datetime, stale_after: timedelta) -> bool:
    """Take the computation of ``key``: True for the one caller that should compute it.

    False when it is done already or someone else's claim is younger than
    ``stale_after``. Commit right after: the claim is what the others see.
    """
    got = conn.execute(
        _insert_claim(conn), {**key.columns(), "status": COMPUTING, "started_at": now}
    )
    if got.first() is not None:
        return True
    c = forecast_results.c
    taken = conn.execute(
        update(forecast_results)
        .where(key.where(), c.status == COMPUTING, c.started_at < now - stale_after)
        .values(started_at=now)
    )
    return taken.rowcount == 1


def release(conn: Connection, key: ForecastKey) -> None:
    """Drop an unfinished claim (the computation failed): the next caller may try again."""
    c = forecast_results.c
    conn.execute(delete(forecast_results).where(key.where(), c.status == COMPUTING))


def store_result(
    conn: Connection, key: ForecastKey, as_of: datetime, computed_at: datetime, result: Any
) -> None:
    """Record ``key``'s result and keep only the newest few of its scope."""
    c = forecast_results.c
    done = conn.execute(
        update(forecast_results)
        .where(key.where())
        .values(status=DONE, as_of=as_of, computed_at=computed_at, result=result)
    )
    if done.rowcount == 0:  # the claim was taken over and finished first, or never made
        conn.execute(  # (returns a row or none: nothing to read)
            _insert_claim(conn),
            {**key.columns(), "status": DONE, "started_at": computed_at, "as_of": as_of,
             "computed_at": computed_at, "result": result},
        )  # fmt: skip
    rows = conn.execute(
        select(c.as_of_day, c.deals_version, c.computed_at)
        .where(c.scope == key.scope, c.settings_key == key.settings_key, c.status == DONE)
        .order_by(c.computed_at.desc())
    ).all()
    for old in rows[KEEP:]:
        gone = replace(key, as_of_day=old.as_of_day, deals_version=old.deals_version)
        conn.execute(delete(forecast_results).where(gone.where()))
