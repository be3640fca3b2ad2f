"""In-memory senders for engine tests and benchmarks: they talk to nothing.

Limits: none on purpose. They accept instantly, do no I/O per message and keep
every message in lists, so a benchmark measures touchflow, not a transport.

Quirks:

* ``sent`` holds only the messages that were accepted; ``attempts`` holds every
  message handed to ``send_batch``, accepted or not.
* ``fail`` maps a recipient (email address or phone number, matched exactly)
  to the :class:`~touchflow.errors.ConnectorError` returned for every message
  to it. It is a plain dict: tests may change it between batches.
* Provider ids count accepted messages per sender: ``fake-1``, ``fake-2``, ...
  for email and ``fake-sms-1``, ... for SMS, so ids never collide across channels.
* ``close`` only sets ``closed``; a closed fake still sends, like the real
  senders, which reconnect on the next batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from touchflow.errors import ConnectorError
from touchflow.ports import OutboundEmail, OutboundSms, SendResult

__all__ = ["FakeDialer", "FakeEmailSender", "FakeSmsSender"]


class FakeEmailSender:
    """:class:`~touchflow.ports.EmailSender` that records messages and accepts them instantly."""

    def __init__(self, fail: Mapping[str, ConnectorError] | None = None) -> None:
        self.fail: dict[str, ConnectorError] = dict(fail or {})
        self.sent: list[OutboundEmail] = []
        self.attempts: list[OutboundEmail] = []
        self.batches = 0
        self.closed = False
        self._accepted = 0
        self._lock = threading.Lock()

    def send_batch(self, messages: Sequence[OutboundEmail]) -> list[SendResult]:
        """Accept each message unless its recipient is in ``fail``; one result per message."""
        results: list[SendResult] = []
        with self._lock:
            self.batches += 1
            self.attempts.extend(messages)
            for msg in messages:
                error = self.fail.get(msg.to_addr)
                if error is not None:
                    results.append(SendResult(msg.touch_key, error=error))
                    continue
                self._accepted += 1
                self.sent.append(msg)
                results.append(SendResult(msg.touch_key, provider_id=f"fake-{self._accepted}"))
        return results

    def close(self) -> None:
        """Mark the sender closed (it keeps working)."""
        self.closed = True


class FakeSmsSender:
    """:class:`~touchflow.ports.SmsSender` that records messages and accepts them instantly."""

    def __init__(self, fail: Mapping[str, ConnectorError] | None = None) -> None:
        self.fail: dict[str, ConnectorError] = dict(fail or {})
        self.sent: list[OutboundSms] = []
        self.attempts: list[OutboundSms] = []
        self.batches = 0
        self.closed = False
        self._accepted = 0
        self._lock = threading.Lock()

    def send_batch(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        """Accept each message unless its number is in ``fail``; one result per message."""
        results: list[SendResult] = []
        with self._lock:
            self.batches += 1
            self.attempts.extend(messages)
            for msg in messages:
                error = self.fail.get(msg.to_number)
                if error is not None:
                    results.append(SendResult(msg.touch_key, error=error))
                    continue
                self._accepted += 1
                self.sent.append(msg)
                results.append(SendResult(msg.touch_key, provider_id=f"fake-sms-{self._accepted}"))
        return results

    def close(self) -> None:
        """Mark the sender closed (it keeps working)."""
        self.closed = True


class FakeDialer:
    """:class:`~touchflow.ports.Dialer` that records calls and returns ``CA...`` ids.

    ``failures`` are raised, one per call, before any call succeeds (a Twilio
    outage); ``on_call`` runs inside every call (a test can look at the store
    while the provider is being called).
    """

    def __init__(
        self,
        failures: Sequence[ConnectorError] = (),
        on_call: Callable[[], None] | None = None,
    ) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = list(failures)
        self.on_call = on_call

    def place_call(
        self,
        *,
        agent_number: str,
        from_number: str,
        twiml_url: str,
        status_callback_url: str | None = None,
    ) -> str:
        if self.on_call is not None:
            self.on_call()
        if self.failures:
            raise self.failures.pop(0)
        self.calls.append(
            {
                "agent_number": agent_number,
                "from_number": from_number,
                "twiml_url": twiml_url,
                "status_callback_url": status_callback_url,
            }
        )
        return f"CA{len(self.calls):032d}"
