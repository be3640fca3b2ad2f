"""Provider events in touchflow's own words, whichever vendor sent them.

An adapter (``touchflow.adapters.sendgrid.webhooks``,
``touchflow.adapters.twilio.webhooks``) verifies and parses a webhook and
says, per event, what it is (``type``, the name stored in ``events.type`` and
read by ``touched(step, ...)`` conditions), what it does to the prospect
(``effect``) and whether it proves the provider accepted our message
(``accepted``, which settles a touch whose delivery was ``unknown``). The
store and the services never see a vendor's event names or error codes.

Stored types: ``processed``, ``deferred``, ``delivered``, ``opened``,
``clicked``, ``bounce``, ``dropped``, ``blocked`` (a soft bounce),
``spamreport``, ``unsubscribe``, ``group_unsubscribe``; ``sms_stop``,
``sms_start``, ``sms_help``, ``sms_reply``, ``sms_<status>`` (queued, sent,
delivered, failed, undelivered ...), ``call_<status>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["EXIT_EFFECTS", "Effect", "ProviderEvent"]

#: What an event does: an exit event for the prospect's enrollments (``bounce``,
#: ``unsubscribe``: everywhere and for good; ``reply``), or a change of the
#: phone's SMS opt-out (texts only: email and enrollments go on).
Effect = Literal["bounce", "unsubscribe", "reply", "sms_opt_out", "sms_opt_in"]
EXIT_EFFECTS: frozenset[str] = frozenset({"bounce", "unsubscribe", "reply"})


@dataclass(frozen=True)
class ProviderEvent:
    """One provider webhook event, verified and parsed by its adapter."""

    provider_event_id: str  # unique per provider event, namespaced ("sg:...", "twilio:...")
    source: str  # the provider, stored with the event ("sendgrid", "twilio", ...)
    type: str  # touchflow's name for it (see the module docstring), stored
    occurred_at: datetime  # aware
    effect: Effect | None = None
    accepted: bool = False  # proves the provider accepted the message it is about
    touch_key: str | None = None  # from the provider's metadata / our callback URL
    email: str | None = None  # fallback match: the prospect with this address
    phone: str | None = None  # fallback match (and the number an SMS opt-out is about)
    payload: dict[str, Any] = field(default_factory=dict)  # the raw event, stored as is
