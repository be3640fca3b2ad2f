"""One-click unsubscribe (RFC 8058): a link and a List-Unsubscribe-Post target, no login.

``GET /unsubscribe/{token}`` shows a page with one button; it changes nothing,
because mail scanners follow links. ``POST /unsubscribe/{token}`` (the button,
or a mail client's ``List-Unsubscribe=One-Click`` POST) opts the person out of
every cadence, for good. A forged or unknown token gets a 404 page and changes
nothing; a second POST finds the person opted out already and answers the same.
These answers are HTML pages for people, not problem documents: the only
error a person can meet here is a link that is not valid (404).
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from touchflow.domain.unsubscribe import MAX_TOKEN_LENGTH, verify
from touchflow.entrypoints.api.context import context
from touchflow.entrypoints.api.contract import NO_VALIDATION_ERROR
from touchflow.services.opt_outs import unsubscribe_touch

router = APIRouter()

_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font:inherit;padding:.5rem 1.25rem;cursor:pointer}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), body=body), status_code=status, headers=_HEADERS
    )


def _not_found() -> HTMLResponse:
    return _page(
        "Link not valid",
        "<p>This unsubscribe link is not valid. Copy the whole link from the email, "
        "or reply to the email asking us to stop.</p>",
        404,
    )


_HTML = {"text/html": {"schema": {"type": "string"}}}
_PAGES: dict[str, Any] = {
    "response_class": HTMLResponse,
    "responses": {
        200: {"description": "An HTML page.", "content": _HTML},
        404: {"description": "An HTML page: the link is not valid.", "content": _HTML},
    },
}
# Any token is taken (an unknown one gets the 404 page): there is no 422.
_ANY_TOKEN = {NO_VALIDATION_ERROR: True}
# Documented, not enforced by FastAPI: a longer token gets the 404 page (verify
# refuses it), not a 422, because a person followed that link.
Token = Annotated[
    str,
    Path(
        description="<touch key>.<signature>, from the email's link.",
        json_schema_extra={"maxLength": MAX_TOKEN_LENGTH},
    ),
]


@router.get(
    "/unsubscribe/{token}",
    summary="The unsubscribe page: one button, changes nothing",
    openapi_extra=_ANY_TOKEN,
    **_PAGES,
)
async def confirm_page(token: Token, request: Request) -> HTMLResponse:
    """The confirmation page: one button that POSTs back here."""
    ctx = context(request)
    if verify(token, ctx.settings.unsubscribe_secret.get_secret_value()) is None:
        return _not_found()
    action = html.escape(f"/unsubscribe/{token}", quote=True)
    return _page(
        "Unsubscribe",
        f'<p>Stop all emails and messages from us?</p><form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post(
    "/unsubscribe/{token}",
    summary="One-click unsubscribe (RFC 8058): opt the person out of everything",
    openapi_extra={
        **_ANY_TOKEN,
        "requestBody": {
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}
                        },
                    }
                }
            },
        },
    },
    **_PAGES,
)
async def unsubscribe(token: Token, request: Request) -> HTMLResponse:
    """Opt out (the body, ``List-Unsubscribe=One-Click`` or the button's, is not needed)."""
    ctx = context(request)
    touch_key = verify(token, ctx.settings.unsubscribe_secret.get_secret_value())
    if touch_key is None:
        return _not_found()
    now = ctx.now()

    def work(conn: Connection) -> bool:
        return unsubscribe_touch(conn, ctx.runtimes, touch_key, now)

    if not await ctx.transaction(work):
        return _not_found()
    return _page(
        "You are unsubscribed",
        "<p>You will not receive any more emails or messages from us.</p>",
    )
