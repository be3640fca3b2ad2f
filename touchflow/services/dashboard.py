"""The dashboard's pages as data: each page is the reports it shows, cut to the viewer.

One function per page, ``(conn, query, ctx) -> dict`` (JSON-ready), built on
the same reports as ``touchflow report`` (:data:`touchflow.services.reporting.REPORTS`),
read from the rollups as they stand (the tick refreshes them, and the live
poller after each batch of new activity): a page view never writes the rollups.
It may write one read model: the first read of committee coverage after its
marks moved (the pipeline report, the accounts page) brings it up to date in
its own transaction (``services/committee_coverage``). The
routes in ``entrypoints/api/dashboard.py`` only parse the filters, pick the
viewer's owners and serialize what these return.

What a viewer sees is cut in the queries: :attr:`DashboardQuery.owners` is
:meth:`~touchflow.domain.access.Viewer.narrowed` (None for an admin with no
owner filter, a set for a manager's team or a rep, empty for an owner outside
their team: no rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection

from touchflow.domain.pipeline import Pipeline
from touchflow.services.committee import committee_report
from touchflow.services.committee_coverage import coverage_totals
from touchflow.services.forecasting import dashboard_forecast
from touchflow.services.reporting import (
    REPORTS,
    Report,
    ReportContext,
    ReportQuery,
    funnel_overall,
)
from touchflow.store import rollups
from touchflow.store.deals import open_deals_page

__all__ = ["ACCOUNTS_PAGE", "ACCOUNTS_PAGE_MAX", "PAGES", "DashboardQuery", "page_data"]


ACCOUNTS_PAGE = 50  # deals per accounts page unless asked (at most ACCOUNTS_PAGE_MAX)
ACCOUNTS_PAGE_MAX = 500


@dataclass(frozen=True)
class DashboardQuery:
    """A page's filters: UTC days (both included), a cadence, the owners the viewer may see."""

    since: date
    until: date
    cadence: str | None = None
    owners: frozenset[str] | None = None
    pipeline: Pipeline | None = None  # config/pipeline.yaml, for the accounts page
    limit: int = ACCOUNTS_PAGE  # the accounts page: deals per page, and the first one's index
    offset: int = 0
    forecast_wait: float | None = None  # seconds a page waits for a forecast it started

    def report_query(self) -> ReportQuery:
        return ReportQuery(since=self.since, until=self.until, cadence=self.cadence,
                           owners=self.owners)  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "cadence": self.cadence,
            "owners": None if self.owners is None else sorted(self.owners),
        }


def _report(conn: Connection, name: str, q: ReportQuery, ctx: ReportContext) -> Report:
    """A report from the rollups as they stand (``run_report(..., fresh=False)`` on ``conn``)."""
    return REPORTS[name](conn, q, ctx)


def _week(conn: Connection, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    """Sent, replies and meetings this week (Monday to today, UTC) against the same days last week.

    Counted as the rollups count: an outcome on the day of the touch it answers.
    """
    today = ctx.now.date()
    monday = today - timedelta(days=today.weekday())
    got = rollups.rollup_totals(
        conn,
        ["day"],
        since=monday - timedelta(days=7),
        until=today,
        cadence=q.cadence,
        owner=q.owners,
        metrics=["sent", "replied", "meetings"],
    )

    def total(first: date, last: date) -> dict[str, Any]:
        sums = {"sent": 0, "replied": 0, "meetings": 0}
        for (day,), m in got.items():
            if first <= day <= last:
                for k in sums:
                    sums[k] += m.get(k, 0)
        return {"from": first.isoformat(), "to": last.isoformat(), **sums}

    return {
        "this_week": total(monday, today),
        "last_week": total(monday - timedelta(days=7), today - timedelta(days=7)),
    }


def _daily(conn: Connection, q: DashboardQuery) -> dict[str, Any]:
    got = rollups.rollup_totals(
        conn,
        ["day"],
        since=q.since,
        until=q.until,
        cadence=q.cadence,
        owner=q.owners,
        metrics=["sent", "replied", "meetings"],
    )
    days = [q.since + timedelta(days=i) for i in range((q.until - q.since).days + 1)]
    return {
        "days": [d.isoformat() for d in days],
        **{k: [got.get((d,), {}).get(k, 0) for d in days] for k in ("sent", "replied", "meetings")},
    }


def overview(conn: Connection, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    """The funnel (all cadences, or the chosen one), this week against last, sends per day."""
    rq = q.report_query()
    out: dict[str, Any] = {
        "filters": q.as_json(),
        "funnel": funnel_overall(conn, rq, ctx).rows,
        "week": _week(conn, q, ctx),
        "daily": _daily(conn, q),
    }
    if "pipeline" in REPORTS:
        out["pipeline"] = _report(conn, "pipeline", rq, ctx).as_dict()
    if q.pipeline is not None:
        got = _forecast(conn, q, ctx)
        out["forecast"] = got["forecast"] and {
            k: v for k, v in got["forecast"].items() if k != "deals"
        }
        out["forecast_status"] = got["forecast_status"]
    return out


def cadences(conn: Connection, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    """Every step and variant with its reply rate, 95% interval and the A/B verdict."""
    report = _report(conn, "cadences", q.report_query(), ctx)
    return {
        "filters": q.as_json(),
        "rows": report.rows,
        "ab": {
            "metric": ctx.ab_metric,
            "min_sends": ctx.ab_min_sends,
            "threshold": ctx.ab_threshold,
        },
    }


def team(conn: Connection, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    """Workload per SDR and AE (now), speed to lead per source and AE (leads in the period)."""
    rq = q.report_query()
    return {
        "filters": q.as_json(),
        "workload": _report(conn, "workload", rq, ctx).rows,
        "speed_to_lead": _report(conn, "speed_to_lead", rq, ctx).rows,
    }


def deliverability(conn: Connection, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    """Bounce and spam rates per mailbox against the shield and 0.3%, and per mailbox its
    recipient domains with the most bounces and spam complaints (``dashboard_domain_top``)."""
    top = ctx.dashboard_domain_top
    report = _report(conn, "deliverability", q.report_query(), replace(ctx, domain_top=top))
    return {
        "filters": q.as_json(),
        "rows": report.rows,
        "domains_per_mailbox": top,
        "bounce_shield": {
            "threshold": ctx.shield_threshold,
            "min_sends": ctx.shield_min_sends,
        },
        "spam_threshold": ctx.spam_threshold,
    }


def accounts(conn: Connection, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    """One page of the open deals with their buying committee: coverage, missing roles,
    single-threaded flags; biggest first (amount descending, then source and deal id).

    A deal is the viewer's when they may see its owner (``deals.owner_email``), cut
    in the query before paging. Only the page's committees are computed; ``total``,
    ``single_threaded`` and ``average_coverage`` count every deal the viewer may see
    (the last two from the committee read model, ``committee_coverage``).
    """
    limit = max(1, min(q.limit, ACCOUNTS_PAGE_MAX))
    offset = max(0, q.offset)
    deals: list[dict[str, Any]] = []
    total, single, average = 0, 0, None
    if q.pipeline is not None:
        owners = q.report_query().owner_filter()
        page, total = open_deals_page(conn, owners=owners, limit=limit, offset=offset)
        order = {(d.source, d.deal_id): i for i, d in enumerate(page)}
        found = committee_report(conn, q.pipeline, only=page) if page else []
        for d in sorted(found, key=lambda d: order[(d.deal.source, d.deal.deal_id)]):
            row = d.as_json(ctx.now)
            row["owner"] = d.deal.owner_email
            deals.append(row)
        single, average = coverage_totals(conn, q.pipeline, owners)
    last = (total - 1) // limit * limit if total else 0  # the last page's offset
    return {
        "filters": q.as_json(),
        "configured": q.pipeline is not None,
        "deals": deals,
        "total": total,
        "single_threaded": single,
        "average_coverage": None if average is None else round(average, 4),
        "page": {
            "limit": limit,
            "offset": offset,
            "order": "amount desc, source, deal_id",
            "next_offset": offset + limit if offset + limit < total else None,
            "prev_offset": max(0, min(offset - limit, last)) if offset > 0 else None,
        },
        "required_roles": (
            {r.value: w for r, w in q.pipeline.committee.roles.items()} if q.pipeline else {}
        ),
    }


def _forecast(conn: Connection, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    """The forecast of this period and the next, and the backtest of the periods before,
    over the deals the viewer may see (by owner), as ``touchflow forecast`` computes them.

    Read from the stored results (:func:`~touchflow.services.forecasting.dashboard_forecast`):
    ``forecast_status`` says whether it is fresh, stale (with its as-of and
    computed times) or still computing; a page view never computes it itself.
    """
    assert q.pipeline is not None
    return dashboard_forecast(conn, q.pipeline, q.owners, ctx.now, wait=q.forecast_wait)


def pipeline(conn: Connection, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    """The pipeline report (when deals have one), the forecast with P10-P90, and its backtest:
    touchflow's MAPE beside the naive stage-weighted pipeline's and commit's."""
    out: dict[str, Any] = {
        "filters": q.as_json(),
        "configured": q.pipeline is not None,
        "report": None,
        "forecast": None,
        "backtest": None,
        "error": None,
        "forecast_status": None,
    }
    if "pipeline" in REPORTS:
        out["report"] = _report(conn, "pipeline", q.report_query(), ctx).as_dict()
    if q.pipeline is not None:
        out.update(_forecast(conn, q, ctx))
    return out


PageFn = Callable[[Connection, DashboardQuery, ReportContext], dict[str, Any]]

#: The dashboard's data by page name: GET /api/dashboard/<name> serves each.
PAGES: dict[str, PageFn] = {
    "overview": overview,
    "cadences": cadences,
    "team": team,
    "deliverability": deliverability,
    "accounts": accounts,
    "pipeline": pipeline,
}


def page_data(conn: Connection, name: str, q: DashboardQuery, ctx: ReportContext) -> dict[str, Any]:
    return PAGES[name](conn, q, ctx)
