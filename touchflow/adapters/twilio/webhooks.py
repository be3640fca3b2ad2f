"""Twilio webhooks: signature checks, the events they carry, and the TwiML we answer.

Twilio signs every webhook (https://www.twilio.com/docs/usage/webhooks/webhooks-security):
``X-Twilio-Signature`` is a base64 HMAC-SHA1 (or SHA-256, named in
``X-Twilio-Webhooks-Signature-Settings``) under the account auth token of the
full URL Twilio requested plus the sorted form parameters. The URL is ours as
Twilio sees it (``TOUCHFLOW_PUBLIC_URL`` + path + query), so a proxy in front
does not break the check.

Quirks:

* Twilio retries a callback it could not deliver; inbound texts dedupe on
  ``MessageSid``, status callbacks on ``MessageSid``/``CallSid`` plus the
  status (one message has several: queued, sent, delivered).
* Status callbacks carry no timestamp we trust; events are stamped with our clock.
* Error 21610 on a failed or undelivered message means the recipient texted
  STOP to this sender: the number is opted out of our texts too. 21211 and
  21614 (invalid or non-mobile number) are stored for a human to fix.
* With Advanced Opt-Out Twilio answers STOP/START/HELP itself and drops our
  TwiML reply; without it, :meth:`TwilioWebhooks.sms_answer` is what the
  person gets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from touchflow.adapters.twilio.sms_voice import bridge_twiml
from touchflow.adapters.twilio.transcription import TwilioTranscription
from touchflow.domain.events import Effect, ProviderEvent
from touchflow.domain.sms import sms_help_text, sms_keyword, sms_start_text, sms_stop_text
from touchflow.ports import TranscriptEvent, TranscriptionStart

__all__ = ["FormParams", "TwilioWebhooks"]

SOURCE = "twilio"
#: Twilio error codes on a failed/undelivered message.
OPTED_OUT = "21610"  # the recipient texted STOP to this sender
INVALID_NUMBERS = frozenset({"21211", "21614"})  # invalid 'To', not a mobile number


class FormParams:
    """Form parameters as the validator reads them (``getlist``), text only."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._by_key: dict[str, list[str]] = {}
        for k, v in items:
            self._by_key.setdefault(k, []).append(v)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def getlist(self, key: str) -> list[str]:
        return self._by_key.get(key, [])

    def first(self, key: str) -> str | None:
        values = self._by_key.get(key)
        return values[0] if values else None

    def flat(self) -> dict[str, str]:
        """One value per key (the first), for storing as the event payload."""
        return {k: v[0] for k, v in self._by_key.items()}


class TwilioWebhooks:
    """Twilio's messaging and voice callbacks, checked and read in touchflow's terms.

    Each ``*_event`` method returns the event, or a ``str`` naming the missing
    fields (a 400 for the caller).
    """

    def __init__(self, auth_token: str, rep_track: str = "inbound_track") -> None:
        self._validator = RequestValidator(auth_token)
        self._transcription = TwilioTranscription(rep_track)

    def transcription_events(
        self,
        items: Sequence[tuple[str, str]],
        now: datetime,
        *,
        task_id: int | None = None,
        consent: str | None = None,
    ) -> list[TranscriptEvent] | str:
        """Real-Time Transcription callbacks (:mod:`touchflow.adapters.twilio.transcription`)."""
        return self._transcription.events(items, now, task_id=task_id, consent=consent)

    def authentic(
        self, url: str, items: Sequence[tuple[str, str]], headers: Mapping[str, str]
    ) -> bool:
        """Whether the request to ``url`` with these form ``items`` carries a valid signature."""
        signature = headers.get(SIGNATURE_HEADER)
        if not signature:
            return False
        algorithm = get_signature_algorithm(headers.get(SIGNATURE_SETTINGS_HEADER))
        try:
            return bool(self._validator.validate(url, FormParams(items), signature, algorithm))
        except (ValueError, TypeError, UnicodeError):
            return False

    def inbound_sms_event(
        self, items: Sequence[tuple[str, str]], now: datetime
    ) -> ProviderEvent | str:
        """An inbound text: STOP/START/HELP keywords, or a reply to our SMS."""
        params = FormParams(items)
        sid = params.first("MessageSid") or params.first("SmsSid")
        sender = params.first("From")
        if not sid or not sender:
            return "MessageSid and From are required"
        keyword = sms_keyword(params.first("Body"))
        kind, effect = _KEYWORD[keyword]
        return ProviderEvent(
            provider_event_id=f"twilio:{sid}",
            source=SOURCE,
            type=kind,
            occurred_at=now,
            effect=effect,
            phone=sender,
            payload=params.flat(),
        )

    def message_status_event(
        self, items: Sequence[tuple[str, str]], touch_key: str | None, now: datetime
    ) -> ProviderEvent | str:
        """Delivery progress of one of our texts (``touch_key`` from our callback URL)."""
        params = FormParams(items)
        sid = params.first("MessageSid") or params.first("SmsSid")
        status = params.first("MessageStatus") or params.first("SmsStatus")
        if not sid or not status:
            return "MessageSid and MessageStatus are required"
        state = status.lower()
        code = params.first("ErrorCode") or ""
        opted_out = state in ("failed", "undelivered") and code == OPTED_OUT
        return ProviderEvent(
            provider_event_id=f"twilio:{sid}:{status}",
            source=SOURCE,
            type=f"sms_{state}",
            occurred_at=now,
            effect="sms_opt_out" if opted_out else None,
            accepted=True,  # any status callback means Twilio took the message
            touch_key=touch_key or params.first("touch_key"),
            phone=params.first("To"),
            payload=params.flat(),
        )

    def call_status_event(
        self, items: Sequence[tuple[str, str]], touch_key: str | None, now: datetime
    ) -> ProviderEvent | str:
        """Progress of a click-to-call call (``touch_key`` of its task)."""
        params = FormParams(items)
        sid = params.first("CallSid")
        status = params.first("CallStatus")
        if not sid or not status:
            return "CallSid and CallStatus are required"
        # No phone: the call's "To" is the SDR's own phone (the agent leg rings first).
        return ProviderEvent(
            provider_event_id=f"twilio:{sid}:{status}",
            source=SOURCE,
            type=f"call_{status.lower()}",
            occurred_at=now,
            touch_key=touch_key,
            payload=params.flat(),
        )

    def sms_answer(self, event: ProviderEvent | None, company: str | None) -> str:
        """TwiML answering an inbound text: the STOP/START/HELP reply, or nothing (``None``)."""
        reply = MessagingResponse()
        answer = _ANSWERS.get(event.type) if event is not None else None
        if answer is not None:
            reply.message(answer(company))
        return str(reply)

    def bridge(
        self,
        prospect_number: str | None,
        caller_id: str | None,
        transcription: TranscriptionStart | None = None,
    ) -> str:
        """TwiML for the SDR's answered leg: dial the prospect, or say why not and hang up.

        ``transcription``: start the call's transcript (and say the consent
        announcement) before dialing. ``ValueError`` never escapes: a number
        that is not one is a refusal.
        """
        if prospect_number and caller_id:
            try:
                return bridge_twiml(prospect_number, caller_id, transcription=transcription)
            except ValueError:
                pass
        refusal = VoiceResponse()
        refusal.say("This call cannot be connected.")
        refusal.hangup()
        return str(refusal)


_KEYWORD: dict[str | None, tuple[str, Effect | None]] = {
    "stop": ("sms_stop", "sms_opt_out"),
    "start": ("sms_start", "sms_opt_in"),
    "help": ("sms_help", None),
    None: ("sms_reply", "reply"),
}
_ANSWERS = {"sms_stop": sms_stop_text, "sms_start": sms_start_text, "sms_help": sms_help_text}
