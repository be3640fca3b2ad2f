"""The dashboard (signed-in): pages, their JSON data, and the live stream they listen to.

::

    GET /dashboard                  overview: touches and replies per day, live activity
    GET /api/dashboard/activity     the same data as JSON (session or X-API-Key)
    GET /live/stream?topic=...      server-sent events (session or X-API-Key)

Every page takes the filters bar's query parameters: ``period`` (days: 7,
14, 30, 90), ``cadence`` (an id) and ``owner`` (an email the viewer may
see). What a viewer sees is cut to their owners
(:class:`~touchflow.domain.access.Viewer`) in the service queries, and the
stream is filtered the same way by the hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from touchflow import bootstrap
from touchflow.domain.access import Viewer
from touchflow.domain.pipeline import Pipeline
from touchflow.domain.routing.team import TeamConfig
from touchflow.entrypoints.api.auth import ApiViewer, PageViewer, render_page
from touchflow.entrypoints.api.context import context
from touchflow.entrypoints.api.contract import errors
from touchflow.entrypoints.api.live import live_of, sse_stream
from touchflow.entrypoints.api.pages import NAV
from touchflow.entrypoints.api.problems import problem
from touchflow.errors import TouchflowError
from touchflow.services.activity import daily_series, recent_activity
from touchflow.services.dashboard import (
    ACCOUNTS_PAGE,
    ACCOUNTS_PAGE_MAX,
    DashboardQuery,
    page_data,
)
from touchflow.services.users import owner_choices
from touchflow.settings import Settings

__all__ = [
    "Filters",
    "Paging",
    "api_router",
    "base_context",
    "dashboard_data",
    "day_or_none",
    "no_paging",
    "paging",
    "router",
    "team_config",
]

router = APIRouter(include_in_schema=False)
api_router = APIRouter()  # the JSON routes, in docs/openapi.json
PERIODS = (7, 14, 30, 90)
MAX_DAYS = 366  # the longest window a page shows (from/to further apart are cut to it)
_TOPIC = re.compile(r"^[a-z_]{1,32}(:[A-Za-z0-9_.-]{1,64})?$")


@dataclass(frozen=True)
class Filters:
    """The filters bar, read from the query string (unknown values fall back to defaults).

    ``from``/``to`` (UTC days, both included) win over ``period`` (the last N days).
    """

    period: int = 14
    cadence: str | None = None
    owner: str | None = None
    since: date | None = None
    until: date | None = None

    @classmethod
    def of(
        cls,
        period: int | None,
        cadence: str | None,
        owner: str | None,
        since: date | None = None,
        until: date | None = None,
    ) -> Filters:
        # Control characters never get here: every route's query parameters refuse
        # them (NO_CONTROL_CHARS), since PostgreSQL refuses NUL in a query.
        return cls(
            period if period in PERIODS else 14,
            (cadence or "").strip() or None,
            (owner or "").strip().lower() or None,
            since,
            until,
        )

    def owners(self, viewer: Viewer) -> frozenset[str] | None:
        return viewer.narrowed([self.owner] if self.owner else None)

    def window(self, today: date) -> tuple[date, date]:
        """The days shown: ``from``..``to``, else the ``period`` days ending today."""
        until = self.until or today
        since = self.since or (until - timedelta(days=self.period - 1))
        return max(since, until - timedelta(days=MAX_DAYS - 1)), until

    def query_string(self) -> str:
        """These filters as a query string (links between pages keep them)."""
        pairs = [("period", str(self.period))]
        pairs += [(k, v) for k, v in (("cadence", self.cadence), ("owner", self.owner)) if v]
        pairs += [(k, d.isoformat()) for k, d in (("from", self.since), ("to", self.until)) if d]
        return urlencode(pairs)


@dataclass(frozen=True)
class Paging:
    """The accounts page's slice of the open deals: ``limit`` deals from the ``offset``-th."""

    limit: int = ACCOUNTS_PAGE
    offset: int = 0

    def query_string(self) -> str:
        return urlencode([("limit", str(self.limit)), ("offset", str(self.offset))])


def paging(
    limit: Annotated[
        int,
        Query(ge=1, le=ACCOUNTS_PAGE_MAX, description="Deals per page (biggest amount first)."),
    ] = ACCOUNTS_PAGE,
    offset: Annotated[
        int, Query(ge=0, le=10_000_000, description="How many deals to skip (the page's start).")
    ] = 0,
) -> Paging:
    """The paged pages' ``limit`` and ``offset`` query parameters (a FastAPI dependency)."""
    return Paging(limit, offset)


def no_paging() -> Paging:
    """For the pages that are not paged: no query parameters."""
    return Paging()


PeriodQ = Annotated[int | None, Query(ge=1, le=366)]
# No control characters: PostgreSQL refuses NUL in text, and no cadence id or
# email has one (422 here, rather than a failed query).
NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f]*$"
TextQ = Annotated[str | None, Query(max_length=320, pattern=NO_CONTROL_CHARS)]
# The JSON data endpoints' filters, documented (one declaration for every endpoint).
CadenceQ = Annotated[
    str | None, Query(max_length=320, pattern=NO_CONTROL_CHARS, description="A cadence id.")
]
OwnerQ = Annotated[
    str | None,
    Query(
        max_length=320, pattern=NO_CONTROL_CHARS, description="An owner's email (within your team)."
    ),
]


def _cadences(request: Request) -> list[str]:
    folder = context(request).settings.cadences_dir
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def team_config(settings: Settings) -> TeamConfig | None:
    try:
        return bootstrap.team(settings)
    except TouchflowError:  # a broken team.yaml only shortens the owner list
        return None


def day_or_none(value: str | None) -> date | None:
    """A page's ``from``/``to``: a date, or None when empty or not a date (forms send ``from=``)."""
    try:
        return date.fromisoformat(value.strip()) if value and value.strip() else None
    except ValueError:
        return None


def base_context(
    request: Request, viewer: Viewer, filters: Filters, page: str, owners: list[str]
) -> dict[str, Any]:
    """What base.html needs: the viewer, the nav, the filters bar's choices.

    Render with :func:`~touchflow.entrypoints.api.auth.render_page`, which adds the CSRF token.
    """
    return {
        "viewer": viewer,
        "nav": NAV,
        "page": page,
        "filters": filters,
        "periods": PERIODS,
        "cadences": _cadences(request),
        "owners": owners,
        "qs": filters.query_string(),
    }


def _pipeline(request: Request) -> Pipeline | None:
    try:
        return bootstrap.pipeline(context(request).settings)
    except TouchflowError:  # no or a broken pipeline.yaml: the accounts page says so
        return None


async def dashboard_data(
    request: Request,
    viewer: Viewer,
    filters: Filters,
    name: str,
    *,
    choices: bool = False,
    paging: Paging | None = None,
) -> dict[str, Any]:
    """Page ``name``'s data for ``viewer`` (and the owner choices of the filters bar);
    ``paging``: which of the accounts page's deals."""
    paging = paging or Paging()
    ctx = context(request)
    now = ctx.now()
    since, until = filters.window(now.date())
    q = DashboardQuery(
        since,
        until,
        filters.cadence,
        filters.owners(viewer),
        _pipeline(request) if name in ("overview", "accounts", "pipeline") else None,
        limit=paging.limit,
        offset=paging.offset,
        forecast_wait=ctx.settings.reports.forecast_wait_s,
    )
    rctx = bootstrap.report_context(ctx.settings, now)
    team = team_config(ctx.settings) if choices else None

    def read(conn: Any) -> dict[str, Any]:
        data = page_data(conn, name, q, rctx)
        if choices:
            data["owner_choices"] = owner_choices(conn, team, viewer)
        return data

    return await ctx.transaction(read, rerun=False)


def _overview_data(request: Request, viewer: Viewer, filters: Filters) -> Any:
    ctx = context(request)
    owners = filters.owners(viewer)
    since, until = filters.window(ctx.now().date())
    days = (until - since).days + 1
    team = team_config(ctx.settings)

    def read(conn: Connection) -> dict[str, Any]:
        series = daily_series(conn, until, days, owners=owners, cadence=filters.cadence)
        recent = recent_activity(conn, owners, 20)
        return {
            "series": series.as_json(),
            "activity": [a.as_json() for a in recent],
            "owner_choices": owner_choices(conn, team, viewer),
        }

    return ctx.transaction(read, rerun=False)


@router.get("/dashboard", response_class=HTMLResponse)
async def overview(
    request: Request,
    viewer: PageViewer,
    period: PeriodQ = None,
    cadence: TextQ = None,
    owner: TextQ = None,
    since: Annotated[str | None, Query(alias="from", max_length=32)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=32)] = None,
) -> Response:
    filters = Filters.of(period, cadence, owner, day_or_none(since), day_or_none(until))
    data = await _overview_data(request, viewer, filters)
    page = base_context(request, viewer, filters, "/dashboard", data.pop("owner_choices"))
    page.update(data)
    page["data"] = await dashboard_data(request, viewer, filters, "overview")
    return render_page(request, "overview.html", page)


class ActivityItem(BaseModel):
    """One reply, meeting, bounce or opt-out, with whose it is."""

    id: int
    kind: str = Field(description="events.type: replied, meeting_booked, bounce ...")
    label: str
    at: str = Field(description="When it happened (ISO 8601, UTC).")
    owner: str | None = Field(description="The owner of the prospect's enrollment.")
    email: str | None
    name: str | None
    company: str | None
    cadence: str | None
    source: str


class DailySeriesOut(BaseModel):
    """Touches sent and replies per UTC day, oldest first, every day of the period."""

    days: list[str]
    sent: list[int]
    replies: list[int]


class DashboardActivity(BaseModel):
    """The overview's data, cut to what the viewer may see."""

    series: DailySeriesOut
    activity: list[ActivityItem] = Field(description="The newest 20, newest first.")


@api_router.get(
    "/api/dashboard/activity",
    summary="The dashboard overview's data: touches and replies per day, recent activity",
    response_model=DashboardActivity,
    responses=errors(
        {
            401: "Not signed in (no session cookie) and no or a wrong X-API-Key.",
            422: "A query parameter out of its bounds.",
        }
    ),
)
async def activity_json(
    request: Request,
    viewer: ApiViewer,
    period: Annotated[
        int | None, Query(ge=1, le=366, description="Days: 7, 14, 30 or 90 (else 14).")
    ] = None,
    cadence: CadenceQ = None,
    owner: OwnerQ = None,
    x_api_key: Annotated[
        str | None,
        Header(alias="X-API-Key", description="Instead of a signed-in session (scripts)."),
    ] = None,
) -> JSONResponse:
    filters = Filters.of(period, cadence, owner)
    data = await _overview_data(request, viewer, filters)
    data.pop("owner_choices")
    return JSONResponse(data)


@router.get("/live/stream")
async def live_stream(
    request: Request,
    viewer: ApiViewer,
    topic: Annotated[list[str] | None, Query(max_length=100)] = None,
    owner: TextQ = None,
) -> Response:
    """Server-sent events of ``topic`` (default ``activity``), cut to what the viewer may see."""
    topics = topic or ["activity"]
    if len(topics) > 8 or not all(_TOPIC.match(t) for t in topics):
        return problem(request, 422, "topic: up to 8 names like activity or call:CA123")
    live = live_of(request)
    if owner:  # the filters bar's owner: narrower still, never wider
        viewer = Viewer(viewer.email, viewer.role, viewer.narrowed([owner]), via=viewer.via)
    sub, missed = live.hub.subscribe(viewer, topics, request.headers.get("last-event-id"))
    if "activity" in topics:
        live.poller.ensure_running()
    call_poller = live.extra.get("call_poller")  # call_screen.py: other processes' cards
    if call_poller is not None and any(t.startswith("call:") for t in topics):
        call_poller.ensure_running()
    return StreamingResponse(
        sse_stream(live.hub, sub, missed, live.heartbeat_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
