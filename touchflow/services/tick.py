"""One tick of the cadence engine over the store: claim, decide, send, record.

The ledger protocol, per batch of due enrollments:

1. **Claim and prepare** (one transaction): pick due, unclaimed enrollments
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), mark them claimed, let the
   engine decide, and insert one touch per message with status ``sending``
   using insert-on-conflict on the deterministic touch key. Only the touches
   this batch inserted (its ``claim_token``) are sent. Tasks, holds and
   deferrals are final here. Only the first sub-batch (``record_every``
   messages) is inserted ``sending``; the rest wait as ``queued``.
2. **Send** one sub-batch outside any transaction, one connector call per
   channel.
3. **Record** that sub-batch (one transaction, one executemany per table):
   ``sent`` with the provider id and the enrollment advanced; or failed /
   bounced / ``unknown``; and, in the same transaction, mark the next
   sub-batch ``sending``. Then 2 and 3 again until the batch is done.

A crash between 1 and 3 leaves at most one sub-batch ``sending``;
:func:`recover` marks those ``unknown`` (never resent blindly) once the claim
lease expired, and deletes the ``queued`` touches, whose messages never went
to a provider (their enrollments are claimed again at the next tick).
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Integer, String, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from touchflow.domain.compliance import (
    NO_CAPS,
    PHONE_CHANNELS,
    BounceShield,
    CapGate,
    CapPolicy,
    counted_keys,
    domain_of,
    next_contact_opening,
    own_domains,
    text_skip_reason,
    within_contact_hours,
)
from touchflow.domain.engine import (
    MAX_ATTEMPTS,
    NO_PHONE,
    CadenceRuntime,
    Complete,
    Defer,
    EnrollmentView,
    Execute,
    Hold,
    SenderInfo,
    message_id,
    touch_key,
)
from touchflow.domain.enrollment import Event, State, delivery_unknown, transition
from touchflow.domain.phones import to_e164
from touchflow.domain.senders import SenderDirectory
from touchflow.errors import (
    DeliveryUnknown,
    FatalError,
    RateLimited,
    RecipientRejected,
    RetryableError,
)
from touchflow.ports import EmailSender, OutboundEmail, OutboundSms, SendResult, SmsSender
from touchflow.store import fastpath, guards
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.db import begin_write
from touchflow.store.enrollments import (
    UPDATE_ENROLLMENT_IF_STATE,
    apply_exit_event,
    enrollment_rows,
    load_views,
    update_enrollments,
)
from touchflow.store.prebuilt import by_dialect, one_of, values_param
from touchflow.store.schema import enrollments, tasks, touches

_log = logging.getLogger(__name__)

QUEUED = "queued"
"""A claimed touch whose message has not gone to a provider yet (it waits for its sub-batch)."""

_TOUCH_INSERT_COLS = (
    "key",
    "enrollment_id",
    "step_id",
    "channel",
    "variant",
    "status",
    "provider_id",
    "message_id",
    "subject",
    "due_at",
    "executed_at",
    "claimed_at",
    "claim_token",
    "sent_at",
    "error",
)
# The claim: a key that already exists is skipped, never overwritten.
_INSERT_TOUCH = {
    name: dialect.insert(touches)
    .values({c: bindparam(c) for c in _TOUCH_INSERT_COLS})
    .on_conflict_do_nothing(index_elements=["key"])
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_UPDATE_TOUCH_RESULT = (
    update(touches)
    .where(touches.c.key == bindparam("b_key"))
    .values(
        status=bindparam("status"),
        provider_id=bindparam("provider_id"),
        sent_at=bindparam("sent_at"),
        error=bindparam("error"),
    )
)


# The claim's writes and reads over a batch's ids, built once per dialect (one_of:
# the id list is one parameter).
@by_dialect
def _claim(dialect: str) -> Any:
    return (
        update(enrollments)
        .where(one_of(enrollments.c.id, "ids", Integer(), dialect))
        .values(claimed_at=bindparam("wall"))
    )


@by_dialect
def _won(dialect: str) -> Any:
    """The touch keys this claim inserted (its token): the others were taken already."""
    return select(touches.c.key).where(
        one_of(touches.c.enrollment_id, "ids", Integer(), dialect),
        touches.c.claim_token == bindparam("token"),
    )


@by_dialect
def _mark_going(dialect: str) -> Any:
    """Queued touches -> ``sending`` while their enrollment still holds this claim."""
    still_claimed = (
        select(enrollments.c.id)
        .where(
            enrollments.c.id == touches.c.enrollment_id,
            enrollments.c.claimed_at == touches.c.claimed_at,
        )
        .exists()
    )
    return (
        update(touches)
        .where(one_of(touches.c.key, "keys", String(), dialect), touches.c.status == QUEUED)
        .where(still_claimed)
        .values(status="sending")
        .returning(touches.c.key)
    )


@by_dialect
def _withdraw(dialect: str) -> Any:
    """Queued touches that will not go: deleted, as they never left."""
    return delete(touches).where(
        one_of(touches.c.key, "keys", String(), dialect), touches.c.status == QUEUED
    )


@dataclass
class TickReport:
    """What one batch (or a whole tick, summed) did."""

    claimed: int = 0
    sent: int = 0
    tasks: int = 0
    skipped_steps: int = 0
    held: int = 0
    deferred: int = 0
    completed: int = 0
    retrying: int = 0
    failed: int = 0
    bounced: int = 0
    unknown: int = 0
    conflicts: int = 0
    suppressed: int = 0  # enrollments ended because the person or domain is suppressed
    skipped_sms: int = 0  # SMS steps skipped: number opted out, or no consent
    no_phone: int = 0  # text and call steps skipped: no number that takes them
    quiet_hours: int = 0  # texts deferred to the recipient's 08:00
    capped: int = 0  # emails deferred by a send cap
    withdrawn: int = 0  # queued messages not sent: a reply, opt-out or pause came first

    def __iadd__(self, other: TickReport) -> TickReport:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class _Pending:
    """A message inserted as ``sending`` (or ``queued``) and waiting for the provider's answer."""

    row: Any  # as claimed; row.state is what an exit event meanwhile would change
    state: str  # where the enrollment is now (a pending one has started)
    decision: Execute
    view: EnrollmentView
    runtime: CadenceRuntime


@dataclass
class _Batch:
    """The rows one claimed batch will write, built while deciding."""

    now: datetime
    wall: datetime
    token: str
    touches: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[_Pending] = field(default_factory=list)

    def update(self, row: Any, **changes: Any) -> None:
        """Write the enrollment back, released, with ``changes`` over its current values."""
        self.updates.append(
            {
                "b_id": row.id,
                "state": row.state,
                "reason": row.reason,
                "step_index": row.step_index,
                "attempt": row.attempt,
                "next_due_at": row.next_due_at,
                "claimed_at": None,
                "last_executed_at": row.last_executed_at,
                "updated_at": self.now,
                **changes,
            }
        )

    def touch(
        self,
        row: Any,
        step_id: str,
        channel: str,
        decision: Execute | None,
        status: str,
        note: str | None = None,
    ) -> None:
        """A ledger row; ``decision`` is None for a skipped step (``note``: why)."""
        self.touches.append(
            {
                "key": decision.touch_key
                if decision
                else touch_key(str(row.id), step_id, row.attempt),
                "enrollment_id": row.id,
                "step_id": step_id,
                "channel": channel,
                "variant": decision.variant if decision else None,
                "status": status,
                "provider_id": None,
                "message_id": decision.message_id if decision else None,
                "subject": decision.subject if decision else None,
                "due_at": row.next_due_at or self.now,
                "executed_at": self.now,
                "claimed_at": self.wall,
                "claim_token": self.token,
                "sent_at": self.wall if status == "sent" else None,
                "error": note,
            }
        )


WallClock = Callable[[], datetime]


def _wall() -> datetime:
    return datetime.now(UTC)


class Ticker:
    """Runs the ledger protocol against one database with one set of senders."""

    def __init__(
        self,
        engine: Engine,
        *,
        email: EmailSender,
        sms: SmsSender | None,
        sender_defaults: SenderInfo | SenderDirectory,
        runtimes: RuntimeCache,
        unsubscribe_mailto: str | None = None,
        lease: timedelta = timedelta(minutes=10),
        wall_clock: WallClock = _wall,
        caps: CapPolicy = NO_CAPS,
        bounce_shield: BounceShield | None = None,
        sms_from: str | None = None,
        record_every: int = 50,
    ) -> None:
        if record_every < 1:
            raise ValueError(f"record_every must be at least 1, got {record_every}")
        self.engine = engine
        self.email = email
        self.sms = sms
        # Who each enrollment sends as: its owner's mailbox, else the stored sender.
        self.senders = SenderDirectory.of(sender_defaults)
        self.runtimes = runtimes
        self.unsubscribe_mailto = unsubscribe_mailto
        self.lease = lease
        self.wall = wall_clock
        self.caps = caps
        self.bounce_shield = bounce_shield
        # The number texts go out from (a Twilio number); else the sender's own phone.
        self.sms_from = sms_from
        # Outcomes are committed every this many messages: a crash leaves at most
        # this many touches `unknown` (the sub-batch that was with the provider).
        self.record_every = record_every
        self._pg = engine.dialect.name == "postgresql"

    def close(self) -> None:
        """Release the senders' connections."""
        try:
            self.email.close()
        finally:
            if self.sms is not None:
                self.sms.close()

    def __enter__(self) -> Ticker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- recovery --------------------------------------------------------------

    def recover(self) -> TickReport:
        """Resolve claims older than the lease left by a crashed worker.

        A ``sending`` touch may or may not have reached the provider: it becomes
        ``unknown`` and its enrollment ``failed(delivery_unknown)``, visible in
        ``status`` and never resent blindly. A ``queued`` touch never reached a
        provider: it is deleted. A claim with no touch in flight is released:
        nothing was sent for it, and the enrollment is due again.
        """
        report = TickReport()
        cutoff = self.wall() - self.lease
        with self.engine.begin() as conn:
            stale = list(
                conn.execute(
                    select(enrollments.c.id, enrollments.c.state).where(
                        enrollments.c.claimed_at.is_not(None), enrollments.c.claimed_at <= cutoff
                    )
                )
            )
            if not stale:
                return report
            ids = [r.id for r in stale]
            in_flight = {
                r.enrollment_id: r.step_id
                for r in conn.execute(
                    select(touches.c.enrollment_id, touches.c.step_id).where(
                        touches.c.enrollment_id.in_(ids), touches.c.status == "sending"
                    )
                )
            }
            now = self.wall()
            unsent = self._queued_slots(conn, ids)
            conn.execute(
                delete(touches).where(touches.c.enrollment_id.in_(ids), touches.c.status == QUEUED)
            )
            conn.execute(
                update(touches)
                .where(touches.c.enrollment_id.in_(ids), touches.c.status == "sending")
                .values(status="unknown", error="worker lost before the provider answered")
            )
            for row in stale:
                if row.id in in_flight:
                    values: dict[str, Any] = {
                        "state": transition(row.state, Event.FAIL).value,
                        "reason": delivery_unknown(in_flight[row.id]),
                        "next_due_at": None,
                    }
                    report.unknown += 1
                else:
                    values = {}
                conn.execute(
                    update(enrollments)
                    .where(enrollments.c.id == row.id)
                    .values(claimed_at=None, updated_at=now, **values)
                )
            # Last, as in _record: the queued emails never went, their cap slots return.
            for tick_now, slots in unsent.items():
                guards.release_send_counts(conn, tick_now, slots)
        return report

    def _queued_slots(self, conn: Any, ids: list[int]) -> dict[datetime, Counter[tuple[str, str]]]:
        """The cap slots the claim took for ``queued`` emails, by the claiming tick's ``now``."""
        if not self.caps.enabled:
            return {}
        queued = conn.execute(
            select(touches.c.enrollment_id, touches.c.executed_at).where(
                touches.c.enrollment_id.in_(ids),
                touches.c.status == QUEUED,
                touches.c.channel == "email",
            )
        ).all()
        if not queued:
            return {}
        rows = {r.id: r for r in enrollment_rows(conn, sorted({q.enrollment_id for q in queued}))}
        views = load_views(conn, list(rows.values()), self.senders)
        slots: dict[datetime, Counter[tuple[str, str]]] = {}
        for q in queued:
            row = rows[q.enrollment_id]
            keys = counted_keys(views[row.id].sender.email.lower(), _domain(row))
            slots.setdefault(q.executed_at, Counter()).update(keys)
        return slots

    def check_bounce_shield(self, now: datetime) -> list[str]:
        """Pause cadences whose bounce rate is over the shield's threshold; returns them."""
        if self.bounce_shield is None:
            return []
        with self.engine.begin() as conn:
            return guards.check_bounce_shield(conn, self.bounce_shield, now)

    # -- one batch -------------------------------------------------------------

    def run(self, now: datetime, limit: int) -> TickReport:
        """A whole tick in-process: recover, then batches until fewer than ``limit`` are due.

        The Prefect flow does the same with one task per batch.
        """
        total = self.recover()
        self.check_bounce_shield(now)
        while True:
            report = self.run_batch(now, limit)
            total += report
            if report.claimed < limit:
                return total

    def run_batch(self, now: datetime, limit: int) -> TickReport:
        """Claim up to ``limit`` due enrollments and run them; ``claimed == 0`` when none.

        The messages go in sub-batches of ``record_every``: each one's outcomes
        are committed (with the next sub-batch marked ``sending``) before the
        next goes to the provider.
        """
        report = TickReport()
        chunk, rest = self._claim_and_prepare(now, limit, report)
        while not chunk and rest:
            # Ledger conflicts took the whole first sub-batch: hand over the next one.
            chunk, rest = rest[: self.record_every], rest[self.record_every :]
            with self.engine.begin() as conn:
                chunk, freed = self._hand_over(conn, chunk, report)
                guards.release_send_counts(conn, now, freed)
        while chunk:
            results = self._send(chunk)
            following, rest = rest[: self.record_every], rest[self.record_every :]
            chunk = self._record(now, chunk, results, report, following)
            while not chunk and rest:  # every following message was withdrawn
                chunk, rest = rest[: self.record_every], rest[self.record_every :]
                with self.engine.begin() as conn:
                    chunk, freed = self._hand_over(conn, chunk, report)
                    guards.release_send_counts(conn, now, freed)
        return report

    def _hand_over(
        self, conn: Any, chunk: list[_Pending], report: TickReport
    ) -> tuple[list[_Pending], Counter[tuple[str, str]]]:
        """Mark the next sub-batch ``sending``: the messages of it that still go, and
        the cap slots of those withdrawn (the caller releases them, last).

        A message waits ``queued`` while the sub-batches before it go out. A
        reply, opt-out, bounce or pause that arrived meanwhile released the
        enrollment's claim: its message is withdrawn (the touch deleted, as it
        never went) instead of sent.
        """
        keys = values_param(conn, [p.decision.touch_key for p in chunk])
        going: set[str] = set(conn.execute(_mark_going(conn), {"keys": keys}).scalars())
        slots: Counter[tuple[str, str]] = Counter()
        if len(going) == len(chunk):
            return chunk, slots
        withdrawn = [p for p in chunk if p.decision.touch_key not in going]
        report.withdrawn += len(withdrawn)
        gone = values_param(conn, [p.decision.touch_key for p in withdrawn])
        conn.execute(_withdraw(conn), {"keys": gone})
        if self.caps.enabled:
            for p in withdrawn:
                if p.decision.channel == "email":
                    slots.update(counted_keys(p.view.sender.email.lower(), _domain(p.row)))
        return [p for p in chunk if p.decision.touch_key in going], slots

    def _claim_and_prepare(
        self, now: datetime, limit: int, report: TickReport
    ) -> tuple[list[_Pending], list[_Pending]]:
        """Claim and insert; the first sub-batch (inserted ``sending``) and the ``queued`` rest."""
        # The write lock from the start on SQLite: what is due and what the caps
        # have left are read and claimed in one step, even across processes.
        with begin_write(self.engine) as conn:
            q = (
                select(enrollments.c.id)
                .where(enrollments.c.next_due_at <= now, enrollments.c.claimed_at.is_(None))
                .order_by(enrollments.c.next_due_at)
                .limit(limit)
            )
            paused = guards.paused_cadences(conn)
            if paused:
                q = q.where(enrollments.c.cadence_id.not_in(sorted(paused)))
            if self._pg:
                q = q.with_for_update(skip_locked=True)
            ids: list[int] = list(conn.execute(q).scalars().all())
            report.claimed = len(ids)
            if not ids:
                return [], []
            rows = enrollment_rows(conn, ids)
            views = load_views(conn, rows, self.senders)
            batch = _Batch(now, self.wall(), secrets.token_hex(8))
            checks = self._checks(conn, rows, views, now)
            for row in rows:
                runtime = self.runtimes.get(conn, row.cadence_version)
                self._plan(batch, row, views[row.id], runtime, report, checks)
            if checks.gate is not None:
                # The reservation: the counts stay locked from their read to this commit.
                guards.add_send_counts(conn, now, checks.gate.admitted)
            # The claim: mark every picked enrollment before anything is inserted.
            id_list = values_param(conn, ids)
            conn.execute(_claim(conn), {"ids": id_list, "wall": batch.wall})
            first = {c.decision.touch_key for c in batch.candidates[: self.record_every]}
            if len(batch.candidates) > len(first):
                for t in batch.touches:
                    if t["status"] == "sending" and t["key"] not in first:
                        t["status"] = QUEUED
            fastpath.executemany(conn, _INSERT_TOUCH[conn.dialect.name], batch.touches)
            won: set[str] = set(
                conn.execute(_won(conn), {"ids": id_list, "token": batch.token}).scalars()
            )
            task_rows = [t for t in batch.tasks if t["touch_key"] in won]
            if task_rows:
                conn.execute(tasks.insert(), task_rows)
            pending: list[_Pending] = []
            for cand in batch.candidates:
                if cand.decision.touch_key in won:
                    pending.append(cand)
                    continue
                # Another worker (or an earlier crashed run) owns this key: never
                # send it a second time; make the enrollment visible instead.
                report.conflicts += 1
                batch.update(
                    cand.row,
                    state=transition(cand.state, Event.FAIL).value,
                    reason="ledger_conflict",
                    next_due_at=None,
                )
            update_enrollments(conn, batch.updates)
        # A prefix of pending (conflicts may have shortened it, even to nothing).
        head = [p for p in pending if p.decision.touch_key in first]
        return head, pending[len(head) :]

    def _checks(
        self, conn: Any, rows: list[Any], views: dict[int, EnrollmentView], now: datetime
    ) -> _Checks:
        """Load what the claim-time guards need for a batch: a few queries, not one per row."""
        domains = {_domain(r) for r in rows}
        supp = guards.suppressed(
            conn,
            (r.email for r in rows),
            {d for r in rows for d in _own_domains(r)},
            (p for r in rows if (p := _phone(r))),
        )
        gate = None
        if self.caps.enabled:
            # Caps are per sending mailbox: the one each enrollment sends from now.
            mailboxes = {v.sender.email.lower() for v in views.values()}
            counts = guards.load_send_counts(conn, now, mailboxes, domains)
            gate = CapGate(self.caps, counts, now)
        return _Checks(supp, gate)

    @staticmethod
    def _plan(
        batch: _Batch,
        row: Any,
        view: EnrollmentView,
        runtime: CadenceRuntime,
        report: TickReport,
        checks: _Checks,
    ) -> None:
        """Decide one claimed enrollment and add its rows to the batch."""
        if row.opted_out_at is not None or row.bounced_at is not None:
            # The prospect opted out or bounced after this enrollment was last
            # planned (a cadence without `bounce` in exit_on kept it): never
            # send to that address again, end it here.
            event, reason = (
                (Event.OPT_OUT, "unsubscribed") if row.opted_out_at else (Event.BOUNCE, "bounced")
            )
            batch.update(
                row, state=transition(row.state, event).value, reason=reason, next_due_at=None
            )
            return
        blocked = checks.suppressed.domains  # usually empty: then no domain to work out
        if row.email in checks.suppressed.emails or (
            blocked and not blocked.isdisjoint(_own_domains(row))
        ):
            # Suppressed since it was enrolled (webhook, another cadence's
            # opt-out, an operator's domain block): honoured from this tick on.
            report.suppressed += 1
            what = "email" if row.email in checks.suppressed.emails else "domain"
            batch.update(
                row,
                state=transition(row.state, Event.OPT_OUT).value,
                reason=f"suppressed:{what}",
                next_due_at=None,
            )
            return
        # A paused enrollment comes due when its pause ends (out of office, an
        # account's reply): it resumes where it was.
        state = row.state
        if state == State.PAUSED.value:
            state = transition(state, Event.RESUME).value
        decision = runtime.decide(view, batch.now)
        for skip in decision.skipped:
            report.skipped_steps += 1
            if skip.reason == NO_PHONE:
                report.no_phone += 1
            channel = runtime.cadence.step(skip.step_id).channel
            batch.touch(row, skip.step_id, channel, None, "skipped", note=skip.reason)
        if isinstance(decision, Defer):
            report.deferred += 1
            batch.update(
                row,
                state=state,
                reason=None,
                step_index=decision.step_index,
                next_due_at=decision.due_at,
            )
        elif isinstance(decision, Complete):
            report.completed += 1
            batch.update(
                row,
                state=transition(state, Event.FINISH).value,
                reason="completed",
                step_index=len(runtime.cadence.steps) - 1,
                next_due_at=None,
            )
        elif isinstance(decision, Hold):
            report.held += 1
            batch.update(
                row,
                state=transition(state, Event.HOLD).value,
                reason=decision.reason,
                step_index=decision.step_index,
                next_due_at=None,
            )
        else:
            step = decision.step
            if (
                step.channel in PHONE_CHANNELS
                and not step.manual
                and _hold_text(batch, row, view, runtime, report, checks, state, decision)
            ):
                return
            if step.channel == "email" and checks.gate is not None:
                refused = checks.gate.admit(view.sender.email.lower(), _domain(row))
                if refused is not None:
                    # Over a cap: wait, visibly, for the slot where the window frees.
                    report.capped += 1
                    batch.update(
                        row,
                        state=state,
                        reason=refused[0],
                        step_index=decision.step_index,
                        next_due_at=refused[1],
                    )
                    return
            if state == State.PENDING.value:
                state = transition(state, Event.START).value
            if step.manual:
                report.tasks += 1
                batch.touch(row, step.id, step.channel, decision, "sent")
                batch.tasks.append(
                    {
                        "touch_key": decision.touch_key,
                        "enrollment_id": row.id,
                        "step_id": step.id,
                        "channel": step.channel,
                        "owner_email": row.owner_email,
                        "title": decision.subject or step.id,
                        "body": decision.body,
                        "status": "open",
                        "due_at": batch.now,
                        "created_at": batch.now,
                    }
                )
                # Waits, unclaimed and not due, until the owner completes the task.
                batch.update(
                    row,
                    state=state,
                    reason=f"waiting_task:{step.id}",
                    step_index=decision.step_index,
                    next_due_at=None,
                    last_executed_at=batch.now,
                )
            else:
                batch.touch(row, step.id, step.channel, decision, "sending")
                # Nothing else to write yet: the enrollment stays claimed, as it
                # is, until the provider answered (_record).
                batch.candidates.append(_Pending(row, state, decision, view, runtime))

    def _send(self, pending: list[_Pending]) -> dict[str, SendResult]:
        emails: list[OutboundEmail] = []
        texts: list[OutboundSms] = []
        for p in pending:
            d = p.decision
            if d.channel == "email":
                emails.append(
                    OutboundEmail(
                        touch_key=d.touch_key,
                        message_id=d.message_id or message_id(d.touch_key, p.view.sender.email),
                        from_addr=p.view.sender.email,
                        from_name=p.view.sender.name,
                        to_addr=p.view.prospect.email,
                        subject=d.subject or "",
                        text=d.body,
                        in_reply_to=d.in_reply_to,
                        references=d.references,
                        list_unsubscribe_url=d.unsubscribe_url,
                        list_unsubscribe_mailto=self.unsubscribe_mailto,
                        categories=(p.runtime.cadence.id, d.step.id),
                    )
                )
            else:
                texts.append(
                    OutboundSms(
                        touch_key=d.touch_key,
                        from_number=self.sms_from or _sender_number(p.view.sender.phone),
                        to_number=p.view.prospect.phone or "",
                        body=d.body,
                    )
                )
        results: dict[str, SendResult] = {}
        if emails:
            for r in self.email.send_batch(emails):
                results[r.touch_key] = r
        if texts:
            if self.sms is None:
                for m in texts:
                    results[m.touch_key] = SendResult(m.touch_key, error=_no_sms())
            else:
                for r in self.sms.send_batch(texts):
                    results[r.touch_key] = r
        return results

    def _record(
        self,
        now: datetime,
        pending: list[_Pending],
        results: dict[str, SendResult],
        report: TickReport,
        following: list[_Pending],
    ) -> list[_Pending]:
        """Record one sub-batch's outcomes and hand ``following`` over: one transaction.

        Returns the messages of ``following`` that go (see :meth:`_hand_over`).
        """
        wall = self.wall()
        touch_updates: list[dict[str, Any]] = []
        enr_updates: list[dict[str, Any]] = []
        exits: list[tuple[_Pending, str]] = []
        # Cap slots taken at the claim by emails that did not go (see below).
        unsent: Counter[tuple[str, str]] = Counter()
        for p in pending:
            d = p.decision
            res = results[d.touch_key]
            if (
                d.channel == "email"
                and self.caps.enabled
                and res.error is not None
                and not isinstance(res.error, DeliveryUnknown | RecipientRejected)
            ):
                # The provider refused the message itself (an error, not a
                # bounce): nothing went out, so it frees its slot. A rejected
                # recipient was an attempt the provider counts (and so does
                # the bounce shield); an unknown one may have been delivered.
                unsent.update(counted_keys(p.view.sender.email.lower(), _domain(p.row)))
            base = {
                "b_key": d.touch_key,
                "provider_id": res.provider_id,
                "sent_at": None,
                "error": None,
            }
            enr = {
                "b_id": p.row.id,
                "b_state": p.row.state,
                "claimed_at": None,
                "updated_at": now,
                "step_index": d.step_index,
            }
            err = res.error
            if err is None:
                report.sent += 1
                touch_updates.append({**base, "status": "sent", "sent_at": wall})
                nxt = p.runtime.after_execution(p.view, d.step_index, now)
                if nxt is None:
                    enr.update(
                        state=transition(p.state, Event.FINISH).value,
                        reason="completed",
                        attempt=1,
                        next_due_at=None,
                        last_executed_at=now,
                    )
                else:
                    enr.update(
                        state=p.state,
                        reason=None,
                        attempt=1,
                        step_index=nxt[0],
                        next_due_at=nxt[1],
                        last_executed_at=now,
                    )
            elif isinstance(err, DeliveryUnknown):
                report.unknown += 1
                touch_updates.append({**base, "status": "unknown", "error": str(err)})
                enr.update(_failed(p, delivery_unknown(d.step.id)))
            elif isinstance(err, RecipientRejected):
                report.bounced += 1
                touch_updates.append({**base, "status": "failed", "error": str(err)})
                kind = "unsubscribe" if err.kind == "opt_out" else "bounce"
                exits.append((p, kind))
                enr = {}
            elif isinstance(err, RetryableError) and p.row.attempt < MAX_ATTEMPTS:
                report.retrying += 1
                touch_updates.append({**base, "status": "failed", "error": str(err)})
                enr.update(
                    state=p.state,
                    # The connector's words: `touchflow status` groups enrollments by them.
                    reason=f"retrying:{str(err)[:180]}",
                    attempt=p.row.attempt + 1,
                    next_due_at=_retry_at(p, err, now),
                    last_executed_at=p.row.last_executed_at,
                )
            else:
                report.failed += 1
                touch_updates.append({**base, "status": "failed", "error": str(err)})
                enr.update(_failed(p, f"send_failed:{str(err)[:150]}"))
            if enr:
                enr_updates.append(enr)
        with self.engine.begin() as conn:
            if touch_updates:
                fastpath.executemany(conn, _UPDATE_TOUCH_RESULT, touch_updates)
            if enr_updates:
                # Guarded by the state we left it in: an exit event that arrived
                # while the message was in flight wins, and is not undone here.
                # (An exit event that won already released the claim itself.)
                fastpath.executemany(conn, UPDATE_ENROLLMENT_IF_STATE, enr_updates)
            going: list[_Pending] = []
            if following:
                going, freed = self._hand_over(conn, following, report)
                unsent.update(freed)
            for p, kind in exits:
                apply_exit_event(
                    conn,
                    self.runtimes,
                    p.row.prospect_id,
                    kind,
                    now,
                    source="send",
                    touch_key=p.decision.touch_key,
                )
                # Release this batch's own claim only: another enrollment of the
                # same prospect may be in flight on another worker. One the exit
                # did not end (its cadence lacks it) ends at its next claim.
                conn.execute(
                    update(enrollments).where(enrollments.c.id == p.row.id).values(claimed_at=None)
                )
            # Last: it locks count rows a concurrent claim may hold while it waits
            # for nothing of ours, so taking them last cannot deadlock.
            guards.release_send_counts(conn, now, unsent)
        return going


def _retry_at(p: _Pending, err: RetryableError, now: datetime) -> datetime:
    """The backoff, or later if the provider asked for a longer wait (Retry-After)."""
    due = p.runtime.retry_due(p.view, now, p.row.attempt)
    if isinstance(err, RateLimited) and err.retry_after:
        due = max(due, now + timedelta(seconds=err.retry_after))
    return due


@dataclass(frozen=True)
class _Checks:
    """A batch's view of the guards: suppressed values and the cap gate."""

    suppressed: guards.Suppressed
    gate: CapGate | None


def _domain(row: Any) -> str:
    return (row.domain or domain_of(row.email)).lower()


def _own_domains(row: Any) -> set[str]:
    return own_domains(row.domain, row.email)


def _phone(row: Any) -> str | None:
    """The prospect's number in E.164 (suppressions are keyed on it), None if unusable."""
    return _e164(row.phone, row.country) if row.phone else None


def _sender_number(phone: str | None) -> str:
    """The sender's own phone as a texts' From number: E.164 (team.yaml keeps it as written)."""
    if not phone:
        return ""
    return _e164(phone, None) or phone


@lru_cache(maxsize=65536)
def _e164(phone: str, country: str | None) -> str | None:
    # Parsing costs ~40 µs; a tick sees the same prospects batch after batch.
    try:
        return to_e164(phone, country)
    except ValueError:
        return None


def _hold_text(
    batch: _Batch,
    row: Any,
    view: EnrollmentView,
    runtime: CadenceRuntime,
    report: TickReport,
    checks: _Checks,
    state: str,
    decision: Execute,
) -> bool:
    """Skip or defer a text that must not go now; True when it was held back.

    A number that texted STOP, or a cadence that `requires: [sms_consent]` for
    a prospect without it: the step is skipped (ledger row ``skipped`` with the
    reason) and the cadence moves on. Outside 08:00-21:00 recipient time: the
    step waits for the next opening.
    """
    why = text_skip_reason(
        runtime.cadence,
        opted_out=_phone(row) in checks.suppressed.phones,
        consented=row.sms_consent_at is not None,
    )
    if why is not None:
        report.skipped_sms += 1
        batch.touch(row, decision.step.id, decision.channel, None, "skipped", note=why)
        nxt = runtime.after_execution(view, decision.step_index, batch.now)
        if state == State.PENDING.value:
            state = transition(state, Event.START).value
        if nxt is None:
            batch.update(
                row,
                state=transition(state, Event.FINISH).value,
                reason="completed",
                step_index=decision.step_index,
                next_due_at=None,
            )
        else:
            batch.update(row, state=state, reason=None, step_index=nxt[0], next_due_at=nxt[1])
        return True
    tz = runtime.contact_timezone(view.prospect)
    if not within_contact_hours(batch.now, tz):
        report.quiet_hours += 1
        batch.update(
            row,
            state=state,
            reason="quiet_hours",
            step_index=decision.step_index,
            next_due_at=next_contact_opening(batch.now, tz),
        )
        return True
    return False


def _failed(p: _Pending, reason: str) -> dict[str, Any]:
    """The enrollment update for a step that could not run: failed, visible, not due."""
    return {
        "state": transition(p.state, Event.FAIL).value,
        "reason": reason,
        "attempt": p.row.attempt,
        "next_due_at": None,
        "last_executed_at": p.row.last_executed_at,
    }


def _no_sms() -> FatalError:
    return FatalError("no SMS sender configured", connector="tick", operation="send_sms")


BatchStep = Callable[[Ticker, datetime, int], dict[str, int]]
RecoverStep = Callable[[Ticker, datetime], dict[str, int]]


def recover_step(
    tk: Ticker, now: datetime, announce: Callable[[str], object] | None = None
) -> dict[str, int]:
    """The start of every tick: settle stale claims, then run the bounce shield.

    Returns the recovery counts. Cadences the shield paused are told to
    ``announce`` (the flow prints to its run log, the CLI to the terminal),
    else logged; ``touchflow status`` and ``touchflow cadence paused`` show them.
    """
    report = tk.recover().as_dict()
    paused = tk.check_bounce_shield(now)
    if paused:
        message = f"bounce shield paused: {', '.join(paused)} (touchflow cadence resume ID)"
        (announce or _log.warning)(message)
    return report


def batch_step(tk: Ticker, now: datetime, limit: int) -> dict[str, int]:
    """Claim, decide, send and record one batch of due enrollments; its counts."""
    return tk.run_batch(now, limit).as_dict()


def tick_until_idle(
    tk: Ticker,
    now: datetime,
    batch_size: int,
    *,
    recover: RecoverStep = recover_step,
    run_batch: BatchStep = batch_step,
) -> TickReport:
    """One whole tick: recover, then batch after batch until nothing is due at ``now``.

    The CLI calls this as it is; the ``run_cadences`` flow passes its
    Prefect-task versions of ``recover`` and ``run_batch`` so each batch is one
    task run (never one per touch).
    """
    total = TickReport()
    total.unknown += recover(tk, now)["unknown"]
    while True:
        report = TickReport(**run_batch(tk, now, batch_size))
        total += report
        if report.claimed < batch_size:
            return total
