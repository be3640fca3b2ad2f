"""The dashboard's report pages and their JSON data (thin: the data is services/dashboard.py).

::

    GET /dashboard/<page>           cadences, team, deliverability, accounts (HTML, signed-in)
    GET /api/dashboard/<page>       overview, cadences, team, deliverability, accounts (JSON)

Every one takes ``from``/``to`` (UTC days, both included; else ``period``,
the last N days), ``cadence`` and ``owner``, and is cut to the viewer's
owners; the accounts page also ``limit`` (50, at most 500) and ``offset``.
A page embeds its data at render and draws it in the browser
(``static/dashboard.js``); when the live stream says something happened, it
fetches its data endpoint again: one read of the rollups per open page per
batch of activity, never a poll per viewer.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from touchflow.entrypoints.api.auth import ApiViewer, PageViewer, render_page
from touchflow.entrypoints.api.contract import errors
from touchflow.entrypoints.api.dashboard import (
    CadenceQ,
    Filters,
    OwnerQ,
    Paging,
    TextQ,
    base_context,
    dashboard_data,
    day_or_none,
    no_paging,
    paging,
)
from touchflow.entrypoints.api.problems import problem
from touchflow.services.dashboard import PAGES

__all__ = ["MODELS", "PAGE_TEMPLATES", "api_router", "router"]

router = APIRouter(include_in_schema=False)
api_router = APIRouter()

#: The pages with a template of their own (the overview is dashboard.py's /dashboard).
PAGE_TEMPLATES: dict[str, str] = {
    "cadences": "Cadences",
    "team": "Team",
    "deliverability": "Deliverability",
    "accounts": "Accounts",
    "pipeline": "Pipeline & forecast",
}

#: The pages that take ``limit`` and ``offset`` (the accounts page: one row per open deal).
PAGED = frozenset({"accounts"})


def _filters(
    period: int | None, cadence: str | None, owner: str | None, since: date | None,
    until: date | None,
) -> Filters:  # fmt: skip
    return Filters.of(period, cadence, owner, since, until)


def _page_route(name: str, label: str) -> None:
    async def page(
        request: Request,
        viewer: PageViewer,
        period: Annotated[int | None, Query(ge=1, le=366)] = None,
        cadence: TextQ = None,
        owner: TextQ = None,
        since: Annotated[str | None, Query(alias="from", max_length=32)] = None,
        until: Annotated[str | None, Query(alias="to", max_length=32)] = None,
        slice_: Paging = Depends(paging if name in PAGED else no_paging),
    ) -> Response:
        filters = _filters(period, cadence, owner, day_or_none(since), day_or_none(until))
        data = await dashboard_data(request, viewer, filters, name, choices=True, paging=slice_)
        values = base_context(request, viewer, filters, f"/dashboard/{name}",
                              data.pop("owner_choices"))  # fmt: skip
        values.update(data=data, page_name=name, title=label)
        return render_page(request, f"{name}.html", values)

    page.__name__ = f"{name}_page"
    router.add_api_route(f"/dashboard/{name}", page, methods=["GET"], response_class=HTMLResponse)


for _name, _label in PAGE_TEMPLATES.items():
    _page_route(_name, _label)


# -- the JSON data endpoints ---------------------------------------------------------------

_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class FiltersOut(BaseModel):
    from_: str = Field(alias="from", description="First day (UTC), included.")
    to: str = Field(description="Last day (UTC), included.")
    cadence: str | None
    owners: list[str] | None = Field(description="Whose numbers these are; null: everyone's.")

    model_config = ConfigDict(populate_by_name=True)


Row = dict[str, Any]


class WeekOut(BaseModel):
    this_week: Row = Field(description="Monday to today (UTC): sent, replied, meetings.")
    last_week: Row = Field(description="The same days a week earlier.")


class OverviewPage(BaseModel):
    """The overview: the funnel (all cadences, or the chosen one), this week against last."""

    filters: FiltersOut
    funnel: list[Row] = Field(description="The funnel report's (all) rows, in stage order.")
    week: WeekOut
    daily: Row = Field(description="days, sent, replied, meetings per day of the period.")
    pipeline: Row | None = Field(None, description="The pipeline report, when deals are set up.")
    forecast: Row | None = Field(
        None, description="This period's and the next's forecast (no per-deal rows)."
    )


class CadencesPage(BaseModel):
    """The cadences report's rows (steps and variants, intervals, the A/B verdict)."""

    filters: FiltersOut
    rows: list[Row]
    ab: Row = Field(description="The decision rule: metric, min_sends, threshold.")


class TeamPage(BaseModel):
    """The workload and speed_to_lead reports."""

    filters: FiltersOut
    workload: list[Row]
    speed_to_lead: list[Row]


class DeliverabilityPage(BaseModel):
    """The deliverability report with the thresholds it is judged against."""

    filters: FiltersOut
    rows: list[Row]
    domains_per_mailbox: int = Field(
        description="Per mailbox, the recipient domains listed: those with the most bounces"
        " and spam complaints, at most this many; the rest are one (other) row."
    )
    bounce_shield: Row
    spam_threshold: float


class PageOut(BaseModel):
    """Which slice of the rows this is, and where the next and previous ones start."""

    limit: int = Field(description="Rows per page.")
    offset: int = Field(description="Rows skipped before this page.")
    order: str = Field(description="The order the rows are paged in.")
    next_offset: int | None = Field(description="The next page's offset; null on the last.")
    prev_offset: int | None = Field(description="The previous page's offset; null on the first.")


class AccountsPage(BaseModel):
    """A page of the open deals with their buying committee coverage (``touchflow deals
    committee``), biggest amount first; the counts are over all the viewer's open deals."""

    filters: FiltersOut
    configured: bool = Field(description="Whether config/pipeline.yaml exists and is valid.")
    deals: list[Row] = Field(description="This page's deals (amount desc, source, deal_id).")
    total: int = Field(description="Open deals the viewer may see (every page).")
    single_threaded: int = Field(description="Of those, how many are single-threaded.")
    average_coverage: float | None = Field(description="Their average committee coverage.")
    page: PageOut
    required_roles: dict[str, float]


class PipelinePage(BaseModel):
    """The pipeline report (if any), the forecast and its backtest (docs/forecast.md)."""

    filters: FiltersOut
    configured: bool = Field(description="Whether config/pipeline.yaml exists and is valid.")
    report: Row | None = Field(description="The pipeline report, when it exists.")
    forecast: Row | None = Field(description="touchflow forecast --json, top 25 deals.")
    backtest: Row | None = Field(description="touchflow forecast --backtest --json.")
    error: str | None = Field(description="Why there is no forecast (e.g. a missing rate).")


MODELS: dict[str, type[BaseModel]] = {
    "overview": OverviewPage,
    "cadences": CadencesPage,
    "team": TeamPage,
    "deliverability": DeliverabilityPage,
    "accounts": AccountsPage,
    "pipeline": PipelinePage,
}


def _api_route(name: str, model: type[BaseModel]) -> None:
    async def data(
        request: Request,
        viewer: ApiViewer,
        period: Annotated[
            int | None, Query(ge=1, le=366, description="The last N days (7, 14, 30, 90; else 14).")
        ] = None,
        cadence: CadenceQ = None,
        owner: OwnerQ = None,
        since: Annotated[
            str | None,
            Query(
                alias="from",
                pattern=_DAY,
                description="First day (UTC), YYYY-MM-DD; wins over period.",
            ),
        ] = None,
        until: Annotated[
            str | None, Query(alias="to", pattern=_DAY, description="Last day (UTC), YYYY-MM-DD.")
        ] = None,
        x_api_key: Annotated[
            str | None,
            Header(alias="X-API-Key", description="Instead of a signed-in session (scripts)."),
        ] = None,
        slice_: Paging = Depends(paging if name in PAGED else no_paging),
    ) -> Response:
        first, last = day_or_none(since), day_or_none(until)
        if (since and first is None) or (until and last is None):
            return problem(request, 422, "from and to take a date: YYYY-MM-DD")
        if first and last and last < first:
            return problem(request, 422, "to is before from")
        filters = _filters(period, cadence, owner, first, last)
        return JSONResponse(await dashboard_data(request, viewer, filters, name, paging=slice_))

    data.__name__ = f"{name}_data"
    api_router.add_api_route(
        f"/api/dashboard/{name}",
        data,
        methods=["GET"],
        summary=f"The dashboard's {name} page as data, cut to what the viewer may see",
        response_model=model,
        responses=errors(
            {
                401: "Not signed in (no session cookie) and no or a wrong X-API-Key.",
                422: "A query parameter out of its bounds, or to before from.",
            }
        ),
    )


for _name in PAGES:
    _api_route(_name, MODELS[_name])
