"""What the routes share: settings, the store, the dialer, the clock."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from touchflow.bootstrap import RuntimeCache
from touchflow.entrypoints.api.problems import problem
from touchflow.errors import ConfigError, StoreUnavailable
from touchflow.ports import CrmConnector, Dialer, Notifier
from touchflow.services.leads import LeadServices
from touchflow.settings import Settings

_log = logging.getLogger("touchflow.api")
T = TypeVar("T")

#: PostgreSQL's deadlock_detected and serialization_failure: the transaction may be rerun.
_RERUNNABLE_SQLSTATES = frozenset({"40P01", "40001"})


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

    def adapter(self, name: str, build: Callable[[Settings], T]) -> T | str:
        """The adapter ``build`` makes from the settings, once per app; or why there is none.

        A :class:`~touchflow.errors.ConfigError` (a key not set, a key that does
        not parse) is remembered as its message: the routes answer 503 with it.
        """
        hit = self.cache.get(name)
        if hit is None:
            try:
                hit = build(self.settings)
            except ConfigError as exc:
                hit = str(exc)
            self.cache[name] = hit
        return hit  # type: ignore[no-any-return]

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
                raise StoreUnavailable(str(exc.orig)) from exc
        raise AssertionError("unreachable")

    async def transaction(self, fn: Callable[[Connection], T], *, rerun: bool = True) -> T:
        """:meth:`transaction_sync` in a worker thread."""
        return await run_in_threadpool(self.transaction_sync, fn, rerun=rerun)


def context(request: Request) -> Context:
    ctx: Context = request.app.state.touchflow
    return ctx


def api_key_refusal(ctx: Context, request: Request, what: str) -> JSONResponse | None:
    """The answer refusing a request without the right ``X-API-Key`` (None: it may pass).

    503 when no key is configured (the API then refuses all ``what``), 401 for
    a missing or wrong key; compared in constant time.
    """
    expected = ctx.settings.api_key
    if expected is None or not expected.get_secret_value():
        return problem(request, 503, f"TOUCHFLOW_API_KEY is not set: the API refuses all {what}")
    # Header values are latin-1 on the wire; bytes compare safely whatever they hold.
    given = request.headers.get("x-api-key", "").encode("latin-1", "replace")
    if not hmac.compare_digest(given, expected.get_secret_value().encode()):
        return problem(request, 401, "missing or wrong X-API-Key")
    return None
