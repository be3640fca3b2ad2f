"""Notifying AEs of new leads: a Slack-compatible incoming webhook, or an email."""

from __future__ import annotations

import uuid

import httpx

from touchflow.adapters._http import (
    HTTPX_ERRORS,
    ExceptionRule,
    error_for_exception,
    error_for_status,
    parse_retry_after,
)
from touchflow.errors import RetryableError
from touchflow.ports import EmailSender, OutboundEmail

CONNECTOR = "webhook"

# A notification may be sent twice, so every httpx failure may be retried.
_NOTIFY_ERRORS: tuple[ExceptionRule, ...] = (
    *HTTPX_ERRORS,
    (httpx.HTTPError, RetryableError, "request failed"),
)


class WebhookNotifier:
    """Posts ``{"text": ...}`` to a Slack-compatible incoming webhook (Slack, Mattermost, Teams).

    Redirects are not followed; a ``3xx`` counts as delivered.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_s)

    def notify(self, to_email: str, text: str) -> None:
        try:
            r = self._client.post(self.url, json={"text": f"{to_email}: {text}"})
        except httpx.HTTPError as exc:
            raise error_for_exception(
                exc, connector=CONNECTOR, operation="notify", table=_NOTIFY_ERRORS
            ) from exc
        if r.status_code >= 400:
            raise error_for_status(
                r.status_code,
                connector=CONNECTOR,
                operation="notify",
                message=r.text[:200],
                retry_after=parse_retry_after(r.headers),
                retry_above_599=True,
            )

    def close(self) -> None:
        self._client.close()


class EmailNotifier:
    """Emails the AE through the configured email sender."""

    def __init__(self, sender: EmailSender, from_addr: str, *, domain: str = "touchflow.invalid"):
        self.sender = sender
        self.from_addr = from_addr
        self.domain = domain

    def notify(self, to_email: str, text: str) -> None:
        key = f"notify-{uuid.uuid4().hex}"
        first_line = text.splitlines()[0] if text else "New lead"
        (result,) = self.sender.send_batch(
            [
                OutboundEmail(
                    touch_key=key,
                    message_id=f"<{key}@{self.domain}>",
                    from_addr=self.from_addr,
                    to_addr=to_email,
                    subject=first_line[:200],
                    text=text,
                    from_name="touchflow",
                )
            ]
        )
        if result.error is not None:
            raise result.error

    def close(self) -> None:
        self.sender.close()
