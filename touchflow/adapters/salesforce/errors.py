"""Salesforce's error bodies read into a message and a code, and the connector's name.

:func:`salesforce_error` is the ``error_parser`` of the connector's HTTP
clients (:class:`~touchflow.adapters._http.client.CrmHttp`) and of the token
request (:mod:`touchflow.adapters.salesforce.auth`).
"""

from __future__ import annotations

import json

import httpx

__all__ = ["CONNECTOR", "MAX_MESSAGE", "salesforce_error"]

CONNECTOR = "salesforce"

#: The longest error text carried in an error's message (Salesforce's error
#: list, a token refusal, per-record save failures).
MAX_MESSAGE = 1000


def salesforce_error(response: httpx.Response) -> tuple[str, str | None]:
    """Salesforce's ``[{"message", "errorCode", "fields"}]`` (or OAuth's ``{"error", ...}``)."""
    try:
        body = response.json()
    except Exception:
        return (response.text or response.reason_phrase)[:MAX_MESSAGE], None
    if isinstance(body, dict) and "error" in body:  # the OAuth token endpoint
        message = f"{body.get('error')}: {body.get('error_description', '')}".strip()
        return message[:MAX_MESSAGE], str(body["error"])
    errors = body if isinstance(body, list) else [body]
    code = next((e.get("errorCode") for e in errors if isinstance(e, dict)), None)
    text = json.dumps(errors, separators=(",", ":"), ensure_ascii=False)
    return text[:MAX_MESSAGE], str(code) if code else None
