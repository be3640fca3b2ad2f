"""Planning: given an enrollment, its cadence and ``now``, decide what happens next.

Pure: no database, no sending, no clock. The tick (``touchflow.services.tick``) and the
dry run (``touchflow.domain.simulate``) both call :class:`CadenceRuntime`, so a
simulation shows exactly what production would do.

Timing rules (the cadence format's contract):

* the first step is due at enrollment (plus its ``after`` if it has one),
  moved into the window;
* every later step is due ``after`` the previous step's execution (a manual
  step: its completion), moved into the window;
* a step only executes while the window is open in the prospect's local time:
  a late tick never sends out of hours, it defers to the next opening;
* a step whose ``when`` is false (it sees the earlier steps' events and task
  outcomes), or whose channel the prospect's number cannot take (a text
  without a mobile, a call without a phone), is skipped with its reason and
  the next step counts from then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

import phonenumbers

from touchflow.domain.cadence import Cadence, Step
from touchflow.domain.calendar import BusinessCalendar, has_holiday_calendar, resolve_timezone
from touchflow.domain.calendars import ScheduleRules
from touchflow.domain.phones import phone_channels
from touchflow.domain.prospects import Prospect
from touchflow.domain.render import Condition, Renderer, prospect_context, sender_context
from touchflow.domain.unsubscribe import DEV_UNSUBSCRIBE_SECRET
from touchflow.domain.unsubscribe import unsubscribe_url as unsubscribe_link
from touchflow.errors import MissingDataError

MAX_ATTEMPTS = 3
_DUE_MEMO_LIMIT = 4096
RETRY_BACKOFF = timedelta(minutes=15)


@dataclass(frozen=True)
class SenderInfo:
    """The mailbox and person a touch goes out as (the enrollment's sender)."""

    email: str
    name: str | None = None
    title: str | None = None
    company: str | None = None
    phone: str | None = None
    timezone: str = "America/New_York"
    postal_address: str | None = None  # the footer's physical address (CAN-SPAM)
    signature: str | None = None  # the rep's own sign-off (team.yaml mailbox)

    def context(self) -> dict[str, str | None]:
        return {
            "signature": self.signature,
            "name": self.name,
            "email": self.email,
            "title": self.title,
            "company": self.company,
            "phone": self.phone,
            "postal_address": self.postal_address,
        }


@dataclass
class ExecutedStep:
    """A step the enrollment already went through, with what happened to it since."""

    step_id: str
    at: datetime
    message_id: str | None = None
    subject: str | None = None
    events: set[str] = field(default_factory=lambda: {"sent"})
    outcome: str | None = None  # a task step's outcome once its task is done
    #: Trackers heard on the calls of a call step's task (their after-call summaries).
    trackers: set[str] = field(default_factory=set)


#: Why the engine skipped a step: its ``when`` was false, or the prospect has
#: no number the step's channel can reach (no phone for a call, no mobile for a text).
WHEN_FALSE = "when_false"
NO_PHONE = "no_phone"


@dataclass(frozen=True)
class Skip:
    """A step the engine passed over, and why (:data:`WHEN_FALSE`, :data:`NO_PHONE`)."""

    step_id: str
    reason: str


@dataclass
class EnrollmentView:
    """What the engine needs to know about one enrollment."""

    key: str  # "<cadence id>:<prospect email>": seeds variants and jitter
    touch_prefix: str  # touch keys are "<touch_prefix>-<step id>-<attempt>"
    prospect: Prospect
    sender: SenderInfo
    step_index: int = 0
    attempt: int = 1
    executed: dict[str, ExecutedStep] = field(default_factory=dict)


@dataclass(frozen=True)
class Execute:
    """Run step ``step_index`` now: send a message or create a task."""

    step_index: int
    step: Step
    variant: str | None
    touch_key: str
    subject: str | None
    body: str
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    unsubscribe_url: str | None = None
    skipped: tuple[Skip, ...] = ()

    @property
    def channel(self) -> str:
        return self.step.channel


@dataclass(frozen=True)
class Hold:
    """A template needs an empty field: park the enrollment as pending(missing_data)."""

    step_index: int
    field: str
    skipped: tuple[Skip, ...] = ()

    @property
    def reason(self) -> str:
        return f"missing_data:{self.field}"


@dataclass(frozen=True)
class Defer:
    """Nothing to do now; step ``step_index`` becomes due at ``due_at``."""

    step_index: int
    due_at: datetime
    skipped: tuple[Skip, ...] = ()


@dataclass(frozen=True)
class Complete:
    """No step left (the remaining ones were skipped)."""

    skipped: tuple[Skip, ...] = ()


Decision = Execute | Hold | Defer | Complete


def enrollment_key(cadence_id: str, email: str) -> str:
    """``<cadence id>:<prospect email>``: seeds an enrollment's variants and jitter."""
    return f"{cadence_id}:{email}"


def message_id(touch_key: str, sender_email: str) -> str:
    """The RFC 5322 Message-ID of a touch's email: ``<tf.<touch key>@<sender's domain>>``.

    Deterministic, so a reply's In-Reply-To finds its touch, and later steps
    thread on it.
    """
    return f"<tf.{touch_key}@{sender_email.rsplit('@', 1)[-1]}>"


def touch_key(prefix: str, step_id: str, attempt: int) -> str:
    """The ledger key of one attempt at one step of one enrollment."""
    return f"{prefix}-{step_id}-{attempt}"


def holiday_countries(cadence: Cadence, prospect: Prospect) -> tuple[str, ...]:
    """Countries whose public holidays block sends for this prospect."""
    return _holidays_of(cadence.schedule.holidays, prospect_country(prospect))


def _holidays_of(spec: str | list[str], country: str | None) -> tuple[str, ...]:
    if spec == "none":
        return ()
    if spec == "prospect":
        # A country the holidays package does not cover has no holidays to
        # skip; it must not stop the prospect's touches (the cadence's own
        # list is validated at load time instead).
        return (country,) if country and has_holiday_calendar(country) else ()
    return tuple(spec)


def prospect_country(prospect: Prospect) -> str | None:
    """The country whose holidays, window and blackouts apply: the prospect's own, else the
    one of their phone number."""
    return _upper(prospect.country) if prospect.country else _country_from_phone(prospect.phone)


@lru_cache(maxsize=1024)
def _upper(code: str) -> str:
    return code.strip().upper()


@lru_cache(maxsize=4096)
def _country_from_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None


class CadenceRuntime:
    """A loaded cadence with its renderer and the calendars of its prospects."""

    def __init__(
        self,
        cadence: Cadence,
        *,
        public_url: str = "http://localhost:8000",
        unsubscribe_secret: str = DEV_UNSUBSCRIBE_SECRET,
    ) -> None:
        self.cadence = cadence
        self.renderer = Renderer(cadence.templates)
        self.public_url = public_url.rstrip("/")
        self.unsubscribe_secret = unsubscribe_secret
        # Per (zone, holiday countries, country key): the key is None for every country the
        # schedule has no window or blackout of its own for, so they share calendars.
        self._calendars: dict[tuple[str, tuple[str, ...], str | None], BusinessCalendar] = {}
        # due_after before jitter, per (calendar, step, since): a tick records a whole
        # batch at one `now`, so most of its enrollments share the answer.
        self._due: dict[tuple[BusinessCalendar, int, datetime], datetime] = {}
        self._conditions: dict[str, Condition] = {}
        schedule = cadence.schedule
        self._rules = ScheduleRules(
            schedule.window, schedule.windows, schedule.blackouts, cadence.calendar_specs
        )
        # country -> holiday countries: the calendar key is built for every enrollment.
        self._holidays = lru_cache(maxsize=1024)(partial(_holidays_of, schedule.holidays))
        self._sender_contexts: dict[SenderInfo, dict[str, Any]] = {}
        self._step_contexts = [
            {"id": st.id, "channel": st.channel, "number": n}
            for n, st in enumerate(cadence.steps, 1)
        ]
        self._cadence_context = {"id": cadence.id, "name": cadence.name}

    # -- time ---------------------------------------------------------------

    def timezone_name(self, prospect: Prospect, sender: SenderInfo) -> str:
        """The zone whose wall clock the window is read in for this prospect."""
        spec = self.cadence.schedule.timezone
        if spec == "sender":
            return sender.timezone
        if spec != "prospect":
            return spec
        return resolve_timezone(
            prospect.timezone,
            prospect.phone,
            prospect.country,
            self.cadence.schedule.fallback_timezone,
        ).key

    def contact_timezone(self, prospect: Prospect) -> str:
        """The recipient's own zone (contact hours are theirs, whatever the window uses)."""
        return resolve_timezone(
            prospect.timezone,
            prospect.phone,
            prospect.country,
            self.cadence.schedule.fallback_timezone,
        ).key

    def calendar_for(self, prospect: Prospect, sender: SenderInfo) -> BusinessCalendar:
        """The business calendar that applies to this prospect: zone, the window of their
        country (or the default), public holidays and blackouts."""
        country = prospect_country(prospect)
        key = (
            self.timezone_name(prospect, sender),
            self._holidays(country),
            self._rules.key(country),
        )
        cal = self._calendars.get(key)
        if cal is None:
            window, blackouts = self._rules.rules(key[2])
            cal = BusinessCalendar(
                resolve_timezone(key[0], None, None, "UTC"), window, key[1], blackouts
            )
            self._calendars[key] = cal
        return cal

    def due_after(self, view: EnrollmentView, step_index: int, since: datetime) -> datetime:
        """When step ``step_index`` is due if the previous step ran (or enrollment began) at
        ``since``."""
        step = self.cadence.steps[step_index]
        cal = self.calendar_for(view.prospect, view.sender)
        memo = (cal, step_index, since)
        due = self._due.get(memo)
        if due is None:
            delay = step.after
            if delay is None or delay.amount == 0:
                due = cal.next_open(since)
            elif delay.unit == "business_days":
                due = cal.add_business_days(since, delay.amount)
            elif delay.unit == "days":
                due = cal.add_days(since, delay.amount)
            elif delay.unit == "hours":
                due = cal.add_elapsed(since, timedelta(hours=delay.amount))
            else:
                due = cal.add_elapsed(since, timedelta(minutes=delay.amount))
            if len(self._due) >= _DUE_MEMO_LIMIT:
                self._due.clear()
            self._due[memo] = due
        jitter = self.cadence.schedule.jitter_minutes
        if jitter:
            due = cal.apply_jitter(due, jitter, f"{view.key}:{step.id}")
        return due

    def first_due(self, view: EnrollmentView, enrolled_at: datetime) -> datetime:
        """When the first step is due for an enrollment made at ``enrolled_at``."""
        return self.due_after(view, 0, enrolled_at)

    def retry_due(self, view: EnrollmentView, now: datetime, attempt: int) -> datetime:
        """When to try a step again after a retryable failure (linear backoff, in window)."""
        cal = self.calendar_for(view.prospect, view.sender)
        return cal.next_open(now + RETRY_BACKOFF * attempt)

    # -- deciding -----------------------------------------------------------

    def decide(self, view: EnrollmentView, now: datetime) -> Decision:
        """What to do for an enrollment whose current step is due at ``now``."""
        steps = self.cadence.steps
        cal = self.calendar_for(view.prospect, view.sender)
        i = view.step_index
        skipped: list[Skip] = []
        while True:
            if i >= len(steps):
                return Complete(tuple(skipped))
            step = steps[i]
            if skipped:
                # The previous step was skipped "now": this one counts from here.
                due = self.due_after(view, i, now)
                if due > now:
                    return Defer(i, due, tuple(skipped))
            if not cal.is_open(now):
                return Defer(i, cal.next_open(now), tuple(skipped))
            if step.when and not self._condition(step.when)(*self._facts(view)):
                skipped.append(Skip(step.id, WHEN_FALSE))
                i += 1
                continue
            unreachable = self.unreachable(step, view.prospect)
            if unreachable is not None:
                skipped.append(Skip(step.id, unreachable))
                i += 1
                continue
            try:
                return self._render(view, i, step, tuple(skipped))
            except MissingDataError as exc:
                return Hold(i, exc.field, tuple(skipped))

    def render_step(
        self, view: EnrollmentView, step_index: int, variant_id: str | None = None
    ) -> Execute:
        """What step ``step_index`` would send this enrollment, whatever the time.

        The same rendering the tick uses (``preview`` calls it), with the
        enrollment's own variant or ``variant_id``. Raises
        :class:`~touchflow.errors.MissingDataError` where the tick would hold.
        """
        return self._render(view, step_index, self.cadence.steps[step_index], (), variant_id)

    @staticmethod
    def unreachable(step: Step, prospect: Prospect) -> str | None:
        """Why the prospect cannot take this step (:data:`NO_PHONE`), or None.

        A text needs a number that takes texts, a call any usable number:
        without one the step is skipped and the cadence goes on, never held
        (nothing the tick waits for would bring a number) and no call task
        is created that nobody can work.
        """
        if step.channel == "sms" and "sms" not in phone_channels(prospect.phone, prospect.country):
            return NO_PHONE
        if step.channel == "call" and not phone_channels(prospect.phone, prospect.country):
            return NO_PHONE
        return None

    def _condition(self, expr: str) -> Condition:
        cond = self._conditions.get(expr)
        if cond is None:
            cond = self._conditions[expr] = self.renderer.condition(expr)
        return cond

    @staticmethod
    def _facts(
        view: EnrollmentView,
    ) -> tuple[Callable[[str, str], bool], Callable[[str], str | None], Callable[[str, str], bool]]:
        """``touched(step, event)``, ``outcome(step)`` and ``tracker(step, name)`` over the
        enrollment's executed steps.

        A task outcome counts as an event of its step too, so
        ``touched('call-1', 'connected')`` reads like ``outcome('call-1') == 'connected'``;
        ``tracker('call-1', 'pricing')``: the tracker was heard on the call of that step's
        task (after-call summaries; false before the call was summarised).
        """
        executed = view.executed

        def touched(step_id: str, event: str = "sent") -> bool:
            done = executed.get(step_id)
            return done is not None and (event in done.events or event == done.outcome)

        def outcome(step_id: str) -> str | None:
            done = executed.get(step_id)
            return done.outcome if done is not None else None

        def tracker(step_id: str, name: str) -> bool:
            done = executed.get(step_id)
            return done is not None and name in done.trackers

        return touched, outcome, tracker

    def _render(
        self,
        view: EnrollmentView,
        i: int,
        step: Step,
        skipped: tuple[Skip, ...],
        variant_id: str | None = None,
    ) -> Execute:
        resolved = self.cadence.resolve(step.id, view.key, variant_id)
        variant, template = resolved.variant, resolved.template
        key = touch_key(view.touch_prefix, step.id, view.attempt)
        # The step's (or variant's) own subject; a threaded reply without one
        # takes "Re: <the subject actually sent>" below.
        subject_src = (variant.subject if variant else None) or step.subject
        unsubscribe_url = (
            unsubscribe_link(self.public_url, key, self.unsubscribe_secret)
            if step.channel == "email"
            else None
        )
        sender_ctx = self._sender_contexts.get(view.sender)
        if sender_ctx is None:
            # One per mailbox, not one per message: a tick renders thousands.
            sender_ctx = self._sender_contexts[view.sender] = sender_context(view.sender.context())
        ctx: dict[str, Any] = {
            "prospect": prospect_context(view.prospect),
            "sender": sender_ctx,
            "unsubscribe_url": unsubscribe_url,
            "step": self._step_contexts[i],
            "cadence": self._cadence_context,
        }
        body = self.renderer.render_template(template, ctx) if template else ""
        if step.channel != "email":
            subject = self.renderer.render_string(subject_src, ctx) if subject_src else None
            if step.manual and subject is None:
                who = view.prospect.full_name or view.prospect.email
                subject = f"{step.channel.title()}: {who} ({self.cadence.name}, {step.id})"
            return Execute(
                i, step, variant.id if variant else None, key, subject, body, skipped=skipped
            )

        in_reply_to: str | None = None
        references: tuple[str, ...] = ()
        subject = None  # str | None: typed at its first assignment, above
        if subject_src:
            subject = self.renderer.render_string(subject_src, ctx)
        if step.thread:
            parent = view.executed.get(step.thread)
            if parent is not None and parent.message_id:
                in_reply_to = parent.message_id
                references = (parent.message_id,)
                if subject is None and parent.subject:
                    subject = (
                        parent.subject
                        if parent.subject.lower().startswith("re:")
                        else f"Re: {parent.subject}"
                    )
            if subject is None:
                # The thread's first message never went out (skipped): start the
                # thread here with the subject this enrollment would have got.
                root = self.cadence.resolve(step.thread, view.key).subject
                if root:
                    subject = self.renderer.render_string(root.removeprefix("Re: "), ctx)
        return Execute(
            i,
            step,
            variant.id if variant else None,
            key,
            subject or "",
            body,
            message_id=message_id(key, view.sender.email),
            in_reply_to=in_reply_to,
            references=references,
            unsubscribe_url=unsubscribe_url,
            skipped=skipped,
        )

    def after_execution(
        self, view: EnrollmentView, step_index: int, executed_at: datetime
    ) -> tuple[int, datetime] | None:
        """The next step and its due time once ``step_index`` ran; None when it was the last."""
        nxt = step_index + 1
        if nxt >= len(self.cadence.steps):
            return None
        return nxt, self.due_after(view, nxt, executed_at)
