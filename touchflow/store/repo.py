"""Repositories: prospects, cadence versions, enrollments, exit events, tasks, status.

Functions take a SQLAlchemy ``Connection`` inside the caller's transaction, so
a CLI command or a flow decides what is atomic. Time comes in as ``now``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, bindparam, func, select, update

from touchflow.domain.batching import chunks
from touchflow.domain.cadence import Cadence, load_cadence_source
from touchflow.domain.compliance import own_domains
from touchflow.domain.engine import (
    CadenceRuntime,
    EnrollmentView,
    ExecutedStep,
    SenderInfo,
    enrollment_key,
)
from touchflow.domain.enrollment import EXIT_EVENTS, OPEN, Event, State, transition
from touchflow.domain.phones import e164_or_raw
from touchflow.domain.prospects import STANDARD_FIELDS, Prospect
from touchflow.domain.unsubscribe import DEV_UNSUBSCRIBE_SECRET
from touchflow.errors import TouchflowError
from touchflow.store import fastpath
from touchflow.store.prebuilt import Insert, insert_for, per_dialect
from touchflow.store.schema import (
    cadence_versions,
    enrollments,
    events,
    prospects,
    suppressions,
    tasks,
    touches,
)

TASK_OUTCOMES = (
    "completed",
    "skipped",
    "connected",
    "voicemail",
    "no_answer",
    "wrong_number",
    "meeting_booked",
    "not_interested",
)


def dialect_insert(conn: Connection, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` on SQLite and PostgreSQL."""
    return insert_for(conn)(table)


# -- prospects ---------------------------------------------------------------

# Every standard column but the key (email), which identifies the row.
_PROSPECT_COLS = tuple(f for f in STANDARD_FIELDS if f != "email")


def upsert_prospects(conn: Connection, items: Sequence[Prospect], now: datetime) -> tuple[int, int]:
    """Insert new prospects and update changed ones (by email). Returns (inserted, updated).

    A re-import that changes nothing writes nothing, so importing the same file
    twice is a no-op.
    """
    if not items:
        return 0, 0
    emails = [p.email for p in items]
    existing: dict[str, Row[Any]] = {}
    for chunk in chunks(emails):
        for row in conn.execute(select(prospects).where(prospects.c.email.in_(chunk))):
            existing[row.email] = row
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for p in items:
        if p.email in seen:
            continue
        seen.add(p.email)
        values = {c: getattr(p, c) for c in _PROSPECT_COLS}
        values["fields"] = p.fields
        old = existing.get(p.email)
        if old is None:
            new_rows.append({"email": p.email, **values, "created_at": now, "updated_at": now})
        elif any(getattr(old, k) != v for k, v in values.items()):
            changed.append({"b_id": old.id, **values, "updated_at": now})
    if new_rows:
        conn.execute(prospects.insert(), new_rows)
    if changed:
        conn.execute(
            update(prospects)
            .where(prospects.c.id == bindparam("b_id"))
            .values({c: bindparam(c) for c in (*_PROSPECT_COLS, "fields", "updated_at")}),
            changed,
        )
        # A held enrollment (missing data) gets another chance once its data changed.
        ids = [c["b_id"] for c in changed]
        conn.execute(
            update(enrollments)
            .where(
                enrollments.c.prospect_id.in_(ids),
                enrollments.c.state == State.PENDING.value,
                enrollments.c.reason.like("missing_data:%"),
            )
            .values(reason=None, next_due_at=now, updated_at=now)
        )
    _record_sms_consent(conn, items, now)
    return len(new_rows), len(changed)


_YES = frozenset({"1", "true", "yes", "y", "opt-in", "opted_in"})
_NO = frozenset({"0", "false", "no", "n", "opt-out", "opted_out"})


def _record_sms_consent(conn: Connection, items: Sequence[Prospect], now: datetime) -> None:
    """An ``sms_consent`` column (yes/no) records or withdraws consent to texts.

    The first "yes" stamps ``sms_consent_at``; re-importing it keeps that
    time; an explicit "no" withdraws it.
    """
    given = [p.email for p in items if p.fields.get("sms_consent", "").strip().lower() in _YES]
    withdrawn = [p.email for p in items if p.fields.get("sms_consent", "").strip().lower() in _NO]
    for chunk in chunks(given):
        conn.execute(
            update(prospects)
            .where(prospects.c.email.in_(chunk), prospects.c.sms_consent_at.is_(None))
            .values(sms_consent_at=now)
        )
    for chunk in chunks(withdrawn):
        conn.execute(
            update(prospects)
            .where(prospects.c.email.in_(chunk), prospects.c.sms_consent_at.is_not(None))
            .values(sms_consent_at=None)
        )


def prospect_from_row(row: Any) -> Prospect:
    """Build a :class:`Prospect` from a row that has the prospect columns."""
    return Prospect(
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        title=row.title,
        company=row.company,
        domain=row.domain,
        phone=row.phone,
        country=row.country,
        timezone=row.timezone,
        fields=dict(row.fields or {}),
    )


def find_prospect_id(conn: Connection, email: str) -> int | None:
    return conn.execute(select(prospects.c.id).where(prospects.c.email == email)).scalar()


# -- cadence versions --------------------------------------------------------


def save_cadence_version(conn: Connection, cadence: Cadence, now: datetime) -> str:
    """Store the cadence's YAML and templates under its content hash (idempotent)."""
    stmt = dialect_insert(conn, cadence_versions).values(
        version=cadence.version,
        cadence_id=cadence.id,
        yaml_text=cadence.yaml_text,
        source_path=cadence.source_path,
        templates=dict(cadence.templates),
        created_at=now,
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["version"]))
    return cadence.version


class RuntimeCache:
    """Cadence runtimes by version, rebuilt from the stored snapshot (pinned versions)."""

    def __init__(
        self,
        public_url: str,
        unsubscribe_secret: str = DEV_UNSUBSCRIBE_SECRET,
        sender_defaults: SenderInfo | None = None,
    ) -> None:
        self.public_url = public_url
        self.unsubscribe_secret = unsubscribe_secret
        # For work outside a tick that computes due times (reconciliation).
        self.sender_defaults = sender_defaults
        self._by_version: dict[str, CadenceRuntime] = {}

    def add(self, cadence: Cadence) -> CadenceRuntime:
        runtime = self._by_version.get(cadence.version)
        if runtime is None:
            runtime = CadenceRuntime(
                cadence, public_url=self.public_url, unsubscribe_secret=self.unsubscribe_secret
            )
            self._by_version[cadence.version] = runtime
        return runtime

    def get(self, conn: Connection, version: str) -> CadenceRuntime:
        runtime = self._by_version.get(version)
        if runtime is None:
            row = conn.execute(
                select(cadence_versions).where(cadence_versions.c.version == version)
            ).one()
            cadence = load_cadence_source(row.yaml_text, row.source_path, row.templates)
            runtime = self.add(cadence)
            # Keep the stored key even if the loader's hash ever changes.
            self._by_version[version] = runtime
        return runtime


# -- enrollments -------------------------------------------------------------


@dataclass(frozen=True)
class EnrollResult:
    enrolled: int
    already: int
    suppressed: int
    outside_audience: int = 0  # refused by the cadence's `audience:` (score, grade)


def sender_from_row(row: Any, defaults: SenderInfo) -> SenderInfo:
    """The enrollment's sender: its mailbox and name, the rest from the defaults."""
    return replace(defaults, email=row.sender_email, name=row.sender_name or defaults.name)


def enroll(
    conn: Connection,
    runtime: CadenceRuntime,
    prospect_ids: Sequence[int] | None,
    *,
    owner_email: str,
    sender: SenderInfo,
    now: datetime,
    save_version: bool = True,
) -> EnrollResult:
    """Enroll prospects (all when ``prospect_ids`` is None) in a cadence.

    Opted-out, bounced and suppressed prospects are refused, and so are those
    outside the cadence's ``audience`` (minimum ICP score, grades, lifecycle);
    a prospect already enrolled in this cadence is left as it is.
    ``save_version=False``: the caller already stored this cadence version
    (:func:`save_cadence_version`), as the API does once per process.
    """
    cadence = runtime.cadence
    if save_version:
        save_cadence_version(conn, cadence, now)
    q = select(prospects)
    candidates: list[Any] | None = None
    if prospect_ids is not None and len(prospect_ids) <= 900:
        # A few prospects (an inbound lead): look up only theirs, not the whole base,
        # with statements built once (see store.prebuilt).
        ids = list(prospect_ids)
        candidates = list(conn.execute(_FEW_PROSPECTS, {"ids": ids}))
        values = {r.email for r in candidates}
        values.update(d for r in candidates for d in own_domains(r.domain, r.email))
        enrolled_rows = conn.execute(_FEW_ENROLLED, {"cadence": cadence.id, "ids": ids})
        suppressed_rows = conn.execute(_FEW_SUPPRESSED, {"values": sorted(values)})
    else:
        if prospect_ids is not None:
            q = q.where(prospects.c.id.in_(list(prospect_ids)))
        enrolled_rows = conn.execute(
            select(enrollments.c.prospect_id).where(enrollments.c.cadence_id == cadence.id)
        )
        suppressed_rows = conn.execute(
            select(suppressions.c.kind, suppressions.c.value).where(
                suppressions.c.kind.in_(("email", "domain"))
            )
        )
    already_ids: set[int] = set(enrolled_rows.scalars())
    suppressed_emails: set[str] = set()
    suppressed_domains: set[str] = set()
    # Rows unpack as `object` to mypy: SQLAlchemy cannot type untyped Table columns.
    for kind, value in cast("Iterable[tuple[str, str]]", suppressed_rows):
        (suppressed_emails if kind == "email" else suppressed_domains).add(value)
    rows: list[dict[str, Any]] = []
    already = refused = outside = 0
    audience = cadence.audience
    for row in candidates if candidates is not None else conn.execute(q):
        if row.id in already_ids:
            already += 1
            continue
        if (
            row.opted_out_at is not None
            or row.bounced_at is not None
            or row.email in suppressed_emails
            or not suppressed_domains.isdisjoint(own_domains(row.domain, row.email))
        ):
            refused += 1
            continue
        if audience.refuses(row.score, row.grade, row.lifecycle) is not None:
            outside += 1
            continue
        prospect = prospect_from_row(row)
        view = EnrollmentView(enrollment_key(cadence.id, prospect.email), "", prospect, sender)
        rows.append(
            {
                "prospect_id": row.id,
                "cadence_id": cadence.id,
                "cadence_version": cadence.version,
                "state": State.PENDING.value,
                "reason": None,
                "step_index": 0,
                "attempt": 1,
                "next_due_at": runtime.first_due(view, now),
                "owner_email": owner_email,
                "sender_email": sender.email,
                "sender_name": sender.name,
                "enrolled_at": now,
                "updated_at": now,
            }
        )
    for chunk in chunks(rows, 5000):
        conn.execute(_insert_enrollments(conn), chunk)
    return EnrollResult(len(rows), already, refused, outside)


_FEW_PROSPECTS = select(prospects).where(prospects.c.id.in_(bindparam("ids", expanding=True)))
_FEW_ENROLLED = select(enrollments.c.prospect_id).where(
    enrollments.c.cadence_id == bindparam("cadence"),
    enrollments.c.prospect_id.in_(bindparam("ids", expanding=True)),
)
_FEW_SUPPRESSED = select(suppressions.c.kind, suppressions.c.value).where(
    suppressions.c.kind.in_(("email", "domain")),
    suppressions.c.value.in_(bindparam("values", expanding=True)),
)


@per_dialect
def _insert_enrollments(insert: Insert) -> Any:
    return insert(enrollments).on_conflict_do_nothing(index_elements=["prospect_id", "cadence_id"])


def load_views(
    conn: Connection,
    rows: Sequence[Any],
    defaults: SenderInfo,
) -> dict[int, EnrollmentView]:
    """Build engine views for enrollment rows (joined with their prospect columns).

    Loads the executed steps and their engagement events in two queries for the
    whole batch, never one per enrollment.
    """
    views: dict[int, EnrollmentView] = {}
    for row in rows:
        views[row.id] = EnrollmentView(
            key=enrollment_key(row.cadence_id, row.email),
            touch_prefix=str(row.id),
            prospect=prospect_from_row(row),
            sender=sender_from_row(row, defaults),
            step_index=row.step_index,
            attempt=row.attempt,
        )
    if not views:
        return views
    ids = list(views)
    by_key: dict[str, ExecutedStep] = {}
    for t in conn.execute(
        select(
            touches.c.key,
            touches.c.enrollment_id,
            touches.c.step_id,
            touches.c.status,
            touches.c.message_id,
            touches.c.subject,
            touches.c.executed_at,
        ).where(touches.c.enrollment_id.in_(ids), touches.c.status.in_(("sent", "skipped")))
    ):
        done = ExecutedStep(
            t.step_id,
            t.executed_at,
            t.message_id,
            t.subject,
            events={"skipped"} if t.status == "skipped" else {"sent"},
        )
        views[t.enrollment_id].executed[t.step_id] = done
        by_key[t.key] = done
    if by_key:
        for ev in conn.execute(
            select(events.c.touch_key, events.c.type).where(
                events.c.enrollment_id.in_(ids), events.c.touch_key.is_not(None)
            )
        ):
            hit = by_key.get(ev.touch_key)
            if hit is not None:
                hit.events.add(ev.type)
    return views


# Every enrollment column but the bookkeeping timestamps, which the tick never
# reads: each datetime costs a conversion per row, 1,000 rows a batch.
_ENROLLMENT_WORK_COLS = tuple(
    c.name for c in enrollments.columns if c.name not in ("enrolled_at", "updated_at", "claimed_at")
)


def enrollment_rows(conn: Connection, ids: Sequence[int]) -> list[Any]:
    """Enrollment rows joined with their prospect's columns (what the engine needs)."""
    q = (
        select(
            *(enrollments.c[c] for c in _ENROLLMENT_WORK_COLS),
            prospects.c.email,
            *(prospects.c[c] for c in (*_PROSPECT_COLS, "fields")),
            prospects.c.opted_out_at,
            prospects.c.bounced_at,
            prospects.c.sms_consent_at,
        )
        .join(prospects, prospects.c.id == enrollments.c.prospect_id)
        .where(enrollments.c.id.in_(list(ids)))
    )
    return list(conn.execute(q))


# -- exit events -------------------------------------------------------------


@dataclass(frozen=True)
class ExitResult:
    ended: int
    kept: int


def apply_exit_event(
    conn: Connection,
    runtimes: RuntimeCache,
    prospect_id: int,
    kind: str,
    at: datetime,
    *,
    source: str,
    touch_key: str | None = None,
    provider_event_id: str | None = None,
    record: bool = True,
) -> ExitResult:
    """Record a reply, bounce, unsubscribe or meeting and end the prospect's enrollments.

    Unsubscribe ends every open enrollment on every cadence, for good (the
    prospect is suppressed). The others end each enrollment whose cadence lists
    them in ``exit_on``; the rest keep going. ``record=False`` when the caller
    already stored the event row (webhook ingestion deduplicates on it).
    """
    if kind not in EXIT_EVENTS:
        raise TouchflowError(f"unknown exit event {kind!r}; expected one of {list(EXIT_EVENTS)}")
    event, reason = EXIT_EVENTS[kind]
    email: str | None = None
    if kind in ("unsubscribe", "bounce"):  # the address gets suppressed: it must exist
        email = conn.execute(
            select(prospects.c.email).where(prospects.c.id == prospect_id)
        ).scalar()
        if email is None:
            raise TouchflowError(f"no prospect {prospect_id}: nothing to {kind}")
    rows = list(
        conn.execute(
            select(enrollments.c.id, enrollments.c.state, enrollments.c.cadence_version).where(
                enrollments.c.prospect_id == prospect_id,
                enrollments.c.state.in_([s.value for s in OPEN]),
            )
        )
    )
    if touch_key is None:
        touch_key = conn.execute(
            select(touches.c.key)
            .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
            .where(
                enrollments.c.prospect_id == prospect_id,
                touches.c.channel == "email",
                touches.c.status == "sent",
            )
            .order_by(touches.c.executed_at.desc())
            .limit(1)
        ).scalar()
    enrollment_of_touch = (
        conn.execute(select(touches.c.enrollment_id).where(touches.c.key == touch_key)).scalar()
        if touch_key
        else None
    )
    if record:
        conn.execute(
            events.insert().values(
                prospect_id=prospect_id,
                enrollment_id=enrollment_of_touch,
                touch_key=touch_key,
                type="replied" if kind == "reply" else kind,
                occurred_at=at,
                source=source,
                provider_event_id=provider_event_id,
                created_at=at,
            )
        )
    ended: list[int] = []
    kept = 0
    for row in rows:
        exit_on = runtimes.get(conn, row.cadence_version).cadence.exit_on
        if kind != "unsubscribe" and kind not in exit_on:
            kept += 1
            continue
        if row.state == State.FAILED.value and event != Event.OPT_OUT:
            # A failed enrollment is already stopped; only an opt-out changes it.
            kept += 1
            continue
        new_state = transition(row.state, event)
        conn.execute(
            update(enrollments)
            .where(enrollments.c.id == row.id)
            .values(
                state=new_state.value,
                reason=reason,
                next_due_at=None,
                claimed_at=None,
                updated_at=at,
            )
        )
        ended.append(row.id)
    _close_open_tasks(conn, ended, at, note=f"enrollment ended: {reason}")
    if email is not None:
        col = "opted_out_at" if kind == "unsubscribe" else "bounced_at"
        conn.execute(update(prospects).where(prospects.c.id == prospect_id).values({col: at}))
        add_suppression(conn, "email", email, reason=reason, source=source, now=at)
    return ExitResult(len(ended), kept)


def add_suppression(
    conn: Connection, kind: str, value: str, *, reason: str, source: str, now: datetime
) -> None:
    """Suppress an email, phone or domain (idempotent: the first reason stays).

    Emails and domains are stored lower-case, phones as given (E.164).
    """
    stmt = dialect_insert(conn, suppressions).values(
        kind=kind, value=value.lower(), reason=reason, source=source, created_at=now
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["kind", "value"]))


def _close_open_tasks(conn: Connection, enrollment_ids: list[int], at: datetime, note: str) -> None:
    """Skip the open tasks of enrollments that just ended: nobody should call them now."""
    if not enrollment_ids:
        return
    conn.execute(
        update(tasks)
        .where(tasks.c.enrollment_id.in_(enrollment_ids), tasks.c.status == "open")
        .values(status="skipped", outcome="enrollment_ended", notes=note, completed_at=at)
    )


# -- tasks -------------------------------------------------------------------


def list_tasks(conn: Connection, *, owner: str | None = None, status: str = "open") -> list[Any]:
    q = (
        select(tasks, prospects.c.email)
        .join(enrollments, enrollments.c.id == tasks.c.enrollment_id)
        .join(prospects, prospects.c.id == enrollments.c.prospect_id)
        .order_by(tasks.c.due_at, tasks.c.id)
    )
    if status != "all":
        q = q.where(tasks.c.status == status)
    if owner:
        q = q.where(tasks.c.owner_email == owner)
    return list(conn.execute(q))


def complete_tasks(
    conn: Connection,
    runtimes: RuntimeCache,
    defaults: SenderInfo,
    task_ids: Sequence[int],
    *,
    outcome: str,
    at: datetime,
    notes: str | None = None,
) -> int:
    """Complete (or skip) open tasks and move their enrollments on; returns how many.

    ``meeting_booked`` ends the prospect's enrollments like the exit event;
    ``not_interested`` finishes this enrollment; every other outcome advances it
    to the next step, timed from ``at`` (the task's completion).
    """
    if outcome not in TASK_OUTCOMES:
        raise TouchflowError(f"unknown outcome {outcome!r}; expected one of {list(TASK_OUTCOMES)}")
    rows = list(
        conn.execute(select(tasks).where(tasks.c.id.in_(list(task_ids)), tasks.c.status == "open"))
    )
    if not rows:
        return 0
    status = "skipped" if outcome == "skipped" else "done"
    conn.execute(
        update(tasks)
        .where(tasks.c.id.in_([r.id for r in rows]))
        .values(status=status, outcome=outcome, notes=notes, completed_at=at)
    )
    enr = {r.id: r for r in enrollment_rows(conn, [t.enrollment_id for t in rows])}
    views = load_views(conn, list(enr.values()), defaults)
    updates: list[dict[str, Any]] = []
    for task in rows:
        conn.execute(
            events.insert().values(
                prospect_id=enr[task.enrollment_id].prospect_id,
                enrollment_id=task.enrollment_id,
                touch_key=task.touch_key,
                type="skipped" if status == "skipped" else "completed",
                occurred_at=at,
                source="task",
                payload={"outcome": outcome},
                created_at=at,
            )
        )
        row = enr[task.enrollment_id]
        if outcome == "wrong_number" and row.phone:
            # Never text or call that number again for this prospect (or anyone).
            add_suppression(
                conn,
                "phone",
                e164_or_raw(row.phone, row.country),
                reason="wrong_number",
                source="task",
                now=at,
            )
        if row.state != State.ACTIVE.value or not (row.reason or "").startswith("waiting_task"):
            continue  # ended meanwhile (reply, opt-out): nothing to advance
        if outcome == "meeting_booked":
            apply_exit_event(
                conn,
                runtimes,
                row.prospect_id,
                "meeting_booked",
                at,
                source="task",
                touch_key=task.touch_key,
            )
            continue
        runtime = runtimes.get(conn, row.cadence_version)
        base = {
            "b_id": row.id,
            "attempt": 1,
            "claimed_at": None,
            "last_executed_at": at,
            "updated_at": at,
        }
        nxt = (
            None
            if outcome == "not_interested"
            else runtime.after_execution(views[row.id], row.step_index, at)
        )
        if nxt is None:
            reason = "not_interested" if outcome == "not_interested" else "completed"
            updates.append(
                {
                    **base,
                    "state": transition(row.state, Event.FINISH).value,
                    "reason": reason,
                    "step_index": row.step_index,
                    "next_due_at": None,
                }
            )
        else:
            updates.append(
                {
                    **base,
                    "state": transition(row.state, Event.ADVANCE).value,
                    "reason": None,
                    "step_index": nxt[0],
                    "next_due_at": nxt[1],
                }
            )
    update_enrollments(conn, updates)
    return len(rows)


ENROLLMENT_UPDATE_COLS = (
    "state",
    "reason",
    "step_index",
    "attempt",
    "next_due_at",
    "claimed_at",
    "last_executed_at",
    "updated_at",
)
UPDATE_ENROLLMENT = (
    update(enrollments)
    .where(enrollments.c.id == bindparam("b_id"))
    .values({c: bindparam(c) for c in ENROLLMENT_UPDATE_COLS})
)
#: The same, only if the enrollment is still in ``b_state``: an exit event that
#: arrived meanwhile (reply during a send) wins and is not undone.
UPDATE_ENROLLMENT_IF_STATE = (
    update(enrollments)
    .where(enrollments.c.id == bindparam("b_id"), enrollments.c.state == bindparam("b_state"))
    .values({c: bindparam(c) for c in ENROLLMENT_UPDATE_COLS})
)


def update_enrollments(conn: Connection, updates: list[dict[str, Any]]) -> None:
    """Write full enrollment updates (executemany); each dict has ``b_id`` and every column."""
    fastpath.executemany(conn, UPDATE_ENROLLMENT, updates)


def retry_enrollments(conn: Connection, ids: Sequence[int] | None, now: datetime) -> int:
    """Put failed enrollments (all when ``ids`` is None) back in the queue; returns how many.

    For a ``delivery_unknown`` failure this is the operator saying "it did not
    arrive": the step runs again under the next attempt's key, so the
    ``unknown`` touch stays in the ledger as it was.
    """
    q = select(enrollments.c.id, enrollments.c.state, enrollments.c.attempt).where(
        enrollments.c.state == State.FAILED.value
    )
    if ids is not None:
        q = q.where(enrollments.c.id.in_(list(ids)))
    rows = list(conn.execute(q))
    for row in rows:
        conn.execute(
            update(enrollments)
            .where(enrollments.c.id == row.id)
            .values(
                state=transition(row.state, Event.RETRY).value,
                reason=None,
                attempt=row.attempt + 1,
                next_due_at=now,
                claimed_at=None,
                updated_at=now,
            )
        )
    return len(rows)


def reconcile_delivered(
    conn: Connection, runtimes: RuntimeCache, touch_keys: Iterable[str], now: datetime
) -> int:
    """Touches marked ``unknown`` that the provider says it accepted become ``sent``.

    A timeout after the request went out leaves a touch ``unknown`` and its
    enrollment ``failed(delivery_unknown:...)``; a later provider event for
    that touch (processed, delivered, opened, a bounce) proves the message
    was accepted, so the touch counts as sent and the enrollment moves on to
    its next step, timed from when the touch was executed. Returns how many.
    """
    keys = sorted(set(touch_keys))
    found: list[Any] = []
    for chunk in chunks(keys):
        found += conn.execute(
            select(
                touches.c.key, touches.c.enrollment_id, touches.c.step_id, touches.c.executed_at
            ).where(touches.c.key.in_(chunk), touches.c.status == "unknown")
        ).all()
    if not found:
        return 0
    conn.execute(
        update(touches)
        .where(touches.c.key.in_([t.key for t in found]), touches.c.status == "unknown")
        .values(status="sent", sent_at=now, error="reconciled: provider reported the message")
    )
    touched = {t.enrollment_id: t for t in found}
    rows = [
        r
        for r in enrollment_rows(conn, list(touched))
        if r.state == State.FAILED.value and r.reason == f"delivery_unknown:{touched[r.id].step_id}"
    ]
    views = load_views(conn, rows, runtimes.sender_defaults or SenderInfo(email=""))
    updates: list[dict[str, Any]] = []
    for row in rows:
        runtime = runtimes.get(conn, row.cadence_version)
        executed_at = touched[row.id].executed_at
        ids = [st.id for st in runtime.cadence.steps]
        index = ids.index(touched[row.id].step_id)  # the step that went out
        nxt = runtime.after_execution(views[row.id], index, executed_at)
        base = {"b_id": row.id, "attempt": 1, "claimed_at": None, "updated_at": now}
        resumed = transition(row.state, Event.RETRY)
        if nxt is None:
            updates.append(
                {
                    **base,
                    "state": transition(resumed, Event.FINISH).value,
                    "reason": "completed",
                    "step_index": index,
                    "next_due_at": None,
                    "last_executed_at": executed_at,
                }
            )
        else:
            updates.append(
                {
                    **base,
                    "state": resumed.value,
                    "reason": None,
                    "step_index": nxt[0],
                    "next_due_at": max(nxt[1], now),
                    "last_executed_at": executed_at,
                }
            )
    update_enrollments(conn, updates)
    return len(found)


# -- status ------------------------------------------------------------------


@dataclass
class StatusReport:
    enrollments_by_state: Counter[tuple[str, str, str]]  # (cadence, state, reason)
    active_by_step: Counter[tuple[str, str]]  # (cadence, step id)
    touches_by_status: Counter[tuple[str, str]]  # (channel, status)
    open_tasks: int
    next_due_at: datetime | None


def status(conn: Connection, runtimes: RuntimeCache) -> StatusReport:
    """Counts for ``touchflow status``: enrollments by state and step, touches by status."""
    by_state: Counter[tuple[str, str, str]] = Counter()
    # Rows unpack as `object` to mypy: SQLAlchemy cannot type untyped Table columns.
    for cid, state, reason, n in cast(
        "Iterable[tuple[str, str, str | None, int]]",
        conn.execute(
            select(
                enrollments.c.cadence_id, enrollments.c.state, enrollments.c.reason, func.count()
            ).group_by(enrollments.c.cadence_id, enrollments.c.state, enrollments.c.reason)
        ),
    ):
        # "missing_data:prospect.title" is one reason per field; keep the field.
        by_state[(cid, state, reason or "")] += n
    by_step: Counter[tuple[str, str]] = Counter()
    for cid, version, idx, n in cast(
        "Iterable[tuple[str, str, int, int]]",
        conn.execute(
            select(
                enrollments.c.cadence_id,
                enrollments.c.cadence_version,
                enrollments.c.step_index,
                func.count(),
            )
            .where(enrollments.c.state.in_([s.value for s in OPEN]))
            .group_by(
                enrollments.c.cadence_id, enrollments.c.cadence_version, enrollments.c.step_index
            )
        ),
    ):
        steps = runtimes.get(conn, version).cadence.steps
        by_step[(cid, steps[idx].id if idx < len(steps) else "(end)")] += n
    by_touch: Counter[tuple[str, str]] = Counter()
    for channel, st, n in cast(
        "Iterable[tuple[str, str, int]]",
        conn.execute(
            select(touches.c.channel, touches.c.status, func.count()).group_by(
                touches.c.channel, touches.c.status
            )
        ),
    ):
        by_touch[(channel, st)] += n
    open_tasks = conn.execute(
        select(func.count()).select_from(tasks).where(tasks.c.status == "open")
    ).scalar_one()
    next_due = conn.execute(
        select(func.min(enrollments.c.next_due_at)).where(enrollments.c.claimed_at.is_(None))
    ).scalar()
    return StatusReport(by_state, by_step, by_touch, open_tasks, next_due)


# -- helpers -----------------------------------------------------------------

