"""docs/openapi.json is the contract the code serves: a change to either is a visible diff."""

from __future__ import annotations

import json

from tests.conftest import ROOT
from touchflow.entrypoints.api.write_openapi import document

CHECKED_IN = ROOT / "docs" / "openapi.json"
PROBLEM = "application/problem+json"


def test_the_checked_in_contract_is_what_the_code_serves():
    assert CHECKED_IN.read_text(encoding="utf-8") == document(), (
        "the API contract changed: run `.venv/bin/python -m "
        "touchflow.entrypoints.api.write_openapi` and commit docs/openapi.json"
    )


def test_every_operation_documents_its_body_and_its_errors_as_problems():
    spec = json.loads(document())
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary"), where
            if method == "post":
                assert op.get("requestBody", {}).get("content"), f"{where}: no request body"
            assert "500" in op["responses"], where
            for status, answer in op["responses"].items():
                if int(status) >= 400 and not path.startswith("/unsubscribe"):
                    assert list(answer["content"]) == [PROBLEM], f"{where} {status}"
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_routes_that_take_any_value_list_no_422():
    """The unsubscribe link takes any token (an unknown one gets the 404 page): no 422 exists.

    FastAPI lists one for every route with parameters; the contract must not promise it.
    """
    paths = json.loads(document())["paths"]
    for method, operation in paths["/unsubscribe/{token}"].items():
        assert "422" not in operation["responses"], method
        assert not [k for k in operation if k.startswith("x-")], method
    # Bounded parameters do answer 422, and keep it.
    assert "422" in paths["/twilio/voice/bridge/{task_id}"]["post"]["responses"]


def test_write_openapi_never_takes_an_option_for_a_file(tmp_path, monkeypatch, capsys):
    from touchflow.entrypoints.api.write_openapi import main

    monkeypatch.chdir(tmp_path)
    assert main(["--help"]) == 0
    assert main(["--out"]) == 2
    assert list(tmp_path.iterdir()) == []
    assert "docs/openapi.json" in capsys.readouterr().out
