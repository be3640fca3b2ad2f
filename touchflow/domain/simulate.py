"""Dry run of a cadence over prospects: no database, no sends, the production decisions.

Each prospect is simulated on its own clock with the same :class:`CadenceRuntime`
the tick uses. Manual tasks count as completed when due. Events (reply, bounce,
unsubscribe, meeting_booked, opened, clicked) apply at their time exactly as in
production: exit events end the enrollment when the cadence lists them in
``exit_on`` (unsubscribe always), opens and clicks mark the latest email touch.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from touchflow.domain.cadence import Cadence
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
SIM_EVENTS = (*EXIT_EVENTS, *ENGAGEMENT_EVENTS)


@dataclass(frozen=True, order=True)
class SimEvent:
    """One row of an events file: ``email,event,at``."""

    at: datetime
    email: str
    event: str


def parse_instant(text: str) -> datetime:
    """ISO 8601 to an aware datetime; a naive value is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_events_csv(path: Path) -> list[SimEvent]:
    """Read an events CSV (``email,event,at``); raise ``ValueError`` naming the bad line."""
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
            out.append(SimEvent(at, normalize_email(row["email"] or ""), event))
    return out


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


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
    """Return touch and exit records in time order (the ``--json`` output)."""
    runtime = CadenceRuntime(cadence, public_url=public_url)
    end = start + timedelta(days=days)
    by_email: dict[str, list[SimEvent]] = defaultdict(list)
    for ev in sorted(events):
        by_email[ev.email].append(ev)
    records: list[dict[str, Any]] = []
    for prospect in prospects:
        records.extend(
            _simulate_one(runtime, prospect, start, end, sender, by_email[prospect.email])
        )
    records.sort(key=lambda r: (r["at"], r["prospect"], "exit" in r))
    return records


def _simulate_one(
    runtime: CadenceRuntime,
    prospect: Prospect,
    start: datetime,
    end: datetime,
    sender: SenderInfo,
    events: list[SimEvent],
) -> list[dict[str, Any]]:
    cadence = runtime.cadence
    view = EnrollmentView(
        key=enrollment_key(cadence.id, prospect.email),
        touch_prefix=f"sim.{prospect.email}",
        prospect=prospect,
        sender=sender,
    )
    cal = runtime.calendar_for(prospect, sender)
    out: list[dict[str, Any]] = []
    last_email: str | None = None
    pending_events = list(events)

    def exit_(reason: str, at: datetime, **extra: Any) -> list[dict[str, Any]]:
        out.append({"prospect": prospect.email, "exit": reason, "at": _iso(at), **extra})
        return out

    due: datetime | None = runtime.first_due(view, start)
    while True:
        # Events that happen before the next touch apply first.
        while pending_events and (due is None or pending_events[0].at <= due):
            ev = pending_events.pop(0)
            if ev.at > end:
                return out
            if ev.event in ENGAGEMENT_EVENTS:
                if last_email is not None:
                    view.executed[last_email].events.add(ev.event)
                continue
            if ev.event == "reply" and last_email is not None:
                view.executed[last_email].events.add("replied")
            if ev.event == "unsubscribe" or ev.event in cadence.exit_on:
                return exit_(EXIT_EVENTS[ev.event][1], ev.at)
        if due is None or due > end:
            return out
        decision = runtime.decide(view, due)
        for skipped in decision.skipped:
            view.executed[skipped] = ExecutedStep(skipped, due, events={"skipped"})
        if isinstance(decision, Complete):
            return exit_("completed", due)
        if isinstance(decision, Hold):
            return exit_("missing_data", due, field=decision.field)
        if isinstance(decision, Defer):
            view.step_index, due = decision.step_index, decision.due_at
            continue
        assert isinstance(decision, Execute)
        step = decision.step
        out.append(
            {
                "prospect": prospect.email,
                "step": step.id,
                "channel": step.channel,
                "variant": decision.variant,
                "at": _iso(due),
                "local_at": due.astimezone(cal.tz).isoformat(),
            }
        )
        done = ExecutedStep(step.id, due, decision.message_id, decision.subject)
        if step.manual:
            done.events.add("completed")  # tasks count as completed when due
        view.executed[step.id] = done
        if step.channel == "email":
            last_email = step.id
        nxt = runtime.after_execution(view, decision.step_index, due)
        if nxt is None:
            return exit_("completed", due)
        view.step_index, due = nxt
