"""Schema-driven fuzzing of the whole API, in-process: schemathesis over /openapi.json.

Every operation gets generated requests, valid and invalid by the schema.
The webhooks are signed the way SendGrid and Twilio sign them (by
:class:`Signer`, an ASGI layer in front of the app that signs exactly the
bytes the app receives), so the fuzzer reaches the parsers, not only the
signature checks; ``X-API-Key`` and Inbound Parse's ``?token=`` are filled in
too. The checks:

* no answer is a 5xx (``not_a_server_error``),
* every answer is one the schema declares: status, content type and body
  (``status_code_conformance``, ``content_type_conformance``,
  ``response_schema_conformance``), and an answer to invalid data is a 4xx,
* a refused request (4xx) stores nothing (:func:`nothing_stored_when_refused`).

Bounded for ``make test``: ``FUZZ_EXAMPLES`` cases per operation and mode
(120: at most 2,640 in all, about 45 s on a shared 2-core machine with
SQLite). A release-time run sets ``TOUCHFLOW_FUZZ_EXAMPLES=2000``
(docs/operations.md).
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from sqlalchemy import Engine, func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from twilio.request_validator import RequestValidator

from tests.api.conftest import (
    API_KEY,
    PARSE_TOKEN,
    PUBLIC_URL,
    TWILIO_TOKEN,
    World,
    build_world,
    sign,
)
from tests.conftest import ROOT
from touchflow.bootstrap import lead_services
from touchflow.store.schema import (
    enrollments,
    events,
    lead_requests,
    prospects,
    suppressions,
    tasks,
    touches,
)

FUZZ_EXAMPLES = int(os.environ.get("TOUCHFLOW_FUZZ_EXAMPLES", "120"))
_TABLES = (events, prospects, suppressions, lead_requests, tasks, touches, enrollments)


class Signer:
    """Signs each webhook request as its provider would, then hands it to the app.

    SendGrid: ECDSA over timestamp + raw body. Twilio: HMAC over the public
    URL and the sorted form fields. The app checks these signatures for real.
    """

    def __init__(self, app: ASGIApp, world: World) -> None:
        self.app = app
        self.world = world
        self.twilio = RequestValidator(TWILIO_TOKEN)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        path: str = scope["path"]
        names = {k for k, _ in scope["headers"]}
        headers = [(k, v) for k, v in scope["headers"] if k not in _REPLACED]
        query = scope.get("query_string", b"").decode("latin-1")
        # A request the fuzzer sent without the header stays without it: the app must refuse it.
        if path == "/webhooks/sendgrid/events" and _SG_SIGNATURE in names:
            ts = str(int(self.world.clock[0].timestamp()))
            headers += [
                (b"x-twilio-email-event-webhook-timestamp", ts.encode()),
                (_SG_SIGNATURE, sign(body, ts).encode()),
            ]
        elif path.startswith(("/webhooks/twilio/", "/twilio/")) and _TW_SIGNATURE in names:
            url = PUBLIC_URL + path + (f"?{query}" if query else "")
            params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            signature = self.twilio.compute_signature(url, dict(params))
            headers.append((_TW_SIGNATURE, signature.encode()))
        elif path == "/webhooks/sendgrid/inbound" and "token=" in query:
            pairs = [p for p in parse_qsl(query, keep_blank_values=True) if p[0] != "token"]
            query = urlencode([*pairs, ("token", PARSE_TOKEN)])
        if b"x-api-key" in names:
            headers.append((b"x-api-key", API_KEY.encode()))
        scope = {**scope, "headers": headers, "query_string": query.encode("latin-1")}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_SG_SIGNATURE = b"x-twilio-email-event-webhook-signature"
_TW_SIGNATURE = b"x-twilio-signature"
_REPLACED = {
    _TW_SIGNATURE,
    _SG_SIGNATURE,
    b"x-twilio-email-event-webhook-timestamp",
    b"x-api-key",
}


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        row = conn.execute(
            select(*(select(func.count()).select_from(t).scalar_subquery() for t in _TABLES))
        ).one()
    return tuple(row)


def _app(world: World) -> ASGIApp:
    """The world's app with lead intake configured, behind the signer."""
    app = world.client.app
    cfg = app.state.touchflow.settings
    app.state.touchflow.leads = lead_services(
        cfg.model_copy(
            update={
                "cadences_dir": ROOT / "cadences",
                "templates_dir": ROOT / "templates",
                "config_dir": ROOT / "config",
            }
        )
    )
    return Signer(app, world)


# The operations as checked in (collected without building an app); each test
# fuzzes one of them against the app the code builds.
_OPERATIONS = [
    r.ok().label
    for r in schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json").get_all_operations()
]
# Invalid data must be refused with a 4xx the API gives: 413 too (a body over its limit).
_CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "409", "413", "422"]
            }
        }
    }
)
_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("label", _OPERATIONS)
def test_no_input_breaks_the_contract(
    db: Engine, tmp_path: Any, label: str, mode: GenerationMode
) -> None:
    world = build_world(db, tmp_path)
    app = _app(world)
    method, path = label.split(" ", 1)
    operation = schemathesis.openapi.from_asgi("/openapi.json", app, config=_CONFIG)[path][method]

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        before = _counts(db)
        started = time.monotonic()
        response = case.call_and_validate(checks=checks)
        assert time.monotonic() - started < 10, "a request took over 10 s"
        if 400 <= response.status_code < 500:
            assert _counts(db) == before, f"{label} answered {response.status_code}, stored rows"

    # A form carries text only: "a number where text belongs" cannot be told apart on the
    # wire, so a form's invalid cases are checked for no 5xx and conformance, not refusal.
    form = any(
        media in ("application/x-www-form-urlencoded", "multipart/form-data")
        for media in operation.definition.raw.get("requestBody", {}).get("content", {})
    )
    # An event batch is taken event by event: an invalid event is skipped and reported in
    # the 200 answer (a valid one beside it must not be lost), not refused with the batch.
    lenient = form or path == "/webhooks/sendgrid/events"
    checks = [c for c in _CHECKS if not (lenient and c is negative_data_rejection)]
    try:
        fuzz()
    except hypothesis.errors.Unsatisfiable:
        # Nothing in the operation can be invalid (no parameters, no body): no negative cases.
        assert mode is GenerationMode.NEGATIVE, label
        pytest.skip(f"{label} takes no input to make invalid")
