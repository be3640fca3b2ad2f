"""One email sender per rep's mailbox, behind the one ``EmailSender`` the tick calls.

Talks to: whatever each mailbox's sender talks to (the rep's SMTP server with
their login, SendGrid with their From address); this module only routes.

Each message goes through the sender of its From address (compared
case-insensitively); a From address without a mailbox of its own goes through
the deployment's default sender. A mailbox's sender is built the first time a
message needs it and kept (its SMTP connection is reused across batches). A
mailbox that cannot be built (its password's environment variable is not set)
fails only its own messages, with a :class:`~touchflow.errors.FatalError`
naming the problem, so one rep's misconfiguration never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from touchflow.errors import ConfigError, FatalError
from touchflow.ports import EmailSender, OutboundEmail, SendResult

__all__ = ["MailboxEmailSender"]


class MailboxEmailSender:
    """Routes each message to its mailbox's sender (``EmailSender``)."""

    def __init__(
        self,
        default: EmailSender,
        mailboxes: Mapping[str, Callable[[], EmailSender]],
    ) -> None:
        self.default = default
        self._factories = {addr.lower(): build for addr, build in mailboxes.items()}
        self._built: dict[str, EmailSender] = {}

    def sender_for(self, from_addr: str) -> EmailSender:
        """The sender of this From address; a ConfigError when its mailbox cannot be built."""
        key = from_addr.lower()
        build = self._factories.get(key)
        if build is None:
            return self.default
        sender = self._built.get(key)
        if sender is None:
            sender = self._built[key] = build()
        return sender

    def send_batch(self, messages: Sequence[OutboundEmail]) -> list[SendResult]:
        """Send each mailbox's messages through its sender (one batch each); results in order."""
        groups: dict[str, list[OutboundEmail]] = {}
        for m in messages:
            groups.setdefault(m.from_addr.lower(), []).append(m)
        results: dict[str, SendResult] = {}
        for addr, group in groups.items():
            try:
                sender = self.sender_for(addr)
            except ConfigError as exc:
                error = FatalError(
                    f"mailbox {addr}: {exc}", connector="mailbox", operation="send_email"
                )
                for m in group:
                    results[m.touch_key] = SendResult(m.touch_key, error=error)
                continue
            for r in sender.send_batch(group):
                results[r.touch_key] = r
        return [results[m.touch_key] for m in messages]

    def close(self) -> None:
        """Close every mailbox's sender that was built, then the default one."""
        senders = [*self._built.values(), self.default]
        self._built.clear()
        errors: list[Exception] = []
        for sender in senders:
            try:
                sender.close()
            except Exception as exc:  # close the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]
