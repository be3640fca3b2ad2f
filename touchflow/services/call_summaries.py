"""After the call: replay the stored transcript, summarise it, keep the summary on the task.

The after-call path does not depend on the live one. When a call's transcript stops
(:class:`~touchflow.services.call_transcripts.CallTranscripts` calls ``on_ended`` after
the commit), :meth:`CallSummaries.summarise` reads the call's stored segments, replays
them through a fresh :class:`~touchflow.domain.guidance.CallSession` (the same
:class:`~touchflow.domain.guidance.Guidance` the live path uses, built once per process
by :func:`touchflow.bootstrap.call_guidance`), ends it and stores its
:class:`~touchflow.domain.guidance.CallSummary`, in one transaction:

* the summary on the call's task (``call_summaries``, one per call: a second
  summary replaces the first) and its tracker moments (``call_tracker_hits``), which
  ``tracker('call-1', 'pricing')`` conditions read;
* one engagement event per ``score_event`` of a tracker heard (``events``, keyed
  ``call-summary:<call sid>:<event>``, so a call counts once), and the prospect
  rescored against ``config/icp.yaml`` when there is one.

The CRM activity is queued by the CRM sync (:func:`touchflow.services.crm_sync.
queue_new_call_summaries`), like every other activity.

A call that never got its stop event (the callback was lost, the process died) is
summarised by :meth:`CallSummaries.sweep`: ended calls without a summary, and live
ones whose newest segment is older than ``idle`` (they are marked ended at their
last segment). The ``summarise_calls`` flow and ``touchflow guidance summarise`` run it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from touchflow.domain.guidance import CallSession, CallSummary, Guidance, summarise_session
from touchflow.domain.scoring import IcpConfig
from touchflow.store.call_summaries import (
    StoredSummary,
    call_owner,
    calls_to_summarise,
    save_summary,
    summary_of_call,
    summary_of_task,
)
from touchflow.store.call_transcripts import CallTranscriptRow, end_call, read_transcript
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import events
from touchflow.store.scores import rescore

__all__ = [
    "CallSummaries",
    "StoredSummary",
    "SweepReport",
    "replay",
    "summarise_call",
    "task_summaries",
]

_log = logging.getLogger("touchflow.call_summaries")
#: A live call silent this long lost its stop event: the sweep summarises it.
DEFAULT_IDLE = timedelta(minutes=30)


def replay(guidance: Guidance, row: CallTranscriptRow, ended_at: datetime) -> CallSummary:
    """The summary of a stored transcript: its segments through a fresh session, ended.

    Segments go in in the order they were said (``at``, then track and ``seq``),
    each at its own time; :meth:`CallSession.end` applies whatever is still held
    (a gap never filled, the last partial of a call that ended mid-sentence).
    """
    session = CallSession(guidance, row.call_sid, row.started_at)
    for segment in sorted(row.segments, key=lambda s: (s.at, s.track, s.seq)):
        session.receive(segment, max(segment.at, row.started_at))
    session.end(ended_at)
    return summarise_session(session)


def _ended_at(row: CallTranscriptRow) -> datetime:
    if row.ended_at is not None:
        return row.ended_at
    return max((s.at for s in row.segments), default=row.started_at)


def _score_events(
    conn: Connection, guidance: Guidance, summary: CallSummary, prospect_id: int,
    enrollment_id: int | None, now: datetime,
) -> list[str]:  # fmt: skip
    """Record each heard tracker's ``score_event`` once per call; the new ones."""
    wanted: list[str] = []
    for heard in summary.trackers:
        spec = guidance.file.trackers.get(heard.tracker)
        if spec is not None and spec.score_event and spec.score_event not in wanted:
            wanted.append(spec.score_event)
    new: list[str] = []
    for name in wanted:
        stmt = (
            dialect_insert(conn, events)
            .values(
                prospect_id=prospect_id,
                enrollment_id=enrollment_id,
                type=name,
                occurred_at=min(summary.ended_at, now),
                source="call_summary",
                provider_event_id=f"call-summary:{summary.call_sid}:{name}",
                payload={"call_sid": summary.call_sid},
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["provider_event_id"])
            .returning(events.c.id)
        )
        if conn.execute(stmt).first() is not None:
            new.append(name)
    return new


def summarise_call(
    conn: Connection,
    guidance: Guidance,
    call_sid: str,
    now: datetime,
    *,
    icp: IcpConfig | None = None,
) -> StoredSummary | None:
    """Summarise one call and store it all in ``conn``'s transaction (module docstring).

    None when nothing was recorded for ``call_sid``. A live call is ended first, at its
    last segment (only the sweep summarises live calls: they went quiet).
    """
    row = read_transcript(conn, call_sid)
    if row is None:
        return None
    ended_at = _ended_at(row)
    if row.status == "live":
        end_call(conn, call_sid, ended_at, source=row.source)
    summary = replay(guidance, row, ended_at)
    owner = call_owner(conn, row.task_id)
    save_summary(conn, summary, owner, now)
    if owner.prospect_id is not None:
        scored = _score_events(conn, guidance, summary, owner.prospect_id, owner.enrollment_id, now)
        if scored and icp is not None:
            rescore(conn, icp, now, prospect_ids=[owner.prospect_id])
    return summary_of_call(conn, call_sid)


@dataclass
class SweepReport:
    """What a sweep did: calls summarised, and the ones that failed (with why)."""

    summarised: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class CallSummaries:
    """The after-call service: summaries on stop, and the sweep for calls that lost it."""

    def __init__(
        self,
        engine: Engine,
        guidance: Guidance,
        *,
        icp: IcpConfig | None = None,
        idle: timedelta = DEFAULT_IDLE,
    ) -> None:
        self._engine = engine
        self.guidance = guidance
        self.icp = icp
        self.idle = idle

    def summarise(self, call_sid: str, now: datetime) -> StoredSummary | None:
        """Summarise ``call_sid`` in its own transaction (again: the same one summary)."""
        with self._engine.begin() as conn:
            return summarise_call(conn, self.guidance, call_sid, now, icp=self.icp)

    def on_ended(self, call_sids: Sequence[str], now: datetime) -> SweepReport:
        """Summarise calls that just ended; a failure is logged, the sweep retries it."""
        report = SweepReport()
        for sid in call_sids:
            self._one(sid, now, report)
        return report

    def sweep(self, now: datetime, *, limit: int = 500) -> SweepReport:
        """Summarise up to ``limit`` calls that need it (ended, or live and idle)."""
        with self._engine.connect() as conn:
            sids = calls_to_summarise(conn, now - self.idle, limit=limit)
        report = SweepReport()
        for sid in sids:
            self._one(sid, now, report)
        return report

    def _one(self, call_sid: str, now: datetime, report: SweepReport) -> None:
        try:
            if self.summarise(call_sid, now) is not None:
                report.summarised.append(call_sid)
        except Exception as exc:  # one bad call never stops the others
            _log.exception("call %s: summary failed", call_sid)
            report.failed[call_sid] = f"{type(exc).__name__}: {exc}"


def task_summaries(engine: Engine, task_id: int) -> list[StoredSummary]:
    """The stored summaries of a task's calls (``touchflow task show``)."""
    with engine.connect() as conn:
        return summary_of_task(conn, task_id)
