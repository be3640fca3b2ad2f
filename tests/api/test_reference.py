"""The API reference: /docs and /redoc work offline, /openapi.json describes the bodies."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import make_settings
from touchflow.entrypoints.api import create_app


def _client(db: Engine) -> TestClient:
    return TestClient(create_app(make_settings(), engine=db))


def test_docs_and_redoc_load_their_assets_from_the_api_itself(db: Engine):
    client = _client(db)
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert assets, html.text
        for url in assets:
            assert url.startswith("/"), f"{page} loads {url} from outside (no CDN offline)"
            if url.endswith((".js", ".css")):
                assert client.get(url).status_code == 200, url


def test_openapi_describes_the_lead_body_with_an_example(db: Engine):
    spec: dict[str, Any] = _client(db).get("/openapi.json").json()
    post = spec["paths"]["/leads"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["email"]
    assert {"email", "company", "phone", "country", "timezone"} <= set(body["properties"])
    # Extra fields are custom fields: text, a number, yes/no.
    extra = {s["type"] for s in body["additionalProperties"]["anyOf"]}
    assert extra == {"string", "number", "boolean", "null"}
    example = body["examples"][0]
    assert example["email"] and example["company"]
    assert {"200", "201", "401", "422", "503"} <= set(post["responses"])
    assert {p["name"] for p in post["parameters"]} == {"X-API-Key", "Idempotency-Key"}
