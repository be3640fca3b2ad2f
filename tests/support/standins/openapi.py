"""Validate request bodies against a provider's published OpenAPI 3 spec.

The specs are vendored, unchanged and with their MIT licenses, in
``tests/support/standins/specs/`` (SendGrid's ``tsg_mail_v3.json`` and Twilio's
``twilio_api_v2010.json``, as published); ``TOUCHFLOW_SPECS_DIR`` points at
another copy. Only local ``$ref``s (``#/components/...``) are used by them, so
references are resolved by walking the document.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

VENDORED = Path(__file__).resolve().parent / "specs"


def specs_dir() -> Path:
    """Where the provider specs are: ``$TOUCHFLOW_SPECS_DIR`` or the vendored copies."""
    env = os.environ.get("TOUCHFLOW_SPECS_DIR")
    return Path(env) if env else VENDORED


@lru_cache(maxsize=8)
def load_spec(relative: str) -> dict[str, Any]:
    """Load a spec such as ``"sendgrid/tsg_mail_v3.json"``."""
    return json.loads((specs_dir() / relative).read_text(encoding="utf-8"))


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    """Inline every local ``$ref`` (specs here have no recursive schemas on these paths)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = spec
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return _resolve(spec, target)
        return {k: _resolve(spec, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, v) for v in node]
    return node


class RequestSchema:
    """The request-body schema of one operation, ready to validate bodies."""

    def __init__(self, spec_file: str, operation_id: str) -> None:
        spec = load_spec(spec_file)
        for path_item in spec["paths"].values():
            for op in path_item.values():
                if isinstance(op, dict) and op.get("operationId") == operation_id:
                    body = _resolve(spec, op["requestBody"])
                    break
            else:
                continue
            break
        else:
            raise KeyError(f"{operation_id} not in {spec_file}")
        self.operation_id = operation_id
        self.content_type, media = next(iter(body["content"].items()))
        self.schema: dict[str, Any] = media["schema"]
        cls = jsonschema.validators.validator_for(self.schema, jsonschema.Draft202012Validator)
        self._validator = cls(self.schema, format_checker=None)

    def errors(self, body: dict[str, Any]) -> list[str]:
        """Every schema violation in ``body``, as ``path: message``; empty when valid."""
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<body>'}: {e.message}"
            for e in sorted(self._validator.iter_errors(body), key=lambda e: list(e.path))
        ]

    def form_errors(self, form: dict[str, list[str]]) -> list[str]:
        """Validate an ``application/x-www-form-urlencoded`` body (values as parsed lists).

        Form values are strings on the wire: each is coerced to the type the
        schema declares for its property before validating.
        """
        props = self.schema.get("properties", {})
        body: dict[str, Any] = {}
        for name, values in form.items():
            prop = props.get(name, {})
            kind = prop.get("type")
            if kind == "array":
                item_kind = prop.get("items", {}).get("type")
                body[name] = [_coerce(v, item_kind) for v in values]
            else:
                body[name] = _coerce(values[-1], kind)
        return self.errors(body)


def _coerce(value: str, kind: Any) -> Any:
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value.lower(), value)
    return value
