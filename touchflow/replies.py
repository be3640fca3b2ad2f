"""Inbound messages (replies to touches) and what they mean for a cadence.

An :class:`InboundMessage` comes from a rep's mailbox (IMAP) or SendGrid's
Inbound Parse webhook; :func:`classify` decides whether it is a real reply, an
out-of-office with an optional return date, an unsubscribe request or an
automatic message to ignore. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

ReplyKind = Literal["reply", "out_of_office", "unsubscribe", "auto_reply", "bounce"]


@dataclass(frozen=True)
class InboundMessage:
    """One received email, reduced to what matching and classification need."""

    message_id: str | None  # with angle brackets, as in the header
    from_addr: str  # bare address, lower-case
    subject: str
    text: str  # plain-text body (HTML converted to text when that is all there is)
    received_at: datetime  # aware
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    to_addrs: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Auto-Submitted


@dataclass(frozen=True)
class Classification:
    """What an inbound message means; ``evidence`` is the phrase that decided it."""

    kind: ReplyKind
    return_date: date | None = None  # out_of_office only, when found in the text
    evidence: str = ""


def classify(message: InboundMessage) -> Classification:
    """Classify ``message``; see the module docstring."""
    raise NotImplementedError
