"""Firmographics from a REST enrichment provider, over httpx, with cache, rate limit and retries.

Talks to: ``GET {base_url}{path_template}`` with the company domain in the path
(default ``/v1/companies/{domain}``), ``Authorization: Bearer <api_key>``, one
request per domain. Providers of this kind (Clearbit's Company API, People Data
Labs' Company Enrichment, Apollo's organization enrichment) answer a JSON
document whose shape differs per vendor: ``field_map`` says where each
touchflow field sits, as a dotted path (``"company.metrics.employees"``; a
number indexes a list). The default map fits the local stand-in
(``tests/support/standins/enrichment_api.py``), which imitates Clearbit's nesting.

Limits: providers meter per second (Clearbit documents 600 requests/minute,
PDL 100/minute on a free key) and answer ``429`` with ``Retry-After`` beyond
it. ``max_per_second`` is a token bucket shared by every thread of this
enricher, so ``concurrency`` workers together stay under it; a ``429`` also
holds the bucket for ``Retry-After`` seconds, for every thread.

Quirks and choices:

* ``404`` is an answer, not an error: the provider does not know the domain.
  It is cached as a negative for ``negative_ttl_s`` (shorter than a hit's
  ``ttl_s``: providers learn new companies).
* ``202`` (Clearbit: "lookup queued, ask again later") is treated as not found
  for this run and *not* cached.
* ``429`` sleeps ``Retry-After`` (seconds or an HTTP date; without one, the
  backoff) and tries again, counted against ``retries``; a ``Retry-After``
  longer than ``max_retry_after_s`` is not waited out, the
  :class:`~touchflow.errors.RateLimited` goes to the caller.
* ``5xx``, timeouts, refused or reset connections are retried with exponential
  backoff and full jitter (GET is idempotent); once ``retries`` are used up the
  last :class:`~touchflow.errors.RetryableError` is raised.
* ``401``/``403`` and any other ``4xx`` are :class:`~touchflow.errors.FatalError`,
  never retried: a bad key or a bad path does not heal.
* A batch fails as a whole on the first error that is not retried away, but
  every answer received before it is already in the cache, so a rerun does not
  pay for them twice.
* One ``httpx.Client`` (keep-alive, at most ``concurrency`` connections),
  created in ``__init__``; ``transport`` may be injected (``httpx.MockTransport``).

Every httpx exception becomes a :mod:`touchflow.errors` error in
:func:`classify` and nowhere else.

Cache: :class:`EnrichmentCache` stores the provider's raw answer (the JSON body,
or "not found") under the request URL, so a changed ``field_map`` applies to
cached answers too. :class:`MemoryCache` lives as long as the process;
:class:`SqliteCache` is a stdlib ``sqlite3`` file, so repeated runs do not call
the provider again.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx

from touchflow.adapters._http import (
    HTTPX_ERRORS,
    ExceptionRule,
    error_for_exception,
    error_for_status,
    parse_retry_after,
)
from touchflow.adapters.closing import ClosesOnExit
from touchflow.domain.enrich import Firmographics, revenue_band_of
from touchflow.domain.normalize import domain_key
from touchflow.errors import ConfigError, FatalError, RateLimited, RetryableError

__all__ = [
    "DEFAULT_FIELD_MAP",
    "CachedAnswer",
    "EnrichmentCache",
    "HttpEnricher",
    "MemoryCache",
    "SqliteCache",
    "TokenBucket",
    "classify",
    "map_fields",
]

CONNECTOR = "enrichment"

# touchflow field -> dotted path in the stand-in's (Clearbit-like) answer.
DEFAULT_FIELD_MAP: dict[str, str] = {
    "name": "company.name",
    "industry": "company.category.industry",
    "employees": "company.metrics.employees",
    "revenue_band": "company.metrics.estimatedAnnualRevenue",
    "country": "company.geo.countryCode",
    "technologies": "company.tech",
}

_FIELDS = frozenset(DEFAULT_FIELD_MAP)
_MAX_ERROR_TEXT = 300


# -- cache ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A provider answer kept for later: its JSON body, or ``None`` for "not found"."""

    payload: dict[str, Any] | None

    @property
    def found(self) -> bool:
        return self.payload is not None


class EnrichmentCache(Protocol):
    """Provider answers by request key; expired entries read as missing. Thread-safe."""

    def get(self, key: str) -> CachedAnswer | None: ...

    def put(self, key: str, payload: dict[str, Any] | None) -> None:
        """Store a body (kept ``ttl_s``) or ``None`` for not found (kept ``negative_ttl_s``)."""
        ...

    def close(self) -> None: ...


class MemoryCache:
    """An in-process :class:`EnrichmentCache` with a TTL; ``clock`` returns epoch seconds."""

    def __init__(
        self,
        *,
        ttl_s: float = 30 * 86400,
        negative_ttl_s: float = 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires_at, payload = item
            if expires_at <= self._clock():
                del self._items[key]
                return None
            return CachedAnswer(payload)

    def put(self, key: str, payload: dict[str, Any] | None) -> None:
        ttl = self.ttl_s if payload is not None else self.negative_ttl_s
        with self._lock:
            self._items[key] = (self._clock() + ttl, payload)

    def close(self) -> None:
        with self._lock:
            self._items.clear()


class SqliteCache:
    """A :class:`EnrichmentCache` in a SQLite file (stdlib ``sqlite3``), shared across runs.

    One connection guarded by a lock (lookups are network-bound; the cache is
    not the bottleneck). Expired rows read as missing and are overwritten by
    the next answer; :meth:`purge` deletes them.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        ttl_s: float = 30 * 86400,
        negative_ttl_s: float = 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS enrichment_cache ("
                " key TEXT PRIMARY KEY, payload TEXT, expires_at REAL NOT NULL)"
            )
            self._conn.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.path}: cannot open the enrichment cache ({exc})") from exc

    def __repr__(self) -> str:
        return f"SqliteCache({str(self.path)!r})"

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT payload FROM enrichment_cache WHERE key = ? AND expires_at > ?",
                (key, self._clock()),
            ).fetchone()
        if row is None:
            return None
        return CachedAnswer(None if row[0] is None else json.loads(row[0]))

    def put(self, key: str, payload: dict[str, Any] | None) -> None:
        ttl = self.ttl_s if payload is not None else self.negative_ttl_s
        data = None if payload is None else json.dumps(payload, separators=(",", ":"))
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO enrichment_cache (key, payload, expires_at)"
                " VALUES (?, ?, ?)",
                (key, data, self._clock() + ttl),
            )
            self._conn.commit()

    def purge(self) -> int:
        """Delete expired entries; returns how many."""
        with self._lock:
            cur = self._conn.execute(
                "DELETE FROM enrichment_cache WHERE expires_at <= ?", (self._clock(),)
            )
            self._conn.commit()
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# -- rate limit ----------------------------------------------------------------


class TokenBucket:
    """``rate`` requests per second, bursts of at most ``burst``; shared by threads.

    :meth:`acquire` reserves a token under the lock and sleeps outside it, so
    waiting threads queue up in order instead of spinning. :meth:`hold` stops
    everyone for a while (a ``429``'s ``Retry-After``).
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ConfigError(f"rate limit must be positive, got {rate}")
        if burst < 1:
            raise ConfigError(f"burst must be at least 1, got {burst}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()
        self._held_until = 0.0

    def acquire(self) -> float:
        """Take one token, sleeping until it is there; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            delay = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            delay = max(delay, self._held_until - now)
        slept = 0.0
        while delay > 0:
            self._sleep(delay)
            slept += delay
            # A hold that came in while this thread slept applies to it too.
            with self._lock:
                delay = self._held_until - self._clock()
        return slept

    def hold(self, seconds: float) -> None:
        """No token is handed out for ``seconds`` from now."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)


# -- mapping -------------------------------------------------------------------


def _dig(payload: Any, path: str) -> Any:
    node = payload
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit():
            index = int(part)
            node = node[index] if index < len(node) else None
        else:
            return None
        if node is None:
            return None
    return node


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _employees(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if value >= 0 else None
    if isinstance(value, str):
        digits = value.replace(",", "").strip()
        if digits.isdigit():
            return int(digits)
        # Providers that only know a range ("51-200") give its lower bound.
        head = digits.split("-", 1)[0].strip().rstrip("+")
        return int(head) if head.isdigit() else None
    return None


def _country(value: Any) -> str | None:
    text = _text(value)
    if text is None or len(text) != 2 or not text.isalpha():
        return None  # a country name, not a code: unknown rather than wrong
    return text.upper()


def _technologies(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[Any] = value.replace(";", ",").split(",")
    elif isinstance(value, list):
        items = value
    else:
        return ()
    out: list[str] = []
    for item in items:
        if isinstance(item, Mapping):  # [{"name": "Salesforce", ...}]
            item = item.get("name") or item.get("slug")
        name = _text(item)
        if name and name.lower() not in out:
            out.append(name.lower())
    return tuple(out)


def map_fields(
    domain: str, payload: Mapping[str, Any], field_map: Mapping[str, str], source: str
) -> Firmographics | None:
    """The provider's answer as :class:`Firmographics`; ``None`` when it holds no known value."""
    firm = Firmographics(
        domain=domain,
        name=_text(_dig(payload, field_map["name"])) if "name" in field_map else None,
        industry=_text(_dig(payload, field_map["industry"])) if "industry" in field_map else None,
        employees=_employees(_dig(payload, field_map["employees"]))
        if "employees" in field_map
        else None,
        revenue_band=revenue_band_of(_dig(payload, field_map["revenue_band"]))
        if "revenue_band" in field_map
        else None,
        country=_country(_dig(payload, field_map["country"])) if "country" in field_map else None,
        technologies=_technologies(_dig(payload, field_map["technologies"]))
        if "technologies" in field_map
        else (),
        source=source,
    )
    return firm if firm.values() else None


# -- errors --------------------------------------------------------------------

Operation = Literal["lookup"]


# A base URL httpx cannot send to is configuration: retrying cannot heal it.
_LOOKUP_ERRORS: tuple[ExceptionRule, ...] = (
    ((httpx.UnsupportedProtocol, httpx.InvalidURL), FatalError, "bad base URL"),
    *HTTPX_ERRORS,
)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("type")
            if isinstance(value, str) and value:
                return value[:_MAX_ERROR_TEXT]
    return " ".join(response.text.split())[:_MAX_ERROR_TEXT] or response.reason_phrase


def classify(
    outcome: httpx.Response | BaseException,
    *,
    operation: Operation = "lookup",
    now: float | None = None,
) -> dict[str, Any] | None:
    """The one place a provider answer becomes data or a :mod:`touchflow.errors` error.

    Returns the JSON body of a ``200``, ``None`` for ``404`` (and ``202``,
    see the module docstring: the caller does not cache that one); raises
    :class:`RateLimited` for ``429``, :class:`RetryableError` for ``5xx``,
    timeouts and network failures, :class:`FatalError` for ``401``/``403``,
    other ``4xx`` and anything unexpected. A raised error has the httpx
    exception as its ``__cause__``.
    """
    kw: dict[str, Any] = {"connector": CONNECTOR, "operation": operation}
    if isinstance(outcome, httpx.Response):
        status = outcome.status_code
        kw["status"] = status
        if status == 200:
            try:
                body = outcome.json()
            except ValueError as exc:
                raise RetryableError("answer is not JSON", **kw) from exc
            if not isinstance(body, dict):
                raise FatalError(f"answer is a JSON {type(body).__name__}, not an object", **kw)
            return body
        if status in (202, 204, 404):
            return None
        raise error_for_status(
            status,
            connector=CONNECTOR,
            operation=operation,
            message=_error_text(outcome),
            # A Retry-After date without a zone is not read: the backoff applies.
            retry_after=parse_retry_after(outcome.headers, now, naive_dates="ignore"),
            auth_hint="check the API key",
        )

    # Refused, reset, closed before the status line, timed out: a GET may be repeated.
    raise error_for_exception(
        outcome, connector=CONNECTOR, operation=operation, table=_LOOKUP_ERRORS
    ) from outcome


# -- the enricher --------------------------------------------------------------


class HttpEnricher(ClosesOnExit):
    """:class:`~touchflow.domain.enrich.Enricher` over a REST provider; see the module docstring.

    ``backoff_s`` is the first retry's ceiling (full jitter: a delay is drawn
    from ``[0, backoff_s * 2**attempt]``, capped at ``max_backoff_s``).
    ``sleep``, ``clock`` (epoch, for ``Retry-After`` dates) and ``rng`` may be
    injected by tests. ``stats`` counts requests, cache hits and retries.
    The cache belongs to the caller: :meth:`close` does not close it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        path_template: str = "/v1/companies/{domain}",
        field_map: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        max_per_second: float = 10.0,
        burst: int = 1,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        concurrency: int = 4,
        cache: EnrichmentCache | None = None,
        name: str = "http",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(
                f"enrichment: base_url must be an http(s) URL, got {base_url!r} "
                "(TOUCHFLOW_ENRICHMENT__BASE_URL)"
            )
        if "{domain}" not in path_template:
            raise ConfigError(f"enrichment: path_template lacks {{domain}}: {path_template!r}")
        fmap = dict(DEFAULT_FIELD_MAP if field_map is None else field_map)
        unknown = sorted(set(fmap) - _FIELDS)
        if unknown:
            raise ConfigError(
                f"enrichment: field_map names unknown field(s) {unknown}; known: {sorted(_FIELDS)}"
            )
        if timeout_s <= 0 or retries < 0 or concurrency < 1:
            raise ConfigError(
                "enrichment: timeout_s must be positive, retries >= 0 and concurrency >= 1, "
                f"got {timeout_s}, {retries}, {concurrency}"
            )
        self.name = name
        self.field_map = fmap
        self.cache = cache
        self._base_url = base_url.rstrip("/")
        self._path_template = path_template
        self._retries = retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._concurrency = concurrency
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._bucket = TokenBucket(max_per_second, burst=burst, sleep=sleep)
        headers = {"Accept": "application/json", "User-Agent": "touchflow-enrich/1"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=self._base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport,
        )
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stats = {"requests": 0, "cache_hits": 0, "retries": 0, "not_found": 0}

    def __repr__(self) -> str:
        return f"HttpEnricher({self._base_url}{self._path_template}, name={self.name!r})"

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def lookup(self, domains: Sequence[str]) -> dict[str, Firmographics]:
        """Look every domain up (cache first); returns the found ones keyed as given.

        Raises the first error that retries did not cure (see the module docstring).
        """
        by_key: dict[str, list[str]] = {}
        for domain in domains:
            key = domain_key(domain)
            if key:
                by_key.setdefault(key, []).append(domain)
        keys = list(by_key)
        if not keys:
            return {}
        if len(keys) == 1:
            answers = {keys[0]: self._lookup_one(keys[0])}
        else:
            answers = self._lookup_parallel(keys)
        found: dict[str, Firmographics] = {}
        for key, firm in answers.items():
            if firm is None:
                continue
            for domain in by_key[key]:
                found[domain] = firm
        return found

    def _lookup_parallel(self, keys: list[str]) -> dict[str, Firmographics | None]:
        pool = self._executor()
        futures = {pool.submit(self._lookup_one, key): key for key in keys}
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            if future.exception() is not None:
                wait(pending)  # let requests in flight land in the cache
                raise future.exception()  # type: ignore[misc]
        return {futures[f]: f.result() for f in done}

    def _lookup_one(self, key: str) -> Firmographics | None:
        url = self._path_template.format(domain=quote(key, safe=""))
        cache_key = f"{self._base_url}{url}"
        if self.cache is not None:
            cached = self.cache.get(cache_key)
            if cached is not None:
                self._count("cache_hits")
                if cached.payload is None:
                    return None
                return map_fields(key, cached.payload, self.field_map, self.name)
        payload, cacheable = self._fetch(url)
        if self.cache is not None and cacheable:
            self.cache.put(cache_key, payload)
        if payload is None:
            self._count("not_found")
            return None
        return map_fields(key, payload, self.field_map, self.name)

    def _fetch(self, url: str) -> tuple[dict[str, Any] | None, bool]:
        """The answer's body (``None``: not found) and whether it may be cached."""
        attempt = 0
        while True:
            self._bucket.acquire()
            self._count("requests")
            try:
                response = self._client.get(url)
            except Exception as exc:  # every httpx error goes through classify
                outcome: httpx.Response | BaseException = exc
            else:
                outcome = response
                if response.status_code == 202:
                    return None, False
            try:
                return classify(outcome, now=self._clock()), True
            except RateLimited as err:
                wait_s = err.retry_after
                if wait_s is not None and wait_s > self._max_retry_after_s:
                    raise
                if attempt >= self._retries:
                    raise
                if wait_s is None:
                    wait_s = self._backoff(attempt)
                self._bucket.hold(wait_s)
            except RetryableError:
                if attempt >= self._retries:
                    raise
                wait_s = self._backoff(attempt)
            attempt += 1
            self._count("retries")
            self._sleep(wait_s)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._max_backoff_s, self._backoff_s * (2**attempt))
        return self._rng.uniform(0, ceiling)

    def _count(self, what: str) -> None:
        with self._lock:
            self._stats[what] += 1

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._concurrency, thread_name_prefix="enrich-http"
                )
            return self._pool

    def close(self) -> None:
        """Stop the workers and close the keep-alive connections."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
