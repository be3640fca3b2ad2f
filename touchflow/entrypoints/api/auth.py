"""Sign-in for the dashboard and the live screens: sessions, a reverse-proxy header, CSRF, Viewer.

::

    GET  /signin              the sign-in form (sets a pre-session cookie carrying a nonce)
    POST /signin              email + password (+ csrf_token): a signed session cookie
    POST /signout             (+ csrf_token) ends the session

Who is asking, in order (:func:`resolve_viewer`):

1. ``X-API-Key`` equal to ``TOUCHFLOW_API_KEY``: an admin viewer (JSON routes
   and streams; a wrong key is refused, never passed on to the cookie).
2. Reverse-proxy mode (``TOUCHFLOW_AUTH__PROXY_HEADER``): the header's email,
   believed only when the TCP peer is in ``TOUCHFLOW_AUTH__TRUSTED_PROXIES``.
3. The session cookie ``tf_session``: signed and timestamped with
   ``TOUCHFLOW_AUTH__SESSION_SECRET`` (itsdangerous), HttpOnly, SameSite=Lax,
   Secure over https, valid ``TOUCHFLOW_AUTH__SESSION_MAX_AGE_S``.

Every viewer is looked up in the ``users`` table on each request, so a
removed user or a changed role takes effect at once. Pages use
:func:`page_viewer` (no viewer: 303 to ``/signin``), JSON routes and streams
:func:`api_viewer` (no viewer: 401 problem).

CSRF: the session cookie (also given before sign-in) holds a random nonce;
the token a form carries is HMAC(secret, nonce). :func:`check_csrf` compares
the form's ``csrf_token`` (or the ``X-CSRF-Token`` header) with it in
constant time; every state-changing browser route depends on it. The nonce
is renewed at sign-in and sign-out. Webhooks and ``X-API-Key`` routes do not
use cookies and keep their own authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from touchflow import bootstrap
from touchflow.domain.access import Viewer
from touchflow.domain.prospects import normalize_email
from touchflow.domain.throttle import FailureThrottle
from touchflow.entrypoints.api.context import Context, context
from touchflow.entrypoints.api.pages import templates
from touchflow.errors import TouchflowError
from touchflow.services.users import authenticate, viewer_for
from touchflow.settings import Settings

__all__ = [
    "SESSION_COOKIE",
    "CsrfRefused",
    "NotSignedIn",
    "api_viewer",
    "check_csrf",
    "check_csrf_unless_api_key",
    "csrf_token",
    "page_viewer",
    "render_page",
    "resolve_viewer",
    "router",
]

_log = logging.getLogger("touchflow.api.auth")
router = APIRouter(include_in_schema=False)
SESSION_COOKIE = "tf_session"
API_KEY_VIEWER = "api-key"


class NotSignedIn(Exception):
    """No viewer: pages redirect to the sign-in form, JSON answers 401."""

    def __init__(self, page: bool) -> None:
        self.page = page


class CsrfRefused(Exception):
    """A state-changing browser request without the right CSRF token (403)."""


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        settings.auth.session_secret.get_secret_value(), salt="touchflow.session"
    )


def session_of(request: Request) -> dict[str, Any]:
    """The request's session (``n``: nonce, ``e``: signed-in email); {} when none or invalid."""
    cached = getattr(request.state, "tf_session", None)
    if cached is not None:
        return dict(cached)
    raw = request.cookies.get(SESSION_COOKIE)
    data: dict[str, Any] = {}
    if raw:
        settings = context(request).settings
        try:
            loaded = _serializer(settings).loads(raw, max_age=settings.auth.session_max_age_s)
            if isinstance(loaded, dict) and isinstance(loaded.get("n"), str):
                data = loaded
        except BadSignature:  # forged, or expired (SignatureExpired is a BadSignature)
            data = {}
    request.state.tf_session = data
    return dict(data)


def set_session(request: Request, response: Response, data: dict[str, Any]) -> None:
    settings = context(request).settings
    secure = settings.auth.cookie_secure
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(settings).dumps(data),
        max_age=settings.auth.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    request.state.tf_session = data


def csrf_token(request: Request, nonce: str | None = None) -> str:
    """The token forms of this session carry (empty when there is no session yet)."""
    nonce = nonce or session_of(request).get("n")
    if not nonce:
        return ""
    secret = context(request).settings.auth.session_secret.get_secret_value().encode()
    return hmac.new(secret, f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request whose CSRF token is not this session's."""
    given = request.headers.get("x-csrf-token")
    if given is None:
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    expected = csrf_token(request)
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRefused()


def _team(settings: Settings) -> Any:
    try:
        return bootstrap.team(settings)
    except TouchflowError as exc:  # a broken team.yaml must not lock everyone out
        _log.warning("config/team.yaml is not valid, managers see only their users: %s", exc)
        return None


def _proxy_email(ctx: Context, request: Request) -> str | None:
    header = ctx.settings.auth.proxy_header
    if not header:
        return None
    value = request.headers.get(header)
    if not value:
        return None
    peer = request.client.host if request.client else None
    if peer not in ctx.settings.auth.trusted_proxies:
        _log.warning("ignoring %s from %s: not a trusted proxy", header, peer)
        return None
    return value.strip()


async def resolve_viewer(request: Request) -> Viewer | None:
    """Who is asking (API key, trusted proxy header, session), or None."""
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    ctx = context(request)
    viewer: Viewer | None = None
    if "x-api-key" in request.headers:
        expected = ctx.settings.api_key
        given = request.headers["x-api-key"].encode("latin-1", "replace")
        if (
            expected is not None
            and expected.get_secret_value()
            and hmac.compare_digest(given, expected.get_secret_value().encode())
        ):
            viewer = Viewer(API_KEY_VIEWER, "admin", None, via="api_key")
        request.state.viewer = viewer
        return viewer
    via, email = "proxy", _proxy_email(ctx, request)
    if email is None:
        via, email = "session", session_of(request).get("e")
    if email:
        team = _team(ctx.settings)

        def lookup(conn: Connection) -> Viewer | None:
            return viewer_for(conn, str(email), team, via=via)

        viewer = await ctx.transaction(lookup, rerun=False)
    request.state.viewer = viewer
    return viewer


async def page_viewer(request: Request) -> Viewer:
    viewer = await resolve_viewer(request)
    if viewer is None:
        raise NotSignedIn(page=True)
    return viewer


async def api_viewer(request: Request) -> Viewer:
    viewer = await resolve_viewer(request)
    if viewer is None:
        raise NotSignedIn(page=False)
    return viewer


PageViewer = Annotated[Viewer, Depends(page_viewer)]
ApiViewer = Annotated[Viewer, Depends(api_viewer)]


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or scheme): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard"
    return target


def signin_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)


def render_page(
    request: Request, name: str, values: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """A template answered with this session's CSRF token in ``csrf_token``.

    A browser without a session yet (the sign-in form, a reverse-proxy
    viewer's first page) gets one here: a nonce in the signed cookie.
    """
    data = session_of(request)
    fresh = not data.get("n")
    if fresh:
        data = {"n": secrets.token_urlsafe(18)}
    values = {**values, "csrf_token": csrf_token(request, str(data["n"]))}
    page = templates.TemplateResponse(request, name, values, status_code=status)
    if fresh:
        set_session(request, page, data)
    return page


def _signin_page(request: Request, next_url: str, error: str | None, status: int) -> HTMLResponse:
    values = {
        "next": next_url,
        "error": error,
        "proxy_mode": bool(context(request).settings.auth.proxy_header),
    }
    return render_page(request, "signin.html", values, status)


async def check_csrf_unless_api_key(request: Request) -> None:
    """:func:`check_csrf` for routes a script may also call with ``X-API-Key`` (no cookie)."""
    viewer = await resolve_viewer(request)
    if viewer is not None and viewer.via == "api_key":
        return
    await check_csrf(request)


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request, next: str | None = None) -> Response:
    if await resolve_viewer(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _signin_page(request, _safe_next(next), None, 200)


@dataclass(frozen=True)
class _SigninThrottle:
    """Failed sign-ins of this process, per email and per client address."""

    by_email: FailureThrottle
    by_address: FailureThrottle

    @classmethod
    def from_settings(cls, settings: Settings) -> _SigninThrottle:
        auth = settings.auth
        window = auth.signin_failure_window_s
        return cls(
            FailureThrottle(auth.signin_failures_per_email, window),
            FailureThrottle(auth.signin_failures_per_address, window),
        )


def _client_address(ctx: Context, request: Request) -> str:
    """Who is signing in: the TCP peer, or the client a trusted proxy says it forwards."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in ctx.settings.auth.trusted_proxies:
        # The rightmost entry is the one the trusted proxy itself added.
        return forwarded.rsplit(",", 1)[-1].strip() or peer
    return peer


@router.post("/signin", response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
async def signin(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/dashboard",
) -> Response:
    ctx = context(request)
    throttle = ctx.adapter("signin_throttle", _SigninThrottle.from_settings)
    assert isinstance(throttle, _SigninThrottle)  # building it cannot fail
    who, address, at = normalize_email(email), _client_address(ctx, request), time.monotonic()
    wait = max(
        throttle.by_email.retry_after(who, at) or 0.0,
        throttle.by_address.retry_after(address, at) or 0.0,
    )
    if wait > 0:
        # Refused before the password is checked: a right guess now teaches nothing.
        _log.warning("sign-in refused for %r from %s: too many failures", who, address)
        minutes = math.ceil(wait / 60)
        page = _signin_page(
            request, _safe_next(next),
            f"Too many failed sign-ins. Try again in {minutes} minute{'s' * (minutes != 1)}.",
            429,
        )  # fmt: skip
        page.headers["Retry-After"] = str(math.ceil(wait))
        return page
    signed_in = await run_in_threadpool(authenticate, ctx.engine, email, password, ctx.now())
    if signed_in is None:
        throttle.by_email.failed(who, at)
        throttle.by_address.failed(address, at)
        return _signin_page(request, _safe_next(next), "Wrong email or password.", 401)
    throttle.by_email.forget(who)  # not the address: one's own account must not reset it
    response = RedirectResponse(_safe_next(next), status_code=303)
    # A new nonce at sign-in: a nonce planted before it (session fixation) is worthless.
    set_session(request, response, {"n": secrets.token_urlsafe(18), "e": signed_in})
    return response


@router.post("/signout", dependencies=[Depends(check_csrf)])
async def signout(request: Request) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    set_session(request, response, {"n": secrets.token_urlsafe(18)})
    return response
