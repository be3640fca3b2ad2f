"""SMS to a local outbox: one JSON line per message in ``<dir>/sms.jsonl``.

The stand-in for a real SMS provider in local runs and the demo, until the
Twilio connector is configured. Idempotent per touch key within one process
run (the ledger already guarantees a key is handed over once).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from touchflow.errors import RetryableError
from touchflow.ports import OutboundSms, SendResult


class OutboxSmsSender:
    """Appends each SMS as a JSON line to ``<directory>/sms.jsonl``."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "sms.jsonl"
        self._lock = threading.Lock()

    def send_batch(self, messages: Sequence[OutboundSms]) -> list[SendResult]:
        """Write every message; an I/O error is returned as retryable for each."""
        if not messages:
            return []
        lines = "".join(
            json.dumps(
                {"touch_key": m.touch_key, "from": m.from_number, "to": m.to_number, "body": m.body}
            )
            + "\n"
            for m in messages
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(lines)
        except OSError as exc:
            err = RetryableError(str(exc), connector="outbox_sms", operation="send")
            return [SendResult(m.touch_key, error=err) for m in messages]
        return [SendResult(m.touch_key, provider_id=f"outbox-sms-{m.touch_key}") for m in messages]

    def close(self) -> None:
        """Nothing to release."""
