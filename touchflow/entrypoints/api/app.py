"""The HTTP API: provider webhooks, one-click unsubscribe, click-to-call, health.

::

    POST /webhooks/sendgrid/events      SendGrid Event Webhook (ECDSA-signed)
    POST /webhooks/sendgrid/inbound     SendGrid Inbound Parse (?token= shared secret)
    POST /webhooks/twilio/sms           inbound texts: STOP / START / HELP, replies
    POST /webhooks/twilio/message-status  SMS delivery callbacks (?touch_key=)
    POST /webhooks/twilio/call-status   call progress callbacks (?task_id=)
    POST /twilio/voice/bridge/{task_id} TwiML that bridges the SDR to the prospect
    GET|POST /unsubscribe/{token}       RFC 8058 one-click unsubscribe, no login
    POST /tasks/{task_id}/call          click-to-call (X-API-Key)
    POST /leads                         speed to lead (X-API-Key, Idempotency-Key)
    GET  /signin, POST /signin, POST /signout   dashboard sign-in (auth.py)
    GET  /dashboard                 the dashboard (signed-in; dashboard.py)
    GET  /api/dashboard/activity    its data as JSON (signed-in or X-API-Key)
    GET  /live/stream               server-sent events (live.py: one hub per process)
    GET  /calls, /calls/{call_sid}  live calls and a call's screen (signed-in; call_screen.py)
    GET  /api/calls/{call_sid}/guidance  a call's transcript, cards, checklist (JSON)
    GET  /static/...                the dashboard's CSS, JS and vendored Chart.js
    GET  /healthz
    GET  /metrics                       Prometheus counters of this process
    GET  /docs, /redoc, /openapi.json   the API reference (assets served locally)

Webhooks are verified before anything is read into the store: a forged,
stale or unsigned request gets 403 and changes nothing. Bad input gets a 4xx,
never a 500; every error is an RFC 9457 problem document
(:mod:`touchflow.entrypoints.api.problems`), and the contract is checked in as
``docs/openapi.json`` (:mod:`touchflow.entrypoints.api.contract`). The work
runs in a worker thread inside one transaction per request; the domain logic
is in :mod:`touchflow.services.provider_events`,
:mod:`touchflow.services.inbound_messages`, :mod:`touchflow.services.opt_outs`
and :mod:`touchflow.services.calls`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from touchflow import __version__, bootstrap
from touchflow.bootstrap import RuntimeCache
from touchflow.entrypoints.api import (
    auth,
    call_screen,
    call_transcripts,
    calls,
    dashboard,
    dashboard_pages,
    sendgrid_hooks,
    twilio_hooks,
    unsubscribe,
)
from touchflow.entrypoints.api import leads as leads_route
from touchflow.entrypoints.api.auth import CsrfRefused, NotSignedIn, signin_redirect
from touchflow.entrypoints.api.context import Context, context
from touchflow.entrypoints.api.contract import HEALTH_RESPONSES, install_openapi
from touchflow.entrypoints.api.live import ActivityPoller, Live, LiveHub
from touchflow.entrypoints.api.pages import static_files
from touchflow.entrypoints.api.problems import HANDLERS, ApiMetrics, ProblemMiddleware, problem
from touchflow.errors import StoreUnavailable
from touchflow.ports import CrmConnector, Dialer, Notifier
from touchflow.services import reporting
from touchflow.services.leads import LeadServices
from touchflow.settings import Settings

_log = logging.getLogger("touchflow.api")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    runtimes: RuntimeCache | None = None,
    dialer: Dialer | None = None,
    clock: Callable[[], datetime] | None = None,
    leads: LeadServices | None = None,
    crm: CrmConnector | None = None,
    notifier: Notifier | None = None,
) -> FastAPI:
    """The API over ``settings``' database (or ``engine``), with an optional click-to-call dialer.

    ``clock`` returns the aware current time (tests pass a fixed one); it also
    decides whether a signed webhook is stale.
    """
    # FastAPI's own /docs loads Swagger UI from a CDN; these assets ship in a
    # package, so the reference works on a closed network too.
    app = FastAPIOffline(
        title="touchflow",
        summary=(
            "Provider webhooks, one-click unsubscribe, click-to-call and inbound leads "
            "for touchflow."
        ),
        version=__version__,
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.state.touchflow = Context(
        settings=settings,
        engine=engine if engine is not None else bootstrap.database(settings),
        runtimes=runtimes if runtimes is not None else bootstrap.runtimes(settings),
        dialer=dialer,
        clock=clock or _utcnow,
        leads=leads,
        crm=crm,
        notifier=notifier,
    )
    ctx: Context = app.state.touchflow
    hub = LiveHub(queue_size=settings.live.queue_size, replay=settings.live.replay)
    app.state.live = Live(
        hub=hub,
        poller=ActivityPoller(
            hub,
            lambda fn: ctx.transaction_sync(fn, rerun=False),
            settings.live.poll_interval_s,
            # one refresh per batch of new activity (per process), never per viewer
            on_changes=lambda: reporting.refresh(ctx.engine),
        ),
        heartbeat_s=settings.live.heartbeat_s,
    )
    for module in (
        sendgrid_hooks,
        twilio_hooks,
        call_transcripts,
        unsubscribe,
        calls,
        leads_route,
    ):
        app.include_router(module.router)
    app.include_router(auth.router)
    app.include_router(dashboard.router)
    app.include_router(dashboard.api_router)
    app.include_router(dashboard_pages.router)
    app.include_router(dashboard_pages.api_router)
    app.include_router(call_screen.router)
    app.include_router(call_screen.api_router)
    call_screen.install_guidance(app, ctx, app.state.live)
    app.mount("/static", static_files(), name="static")
    metrics = ApiMetrics()
    app.state.metrics = metrics
    # The per-segment transcription callback skips FastAPI's routing (inside the request
    # id and error handling of ProblemMiddleware, which wraps it).
    app.add_middleware(call_transcripts.TranscriptionFastPath)
    app.add_middleware(ProblemMiddleware, metrics=metrics)
    for exc_type, handler in HANDLERS.items():
        app.add_exception_handler(exc_type, handler)

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if exc.page:
            return signin_redirect(request)
        return problem(
            request,
            401,
            "sign in, or send X-API-Key",
            code="not_signed_in",
            headers={"WWW-Authenticate": 'Cookie realm="touchflow"'},
        )

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        _log.warning("CSRF token missing or wrong on %s %s", request.method, request.url.path)
        return HTMLResponse(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<title>Forbidden · touchflow</title>"
            '<link rel="stylesheet" href="/static/dashboard.css">'
            '</head><body class="signin"><div class="card signin-form"><h1>403 Forbidden</h1>'
            "<p>This form has expired or did not come from touchflow. Go back, reload the "
            'page and try again, or <a href="/signin">sign in</a>.</p></div></body></html>',
            status_code=403,
        )

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        _log.error("store unavailable for %s %s: %s", request.method, request.url.path, exc)
        return problem(request, 503, "store unavailable, retry later", code="store_unavailable")

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        _log.error("database error for %s %s: %s", request.method, request.url.path, exc.orig)
        return problem(request, 503, "store unavailable, retry later", code="store_unavailable")

    @app.get("/healthz", summary="Whether the database answers", responses=HEALTH_RESPONSES)
    async def healthz(request: Request) -> JSONResponse:
        ctx = context(request)

        def ping(conn: Connection) -> None:
            conn.execute(text("SELECT 1"))

        try:
            await ctx.transaction(ping, rerun=False)
        except StoreUnavailable as exc:
            return problem(request, 503, str(exc), code="store_unavailable")
        return JSONResponse({"status": "ok"})

    @app.get(
        "/metrics",
        summary="This process's counters, in the Prometheus text format",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    install_openapi(app)
    return app
