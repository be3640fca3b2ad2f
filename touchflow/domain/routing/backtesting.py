"""The backtest: replay past leads through the rules and a fresh ledger (pure).

:func:`read_backtest_csv` reads past leads (see :data:`BACKTEST_COLUMNS`); :func:`backtest`
routes them in time order, rerouting missed SLAs, and reports shares, fallbacks and cap breaches.
"""

from __future__ import annotations

import csv
import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from touchflow.domain.model_findings import reported_as
from touchflow.domain.routing.router import Decision, LeadInput, Router, RoutingState
from touchflow.domain.routing.rules import RoutingConfig
from touchflow.domain.routing.team import TeamConfig
from touchflow.errors import ConfigFileError, Finding

__all__ = ["BACKTEST_COLUMNS", "BacktestLead", "BacktestReport", "backtest", "read_backtest_csv"]


@dataclass(frozen=True)
class BacktestLead:
    """A past lead: when it arrived and, if known, when its first assignee accepted it."""

    lead: LeadInput
    at: datetime
    accepted_at: datetime | None = None


@dataclass(frozen=True)
class MemberShare:
    email: str
    weight: float
    expected: float  # weight / sum of the pool's weights
    actual: float  # share of the pool's round-robin leads
    assigned: int


@dataclass
class BacktestReport:
    leads: int = 0
    by_assignee: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    shares: dict[str, list[MemberShare]] = field(default_factory=dict)  # pool -> members
    cap_breaches: list[tuple[str, date, int, int]] = field(default_factory=list)
    fallbacks: int = 0
    sla_misses: int = 0
    reroutes: int = 0
    decisions: list[tuple[datetime, str, Decision]] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        """The report as text lines (for the CLI)."""
        yield (
            f"leads: {self.leads}  fallbacks: {self.fallbacks}  sla misses: {self.sla_misses}"
            f"  reroutes: {self.reroutes}  cap breaches: {len(self.cap_breaches)}"
        )
        for pool, shares in self.shares.items():
            yield f"pool {pool}:"
            for s in shares:
                yield (
                    f"  {s.email:<32} weight {s.weight:>4g}  expected {s.expected:6.1%}  "
                    f"actual {s.actual:6.1%}  ({s.assigned})"
                )
        for email, d, n, cap in self.cap_breaches:
            yield f"cap breach: {email} got {n} leads on {d} (cap {cap})"


def backtest(
    leads: Iterable[BacktestLead], team: TeamConfig, routing: RoutingConfig
) -> BacktestReport:
    """Replay past leads in time order through a fresh ledger; see :class:`BacktestReport`.

    Each lead's first assignee accepts at ``accepted_at`` (immediately when missing). An
    assignee who would accept after the SLA misses it: at the deadline the lead is rerouted,
    excluding everyone who missed it, and the new assignee accepts immediately.
    """
    router = Router(team, routing)
    state = RoutingState()
    report = BacktestReport()
    per_day: Counter[tuple[str, date]] = Counter()
    log: list[tuple[str, datetime]] = []  # recent (assignee, at), for today's counts
    # SLA deadlines still to fire: (due, seq, lead, the members who missed it).
    misses: list[tuple[datetime, int, LeadInput, tuple[str, ...]]] = []

    def decide(lead: LeadInput, now: datetime, accept: datetime, exclude: tuple[str, ...]) -> None:
        state.today = router.today_counts(log, now)
        d = router.route(lead, state, now, exclude=exclude)
        report.decisions.append((now, lead.email, d))
        report.by_assignee[d.assignee] += 1
        report.by_rule[d.rule] += 1
        report.fallbacks += d.fallback
        member = router.team.member(d.assignee)
        if member is not None:
            log.append((member.email, now))
            per_day[(member.email, now.astimezone(team.hours(member).tz).date())] += 1
        if d.sla_due_at is not None and accept > d.sla_due_at:
            entry = (d.sla_due_at, len(report.decisions), lead, (*exclude, d.assignee))
            heapq.heappush(misses, entry)

    def reroute_until(until: datetime | None) -> None:
        while misses and (until is None or misses[0][0] <= until):
            due, _, lead, exclude = heapq.heappop(misses)
            report.sla_misses += 1
            report.reroutes += 1
            decide(lead, due, due, exclude)

    for item in sorted(leads, key=lambda x: x.at):
        reroute_until(item.at)
        report.leads += 1
        decide(item.lead, item.at, item.accepted_at or item.at, ())
        # Only the last local day matters for capacity: keep the log short.
        cutoff = item.at - timedelta(days=2)
        if log and log[0][1] < cutoff:
            log[:] = [a for a in log if a[1] >= cutoff]
    reroute_until(None)

    for (email, day), n in sorted(per_day.items()):
        member = router.team.member(email)
        if member and member.daily_capacity is not None and n > member.daily_capacity:
            report.cap_breaches.append((email, day, n, member.daily_capacity))
    given: dict[str, Counter[str]] = defaultdict(Counter)
    for _, _, d in report.decisions:
        if d.pool and not d.fallback:
            given[d.pool][d.assignee] += 1
    for pool, members in router.pools.items():
        total = sum(given[pool].values())
        wsum = sum(m.weight for m in members)
        report.shares[pool] = [
            MemberShare(
                m.email,
                m.weight,
                m.weight / wsum,
                given[pool][m.email] / total if total else 0.0,
                given[pool][m.email],
            )
            for m in members
        ]
    return report


#: Columns of a backtest CSV; only ``email`` and ``received_at`` are required.
BACKTEST_COLUMNS = (
    "email",
    "received_at",
    "accepted_at",
    "domain",
    "country",
    "employees",
    "score",
    "grade",
    "account_owner",
)


class _CsvRow:
    """One CSV row, whose bad cells become findings at ``file:line:col``."""

    def __init__(self, label: str, line: int, header: list[str], row: dict[str, Any]) -> None:
        self.label, self.line, self.header, self.row = label, line, header, row

    def error(self, name: str, message: str) -> ConfigFileError:
        col = self.header.index(name) + 1 if name in self.header else 1
        return ConfigFileError(Finding(self.label, self.line, col, f"{name}: {message}"))

    def text(self, name: str) -> str | None:
        return (self.row.get(name) or "").strip() or None

    def number(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return int(float(value))
        except ValueError as exc:
            raise self.error(name, f"{value!r} is not a number") from exc

    def time(self, name: str) -> datetime | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError as exc:
            raise self.error(name, f"{value!r} is not an ISO 8601 date and time") from exc
        return when if when.tzinfo else when.replace(tzinfo=UTC)


@reported_as(ConfigFileError)
def read_backtest_csv(path: Path | str, text: str | None = None) -> list[BacktestLead]:
    """Read past leads from CSV (see :data:`BACKTEST_COLUMNS`); naive times are UTC.

    Raises ConfigFileError naming ``file:line:col`` of the first bad cell.
    """
    label = str(path)
    if text is None:
        text = Path(path).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    header = list(reader.fieldnames or [])
    missing = [c for c in ("email", "received_at") if c not in header]
    if missing:
        raise ConfigFileError(Finding(label, 1, 1, f"missing column(s): {', '.join(missing)}"))
    out = []
    for raw in reader:
        row = _CsvRow(label, reader.line_num, header, raw)
        email, received = row.text("email"), row.time("received_at")
        if email is None:
            raise row.error("email", "required")
        if received is None:
            raise row.error("received_at", "required")
        lead = LeadInput(
            email=email,
            domain=row.text("domain"),
            country=(row.text("country") or "").upper() or None,
            employees=row.number("employees"),
            score=row.number("score"),
            grade=row.text("grade"),
            account_owner=row.text("account_owner"),
        )
        out.append(BacktestLead(lead, received, row.time("accepted_at")))
    return out
