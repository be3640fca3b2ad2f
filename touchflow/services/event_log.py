"""The ``events`` table every inbound path writes: column sizes, safe values, dedupe keys.

Provider events (:mod:`touchflow.services.provider_events`), inbound messages
(:mod:`touchflow.services.inbound_messages`) and one-click unsubscribes
(:mod:`touchflow.services.opt_outs`) each store a row once, keyed on its
``provider_event_id`` (:func:`event_key`).
"""

from __future__ import annotations

import hashlib

__all__ = ["ID_MAX", "SOURCE_MAX", "TYPE_MAX", "column_safe", "column_text", "event_key"]

# Column sizes of ``events`` (schema.py): longer ids are hashed, longer keys dropped.
ID_MAX = 200
TYPE_MAX = 32
SOURCE_MAX = 50


def event_key(provider_event_id: str) -> str:
    """The ``events.provider_event_id`` for an id: as is, or hashed when unfit for the column."""
    if column_safe(provider_event_id, ID_MAX) is not None:
        return provider_event_id
    digest = hashlib.sha256(provider_event_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def column_safe(value: object, max_len: int) -> str | None:
    """``value`` if it is a string a database column takes unchanged, else None.

    PostgreSQL refuses NUL in text; no driver encodes lone surrogates (which
    JSON's ``\\ud800`` escapes produce).
    """
    if not isinstance(value, str) or not value or len(value) > max_len:
        return None
    if "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def column_text(value: str, max_len: int) -> str:
    """``value`` made storable in a text column: without NUL, lone surrogates as ``?``, clipped.

    For the values a row cannot go without (an event's type and source):
    :func:`column_safe` drops what it cannot store, this keeps what it can.
    """
    text = value.replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:max_len]
