"""Protocols the core calls; connectors in ``connectors/`` implement them.

Each sender takes a batch so a connector can reuse one connection (SMTP
session, HTTP keep-alive) for many messages. A sender never raises for one
bad message in a batch: it returns a :class:`SendResult` per message, carrying
the touchflow error for that message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from touchflow.errors import ConnectorError


@dataclass(frozen=True)
class OutboundEmail:
    """A rendered email ready to hand to a provider.

    ``touch_key`` is the ledger key; connectors put it in the provider's
    metadata (a header for SMTP, custom_args for SendGrid) so events can be
    matched back to the touch.
    """

    touch_key: str
    message_id: str  # RFC 5322 msg-id including the angle brackets
    from_addr: str
    to_addr: str
    subject: str
    text: str
    from_name: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    list_unsubscribe_url: str | None = None
    list_unsubscribe_mailto: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboundSms:
    """A rendered SMS ready to hand to a provider."""

    touch_key: str
    from_number: str
    to_number: str
    body: str


@dataclass(frozen=True)
class SendResult:
    """Outcome of one message: a provider id on success, the error otherwise."""

    touch_key: str
    provider_id: str | None = None
    error: ConnectorError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class EmailSender(Protocol):
    """Sends email; one call per batch so the connection can be reused."""

    def send_batch(self, messages: Sequence[OutboundEmail]) -> list[SendResult]:
        """Send every message; return one result per message, in order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class SmsSender(Protocol):
    """Sends SMS; one call per batch."""

    def send_batch(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        """Send every message; return one result per message, in order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class Dialer(Protocol):
    """Places click-to-call calls: rings the agent first, then bridges to the prospect.

    When the agent answers, the provider fetches ``twiml_url`` for what to do
    next (dial the prospect); call progress goes to ``status_callback_url``.
    """

    def place_call(
        self,
        *,
        agent_number: str,
        from_number: str,
        twiml_url: str,
        status_callback_url: str | None = None,
    ) -> str:
        """Start the call; return the provider's call id (a Twilio Call SID)."""
        ...


class Notifier(Protocol):
    """Tells a person about something now (a new lead for an AE): Slack, email, ..."""

    def notify(self, to_email: str, text: str) -> None:
        """Deliver ``text`` to the person with this email; raise a ConnectorError on failure."""
        ...
