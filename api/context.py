"""What the routes share: settings, the store, the dialer, the clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from touchflow.crm import CrmConnector
from touchflow.leads import LeadServices
from touchflow.ports import Dialer, Notifier
from touchflow.settings import Settings
from touchflow.store.repo import RuntimeCache

_log = logging.getLogger("touchflow.api")
T = TypeVar("T")

#: PostgreSQL's deadlock_detected and serialization_failure: the transaction may be rerun.
_RERUNNABLE_SQLSTATES = frozenset({"40P01", "40001"})


class DatabaseUnavailable(Exception):
    """The store could not be reached or stayed locked: the caller should retry later."""


@dataclass
class Context:
    """What every route needs; one per app, in ``app.state.touchflow``."""

    settings: Settings
    engine: Engine
    runtimes: RuntimeCache
    dialer: Dialer | None
    clock: Callable[[], datetime]
    cache: dict[str, Any] = field(default_factory=dict)  # parsed keys and the like
    leads: LeadServices | None = None  # POST /leads
    crm: CrmConnector | None = None  # pushes a new lead right away
    notifier: Notifier | None = None  # tells the AE

    def now(self) -> datetime:
        return self.clock()

    def transaction_sync(self, fn: Callable[[Connection], T], *, rerun: bool = True) -> T:
        """Run ``fn`` in one transaction; rerun it after a PostgreSQL deadlock (``rerun``)."""
        attempts = 3 if rerun else 1
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except OperationalError as exc:
                state = getattr(exc.orig, "sqlstate", None)
                if attempt + 1 < attempts and state in _RERUNNABLE_SQLSTATES:
                    _log.info("rerunning a transaction after %s", state)
                    continue
                raise DatabaseUnavailable(str(exc.orig)) from exc
        raise AssertionError("unreachable")

    async def transaction(self, fn: Callable[[Connection], T], *, rerun: bool = True) -> T:
        """:meth:`transaction_sync` in a worker thread."""
        return await run_in_threadpool(self.transaction_sync, fn, rerun=rerun)


def context(request: Request) -> Context:
    ctx: Context = request.app.state.touchflow
    return ctx
