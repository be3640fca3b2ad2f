"""Every protocol a service calls; adapters in ``touchflow/adapters/`` implement them.

Ports: :class:`EmailSender`, :class:`SmsSender`, :class:`Dialer`,
:class:`MailboxReader`, :class:`CrmConnector`, :class:`Enricher`,
:class:`Notifier`, :class:`Clock`, :class:`TranscriptStream` (where both call
transcript sources hand what they heard), :class:`SpeechRecognizer` and
:class:`MediaStreamReader`; the webhooks the API receives are read through
:class:`EmailEventWebhook`, :class:`InboundEmailWebhook` and
:class:`MessagingWebhook`, so no route knows a vendor's field names. Fakes of each are public
(``touchflow.adapters.fakes``, ``touchflow.adapters.fake_crm``).

Each sender takes a batch so a connector can reuse one connection (SMTP
session, HTTP keep-alive) for many messages. A sender never raises for one
bad message in a batch: it returns a :class:`SendResult` per message, carrying
the touchflow error for that message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from touchflow.domain.crm import (
    ChangePage,
    CrmActivity,
    CrmCompany,
    CrmDeal,
    CrmFieldCheck,
    CrmOwner,
    CrmPerson,
    DealPage,
)
from touchflow.domain.enrich import Firmographics
from touchflow.domain.events import ProviderEvent
from touchflow.domain.replies import InboundMessage
from touchflow.domain.transcripts import TranscriptSegment
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


@dataclass(frozen=True)
class TranscriptStarted:
    """A call's transcript began (Twilio's ``transcription-started``, a Media Stream's ``start``).

    ``source`` is ``twilio`` (Real-Time Transcription) or ``media_stream`` (our
    own recogniser); ``task_id`` is the call task when the source knows it.
    """

    call_sid: str
    at: datetime
    source: str
    language: str | None = None
    task_id: int | None = None
    consent: str | None = None


@dataclass(frozen=True)
class TranscriptStopped:
    """A call's transcript ended (stopped, the call hung up, or the source failed: ``error``)."""

    call_sid: str
    at: datetime
    error: str | None = None


@dataclass(frozen=True)
class TranscriptionStart:
    """How the bridge starts a call's transcript: Twilio's engine or our Media Stream.

    ``announcement``: said to both parties before the prospect is dialed
    (two-party consent), in ``language``.
    """

    source: str  # twilio | media_stream
    url: str  # the status callback URL, or the wss:// Media Stream URL
    language: str
    announcement: str | None = None
    partial_results: bool = True
    parameters: tuple[tuple[str, str], ...] = ()


#: What a transcript source hands on: start, segments (partial or final), stop.
TranscriptEvent = TranscriptStarted | TranscriptSegment | TranscriptStopped


class TranscriptStream(Protocol):
    """Where every transcript source hands what it heard: one port for both sources.

    Twilio's transcription callbacks and the Media Stream recogniser both turn
    their vendor's input into :data:`TranscriptEvent` values and publish them
    here. Publishing is idempotent (a redelivered or older segment is not new)
    and returns the events that were new, in the order they were applied.
    """

    def publish(self, events: Sequence[TranscriptEvent]) -> list[TranscriptEvent]:
        """Record ``events``; return those that changed what is known."""
        ...


@dataclass(frozen=True)
class Utterance:
    """What a recogniser heard between two silences: text and where it was (ms in the track)."""

    text: str
    start_ms: int
    end_ms: int
    confidence: float | None = None


class SpeechRecognizer(Protocol):
    """One audio track in, final utterances out (an utterance ends at a silence).

    Fed 16-bit little-endian mono PCM at ``sample_rate`` in any chunk size; an
    engine that hears better can replace the offline one behind this.
    """

    sample_rate: int

    def feed(self, pcm: bytes) -> list[Utterance]:
        """Take more audio; the utterances it completed."""
        ...

    def finish(self) -> list[Utterance]:
        """The stream ended (hang-up mid-sentence too): what is still pending."""
        ...


class MediaStreamReader(Protocol):
    """One audio stream's messages (decoded JSON) in, transcript events out."""

    call_sid: str | None
    audio_seconds: float

    def message(self, msg: Mapping[str, Any]) -> list[TranscriptEvent]:
        """Apply one message; the events it completed (ValueError: not a stream message)."""
        ...

    def finish(self, *, stopped: bool = False) -> list[TranscriptEvent]:
        """The connection ended; flush what is pending (``stopped``: the call's stream ended)."""
        ...


class Notifier(Protocol):
    """Tells a person about something now (a new lead for an AE): Slack, email, ..."""

    def notify(self, to_email: str, text: str) -> None:
        """Deliver ``text`` to the person with this email; raise a ConnectorError on failure."""
        ...


@runtime_checkable
class Enricher(Protocol):
    """Looks up firmographics for company domains; one call answers a batch.

    ``lookup`` returns only the domains it found, keyed by the domain exactly as
    given (matching ignores case and a ``www.`` prefix). Retryable and fatal
    failures are :mod:`touchflow.errors` errors.
    """

    name: str

    def lookup(self, domains: Sequence[str]) -> dict[str, Firmographics]: ...

    def close(self) -> None: ...


class CrmConnector(Protocol):
    """The operations touchflow performs against a CRM."""

    name: str  # "hubspot" | "salesforce" | "pipedrive" | "fake"

    def upsert_people(self, people: Sequence[CrmPerson]) -> list[str]:
        """Create or update people by email (batched); their CRM ids, in order."""
        ...

    def upsert_company(self, company: CrmCompany) -> str:
        """Create or update a company by domain; its CRM id."""
        ...

    def associate(self, person_id: str, company_id: str) -> None:
        """Link a person to their company (idempotent)."""
        ...

    def create_deal(self, deal: CrmDeal) -> str:
        """Create a deal associated with the person (and company); its CRM id."""
        ...

    def assign_owner(self, person_id: str, owner_id: str) -> None:
        """Make ``owner_id`` the owner of the person."""
        ...

    def log_activity(self, activity: CrmActivity) -> str:
        """Log a touch or call outcome on the person (idempotent on external_key)."""
        ...

    def list_owners(self) -> list[CrmOwner]:
        """Every owner/user, across all pages."""
        ...

    def changes_since(self, since: datetime, cursor: str | None = None) -> ChangePage:
        """Meetings booked, deals created and owner changes after ``since``, a page at a time."""
        ...

    def deals_since(self, since: datetime, cursor: str | None = None) -> DealPage:
        """Deals modified after ``since`` with their stage history and contact roles, a
        page at a time (``cursor`` from the previous page); stages are the CRM's ids."""
        ...

    def check_fields(self) -> list[CrmFieldCheck]:
        """Every custom field or property this connector (as configured) needs, checked.

        Read-only: asks the CRM whether each exists (and is usable, e.g. unique where an
        upsert keys on it) and reports it; ``touchflow crm check`` prints them.
        """
        ...

    def close(self) -> None:
        """Release HTTP connections."""
        ...


@runtime_checkable
class DealSource(Protocol):
    """The part of :class:`CrmConnector` the deal sync needs (``touchflow deals sync``):
    every CRM connector is one; a test or another source of deals can be too."""

    name: str

    def deals_since(self, since: datetime, cursor: str | None = None) -> DealPage:
        """Deals modified after ``since`` with their stage history and contacts, a page at
        a time (``cursor`` from the previous page)."""
        ...


@dataclass(frozen=True)
class FetchedMessage:
    """One message read from a mailbox, with the id to mark it processed by."""

    uid: int
    message: InboundMessage


@runtime_checkable
class SentFolder(Protocol):
    """A mailbox whose Sent folder shows what its SMTP server accepted (IMAP today)."""

    def find_sent(self, message_ids: Iterable[str]) -> set[str]:
        """Which of ``message_ids`` are in the Sent folder."""
        ...


class MailboxReader(Protocol):
    """A rep's mailbox that replies arrive in (IMAP today)."""

    username: str

    def fetch_new(self, limit: int = 500) -> list[FetchedMessage]:
        """Up to ``limit`` messages not yet processed, oldest first."""
        ...

    def mark_processed(self, uids: Iterable[int]) -> None:
        """Move handled messages out of the way so the next poll skips them."""
        ...

    def close(self) -> None:
        """Log out and release the connection."""
        ...


class Clock(Protocol):
    """The current time, aware (UTC). Services take ``now`` as an argument; the
    edges get it from a Clock, so a test can fix it."""

    def __call__(self) -> datetime: ...


class EmailEventWebhook(Protocol):
    """A provider's signed delivery-event webhook (SendGrid's Event Webhook)."""

    def refusal(self, body: bytes, headers: Mapping[str, str], now: datetime) -> str | None:
        """Why the request must be refused (forged, stale, unsigned), or None."""
        ...

    def parse_events(self, body: bytes) -> tuple[list[ProviderEvent], list[dict[str, Any]]]:
        """The events of a batch and one error per malformed item; ValueError: not a batch."""
        ...


class InboundEmailWebhook(Protocol):
    """A provider posting the emails it received for us (SendGrid Inbound Parse)."""

    def inbound_message(self, fields: Mapping[str, str], now: datetime) -> InboundMessage:
        """The message in the posted form fields; ValueError when unreadable."""
        ...


class MessagingWebhook(Protocol):
    """A messaging and voice provider's callbacks (Twilio), and what we answer them."""

    def authentic(
        self, url: str, items: Sequence[tuple[str, str]], headers: Mapping[str, str]
    ) -> bool:
        """Whether the request to ``url`` with these form ``items`` is signed by the provider."""
        ...

    def inbound_sms_event(
        self, items: Sequence[tuple[str, str]], now: datetime
    ) -> ProviderEvent | str:
        """An inbound text as an event, or what is missing."""
        ...

    def message_status_event(
        self, items: Sequence[tuple[str, str]], touch_key: str | None, now: datetime
    ) -> ProviderEvent | str:
        """A delivery status of one of our texts, or what is missing."""
        ...

    def call_status_event(
        self, items: Sequence[tuple[str, str]], touch_key: str | None, now: datetime
    ) -> ProviderEvent | str:
        """A progress callback of a click-to-call call, or what is missing."""
        ...

    def sms_answer(self, event: ProviderEvent | None, company: str | None) -> str:
        """The body answering an inbound text (keyword replies); None: answer nothing."""
        ...

    def bridge(
        self,
        prospect_number: str | None,
        caller_id: str | None,
        transcription: TranscriptionStart | None = None,
    ) -> str:
        """The call instructions once the SDR answered: dial the prospect, or refuse.

        ``transcription``: start the call's transcript first (consent allowing).
        """
        ...

    def transcription_events(
        self,
        items: Sequence[tuple[str, str]],
        now: datetime,
        *,
        task_id: int | None = None,
        consent: str | None = None,
    ) -> list[TranscriptEvent] | str:
        """The transcript events a transcription callback carries, or why it is refused."""
        ...
