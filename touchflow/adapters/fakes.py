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
from collections.abc import Mapping, Sequence

from touchflow.errors import ConnectorError
from touchflow.ports import OutboundEmail, OutboundSms, SendResult

__all__ = ["FakeEmailSender", "FakeSmsSender"]


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
