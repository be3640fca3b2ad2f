"""A local stand-in of a REST company-enrichment provider, over real HTTP on 127.0.0.1.

Imitates the shape of Clearbit's Company API
(https://dashboard.clearbit.com/docs#enrichment-api-company-api): one
``GET /v1/companies/{domain}`` per company, a bearer key, and a nested answer::

    {"company": {"domain": "acme.com", "name": "Acme",
                 "category": {"industry": "software"},
                 "metrics": {"employees": 250, "estimatedAnnualRevenue": "$10M-$50M"},
                 "geo": {"countryCode": "US"},
                 "tech": ["salesforce", "aws"]}}

What it does, in order, for every request:

1. anything but ``GET /v1/companies/<domain>``: ``404``/``405`` (not counted);
2. every companies request is counted and time-stamped (:attr:`EnrichmentStandin.request_times`);
3. ``Authorization`` other than ``Bearer <api_key>``: ``401``;
4. the next scripted outcome, if one is queued (:meth:`EnrichmentStandin.fail_next`);
5. otherwise ``200`` with the company, or ``404`` ``{"error": {"type": "unknown_record"}}``.

Companies come from a dict of :class:`~touchflow.domain.enrich.Firmographics`
(default: ``config/firmographics.csv``). ``latency_s`` delays every answer.

Run it by hand: ``python -m tests.support.standins.enrichment_api --port 8091 --api-key test``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from tests.support.standins.server import BackgroundServer, JsonHandler, StandinHTTPServer
from touchflow.adapters.enrichment.offline import OfflineEnricher
from touchflow.domain.enrich import Firmographics
from touchflow.domain.normalize import domain_key

__all__ = ["DEFAULT_API_KEY", "DEFAULT_CSV", "EnrichmentStandin", "RecordedRequest", "main"]

DEFAULT_API_KEY = "enrich-standin-key"
DEFAULT_CSV = Path(__file__).resolve().parents[3] / "config" / "firmographics.csv"
COMPANIES_PATH = "/v1/companies/"

Fault = Literal["timeout", "drop"]

# Our bands as the provider writes its revenue ranges.
_REVENUE_TEXT = {
    "<1M": "$0-$1M",
    "1-10M": "$1M-$10M",
    "10-50M": "$10M-$50M",
    "50-250M": "$50M-$100M",
    "250M-1B": "$250M-$500M",
    "1B+": "$1B-$10B",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One companies request: the domain asked for, the answer's status, when (monotonic)."""

    domain: str
    status: int
    authorized: bool
    at: float


@dataclass(frozen=True)
class _Scripted:
    status: int | None = None
    fault: Fault | None = None
    retry_after: float | None = None
    delay_s: float = 2.0


def company_payload(firm: Firmographics) -> dict[str, Any]:
    """The provider's answer for one company."""
    return {
        "company": {
            "domain": firm.domain,
            "name": firm.name,
            "category": {"industry": firm.industry},
            "metrics": {
                "employees": firm.employees,
                "estimatedAnnualRevenue": _REVENUE_TEXT.get(firm.revenue_band or ""),
            },
            "geo": {"countryCode": firm.country},
            "tech": list(firm.technologies),
        }
    }


_MESSAGES = {
    401: ("auth_failed", "Invalid API key"),
    404: ("unknown_record", "Unknown company"),
    405: ("method_not_allowed", "Method not allowed"),
    429: ("rate_limit", "Too many requests"),
    500: ("server_error", "Internal server error"),
    502: ("bad_gateway", "Bad gateway"),
    503: ("unavailable", "Service unavailable"),
}


class _Handler(JsonHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, the body waits for
    # the client's delayed ACK (40 ms) on every keep-alive request.
    disable_nagle_algorithm = True
    server: StandinHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: thousands of requests in a benchmark."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 1 << 20:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        self._error(405 if path.startswith(COMPANIES_PATH) else 404)

    do_PUT = do_PATCH = do_DELETE = do_POST

    def do_GET(self) -> None:
        standin = self.server.standin
        path = self.path.split("?", 1)[0]
        domain = unquote(path[len(COMPANIES_PATH) :]) if path.startswith(COMPANIES_PATH) else ""
        if not domain or "/" in domain:
            self._error(404)
            return
        authorized = self.headers.get("Authorization") == f"Bearer {standin.api_key}"
        scripted = standin._next_scripted() if authorized else None
        if not authorized:
            standin._record(domain, 401, authorized=False)
            self._error(401)
            return
        if scripted is not None and scripted.fault == "drop":
            standin._record(domain, 0, authorized=True)
            self.close_connection = True
            return
        if scripted is not None and scripted.fault == "timeout":
            standin._record(domain, 0, authorized=True)
            # Answer only after the client has given up.
            standin._closing.wait(scripted.delay_s)
            self.close_connection = True
        elif standin.latency_s:
            with standin._in_flight():
                time.sleep(standin.latency_s)
        if scripted is not None and scripted.status is not None:
            standin._record(domain, scripted.status, authorized=True)
            headers = {}
            if scripted.retry_after is not None:
                headers["Retry-After"] = f"{scripted.retry_after:g}"
            self._error(scripted.status, headers)
            return
        firm = standin.company(domain)
        if scripted is None or scripted.fault is None:
            standin._record(domain, 200 if firm else 404, authorized=True)
        try:
            if firm is None:
                self._error(404)
            else:
                self._send_json(200, company_payload(firm))
        except OSError:  # the client left (timeout fault)
            self.close_connection = True

    def _error(self, status: int, headers: dict[str, str] | None = None) -> None:
        kind, message = _MESSAGES.get(status, ("error", "error"))
        self._send_json(status, {"error": {"type": kind, "message": message}}, headers)


class EnrichmentStandin(BackgroundServer):
    """The provider on ``http://127.0.0.1:<port>`` (:attr:`url`), a context manager. Thread-safe."""

    _thread_name = "enrichment-standin"

    def __init__(
        self,
        companies: Mapping[str, Firmographics] | Iterable[Firmographics] | None = None,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
    ) -> None:
        if companies is None:
            companies = OfflineEnricher(DEFAULT_CSV).companies
        items = companies.values() if isinstance(companies, Mapping) else companies
        self._companies = {domain_key(f.domain): f for f in items}
        self.api_key = api_key
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._scripted: deque[_Scripted] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections = 0
        self._active = self._most_active = 0
        self._init_server(host, port)

    def _make_server(self, address: tuple[str, int]) -> StandinHTTPServer:
        return StandinHTTPServer(address, _Handler, self)

    # -- data and scripting --------------------------------------------------

    @property
    def size(self) -> int:
        """How many companies it knows."""
        with self._lock:
            return len(self._companies)

    def company(self, domain: str) -> Firmographics | None:
        with self._lock:
            return self._companies.get(domain_key(domain))

    def add(self, firm: Firmographics) -> None:
        with self._lock:
            self._companies[domain_key(firm.domain)] = firm

    def fail_next(
        self,
        what: int | Fault,
        *,
        retry_after: float | None = None,
        delay_s: float = 2.0,
        times: int = 1,
    ) -> None:
        """Script the next authorized request(s), ``times`` times.

        ``what`` is an HTTP status (``429`` with ``retry_after`` as
        ``Retry-After``, ``500``, ``403``, ...), ``"timeout"`` (the answer comes
        after ``delay_s``, longer than the client waits) or ``"drop"`` (the
        connection closes without an answer).
        """
        if isinstance(what, int):
            item = _Scripted(status=what, retry_after=retry_after)
        elif what in ("timeout", "drop"):
            item = _Scripted(fault=what, delay_s=delay_s)
        else:
            raise ValueError(f"fail_next takes an HTTP status, 'timeout' or 'drop', not {what!r}")
        with self._lock:
            self._scripted.extend([item] * times)

    def clear(self) -> None:
        """Forget recorded requests and queued outcomes."""
        with self._lock:
            self._scripted.clear()
            self._requests.clear()
            self._connections = 0
            self._most_active = 0

    # -- what happened -------------------------------------------------------

    @property
    def requests(self) -> int:
        """How many companies requests arrived (authorized or not, scripted or not)."""
        with self._lock:
            return len(self._requests)

    @property
    def recorded(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_times(self) -> list[float]:
        """``time.monotonic()`` at the arrival of each companies request, in order."""
        with self._lock:
            return [r.at for r in self._requests]

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    # -- used by the handler -------------------------------------------------

    @property
    def most_in_flight(self) -> int:
        """The most requests that were being answered (within ``latency_s``) at once."""
        with self._lock:
            return self._most_active

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
            self._most_active = max(self._most_active, self._active)
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def _next_scripted(self) -> _Scripted | None:
        with self._lock:
            return self._scripted.popleft() if self._scripted else None

    def _record(self, domain: str, status: int, *, authorized: bool) -> None:
        item = RecordedRequest(domain, status, authorized, time.monotonic())
        with self._lock:
            self._requests.append(item)

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted: ``python -m tests.support.standins.enrichment_api``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8091)
    ap.add_argument("--api-key", default=DEFAULT_API_KEY)
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="firmographics CSV to serve")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="delay every answer")
    args = ap.parse_args(argv)
    standin = EnrichmentStandin(
        OfflineEnricher(args.csv).companies,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        latency_s=args.latency_ms / 1000,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with standin:
        print(
            f"enrichment stand-in on {standin.url}{COMPANIES_PATH}<domain> "
            f"({standin.size} companies, key {args.api_key!r})",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print(f"served {standin.requests} requests", flush=True)


if __name__ == "__main__":
    main()
