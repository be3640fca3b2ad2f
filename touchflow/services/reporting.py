"""Reports: the one service ``touchflow report`` and the dashboard both read.

Each report is a function ``(conn, query, context) -> Report`` registered in
:data:`REPORTS`; a report is a title, its columns and its rows (plain dicts,
JSON-ready), so the CLI prints a table, JSON or CSV and the dashboard serves
the same rows. Counters come from the rollups (:mod:`touchflow.store.rollups`),
brought up to date first (:func:`refresh`), so a report is never more than the
rows committed since that refresh behind. ``source="ledger"`` computes the
same report by straightforward GROUP BYs over the ledger (the tests and the
benchmark compare the two).

Adding a report: write ``def name(conn, q, ctx) -> Report`` and add it to
:data:`REPORTS`; the CLI's ``touchflow report NAME``, its did-you-mean and its
formats, and the dashboard's data endpoints follow (``pipeline`` is one: the
deals as they are, with quotas from team.yaml and committee coverage). A
funnel stage is a column of ``rollup_funnel`` filled by its source's fold, in
:data:`FUNNEL_STAGES` (``opportunity`` and ``won`` come from deals).
"""

from __future__ import annotations

import difflib
import json
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, exists, func, or_, select

from touchflow.domain.compliance import CapPolicy
from touchflow.domain.deals import DealOutcome, ForecastCategory
from touchflow.domain.pipeline import Pipeline
from touchflow.domain.routing.team import TeamConfig, period_label
from touchflow.domain.statistics import decide, median, percentile, wilson_interval
from touchflow.errors import TouchflowError
from touchflow.services import committee_coverage
from touchflow.services.committee import committee_report
from touchflow.store import rollups
from touchflow.store.filters import owner_is
from touchflow.store.schema import (
    deals,
    enrollments,
    events,
    prospects,
    route_assignments,
    tasks,
    touches,
)

__all__ = [
    "FUNNEL_STAGES",
    "REPORTS",
    "Report",
    "ReportContext",
    "ReportQuery",
    "UnknownReport",
    "funnel_overall",
    "refresh",
    "run_report",
]


class UnknownReport(TouchflowError):
    """A report name that is not one of :data:`REPORTS`; ``near`` is the closest one."""

    def __init__(self, name: str, near: str | None) -> None:
        hint = f"; did you mean {near!r}?" if near else ""
        super().__init__(f"no report {name!r}{hint} (reports: {', '.join(REPORTS)})")
        self.name, self.near = name, near


@dataclass(frozen=True)
class ReportQuery:
    """The filters every report takes: days (inclusive, UTC), a cadence, an owner.

    ``owners`` is whose rows the reader may see (a dashboard viewer's team,
    :meth:`~touchflow.domain.access.Viewer.narrowed`); None for everyone's.
    """

    since: date | None = None
    until: date | None = None
    cadence: str | None = None
    owner: str | None = None
    owners: frozenset[str] | None = None

    def owner_filter(self) -> str | frozenset[str] | None:
        """``owner`` within ``owners``: one email, a set (maybe empty), or None for everyone."""
        if self.owners is None:
            return self.owner
        return self.owners & {self.owner} if self.owner else self.owners

    def allows(self, owner: str | None) -> bool:
        wanted = self.owner_filter()
        if wanted is None:
            return True
        return owner == wanted if isinstance(wanted, str) else owner in wanted

    def window(self) -> tuple[datetime | None, datetime | None]:
        start = datetime.combine(self.since, time(), UTC) if self.since else None
        end = datetime.combine(self.until + timedelta(days=1), time(), UTC) if self.until else None
        return start, end


@dataclass(frozen=True)
class ReportContext:
    """What reports compare against: caps, the bounce shield, the team, the A/B rule, now."""

    now: datetime
    caps: CapPolicy
    shield_threshold: float = 0.05
    shield_min_sends: int = 50
    spam_threshold: float = 0.003
    domain_min_sends: int = 1  # deliverability: smaller recipient domains are one "(other)" row
    # deliverability: per mailbox only the N recipient domains with the most bounces and spam
    # complaints, the rest one "(other)" row; None: every domain (domain_min_sends applies)
    domain_top: int | None = None
    dashboard_domain_top: int = 20  # what the dashboard's deliverability page sets domain_top to
    team: TeamConfig | None = None
    ab_metric: str = "replies"
    ab_min_sends: int = 100
    ab_threshold: float = 0.95
    source: str = "rollups"  # or "ledger": the same figures by GROUP BY over the ledger
    pipeline: Pipeline | None = None  # config/pipeline.yaml: stages, probabilities, rates


@dataclass
class Report:
    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
        }


def refresh(engine: Engine, wall: datetime | None = None) -> rollups.RefreshReport:
    """Bring the rollups up to date (end of every tick, and before a report)."""
    return rollups.refresh(engine, wall)


def run_report(
    engine: Engine, name: str, query: ReportQuery, ctx: ReportContext, *, fresh: bool = True
) -> Report:
    """Report ``name``; refreshes the rollups first unless ``fresh`` is False."""
    build = REPORTS.get(name)
    if build is None:
        near = difflib.get_close_matches(name, list(REPORTS), n=1, cutoff=0.5)
        raise UnknownReport(name, near[0] if near else None)
    if fresh and ctx.source == "rollups":
        refresh(engine)
    with engine.connect() as conn:
        return build(conn, query, ctx)


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


# -- cadences ------------------------------------------------------------------------------

CADENCE_COLUMNS = [
    "cadence",
    "step",
    "variant",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "replied",
    "bounced",
    "opted_out",
    "meetings",
    "reply_rate",
    "reply_rate_low",
    "reply_rate_high",
    "leader",
    "prob_best",
    "decision",
]
_CADENCE_METRICS = [
    "sent",
    "delivered",
    "opened",
    "clicked",
    "replied",
    "bounced",
    "opted_out",
    "meetings",
]


def _counts(
    conn: Connection, q: ReportQuery, ctx: ReportContext, by: list[str], metrics: list[str] | None
) -> dict[tuple[Any, ...], dict[str, int]]:
    read = rollups.ledger_counts if ctx.source == "ledger" else rollups.rollup_totals
    return read(
        conn,
        by,
        since=q.since,
        until=q.until,
        cadence=q.cadence,
        owner=q.owner_filter(),
        metrics=metrics,
    )


def cadences(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """Per cadence, step and variant: counts, reply rate with its 95% interval, the A/B verdict."""
    got = _counts(conn, q, ctx, ["cadence_id", "step_id", "variant"], _CADENCE_METRICS)
    rows: list[dict[str, Any]] = []
    for (cad, step, variant), m in sorted(got.items()):
        if not cad:
            continue  # events with no cadence (an unmatched reply) belong to no step
        row: dict[str, Any] = {"cadence": cad, "step": step, "variant": variant or None}
        row.update({k: m.get(k, 0) for k in _CADENCE_METRICS})
        sent, replied = row["sent"], min(row["replied"], row["sent"])
        low, high = wilson_interval(replied, sent)
        row.update(
            reply_rate=_rate(row["replied"], sent),
            reply_rate_low=round(low, 6),
            reply_rate_high=round(high, 6),
            leader=None,
            prob_best=None,
            decision=None,
        )
        rows.append(row)
    key = "replied" if ctx.ab_metric == "replies" else "meetings"
    steps: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["variant"] is not None:
            steps[(row["cadence"], row["step"])].append(row)
    for variants in steps.values():
        if len(variants) < 2:
            continue
        verdict = decide(
            {r["variant"]: (min(r[key], r["sent"]), r["sent"]) for r in variants},
            metric=ctx.ab_metric,
            min_sends=ctx.ab_min_sends,
            threshold=ctx.ab_threshold,
        )
        for r in variants:
            r.update(
                leader=verdict.leader,
                decision=verdict.decision,
                prob_best=None if verdict.prob_best is None else round(verdict.prob_best, 4),
            )
    return Report("cadences", "Cadences: steps and variants", CADENCE_COLUMNS, rows)


# -- funnel --------------------------------------------------------------------------------

#: In order; each after the first is a ``rollup_funnel`` column (opportunity and won from
#: deals: :func:`touchflow.store.rollups.deal_stage_times`).
FUNNEL_STAGES: list[tuple[str, str]] = [
    ("prospect", "enrolled_at"),
    ("contacted", "contacted_at"),
    ("engaged", "engaged_at"),
    ("replied", "replied_at"),
    ("meeting", "meeting_at"),
    ("sql", "sql_at"),
    ("opportunity", "opportunity_at"),
    ("won", "won_at"),
]
ALL = "(all)"  # the overall row of the funnel, and the pipeline's totals
FUNNEL_COLUMNS = ["cadence", "stage", "count", "conversion", "median_hours_from_previous"]


def funnel(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """Per cadence and overall: how many reached each stage, conversion, median time between.

    On PostgreSQL the read model is summarized in the database
    (:func:`~touchflow.store.rollups.funnel_summary`: one row per cadence, not one
    per enrollment); elsewhere, and from the ledger, the enrollments' stage times
    are summarized here by the same rules (:func:`_summary`), to the same figures.
    """
    return _funnel(conn, q, ctx, per_cadence=True)


def funnel_overall(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """The funnel's ``(all)`` rows only, as :func:`funnel` has them (the dashboard's overview:
    on PostgreSQL half the work)."""
    return _funnel(conn, q, ctx, per_cadence=False)


def _funnel(conn: Connection, q: ReportQuery, ctx: ReportContext, *, per_cadence: bool) -> Report:
    start, end = q.window()
    if ctx.source == "ledger":
        by_label = _python_summaries(conn, q, ctx, start, end)
    else:
        by_label = _funnel_from_rollups(conn, q, ctx, start, end, per_cadence)
    labels = sorted(k for k in by_label if k != ALL) if per_cadence else []
    out: list[dict[str, Any]] = []
    for label in [*labels, ALL]:
        counts, medians = by_label[label]
        out.extend(_funnel_rows(label, counts, medians))
    return Report("funnel", "Funnel", FUNNEL_COLUMNS, out)


#: (database, rollups generation, filters) -> the funnel's summaries: a page view between
#: two refreshes (a live dashboard's viewers after each batch) reads one row, not the
#: window's enrollments. Refreshes change the generation (rollups.generation).
_FUNNEL_CACHE: OrderedDict[tuple[Any, ...], dict[str, rollups.FunnelSummary]] = OrderedDict()
_FUNNEL_LOCK = threading.Lock()


def _funnel_from_rollups(
    conn: Connection,
    q: ReportQuery,
    ctx: ReportContext,
    start: datetime | None,
    end: datetime | None,
    per_cadence: bool,
) -> dict[str, rollups.FunnelSummary]:
    gen = rollups.generation(conn)  # read first: what follows is at least this new
    url = conn.engine.url.render_as_string()
    key = (url, gen, q.cadence, q.owner_filter(), start, end, per_cadence)
    with _FUNNEL_LOCK:
        hit = _FUNNEL_CACHE.get(key) if gen is not None else None
    if hit is not None:
        return hit
    if conn.dialect.name == "postgresql":
        got = rollups.funnel_summary(conn, cadence=q.cadence, owner=q.owner_filter(),
                                     since=start, until=end, per_cadence=per_cadence)  # fmt: skip
        by_label = {ALL if cad is None else cad: summary for cad, summary in got.items()}
        if ALL not in by_label:  # nothing enrolled: every stage 0, as in Python
            by_label[ALL] = _summary([])
    else:
        by_label = _python_summaries(conn, q, ctx, start, end)
    if gen is not None:
        with _FUNNEL_LOCK:
            _FUNNEL_CACHE[key] = by_label
            while len(_FUNNEL_CACHE) > 64:
                _FUNNEL_CACHE.popitem(last=False)
    return by_label


def _python_summaries(
    conn: Connection,
    q: ReportQuery,
    ctx: ReportContext,
    start: datetime | None,
    end: datetime | None,
) -> dict[str, rollups.FunnelSummary]:
    rows = rollups.funnel_times(conn, cadence=q.cadence, owner=q.owner_filter(), since=start,
                                until=end, ledger=ctx.source == "ledger")  # fmt: skip
    by_cadence: dict[str, list[list[float | None]]] = defaultdict(list)
    by_prospect: dict[int, list[float | None]] = {}
    for cad, pid, times in rows:
        by_cadence[cad].append(times)
        p = by_prospect.get(pid)
        if p is None:
            by_prospect[pid] = list(times)
            continue
        for i, t in enumerate(times):  # overall: a prospect's first time at each stage
            if t is not None and (p[i] is None or t < p[i]):  # type: ignore[operator]
                p[i] = t
    out = {cad: _summary(rows) for cad, rows in by_cadence.items()}
    out[ALL] = _summary(list(by_prospect.values()))
    return out


def _reached(times: list[float | None]) -> list[float | None]:
    """Each stage's time; a stage passed on the way to a later one counts as reached then."""
    out = list(times)
    later: float | None = None
    for i in range(len(out) - 1, -1, -1):
        if out[i] is None:
            out[i] = later
        later = out[i]
    return out


def _summary(rows: list[list[float | None]]) -> rollups.FunnelSummary:
    """Per stage: how many reached it, and the median hours from the stage before (None first).

    The rules :func:`~touchflow.store.rollups.funnel_summary` states in SQL.
    """
    reached = [_reached(r) for r in rows]
    counts, medians = [], []
    for i in range(len(FUNNEL_STAGES)):
        counts.append(sum(1 for t in reached if t[i] is not None))
        gaps = [
            max((b - a) / 3600, 0.0)
            for t in reached
            if i and (b := t[i]) is not None and (a := t[i - 1]) is not None
        ]
        medians.append(median(gaps) if i else None)
    return counts, medians


def _funnel_rows(
    cadence: str, counts: list[int], medians: list[float | None]
) -> list[dict[str, Any]]:
    out = []
    prev_count: int | None = None
    for (stage, _), count, med in zip(FUNNEL_STAGES, counts, medians, strict=True):
        out.append(
            {
                "cadence": cadence,
                "stage": stage,
                "count": count,
                "conversion": None if prev_count is None else _rate(count, prev_count),
                "median_hours_from_previous": None if med is None else round(med, 3),
            }
        )
        prev_count = count
    return out


# -- workload ------------------------------------------------------------------------------

WORKLOAD_COLUMNS = [
    "owner",
    "role",
    "open_tasks",
    "overdue_tasks",
    "touches_today",
    "mailbox",
    "mailbox_daily_cap",
    "leads_assigned_today",
    "daily_capacity",
]


def workload(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """Per SDR and AE, now: open and overdue tasks, touches today against the mailbox cap,
    leads assigned today against capacity (UTC day)."""
    today = ctx.now.date()
    day_start = datetime.combine(today, time(), UTC)
    open_tasks: dict[Any, Any] = dict(
        conn.execute(
            select(tasks.c.owner_email, func.count())
            .where(tasks.c.status == "open")
            .group_by(tasks.c.owner_email)
        ).all()
    )
    overdue: dict[Any, Any] = dict(
        conn.execute(
            select(tasks.c.owner_email, func.count())
            .where(tasks.c.status == "open", tasks.c.due_at < ctx.now)
            .group_by(tasks.c.owner_email)
        ).all()
    )
    sent_today: dict[str, int] = defaultdict(int)
    mailbox_of: dict[str, str] = {}
    today_q = ReportQuery(since=today, until=today)
    for (owner, mailbox, channel), m in _counts(
        conn, today_q, ctx, ["owner_email", "mailbox", "channel"], ["sent"]
    ).items():
        if channel == "email":  # the mailbox caps count email
            sent_today[owner] += m.get("sent", 0)
        mailbox_of.setdefault(owner, mailbox)
    assigned: dict[Any, Any] = dict(
        conn.execute(
            select(route_assignments.c.assignee_email, func.count())
            .where(
                route_assignments.c.assigned_at >= day_start,
                route_assignments.c.assigned_at < day_start + timedelta(days=1),
            )
            .group_by(route_assignments.c.assignee_email)
        ).all()
    )
    members = {m.email: m for m in (ctx.team.members if ctx.team else [])}
    people = sorted(set(members) | set(open_tasks) | set(sent_today) | set(assigned))
    rows = []
    for email in people:
        if not q.allows(email):
            continue
        member = members.get(email)
        mailbox = (member.from_address if member else None) or mailbox_of.get(email) or email
        rows.append(
            {
                "owner": email,
                "role": member.role if member else None,
                "open_tasks": open_tasks.get(email, 0),
                "overdue_tasks": overdue.get(email, 0),
                "touches_today": sent_today.get(email, 0),
                "mailbox": mailbox,
                "mailbox_daily_cap": ctx.caps.for_mailbox(mailbox).daily,
                "leads_assigned_today": assigned.get(email, 0),
                "daily_capacity": member.daily_capacity if member else None,
            }
        )
    return Report("workload", f"Workload on {today} (UTC)", WORKLOAD_COLUMNS, rows)


# -- speed to lead -------------------------------------------------------------------------

SPEED_COLUMNS = [
    "source",
    "ae",
    "leads",
    "touched",
    "median_minutes",
    "p90_minutes",
    "sla_misses",
    "rerouted",
]


def _lead_source(fields: Any, sources: Any) -> str:
    if isinstance(fields, dict):
        for k in ("lead_source", "source"):
            if fields.get(k):
                return str(fields[k])
    label = (sources or {}).get("email", {}).get("source") if isinstance(sources, dict) else None
    if not label:
        return "unknown"
    return "import" if str(label).startswith("import") else str(label)


def speed_to_lead(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """Per lead source and AE: minutes from the lead's first routing to the AE's first touch.

    Received: the first ``route_assignments`` row of the prospect (by id). The
    AE: the latest assignment's. The first AE touch: the earliest sent email or
    text, or completed task, of an enrollment the AE owns. A miss: touched after
    the first assignment's SLA deadline, or not touched and the deadline passed.

    Window first: only the leads received in the window whose AE the reader may
    see are read (indexed probes: migration 0016), then their assignments,
    fields, and the first touches of their AE's enrollments. ``source="ledger"``
    reads every assignment and cuts in Python (:func:`_speed_to_lead_scan`); the
    tests compare the two.
    """
    if ctx.source == "ledger":
        return _speed_to_lead_scan(conn, q, ctx)
    wanted = q.owner_filter()
    if wanted is not None and not isinstance(wanted, str) and not wanted:
        return Report("speed_to_lead", "Speed to lead", SPEED_COLUMNS, [])
    start, end = q.window()
    # One row per lead: its first assignment (none before it) in the window, its latest
    # (none after it) naming the AE, and per lead indexed subqueries for the rest.
    first_a, last_a = route_assignments.alias("first_a"), route_assignments.alias("last_a")
    earlier, later = route_assignments.alias("earlier"), route_assignments.alias("later")
    rr, en, t, ev = route_assignments.alias("rr"), enrollments.c, touches.c, events.c
    pid, ae = first_a.c.prospect_id, last_a.c.assignee_email
    rerouted = (
        select(func.count())
        .select_from(rr)
        .where(rr.c.prospect_id == pid, rr.c.status == "rerouted")
        .scalar_subquery()
    )
    # SQLite, with no statistics, reads every sent touch by ix_touches_status for each
    # lead (5.8 s for a 30-day window at 20,000 enrollments); `status || ''` is not
    # indexable, so it goes by the AE's enrollments and their touches instead.
    sent = (t.status + "") if conn.dialect.name == "sqlite" else t.status
    first_sent = (  # the AE's enrollments' first sent email or text
        select(func.min(t.executed_at))
        .select_from(enrollments.join(touches, t.enrollment_id == en.id))
        .where(
            en.prospect_id == pid,
            en.owner_email == ae,
            sent == "sent",
            t.channel.in_(["email", "sms"]),
        )
        .scalar_subquery()
    )
    first_done = (  # and their first completed task (the partial index, 0016)
        select(func.min(ev.occurred_at))
        .select_from(enrollments.join(events, ev.enrollment_id == en.id))
        .where(
            en.prospect_id == pid, en.owner_email == ae, ev.source == "task", ev.type == "completed"
        )
        .scalar_subquery()
    )
    query = (
        select(
            pid,
            first_a.c.assigned_at,
            first_a.c.sla_due_at,
            ae,
            rerouted.label("rerouted"),
            first_sent.label("first_sent"),
            first_done.label("first_done"),
            prospects.c.fields,
            prospects.c.field_sources,
        )
        .select_from(
            first_a.join(last_a, last_a.c.prospect_id == pid).outerjoin(
                prospects, prospects.c.id == pid
            )
        )
        .where(
            ~exists().where(earlier.c.prospect_id == pid, earlier.c.id < first_a.c.id),
            ~exists().where(later.c.prospect_id == pid, later.c.id > last_a.c.id),
        )
    )
    if start is not None:
        query = query.where(first_a.c.assigned_at >= start)
    if end is not None:
        query = query.where(first_a.c.assigned_at < end)
    if wanted is not None:  # the AE is one the reader may see
        query = query.where(owner_is(ae, wanted))
    leads = []
    for r in conn.execute(query):
        touched = min((x for x in (r.first_sent, r.first_done) if x is not None), default=None)
        source = _lead_source(r.fields, r.field_sources)
        leads.append(
            _Lead(source, r.assignee_email, r.assigned_at, r.sla_due_at, r.rerouted, touched)
        )
    return _speed_report(leads, ctx)


@dataclass(frozen=True)
class _Lead:
    """A lead as speed to lead counts it."""

    source: str
    ae: str
    received: datetime
    due: datetime | None
    rerouted: int
    touched: datetime | None  # the AE's first touch


def _note_first(first: dict[tuple[int, str], datetime], pid: Any, owner: Any, at: Any) -> None:
    if at is not None and ((pid, owner) not in first or at < first[(pid, owner)]):
        first[(pid, owner)] = at


def _speed_to_lead_scan(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """:func:`speed_to_lead` the straightforward way: every assignment, every assigned
    prospect's fields and first touches, cut to the window and the owners in Python."""
    ra = route_assignments.c
    assigns: dict[int, list[Any]] = defaultdict(list)
    aq = select(
        ra.id, ra.prospect_id, ra.assignee_email, ra.status, ra.assigned_at, ra.sla_due_at
    ).order_by(ra.id)
    for r in conn.execute(aq):
        assigns[r.prospect_id].append(r)
    if not assigns:
        return Report("speed_to_lead", "Speed to lead", SPEED_COLUMNS, [])
    pids = list(assigns)
    info = {
        r.id: r
        for r in conn.execute(
            select(prospects.c.id, prospects.c.fields, prospects.c.field_sources).where(
                prospects.c.id.in_(pids)
            )
        )
    }
    first: dict[tuple[int, str], datetime] = {}
    en = enrollments.c
    for pid, owner, at in conn.execute(
        select(en.prospect_id, en.owner_email, func.min(touches.c.executed_at))
        .join(touches, touches.c.enrollment_id == en.id)
        .where(
            touches.c.status == "sent",
            touches.c.channel.in_(["email", "sms"]),
            en.prospect_id.in_(pids),
        )
        .group_by(en.prospect_id, en.owner_email)
    ):
        _note_first(first, pid, owner, at)
    for pid, owner, at in conn.execute(
        select(en.prospect_id, en.owner_email, func.min(events.c.occurred_at))
        .join(events, events.c.enrollment_id == en.id)
        .where(events.c.source == "task", events.c.type == "completed", en.prospect_id.in_(pids))
        .group_by(en.prospect_id, en.owner_email)
    ):
        _note_first(first, pid, owner, at)
    start, end = q.window()
    leads = []
    for pid, rows in assigns.items():
        received, ae = rows[0].assigned_at, rows[-1].assignee_email
        if (start and received < start) or (end and received >= end):
            continue
        if not q.allows(ae):
            continue
        source = (
            _lead_source(info[pid].fields, info[pid].field_sources) if pid in info else "unknown"
        )
        rerouted = sum(1 for r in rows if r.status == "rerouted")
        leads.append(
            _Lead(source, ae, received, rows[0].sla_due_at, rerouted, first.get((pid, ae)))
        )
    return _speed_report(leads, ctx)


def _speed_report(leads: Iterable[_Lead], ctx: ReportContext) -> Report:
    """The rows: per source and AE, the leads, minutes to the first touch, misses, reroutes."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for lead in leads:
        received, touched, due = lead.received, lead.touched, lead.due
        g = groups.setdefault(
            (lead.source, lead.ae), {"leads": 0, "mins": [], "misses": 0, "rerouted": 0}
        )
        g["leads"] += 1
        g["rerouted"] += lead.rerouted
        if touched is not None and touched >= received:
            g["mins"].append((touched - received).total_seconds() / 60)
        if due is not None and ((touched is None and ctx.now > due) or (touched and touched > due)):
            g["misses"] += 1
    out = []
    for (source, ae), g in sorted(groups.items()):
        med, p90 = median(g["mins"]), percentile(g["mins"], 0.9)
        out.append(
            {
                "source": source,
                "ae": ae,
                "leads": g["leads"],
                "touched": len(g["mins"]),
                "median_minutes": None if med is None else round(med, 2),
                "p90_minutes": None if p90 is None else round(p90, 2),
                "sla_misses": g["misses"],
                "rerouted": g["rerouted"],
            }
        )
    return Report("speed_to_lead", "Speed to lead", SPEED_COLUMNS, out)


# -- deliverability ------------------------------------------------------------------------

DELIVERABILITY_COLUMNS = [
    "mailbox",
    "domain",
    "sent",
    "delivered",
    "bounced",
    "spam_reported",
    "bounce_rate",
    "spam_rate",
    "bounce_shield",
    "spam",
]


OTHER_DOMAINS = "(other)"


def deliverability(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """Email per mailbox (domain ``*``) and per mailbox and recipient domain: bounce and
    spam-complaint rates against the bounce shield and the 0.3% spam threshold.

    Domains with fewer than ``ctx.domain_min_sends`` sends from a mailbox are
    summed into one ``(other)`` row of that mailbox (after its named domains).

    Cut to some owners (``--owner``, a dashboard viewer's team), it counts only
    their touches, per mailbox (the per-domain counters hold no owner): a
    shared mailbox then shows their share, never their colleagues' sends.
    """
    if q.owner_filter() is not None:
        got = {
            (mailbox, "*"): m
            for (mailbox, channel), m in _counts(
                conn, q, ctx, ["mailbox", "channel"], sorted(rollups.DELIVERY_METRICS)
            ).items()
            if channel == "email" and mailbox
        }
        rows = [_delivery_row(ctx, mb, dom, m) for (mb, dom), m in sorted(got.items())]
        return Report("deliverability", "Deliverability (email)", DELIVERABILITY_COLUMNS, rows)
    if ctx.domain_top is not None:
        return _worst_domains(conn, q, ctx, ctx.domain_top)
    read = rollups.ledger_delivery if ctx.source == "ledger" else rollups.rollup_delivery_counts
    got = read(conn, since=q.since, until=q.until)
    per_mailbox = _per_mailbox(got)
    domains: dict[str, list[tuple[str, dict[str, int]]]] = defaultdict(list)
    other: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (mailbox, dom), m in got.items():
        if m.get("sent", 0) >= ctx.domain_min_sends:
            domains[mailbox].append((dom, m))
        else:
            for k, v in m.items():
                other[mailbox][k] += v
    rows = []
    for mailbox in sorted(per_mailbox):
        rows.append(_delivery_row(ctx, mailbox, "*", per_mailbox[mailbox]))
        for dom, m in sorted(domains[mailbox], key=lambda x: x[0]):
            rows.append(_delivery_row(ctx, mailbox, dom, m))
        if mailbox in other:
            rows.append(_delivery_row(ctx, mailbox, OTHER_DOMAINS, other[mailbox]))
    return Report("deliverability", "Deliverability (email)", DELIVERABILITY_COLUMNS, rows)


def _worst_domains(conn: Connection, q: ReportQuery, ctx: ReportContext, top: int) -> Report:
    """Per mailbox: its totals, its ``top`` recipient domains by bounces plus spam complaints
    (most first, then by name; a domain with neither is not listed), and one ``(other)`` row
    for the rest of its sends.

    The rollups read only the window's bounce and complaint counters, then the chosen
    domains' (:func:`~touchflow.store.rollups.rollup_delivery_problems`), and the
    mailboxes' totals from ``rollup_mailbox`` (a row per day, mailbox and counter): a
    dashboard page costs the problems, not the recipient domains, however many there
    are. The ledger path sums every domain and picks by the same rule (:func:`_pick_worst`).
    """
    if ctx.source == "ledger":
        every = rollups.ledger_delivery(conn, since=q.since, until=q.until)
        totals = _per_mailbox(every)
        problems = {
            k: n
            for k, m in every.items()
            if (n := sum(m.get(p, 0) for p in rollups.PROBLEM_METRICS))
        }
        chosen = _pick_worst(problems, top)
        got = {k: every[k] for k in chosen}
    else:
        totals = rollups.rollup_mailbox_counts(conn, since=q.since, until=q.until)
        problems = rollups.rollup_delivery_problems(conn, since=q.since, until=q.until)
        chosen = _pick_worst(problems, top)
        found = rollups.rollup_delivery_counts(
            conn, since=q.since, until=q.until, domains={d for _, d in chosen}
        )
        got = {k: m for k, m in found.items() if k in chosen}
    rows = []
    for mailbox in sorted(totals):
        total = totals[mailbox]
        rows.append(_delivery_row(ctx, mailbox, "*", total))
        listed = sorted((k for k in got if k[0] == mailbox), key=lambda k: (-problems[k], k[1]))
        rest = dict(total)
        for key in listed:
            rows.append(_delivery_row(ctx, mailbox, key[1], got[key]))
            for metric, n in got[key].items():
                rest[metric] = rest.get(metric, 0) - n
        if any(rest.values()):
            rows.append(_delivery_row(ctx, mailbox, OTHER_DOMAINS, rest))
    title = f"Deliverability (email): per mailbox, its {top} worst recipient domains"
    return Report("deliverability", title, DELIVERABILITY_COLUMNS, rows)


def _per_mailbox(
    delivery: dict[tuple[str, str], dict[str, int]],
) -> dict[str, dict[str, int]]:
    """Counters per (mailbox, recipient domain) summed per mailbox (``rollup_mailbox``'s rule)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (mailbox, _), m in delivery.items():
        for metric, n in m.items():
            out[mailbox][metric] += n
    return out


def _pick_worst(problems: dict[tuple[str, str], int], top: int) -> set[tuple[str, str]]:
    """Per mailbox, the ``top`` (mailbox, domain) pairs with the most problems (ties: by name)."""
    by_mailbox: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for (mailbox, domain), n in problems.items():
        if n > 0:
            by_mailbox[mailbox].append((-n, domain))
    return {(mb, dom) for mb, ranked in by_mailbox.items() for _, dom in sorted(ranked)[:top]}


def _delivery_row(
    ctx: ReportContext, mailbox: str, domain: str, m: dict[str, int]
) -> dict[str, Any]:
    sent = m.get("sent", 0)
    bounced, spam = m.get("bounced", 0), m.get("spam_reported", 0)
    b_rate, s_rate = _rate(bounced, sent), _rate(spam, sent)
    if sent < ctx.shield_min_sends:
        shield = f"under {ctx.shield_min_sends} sends"
    else:
        shield = "over" if (b_rate or 0) >= ctx.shield_threshold else "ok"
    return {
        "mailbox": mailbox,
        "domain": domain,
        "sent": sent,
        "delivered": m.get("delivered", 0),
        "bounced": bounced,
        "spam_reported": spam,
        "bounce_rate": b_rate,
        "spam_rate": s_rate,
        "bounce_shield": shield,
        "spam": f"over {ctx.spam_threshold:.1%}" if (s_rate or 0) >= ctx.spam_threshold else "ok",
    }


# -- pipeline ------------------------------------------------------------------------------

PIPELINE_COLUMNS = [
    "owner",
    "stage",
    "category",
    "deals",
    "amount",
    "weighted",
    "committee_coverage",
    "single_threaded",
    "period",
    "quota",
    "won",
    "closing_in_period",
    "coverage",
]
NO_OWNER = "(none)"


def _money(value: float) -> float:
    return round(value, 2)


#: (committee marks, query, day, team, pipeline) -> the pipeline report's rows. The report
#: changes only when deals, their contacts, touched prospects or the configuration do
#: (committee_coverage.marks covers them all); a few entries, per process.
_PIPELINE_CACHE: OrderedDict[tuple[Any, ...], Report] = OrderedDict()
_PIPELINE_LOCK = threading.Lock()


def pipeline(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """The pipeline report (:func:`_pipeline`), kept per process until its inputs change.

    ``source="ledger"`` always computes it (committee coverage included) anew.
    """
    if ctx.pipeline is None or ctx.source == "ledger":
        return _pipeline(conn, q, ctx)
    key = (
        json.dumps(committee_coverage.marks(conn, ctx.pipeline), sort_keys=True),
        ctx.pipeline.model_dump_json(),
        q,
        ctx.now.date(),
        repr(ctx.team),
    )
    with _PIPELINE_LOCK:
        hit = _PIPELINE_CACHE.get(key)
    if hit is None:
        hit = _pipeline(conn, q, ctx)
        with _PIPELINE_LOCK:
            _PIPELINE_CACHE[key] = hit
            while len(_PIPELINE_CACHE) > 32:
                _PIPELINE_CACHE.popitem(last=False)
    return Report(hit.name, hit.title, list(hit.columns), [dict(r) for r in hit.rows])


def _pipeline(conn: Connection, q: ReportQuery, ctx: ReportContext) -> Report:
    """Open deals by owner, stage and forecast category, weighted; coverage against quota;
    buying-committee coverage. Amounts in the reporting currency (pipeline.yaml).

    Rows per owner (and ``(all)``): one per open stage (pipeline order), one per
    forecast category (``stage`` = ``(all)``), and a total (``stage`` and
    ``category`` = ``(all)``) that carries the quota of the period holding
    ``--from`` (default today): ``won`` in the period, open deals ``closing_in_period``
    (close date in it) and ``coverage`` = closing_in_period / (quota - won), None
    without a quota or once it is met.
    """
    title = "Pipeline (open deals)"
    p = ctx.pipeline
    if p is None:  # no config/pipeline.yaml: no stages to weigh by
        return Report("pipeline", title + ": no config/pipeline.yaml", PIPELINE_COLUMNS, [])
    currency = p.forecast.reporting_currency
    d = deals.c
    query = select(
        d.source, d.deal_id, d.owner_email, d.amount, d.currency, d.stage,
        d.close_date, d.closed_at, d.outcome,
    )  # fmt: skip
    # Cut to --owner and to what the viewer may see (a rep: their own deals).
    wanted = q.owner_filter()
    if wanted is not None:
        query = query.where(owner_is(d.owner_email, wanted))
    rows = conn.execute(query.where(or_(d.outcome.is_(None), d.outcome == "won"))).all()
    # Committee coverage (score, single-threaded) per open deal: the stored read model, or
    # computed from the deals, contacts and ledger now (the same function fills both).
    if ctx.source == "ledger":
        cover_of = {
            (c.deal.source, c.deal.deal_id): (c.deal.owner_email, c.coverage.score,
                                               c.coverage.single_threaded)
            for c in committee_report(conn, p)
        }  # fmt: skip
    else:
        cover_of = committee_coverage.coverage_by_deal(conn, p)
    committees = {k: (score, single) for k, (owner, score, single) in cover_of.items()
                  if q.allows(owner)}  # fmt: skip
    ref = q.since or ctx.now.date()
    members = {m.email: m for m in (ctx.team.members if ctx.team else [])}

    def convert(amount: float, code: str) -> float:
        try:
            return p.convert(amount, code)
        except KeyError as exc:
            raise TouchflowError(str(exc.args[0])) from None

    Acc = dict[str, Any]

    def acc() -> Acc:
        return {"deals": 0, "amount": 0.0, "weighted": 0.0, "scores": [], "single": 0}

    cells: dict[tuple[str, str, str], Acc] = defaultdict(acc)  # (owner, stage, category)
    periods: dict[str, Acc] = {}
    for email, member in members.items():
        found = member.quota_for(ref)
        if found is not None and q.allows(email):
            quota, start, end = found
            periods[email] = {
                "period": period_label(start, quota.kind),
                "start": start,
                "end": end,
                "quota": convert(quota.amount, quota.currency),
                "won": 0.0,
                "closing": 0.0,
            }
    for r in rows:
        owner = r.owner_email or NO_OWNER
        amount = convert(r.amount, r.currency)
        span = periods.get(owner)
        if r.outcome == DealOutcome.WON.value:
            closed = r.closed_at.date() if r.closed_at is not None else r.close_date
            if span is not None and closed is not None and span["start"] <= closed < span["end"]:
                span["won"] += amount
            continue
        if not p.has_stage(r.stage):
            raise TouchflowError(p.unknown_stage(r.stage))
        stage = p.stage(r.stage)
        due = r.close_date
        if span is not None and due is not None and span["start"] <= due < span["end"]:
            span["closing"] += amount
        cover = committees.get((r.source, r.deal_id))
        for key in (
            (owner, stage.name, stage.category.value),
            (owner, ALL, stage.category.value),
            (owner, ALL, ALL),
            (ALL, stage.name, stage.category.value),
            (ALL, ALL, stage.category.value),
            (ALL, ALL, ALL),
        ):
            a = cells[key]
            a["deals"] += 1
            a["amount"] += amount
            a["weighted"] += amount * stage.probability
            if cover is not None:
                a["scores"].append(cover[0])
                a["single"] += int(cover[1])
    if periods:
        labels = {s["period"] for s in periods.values()}
        periods[ALL] = {
            "period": labels.pop() if len(labels) == 1 else "mixed",
            **{k: sum(s[k] for s in periods.values()) for k in ("quota", "won", "closing")},
        }
    owners = sorted({k[0] for k in cells if k[0] != ALL} | set(periods) - {ALL})
    if not isinstance(wanted, str) or not owners:
        owners.append(ALL)
    stage_order = {name: i for i, name in enumerate(p.stage_names)}
    category_order = [c.value for c in ForecastCategory]
    out: list[dict[str, Any]] = []
    for owner in owners:
        keys = sorted(
            (k for k in cells if k[0] == owner and k[1] != ALL),
            key=lambda k: stage_order[k[1]],
        )
        keys += sorted(
            (k for k in cells if k[0] == owner and k[1] == ALL and k[2] != ALL),
            key=lambda k: category_order.index(k[2]),
        )
        keys.append((owner, ALL, ALL))
        for key in keys:
            a = cells.get(key) or acc()
            row: dict[str, Any] = {
                "owner": owner,
                "stage": key[1],
                "category": key[2],
                "deals": a["deals"],
                "amount": _money(a["amount"]),
                "weighted": _money(a["weighted"]),
                "committee_coverage": round(sum(a["scores"]) / len(a["scores"]), 4)
                if a["scores"]
                else None,
                "single_threaded": a["single"],
                **dict.fromkeys(["period", "quota", "won", "closing_in_period", "coverage"]),
            }
            span = periods.get(owner)
            if key[1:] == (ALL, ALL) and span is not None:
                remaining = span["quota"] - span["won"]
                row.update(
                    period=span["period"],
                    quota=_money(span["quota"]),
                    won=_money(span["won"]),
                    closing_in_period=_money(span["closing"]),
                    coverage=round(span["closing"] / remaining, 4) if remaining > 0 else None,
                )
            out.append(row)
    return Report("pipeline", f"{title}, {currency}", PIPELINE_COLUMNS, out)


ReportFn = Callable[[Connection, ReportQuery, ReportContext], Report]

#: Every report by name (see the module docstring).
REPORTS: dict[str, ReportFn] = {
    "cadences": cadences,
    "funnel": funnel,
    "workload": workload,
    "speed_to_lead": speed_to_lead,
    "deliverability": deliverability,
    "pipeline": pipeline,
}


def report_names() -> Iterable[str]:
    return list(REPORTS)
