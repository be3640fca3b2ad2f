"""Compliance and deliverability rules applied when a touch is claimed.

Pure: the tick loads what these need (suppressions, recent send counts) in a
few queries per batch and asks them. Nothing here does I/O or reads a clock.

* Contact hours: texts and calls only between 08:00 and 21:00 in the
  recipient's local time (TCPA-style quiet hours), whatever the cadence's own
  window says; a cadence window can only narrow it.
* Send caps: per-mailbox rolling hourly and daily caps, a per-recipient-domain
  daily cap, and staggering (a mailbox sends at most ``hourly / 12`` messages
  per 5-minute bucket, so a backlog goes out as a steady trickle, not a burst).
* Bounce shield: a cadence whose bounce rate passes a threshold after a
  minimum number of sends pauses itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from touchflow.domain.cadence import Cadence
from touchflow.domain.render import parse_template, template_dependencies
from touchflow.errors import Finding

CONTACT_START = time(8)
CONTACT_END = time(21)
#: Granularity of the rolling send windows.
BUCKET = timedelta(minutes=5)
#: Channels bound by contact hours (a human's phone rings or buzzes).
PHONE_CHANNELS = frozenset({"sms", "call"})


#: Why a text step is skipped at claim time (the ledger row's note).
SMS_OPTED_OUT = "sms_opted_out"
NO_SMS_CONSENT = "no_sms_consent"

_CONSENT_YES = frozenset({"1", "true", "yes", "y", "opt-in", "opted_in"})
_CONSENT_NO = frozenset({"0", "false", "no", "n", "opt-out", "opted_out"})


def sms_consent_answer(value: str | None) -> bool | None:
    """An ``sms_consent`` column's answer: True (given), False (withdrawn), None (not said)."""
    text = (value or "").strip().lower()
    if text in _CONSENT_YES:
        return True
    if text in _CONSENT_NO:
        return False
    return None


def text_skip_reason(cadence: Cadence, *, opted_out: bool, consented: bool) -> str | None:
    """Why a text step must be skipped for this recipient, or None.

    A number that texted STOP (or was reported a wrong number) is never
    texted again; a cadence that ``requires: [sms_consent]`` texts only
    prospects with recorded consent. The tick and ``simulate`` both ask here.
    """
    if opted_out:
        return SMS_OPTED_OUT
    if "sms_consent" in cadence.requires and not consented:
        return NO_SMS_CONSENT
    return None


def within_contact_hours(
    at: datetime, tz: str, start: time = CONTACT_START, end: time = CONTACT_END
) -> bool:
    """Whether ``at`` falls inside ``[start, end)`` on the wall clock of ``tz``."""
    local = at.astimezone(ZoneInfo(tz)).time()
    return start <= local < end


def next_contact_opening(
    at: datetime, tz: str, start: time = CONTACT_START, end: time = CONTACT_END
) -> datetime:
    """The first instant at or after ``at`` inside contact hours in ``tz``."""
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    if start <= local.time() < end:
        return at
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    # fold=0 and a normalising round trip: a start inside a DST gap moves forward.
    opening = datetime.combine(day, start, tzinfo=zone)
    return opening.astimezone(at.tzinfo).astimezone(zone).astimezone(at.tzinfo)


def bucket_of(at: datetime) -> datetime:
    """The start of the 5-minute bucket ``at`` falls in."""
    seconds = int(BUCKET.total_seconds())
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=at.tzinfo)


@dataclass(frozen=True)
class MailboxCaps:
    """Limits for one sending mailbox; ``None`` means no limit."""

    hourly: int | None = 100
    daily: int | None = 500

    @property
    def per_bucket(self) -> int | None:
        """The stagger: an even share of the hourly cap per 5-minute bucket."""
        if self.hourly is None:
            return None
        return max(1, math.ceil(self.hourly / (timedelta(hours=1) / BUCKET)))


@dataclass(frozen=True)
class CapPolicy:
    """Every cap, with per-mailbox overrides (keyed by lower-case address)."""

    mailbox: MailboxCaps = MailboxCaps()
    overrides: Mapping[str, MailboxCaps] = field(default_factory=dict)
    domain_daily: int | None = 50

    def for_mailbox(self, mailbox: str) -> MailboxCaps:
        return self.overrides.get(mailbox.lower(), self.mailbox)

    @property
    def enabled(self) -> bool:
        m = [self.mailbox, *self.overrides.values()]
        return self.domain_daily is not None or any(
            c.hourly is not None or c.daily is not None for c in m
        )


#: No caps at all (benchmarks of the engine alone, tests of other things).
NO_CAPS = CapPolicy(MailboxCaps(None, None), {}, None)


@dataclass
class SendCounts:
    """Messages already counted in each window, as loaded for one batch."""

    mailbox_bucket: Counter[str] = field(default_factory=Counter)
    mailbox_hour: Counter[str] = field(default_factory=Counter)
    mailbox_day: Counter[str] = field(default_factory=Counter)
    domain_day: Counter[str] = field(default_factory=Counter)


@dataclass
class CapGate:
    """Admits messages against the caps, counting each one it admits.

    ``admit`` returns None when the message may go now, else the reason and
    the earliest time it may (the start of the bucket where the window frees).
    """

    policy: CapPolicy
    counts: SendCounts
    now: datetime
    admitted: Counter[tuple[str, str]] = field(default_factory=Counter)

    def admit(self, mailbox: str, domain: str | None) -> tuple[str, datetime] | None:
        caps = self.policy.for_mailbox(mailbox)
        c = self.counts
        nxt = bucket_of(self.now) + BUCKET
        if caps.daily is not None and c.mailbox_day[mailbox] >= caps.daily:
            return "cap:mailbox_daily", self.now + timedelta(hours=1)
        if caps.hourly is not None and c.mailbox_hour[mailbox] >= caps.hourly:
            return "cap:mailbox_hourly", nxt
        per_bucket = caps.per_bucket
        if per_bucket is not None and c.mailbox_bucket[mailbox] >= per_bucket:
            return "cap:stagger", nxt
        if (
            domain
            and self.policy.domain_daily is not None
            and c.domain_day[domain] >= self.policy.domain_daily
        ):
            return "cap:domain_daily", self.now + timedelta(hours=1)
        for counter in (c.mailbox_bucket, c.mailbox_hour, c.mailbox_day):
            counter[mailbox] += 1
        if domain:
            c.domain_day[domain] += 1
        self.admitted.update(counted_keys(mailbox, domain))
        return None


def counted_keys(mailbox: str, domain: str | None) -> list[tuple[str, str]]:
    """The send counters one admitted message takes a slot of: (scope, key) pairs."""
    keys = [("mailbox", mailbox)]
    if domain:
        keys.append(("domain", domain))
    return keys


@dataclass(frozen=True)
class BounceShield:
    """Pause a cadence whose bounce rate passes ``threshold`` after ``min_sends`` sends."""

    threshold: float = 0.05
    min_sends: int = 50

    def tripped(self, sends: int, bounces: int) -> bool:
        return sends >= self.min_sends and sends > 0 and bounces / sends > self.threshold

    def describe(self, sends: int, bounces: int) -> str:
        rate = bounces / sends if sends else 0.0
        return (
            f"bounce shield: {bounces} bounces in {sends} sends ({rate:.1%}) "
            f"is over {self.threshold:.0%} after at least {self.min_sends} sends"
        )


def window_starts(now: datetime) -> tuple[datetime, datetime, datetime]:
    """Bucket starts of the current bucket, the rolling hour and the rolling day."""
    b = bucket_of(now)
    return b, b - timedelta(hours=1) + BUCKET, b - timedelta(days=1) + BUCKET


def domain_of(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def own_domains(domain: str | None, email: str) -> set[str]:
    """A prospect's company (primary) domain and its email's domain: a block of either holds.

    Import resolves alias domains to the primary one (config/domain_aliases.yaml),
    while an operator may block the domain the addresses actually use.
    """
    return {d for d in ((domain or "").lower(), domain_of(email)) if d}


def normalize_values(values: Iterable[str | None]) -> set[str]:
    return {v.strip().lower() for v in values if v}


# -- the email footer ------------------------------------------------------------

#: What an email template must reference: the signed opt-out link and the address.
UNSUBSCRIBE_VARIABLE = "unsubscribe_url"
POSTAL_VARIABLE = "sender.postal_address"


def footer_findings(
    cadence: Cadence, templates_label: str, postal_address: str | None = None
) -> list[Finding]:
    """Email templates of ``cadence`` without an unsubscribe link or a postal address.

    A template passes when it, or a template it includes, references
    ``{{ unsubscribe_url }}`` and either ``{{ sender.postal_address }}`` or the
    configured address verbatim. Findings point at the template file.
    """
    findings: list[Finding] = []
    seen: set[str] = set()
    for step in cadence.steps:
        if step.channel != "email":
            continue
        names = {step.template, *(v.template for v in step.variants)} - {None}
        for name in sorted(n for n in names if n):
            if name in seen:
                continue
            seen.add(name)
            source = _with_includes(name, cadence.templates)
            where = f"{templates_label.rstrip('/')}/{name}"
            if UNSUBSCRIBE_VARIABLE not in source:
                findings.append(
                    Finding(
                        where,
                        1,
                        1,
                        f"email template has no unsubscribe link: add "
                        f"{{{{ {UNSUBSCRIBE_VARIABLE} }}}} (step {step.id!r} of {cadence.id})",
                    )
                )
            if POSTAL_VARIABLE not in source and not (postal_address and postal_address in source):
                findings.append(
                    Finding(
                        where,
                        1,
                        1,
                        f"email template has no postal address: add "
                        f"{{{{ {POSTAL_VARIABLE} }}}} (step {step.id!r} of {cadence.id})",
                    )
                )
    return findings


def _with_includes(name: str, templates: Mapping[str, str], depth: int = 0) -> str:
    """A template's source followed by the sources of what it includes (recursively)."""
    source = templates.get(name)
    if source is None or depth > 10:
        return ""
    ast, _ = parse_template(name, source)
    parts = [source]
    if ast is not None:
        for dep, _line in template_dependencies(ast):
            parts.append(_with_includes(dep, templates, depth + 1))
    return "\n".join(parts)
