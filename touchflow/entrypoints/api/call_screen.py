"""The live call screen, the managers' list of live calls, and the guidance read-back.

::

    GET /calls                          live calls the viewer may see (a manager: their team's)
    GET /calls/{call_sid}               one call's screen: transcript, cards, checklist (SSE)
    GET /api/calls/{call_sid}/guidance  the same data as JSON (signed-in or X-API-Key)

The screen subscribes to ``GET /live/stream?topic=call:<sid>``; the hub sends a call's
events only to viewers who may see the call task's owner (the rep, their manager,
admins). A call nobody may see answers 404, the same as a call that does not exist.

Guidance runs in every serve process whose ``config/guidance.yaml`` exists
(:class:`~touchflow.services.call_guidance.CallGuidance`, fed by the transcript port's
``on_new``). Cards fired by *another* process reach this process's screens through
:class:`CallCardPoller` (``call_cards`` read by id high-water mark).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from touchflow import bootstrap
from touchflow.domain.access import Viewer
from touchflow.domain.guidance import Guidance
from touchflow.entrypoints.api.auth import ApiViewer, PageViewer, render_page
from touchflow.entrypoints.api.call_transcripts import transcript_stream, transcript_writer
from touchflow.entrypoints.api.context import Context, context
from touchflow.entrypoints.api.contract import errors
from touchflow.entrypoints.api.dashboard import Filters, base_context
from touchflow.entrypoints.api.live import Live, LiveHub
from touchflow.entrypoints.api.problems import problem
from touchflow.errors import TouchflowError
from touchflow.services.call_guidance import (
    CallGuidance,
    call_owner,
    cards_after,
    guidance_state,
    last_card_id,
    live_calls,
    topic_of,
)

__all__ = ["CallCardPoller", "api_router", "install_guidance", "router"]

router = APIRouter(include_in_schema=False)
api_router = APIRouter()
_log = logging.getLogger("touchflow.api.calls")
SidPath = Annotated[
    str,
    Path(
        min_length=2,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The call's Twilio Call SID (CA...).",
    ),
]
#: A call "live" for longer than this is not listed (its stop never came).
LIVE_FOR = timedelta(hours=4)


def _guidance(ctx: Context) -> Guidance | None:
    try:
        return bootstrap.guidance(ctx.settings)
    except TouchflowError:  # an invalid file: `touchflow validate` says where
        return None


def install_guidance(app: FastAPI, ctx: Context, live: Live) -> CallGuidance | None:
    """Plug live guidance into the transcript port of ``app`` (None: no guidance file)."""
    try:
        guidance = bootstrap.guidance(ctx.settings)
    except TouchflowError as exc:
        _log.error("live guidance is off: %s", exc)
        guidance = None
    if guidance is None:
        return None
    hub = live.hub

    def publish(topic: str, kind: str, data: dict[str, Any], owner: str | None) -> None:
        hub.publish(topic, kind, data, owner=owner)

    service = CallGuidance(
        ctx.engine,
        guidance,
        publish,
        clock=ctx.clock,
        origin=hub.epoch,
        tick_s=ctx.settings.live.guidance_tick_s,
    )
    # The one transcript port of the app: its stop hook makes the after-call summary.
    stream = transcript_stream(ctx)
    stream.on_new = service.on_new
    # Callbacks are recorded by the group-commit writer: cards are shown when they fire
    # and stored with its next commit.
    writer = transcript_writer(ctx)
    service.sink = writer.record_cards
    ctx.cache["call_guidance"] = service
    live.extra["call_poller"] = CallCardPoller(
        hub,
        lambda fn: ctx.transaction_sync(fn, rerun=False),
        ctx.settings.live.poll_interval_s,
        seen=service.mark_shown,
    )
    app.router.on_shutdown.append(service.close)
    app.router.on_shutdown.append(writer.close)
    return service


class CallCardPoller:
    """Cards and ticks another serve process fired, published to this process's screens.

    Runs while some screen here is subscribed to a ``call:`` topic; reads ``call_cards``
    after its high-water mark every ``interval_s`` and publishes the rows whose ``origin``
    is not this process (this process's own were published when they fired).
    """

    def __init__(
        self,
        hub: LiveHub,
        transaction: Callable[[Callable[[Connection], Any]], Any],
        interval_s: float,
        seen: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.hub = hub
        self.transaction = transaction
        self.interval_s = interval_s
        # (call_sid, key) -> False when this process showed that card already.
        self.seen = seen
        self._task: asyncio.Task[None] | None = None
        self._mark: int | None = None

    def _watching(self) -> bool:
        return any(t.startswith("call:") for t in self.hub.topics())

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            self._mark = await run_in_threadpool(self.transaction, last_card_id)
            while self._watching():
                await asyncio.sleep(self.interval_s)
                try:
                    await self.poll_once()
                except Exception:
                    _log.exception("live: a call card poll failed; retrying")
        finally:
            self._mark = None

    async def poll_once(self) -> int:
        mark = self._mark or 0
        rows = await run_in_threadpool(self.transaction, lambda conn: cards_after(conn, mark))
        sent = 0
        for row in rows:
            self._mark = row.id
            if row.origin == self.hub.epoch:
                continue
            if self.seen is not None and not self.seen(row.call_sid, row.key):
                continue  # this process fired the same card itself (a redelivery here)
            self.hub.publish(topic_of(row.call_sid), row.kind, row.data, owner=row.owner)
            sent += 1
        return sent


async def _visible_state(
    request: Request, viewer: Viewer, call_sid: str, *, full: bool
) -> dict[str, Any] | None:
    ctx = context(request)
    guidance = _guidance(ctx)

    def read(conn: Connection) -> dict[str, Any] | None:
        known, owner = call_owner(conn, call_sid)
        if not known or not viewer.can_see(owner):
            return None
        state = guidance_state(conn, guidance, call_sid, full=full)
        if state is not None and full:
            state["owner"] = owner
        return state

    return await ctx.transaction(read, rerun=False)


# ---------------------------------------------------------------------------- JSON
class SegmentOut(BaseModel):
    seq: int
    track: str = Field(description="The audio track (Twilio's inbound_track / outbound_track).")
    said_by: str = Field(description="rep or prospect")
    text: str
    final: bool = Field(description="False: a provisional partial result.")
    at: str = Field(description="When it was said (ISO 8601).")


class CardOut(BaseModel):
    tracker: str
    card: str
    title: str
    said_by: str
    at: str = Field(description="When it was said (a not-said-within tracker: its deadline).")
    text: str = Field(description="What was said that fired it (empty for not-said-within).")


class CallGuidanceOut(BaseModel):
    """A call's live guidance: what its screen shows."""

    call_sid: str
    status: str = Field(description="live or ended")
    segments: list[SegmentOut]
    cards: list[CardOut] = Field(description="In the order they fired.")
    checklist: dict[str, bool] = Field(description="Checklist item id -> ticked.")


@api_router.get(
    "/api/calls/{call_sid}/guidance",
    summary="A call's live guidance: transcript, cards fired, checklist",
    response_model=CallGuidanceOut,
    responses=errors(
        {
            401: "Not signed in (no session cookie) and no or a wrong X-API-Key.",
            404: "No such call, or not one you may see.",
            422: "A call SID that is not one.",
        }
    ),
)
async def call_guidance_json(
    request: Request,
    viewer: ApiViewer,
    call_sid: SidPath,
    x_api_key: Annotated[
        str | None,
        Header(alias="X-API-Key", description="Instead of a signed-in session (scripts)."),
    ] = None,
) -> Response:
    state = await _visible_state(request, viewer, call_sid, full=False)
    if state is None:
        return problem(request, 404, "no such call", code="not_found")
    return JSONResponse(state)


# ---------------------------------------------------------------------------- pages
@router.get("/calls", response_class=HTMLResponse)
async def calls_page(request: Request, viewer: PageViewer) -> Response:
    ctx = context(request)
    since = ctx.now() - LIVE_FOR
    rows = await ctx.transaction(
        lambda conn: live_calls(
            conn, sorted(viewer.owners) if viewer.owners is not None else None, since=since
        ),
        rerun=False,
    )
    page = base_context(request, viewer, Filters(), "/calls", [])
    page["calls"] = rows
    return render_page(request, "calls.html", page)


@router.get("/calls/{call_sid}", response_class=HTMLResponse)
async def call_page(request: Request, viewer: PageViewer, call_sid: SidPath) -> Response:
    state = await _visible_state(request, viewer, call_sid, full=True)
    page = base_context(request, viewer, Filters(), "/calls", [])
    if state is None:
        page["call_sid"] = call_sid
        return render_page(request, "call_missing.html", page, status=404)
    ctx = context(request)
    guidance = _guidance(ctx)
    page["state"] = state
    page["call_sid"] = call_sid
    page["topic"] = topic_of(call_sid)
    page["labels"] = (
        {item.id: item.label for item in guidance.file.checklist} if guidance is not None else {}
    )
    return render_page(request, "call.html", page)
