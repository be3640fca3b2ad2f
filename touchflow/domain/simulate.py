"""Dry run of a cadence over prospects: no database, no sends, the production decisions.

Each prospect is simulated on its own clock with the same :class:`CadenceRuntime`
the tick uses, and the same claim-time rules for texts (STOP and consent skips,
contact hours), so every step the real run would send, create, skip or defer
shows here, skipped steps with their reason.

Events (``email,event,at`` and an optional ``step`` column) apply at their time
exactly as in production:

* exit events (reply, bounce, unsubscribe, meeting_booked, deal_created) end
  the enrollment when the cadence lists them in ``exit_on`` (unsubscribe always);
* opens and clicks mark the email step named in ``step``, else the latest one;
* a task outcome (``no_answer``, ``connected``, ... see
  :data:`~touchflow.domain.cadence.TASK_OUTCOMES`) completes a task as
  ``touchflow task done --outcome`` does: the task of the step named in
  ``step``, else the task open at that time (the first task due at or before
  it that has no outcome yet). The cadence waits for it, as it waits for the
  SDR. A task the file gives no outcome is done when due (``completed``).
* an optional ``tracker`` column on a call's outcome names the trackers the
  after-call summary heard on that call (``pricing;competitor``), for
  ``tracker('call-1', 'pricing')`` conditions.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from touchflow.domain.cadence import TASK_OUTCOMES, Cadence
from touchflow.domain.compliance import (
    next_contact_opening,
    sms_consent_answer,
    text_skip_reason,
    within_contact_hours,
)
from touchflow.domain.engine import (
    CadenceRuntime,
    Complete,
    Defer,
    EnrollmentView,
    Execute,
    ExecutedStep,
    Hold,
    SenderInfo,
    enrollment_key,
)
from touchflow.domain.enrollment import EXIT_EVENTS
from touchflow.domain.prospects import Prospect, normalize_email

ENGAGEMENT_EVENTS = ("opened", "clicked")
SIM_EVENTS = tuple(dict.fromkeys((*EXIT_EVENTS, *ENGAGEMENT_EVENTS, *TASK_OUTCOMES)))


@dataclass(frozen=True, order=True)
class SimEvent:
    """One row of an events file: ``email,event,at`` and, optionally, ``step``."""

    at: datetime
    email: str
    event: str
    step: str | None = field(default=None, compare=False)
    line: int = field(default=0, compare=False)  # its line in the file (0: not from a file)
    #: Trackers heard on the call this outcome ends (the ``tracker`` column).
    trackers: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_outcome(self) -> bool:
        """A task outcome; ``meeting_booked`` only for a named step (else the exit event)."""
        if self.event == "meeting_booked":
            return self.step is not None
        return self.event in TASK_OUTCOMES


def parse_instant(text: str) -> datetime:
    """ISO 8601 to an aware datetime; a naive value is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_events_csv(path: Path) -> list[SimEvent]:
    """Read an events CSV (``email,event,at[,step][,tracker]``); ``ValueError`` naming the line."""
    out: list[SimEvent] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"email", "event", "at"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            event = (row["event"] or "").strip()
            if event not in SIM_EVENTS:
                raise ValueError(
                    f"{path}:{reader.line_num}: unknown event {event!r} "
                    f"(expected one of {', '.join(SIM_EVENTS)})"
                )
            try:
                at = parse_instant(row["at"] or "")
            except ValueError:
                raise ValueError(f"{path}:{reader.line_num}: bad time {row['at']!r}") from None
            step = (row.get("step") or "").strip() or None
            if step is not None and event not in (*TASK_OUTCOMES, *ENGAGEMENT_EVENTS):
                raise ValueError(
                    f"{path}:{reader.line_num}: a step is only for task outcomes, "
                    f"opens and clicks, not {event!r}"
                )
            trackers = tuple(t for t in re.split(r"[;|\s]+", row.get("tracker") or "") if t)
            if trackers and event not in TASK_OUTCOMES:
                raise ValueError(
                    f"{path}:{reader.line_num}: trackers are heard on a call: give them with "
                    f"its outcome (connected, ...), not with {event!r}"
                )
            email = normalize_email(row["email"] or "")
            out.append(SimEvent(at, email, event, step, reader.line_num, trackers))
    return out


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


def _check_steps(cadence: Cadence, events: Iterable[SimEvent]) -> None:
    """Events that name a step must name one that can have them."""
    for ev in events:
        if ev.step is None:
            continue
        where = f"line {ev.line}: " if ev.line else ""
        try:
            step = cadence.step(ev.step)
        except KeyError:
            ids = ", ".join(s.id for s in cadence.steps)
            raise ValueError(f"{where}no step {ev.step!r} in {cadence.id} ({ids})") from None
        if ev.trackers and step.channel != "call":
            raise ValueError(f"{where}trackers need a call step, not {ev.step!r}")
        if ev.is_outcome and not step.manual:
            raise ValueError(
                f"{where}{ev.event!r} is a task outcome, but {ev.step!r} is a "
                f"{step.channel} step (outcomes are for call, linkedin and task steps)"
            )
        if not ev.is_outcome and step.channel != "email":
            raise ValueError(f"{where}{ev.event!r} needs an email step, not {ev.step!r}")


def simulate(
    cadence: Cadence,
    prospects: Iterable[Prospect],
    *,
    start: datetime,
    days: int,
    sender: SenderInfo,
    events: Iterable[SimEvent] = (),
    public_url: str = "http://localhost:8000",
) -> list[dict[str, Any]]:
    """Return step, exit and event records in time order (the ``--json`` output).

    A step record has ``prospect``, ``step``, ``channel``, ``variant``, ``at``,
    ``local_at`` and ``status``: ``sent`` (email, text), ``task`` (with its
    ``outcome`` and ``done_at``) or ``skipped`` (with its ``reason``:
    ``when_false``, ``no_phone``, ``sms_opted_out``, ``no_sms_consent``). An
    exit record has ``prospect``, ``exit`` and ``at``; an outcome no task was
    open for is ``status: ignored`` with ``reason: no_open_task``. Raises
    ``ValueError`` for an event that names a step the cadence lacks.
    """
    runtime = CadenceRuntime(cadence, public_url=public_url)
    end = start + timedelta(days=days)
    by_email: dict[str, list[SimEvent]] = defaultdict(list)
    listed = sorted(events)
    _check_steps(cadence, listed)
    for ev in listed:
        by_email[ev.email].append(ev)
    records: list[dict[str, Any]] = []
    for prospect in prospects:
        run = _Run(runtime, prospect, sender, end, by_email[prospect.email])
        records.extend(run.simulate(start))
    records.sort(key=lambda r: (r["at"], r["prospect"], "exit" in r))
    return records


@dataclass
class _Task:
    """A task the simulated enrollment waits on."""

    step_index: int
    record: dict[str, Any]
    done_at: datetime | None = None  # None: waits for the next outcome in the file
    outcome: str = "completed"
    trackers: tuple[str, ...] = ()


class _Run:
    """One prospect's enrollment, step by step, as the tick would run it."""

    def __init__(
        self,
        runtime: CadenceRuntime,
        prospect: Prospect,
        sender: SenderInfo,
        end: datetime,
        events: list[SimEvent],
    ) -> None:
        self.runtime = runtime
        self.cadence = runtime.cadence
        self.prospect = prospect
        self.end = end
        self.view = EnrollmentView(
            key=enrollment_key(self.cadence.id, prospect.email),
            touch_prefix=f"sim.{prospect.email}",
            prospect=prospect,
            sender=sender,
        )
        self.cal = runtime.calendar_for(prospect, sender)
        self.out: list[dict[str, Any]] = []
        self.last_email: str | None = None
        # Outcomes for a named step wait for its task; the rest apply in time order.
        self.for_step = {ev.step: ev for ev in reversed(events) if ev.is_outcome and ev.step}
        self.stream = [ev for ev in events if not (ev.is_outcome and ev.step)]
        self.phone_suppressed = False  # a wrong_number outcome suppresses the number
        self.consented = sms_consent_answer(prospect.fields.get("sms_consent")) is True
        self.due: datetime | None = None
        self.task: _Task | None = None
        self.done = False

    def simulate(self, start: datetime) -> list[dict[str, Any]]:
        self.due = self.runtime.first_due(self.view, start)
        while not self.done:
            self._apply_events()
            if self.done:
                break
            if self.task is not None:
                at = self.task.done_at
                if at is None or at > self.end:
                    break  # waits past the end of the run
                self._finish_task(at, self.task.outcome, self.task.trackers)
                continue
            if self.due is None or self.due > self.end:
                break
            self._step(self.due)
        return self.out

    # -- events -----------------------------------------------------------------

    def _next_moment(self) -> datetime | None:
        if self.task is not None:
            return self.task.done_at
        return self.due

    def _apply_events(self) -> None:
        """Apply the file's events that happen before the next step (or task's end)."""
        while self.stream and not self.done:
            ev = self.stream[0]
            moment = self._next_moment()
            # At the same instant a step runs first: an outcome logged "when the
            # task was due" finds its task open.
            if moment is not None and (ev.at > moment or (ev.at == moment and ev.is_outcome)):
                return
            self.stream.pop(0)
            if ev.at > self.end:
                self.done = True
                return
            self._apply(ev)
            if ev.is_outcome and self.task is None:
                return  # a task was just done: the next step's time changed

    def _apply(self, ev: SimEvent) -> None:
        executed = self.view.executed
        if ev.is_outcome:
            if self.task is not None and self.task.done_at is None:
                self._finish_task(ev.at, ev.event, ev.trackers)
            else:
                self._record(ev.at, event=ev.event, status="ignored", reason="no_open_task")
            return
        if ev.event in ENGAGEMENT_EVENTS:
            target = ev.step or self.last_email
            if target is not None and target in executed:
                executed[target].events.add(ev.event)
            return
        if ev.event == "reply" and self.last_email is not None:
            executed[self.last_email].events.add("replied")
        if ev.event == "unsubscribe" or ev.event in self.cadence.exit_on:
            self._exit(EXIT_EVENTS[ev.event][1], ev.at)

    # -- steps ------------------------------------------------------------------

    def _step(self, due: datetime) -> None:
        view, runtime = self.view, self.runtime
        decision = runtime.decide(view, due)
        for skip in decision.skipped:
            self._skipped(skip.step_id, due, skip.reason)
        if isinstance(decision, Complete):
            self._exit("completed", due)
            return
        if isinstance(decision, Hold):
            self._exit("missing_data", due, field=decision.field)
            return
        if isinstance(decision, Defer):
            view.step_index, self.due = decision.step_index, decision.due_at
            return
        assert isinstance(decision, Execute)
        step = decision.step
        if step.channel == "sms":
            # The tick's claim-time rules for texts (services.tick._hold_text).
            why = text_skip_reason(
                self.cadence, opted_out=self.phone_suppressed, consented=self.consented
            )
            if why is not None:
                self._skipped(step.id, due, why)
                self._advance(decision.step_index, due)
                return
            tz = runtime.contact_timezone(self.prospect)
            if not within_contact_hours(due, tz):
                view.step_index, self.due = decision.step_index, next_contact_opening(due, tz)
                return
        record = self._record(
            due,
            step=step.id,
            channel=step.channel,
            variant=decision.variant,
            local_at=due.astimezone(self.cal.tz).isoformat(),
            status="task" if step.manual else "sent",
        )
        view.executed[step.id] = ExecutedStep(step.id, due, decision.message_id, decision.subject)
        if step.channel == "email":
            self.last_email = step.id
        if not step.manual:
            self._advance(decision.step_index, due)
            return
        task = _Task(decision.step_index, record)
        named = self.for_step.pop(step.id, None)
        if named is not None:
            task.done_at, task.outcome = max(named.at, due), named.event
            task.trackers = named.trackers
        elif not any(ev.is_outcome for ev in self.stream):
            task.done_at = due  # no outcome left in the file: done when due
        self.task = task

    def _finish_task(self, at: datetime, outcome: str, trackers: tuple[str, ...] = ()) -> None:
        """``touchflow task done --outcome``: record it, then end or advance the enrollment.

        ``trackers``: what the call's summary heard (``tracker()`` conditions read them).
        """
        task, self.task = self.task, None
        assert task is not None
        step_id = task.record["step"]
        task.record.update(outcome=outcome, done_at=_iso(at))
        done = self.view.executed[step_id]
        if trackers and task.record.get("channel") == "call":
            task.record["trackers"] = list(trackers)
            done.trackers.update(trackers)
        done.events.add("skipped" if outcome == "skipped" else "completed")
        done.outcome = outcome
        if outcome == "wrong_number":
            self.phone_suppressed = True
        if outcome == "meeting_booked" and "meeting_booked" in self.cadence.exit_on:
            self._exit(EXIT_EVENTS["meeting_booked"][1], at)
        elif outcome == "not_interested":
            self._exit("not_interested", at)
        else:
            self._advance(task.step_index, at)

    def _advance(self, step_index: int, at: datetime) -> None:
        nxt = self.runtime.after_execution(self.view, step_index, at)
        if nxt is None:
            self._exit("completed", at)
        else:
            self.view.step_index, self.due = nxt

    def _skipped(self, step_id: str, at: datetime, reason: str) -> None:
        self.view.executed[step_id] = ExecutedStep(step_id, at, events={"skipped"})
        self._record(
            at,
            step=step_id,
            channel=self.cadence.step(step_id).channel,
            variant=None,
            local_at=at.astimezone(self.cal.tz).isoformat(),
            status="skipped",
            reason=reason,
        )

    def _record(self, at: datetime, **values: Any) -> dict[str, Any]:
        record = {"prospect": self.prospect.email, "at": _iso(at), **values}
        self.out.append(record)
        return record

    def _exit(self, reason: str, at: datetime, **extra: Any) -> None:
        self._record(at, exit=reason, **extra)
        self.done = True
