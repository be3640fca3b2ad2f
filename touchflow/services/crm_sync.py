"""Keeping the CRM in sync: a transactional outbox of pushes, and a pull of CRM changes.

Pushes are queued in ``crm_outbox`` in the same transaction as the change
that causes them (a routed lead, a sent touch, a call outcome), then drained
by :func:`drain_outbox`: a CRM that is down, rate-limited or slow only delays
them (retry with backoff, ``Retry-After`` honoured); nothing is lost, and
because every push is an upsert keyed on email or domain, or an activity
keyed on the touch key, a push retried after a crash does not duplicate.

:func:`pull_changes` reads what happened in the CRM since the last pull
(meetings booked, deals created, owners changed) and steers cadences: a
meeting or a deal ends the person's enrollments, an owner change hands them
to the new owner and pauses them for a few days.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, select, update

from touchflow.domain.crm import CrmActivity, CrmCompany, CrmOwner, CrmPerson, check_owners
from touchflow.domain.enrollment import Event, State, transition
from touchflow.domain.routing.team import TeamConfig
from touchflow.errors import FatalError, RateLimited, RetryableError, TouchflowError
from touchflow.ports import CrmConnector
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.enrollments import apply_exit_event
from touchflow.store.prebuilt import Insert, dialect_insert, per_dialect
from touchflow.store.schema import (
    accounts,
    call_summaries,
    crm_cursors,
    crm_links,
    crm_outbox,
    enrollments,
    events,
    prospects,
    route_assignments,
    tasks,
    touches,
)

PUSH_LEAD = "push_lead"
LOG_ACTIVITY = "log_activity"
#: A call's after-call summary as the call activity (key: the call sid).
LOG_CALL_SUMMARY = "log_call_summary"
BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- queueing ----------------------------------------------------------------------


def queue(conn: Connection, crm: str, operation: str, key: str, now: datetime,
          payload: Mapping[str, Any] | None = None, *,
          due: datetime | None = None) -> None:  # fmt: skip
    """Queue a push (idempotent per crm, operation and key), due at ``due`` (default ``now``).

    Queuing a key that is already done makes it pending again: the record
    changed since (a new score, a new owner), and the push is an upsert.
    """
    row = {"crm": crm, "operation": operation, "key": key, "payload": dict(payload or {}),
           "status": "pending", "attempts": 0, "next_attempt_at": due or now,
           "created_at": now}  # fmt: skip
    conn.execute(_queue(conn), row)


@per_dialect
def _queue(insert: Insert) -> Any:
    stmt = insert(crm_outbox)
    return stmt.on_conflict_do_update(
        index_elements=["crm", "operation", "key"],
        set_={
            "status": "pending",
            "next_attempt_at": stmt.excluded.next_attempt_at,
            "attempts": 0,
            "last_error": None,
        },
    )


def queue_lead(conn: Connection, crm: str, email: str, now: datetime, *,
               hold: timedelta | None = None) -> None:  # fmt: skip
    """Push this person (and their company, association and owner) to the CRM.

    ``hold``: the caller pushes the lead itself right after its commit
    (:func:`push_leads_now`), so the drain leaves the row alone for that long
    and only pushes it if that push never finished (a crash, a CRM outage).
    """
    queue(conn, crm, PUSH_LEAD, email, now, due=now + hold if hold else None)


def queue_activities(conn: Connection, crm: str, touch_keys: Sequence[str], now: datetime) -> None:
    """Log these touches (sent messages, completed tasks) on the person's CRM timeline."""
    for key in touch_keys:
        queue(conn, crm, LOG_ACTIVITY, key, now)


def queue_new_activities(conn: Connection, crm: str, now: datetime, *,
                         window: timedelta = timedelta(days=7)) -> int:  # fmt: skip
    """Queue every touch of the last ``window`` not yet queued: sent messages, done tasks.

    A task's activity waits until the SDR completed it, so the CRM gets the
    call's outcome and notes. One anti-join query; returns how many were queued.
    """
    since = now - window
    queued = select(crm_outbox.c.key).where(
        crm_outbox.c.crm == crm, crm_outbox.c.operation == LOG_ACTIVITY
    )
    q = (
        select(touches.c.key)
        .outerjoin(tasks, tasks.c.touch_key == touches.c.key)
        .where(
            touches.c.executed_at >= since,
            touches.c.status == "sent",
            (tasks.c.id.is_(None)) | (tasks.c.status == "done"),
            touches.c.key.not_in(queued),
        )
    )
    return _queue_new(conn, crm, LOG_ACTIVITY, list(conn.execute(q).scalars()), now)


def queue_new_call_summaries(conn: Connection, crm: str, now: datetime, *,
                             window: timedelta = timedelta(days=7)) -> int:  # fmt: skip
    """Queue every after-call summary of the last ``window`` not yet queued; how many.

    Each is logged as a call activity on the prospect's timeline, keyed on the call
    (``call-summary:<call sid>``): a summary pushed twice is one activity.
    """
    queued = select(crm_outbox.c.key).where(
        crm_outbox.c.crm == crm, crm_outbox.c.operation == LOG_CALL_SUMMARY
    )
    q = select(call_summaries.c.call_sid).where(
        call_summaries.c.created_at >= now - window,
        call_summaries.c.prospect_id.is_not(None),
        call_summaries.c.call_sid.not_in(queued),
    )
    return _queue_new(conn, crm, LOG_CALL_SUMMARY, list(conn.execute(q).scalars()), now)


def _queue_new(conn: Connection, crm: str, operation: str, keys: Sequence[str],
               now: datetime) -> int:  # fmt: skip
    """Queue ``operation`` for each key not queued yet (a queued one is left as it is)."""
    rows = [
        {"crm": crm, "operation": operation, "key": k, "payload": {}, "status": "pending",
         "attempts": 0, "next_attempt_at": now, "created_at": now}
        for k in keys
    ]  # fmt: skip
    if rows:
        conn.execute(
            dialect_insert(conn, crm_outbox).on_conflict_do_nothing(
                index_elements=["crm", "operation", "key"]
            ),
            rows,
        )
    return len(rows)


def _unqueued_leads(crm: str) -> Any:
    """Routed people with no lead push queued for ``crm`` and no link to a ``crm`` record."""
    queued = select(crm_outbox.c.key).where(
        crm_outbox.c.crm == crm, crm_outbox.c.operation == PUSH_LEAD
    )
    linked = select(crm_links.c.local_key).where(
        crm_links.c.crm == crm, crm_links.c.kind == "person"
    )
    # Routed: given to an AE, or to a queue (an assignment without an ae_email).
    routed = select(route_assignments.c.prospect_id)
    return (
        select(prospects.c.email)
        .where(
            (prospects.c.ae_email.is_not(None)) | prospects.c.id.in_(routed),
            prospects.c.email.not_in(queued),
            prospects.c.email.not_in(linked),
        )
        .order_by(prospects.c.id)
    )


def unqueued_lead_count(conn: Connection, crm: str) -> int:
    """How many routed leads were never queued for ``crm`` (routed before it was configured)."""
    sub = _unqueued_leads(crm).subquery()
    return int(conn.execute(select(func.count()).select_from(sub)).scalar() or 0)


def queue_backfill(conn: Connection, crm: str, now: datetime) -> int:
    """Queue a lead push for every routed lead ``crm`` has never had; how many.

    Leads routed while no CRM was configured were never queued (routing queues each lead for
    the CRM of the moment). A lead with a push already queued, done or failed, or already
    linked to a ``crm`` record, is left alone, so running it twice queues nothing twice. The
    push carries the person's name, title, company and owner, as every lead push does.
    """
    return _queue_new(conn, crm, PUSH_LEAD, list(conn.execute(_unqueued_leads(crm)).scalars()), now)


def outbox_status(conn: Connection, crm: str) -> dict[str, int]:
    """Outbox rows by status (pending, done, failed)."""
    return dict(
        conn.execute(
            select(crm_outbox.c.status, func.count())
            .where(crm_outbox.c.crm == crm)
            .group_by(crm_outbox.c.status)
        ).all()
    )


@dataclass(frozen=True)
class OutboxSummary:
    """The CRM outbox at a glance: rows by status, and some failed pushes with their error."""

    counts: dict[str, int]  # status -> rows
    failed: list[Any]  # crm_outbox rows: operation, key, attempts, last_error, ...


def outbox_summary(engine: Engine, crm: str, *, failed_limit: int = 20) -> OutboxSummary:
    """``crm``'s outbox rows by status and up to ``failed_limit`` failed ones (``crm status``)."""
    with engine.connect() as conn:
        counts = outbox_status(conn, crm)
        failed = list(
            conn.execute(
                select(crm_outbox)
                .where(crm_outbox.c.crm == crm, crm_outbox.c.status == "failed")
                .limit(failed_limit)
            )
        )
    return OutboxSummary(counts, failed)


# -- draining ----------------------------------------------------------------------


@dataclass
class DrainReport:
    """What one drain (or several, :meth:`add`) did.

    ``outcomes`` counts rows by ``(operation, outcome)`` (outcome: pushed, retrying, failed);
    ``reasons`` counts the rows that did not go by ``(operation, error message)``.
    """

    pushed: int = 0
    retrying: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        return {"pushed": self.pushed, "retrying": self.retrying, "failed": self.failed}

    def add(self, other: DrainReport) -> None:
        """Fold ``other`` into this report."""
        self.pushed += other.pushed
        self.retrying += other.retrying
        self.failed += other.failed
        self.errors.update(other.errors)
        self.outcomes.update(other.outcomes)
        self.reasons.update(other.reasons)


def _link(conn: Connection, crm: str, kind: str, local_key: str, external_id: str,
          now: datetime) -> None:  # fmt: skip
    conn.execute(
        _upsert_link(conn),
        {"crm": crm, "kind": kind, "local_key": local_key, "external_id": external_id,
         "synced_at": now},
    )  # fmt: skip


@per_dialect
def _upsert_link(insert: Insert) -> Any:
    stmt = insert(crm_links)
    return stmt.on_conflict_do_update(
        index_elements=["crm", "kind", "local_key"],
        set_={"external_id": stmt.excluded.external_id, "synced_at": stmt.excluded.synced_at},
    )


#: Owners change rarely: one listing per connector per few minutes, not one per lead.
OWNERS_TTL_S = 300.0
_owner_cache: dict[int, tuple[float, list[CrmOwner]]] = {}


def team_owner_ids(team: TeamConfig | None) -> dict[str, str]:
    """team.yaml's ``crm_owner_id`` by member email: the owner a pushed lead of theirs gets."""
    if team is None:
        return {}
    return {m.email: m.crm_owner_id.strip() for m in team.members if m.crm_owner_id}


def _owner_ids(
    connector: CrmConnector, team_ids: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Owner ids by lower-case email, for the CRM's active owners (listed once per connector
    per OWNERS_TTL_S): team.yaml's ``crm_owner_id`` when the CRM has it, else the owner with
    the member's email. An id the CRM does not know is not sent (the CRM would refuse the
    whole push); ``touchflow crm check`` reports it."""
    cached = _owner_cache.get(id(connector))
    if cached is not None and time.monotonic() - cached[0] < OWNERS_TTL_S:
        owners = cached[1]
    else:
        owners = [o for o in connector.list_owners() if o.active]
        _owner_cache[id(connector)] = (time.monotonic(), owners)
    by_email = {o.email.lower(): o.id for o in owners}
    for check in check_owners((team_ids or {}).items(), owners):
        if check.status == "ok" and check.owner is not None:
            by_email[check.email.lower()] = check.owner.id
    return by_email


def drain_outbox(
    engine: Engine,
    connector: CrmConnector,
    now: datetime,
    *,
    limit: int = 100,
    max_attempts: int = 8,
    keys: Sequence[str] | None = None,
    owner_ids: Mapping[str, str] | None = None,
) -> DrainReport:
    """Push up to ``limit`` due outbox rows; returns counts.

    Leads go in one batched upsert per call; activities one by one (each is
    idempotent on its touch key). A retryable failure puts the row back with
    backoff (or the provider's ``Retry-After``); after ``max_attempts``, or on a
    fatal error, it becomes ``failed`` with the error, for a human to see.
    ``keys`` limits the drain to those rows. ``owner_ids`` (:func:`team_owner_ids`) give a
    lead's AE their team.yaml owner id; an AE without one gets the CRM owner with their email.
    """
    report = DrainReport()
    crm = connector.name
    q = (
        select(crm_outbox)
        .where(
            crm_outbox.c.crm == crm,
            crm_outbox.c.status == "pending",
            crm_outbox.c.next_attempt_at <= now,
        )
        .order_by(crm_outbox.c.next_attempt_at, crm_outbox.c.id)
        .limit(limit)
    )
    if keys is not None:
        q = q.where(crm_outbox.c.key.in_(list(keys)))
    with engine.begin() as conn:
        rows = list(conn.execute(q))
        leads = [r for r in rows if r.operation == PUSH_LEAD]
        people = lead_rows(conn, crm, [r.key for r in leads]) if leads else []
    if leads:
        _push_leads(engine, connector, people, leads, now, max_attempts, report, owner_ids)
    for row in rows:
        if row.operation not in (LOG_ACTIVITY, LOG_CALL_SUMMARY):
            continue
        try:
            if row.operation == LOG_CALL_SUMMARY:
                _push_call_summary(engine, connector, row, now)
            else:
                _push_activity(engine, connector, row, now)
            _done(engine, [row], now, report)
        except TouchflowError as exc:
            _failed(engine, [row], exc, now, max_attempts, report)
    return report


def drain_rounds(
    engine: Engine,
    connector: CrmConnector,
    now: datetime,
    *,
    batch_size: int,
    max_attempts: int,
    rounds: int = 50,
    owner_ids: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Drain the outbox: up to ``rounds`` batches of ``batch_size``; totals by outcome."""
    report = drain_report(engine, connector, now, batch_size=batch_size,
                          max_attempts=max_attempts, rounds=rounds,
                          owner_ids=owner_ids)  # fmt: skip
    return report.as_dict()


def drain_report(
    engine: Engine,
    connector: CrmConnector,
    now: datetime,
    *,
    batch_size: int,
    max_attempts: int,
    rounds: int = 50,
    owner_ids: Mapping[str, str] | None = None,
) -> DrainReport:
    """:func:`drain_rounds` with the whole report: outcomes per operation, failure reasons."""
    total = DrainReport()
    for _ in range(rounds):
        report = drain_outbox(engine, connector, now, limit=batch_size,
                              max_attempts=max_attempts, owner_ids=owner_ids)  # fmt: skip
        total.add(report)
        if sum(report.as_dict().values()) < batch_size:
            break
    return total


@dataclass(frozen=True)
class _Queued:
    """An outbox row as the failure and done paths need it."""

    crm: str
    operation: str
    key: str
    attempts: int


def push_leads_now(
    engine: Engine,
    connector: CrmConnector,
    people: Sequence[Any],
    now: datetime,
    *,
    max_attempts: int = 8,
    owner_ids: Mapping[str, str] | None = None,
) -> DrainReport:
    """Push leads just queued with ``queue_lead(..., hold=...)``, without waiting for a drain.

    ``people`` are their :func:`lead_rows`, read in the transaction that queued
    them (queuing resets ``attempts`` to 0). On success their outbox rows are
    done; on failure they are due again after the usual backoff, so the
    ``sync-crm`` drain retries them.
    """
    report = DrainReport()
    queued = [_Queued(connector.name, PUSH_LEAD, p.email, 0) for p in people]
    if queued:
        _push_leads(engine, connector, people, queued, now, max_attempts, report, owner_ids)
    return report


def lead_rows(conn: Connection, crm: str, emails: Sequence[str]) -> list[Any]:
    """What a lead push sends: each person with their account and its CRM id (if linked)."""
    if not emails:
        return []
    return list(conn.execute(_LEAD_ROWS, {"crm": crm, "emails": list(emails)}))


def _lead_rows_query() -> Any:
    company_link = crm_links.alias("company_link")
    return (
        select(
            prospects,
            accounts.c.domain.label("account_domain"),
            accounts.c.name.label("account_name"),
            accounts.c.industry,
            accounts.c.employees,
            accounts.c.country.label("account_country"),
            company_link.c.external_id.label("linked_company_id"),
        )
        .outerjoin(accounts, accounts.c.id == prospects.c.account_id)
        .outerjoin(
            company_link,
            and_(
                company_link.c.crm == bindparam("crm"),
                company_link.c.kind == "company",
                company_link.c.local_key == accounts.c.domain,
            ),
        )
        .where(prospects.c.email.in_(bindparam("emails", expanding=True)))
    )


# Built once (see touchflow.store.prebuilt): the API pushes one lead per request.
_LEAD_ROWS = _lead_rows_query()
_SET_PERSON_ID = (
    update(prospects)
    .where(prospects.c.id == bindparam("b_id"))
    .values(crm_person_id=bindparam("person_id"))
)
_MARK_DONE = (
    update(crm_outbox)
    .where(
        crm_outbox.c.crm == bindparam("b_crm"),
        crm_outbox.c.operation == bindparam("b_operation"),
        crm_outbox.c.key.in_(bindparam("keys", expanding=True)),
    )
    .values(
        status="done",
        done_at=bindparam("done_at"),
        last_error=None,
        attempts=crm_outbox.c.attempts + 1,
    )
)


def _push_leads(engine: Engine, connector: CrmConnector, people: Sequence[Any],
                queued: Sequence[Any], now: datetime, max_attempts: int,
                report: DrainReport,
                owner_ids: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """Push ``people`` (their :func:`lead_rows`), then mark their ``queued`` outbox rows."""
    try:
        owners = _owner_ids(connector, owner_ids)
        person_ids, company_ids, new_companies = _send_people(connector, people, owners)
    except TouchflowError as exc:
        _failed(engine, queued, exc, now, max_attempts, report)
        return
    crm = connector.name
    with engine.begin() as conn:
        for p, person_id in zip(people, person_ids, strict=True):
            if p.crm_person_id != person_id:
                conn.execute(_SET_PERSON_ID, {"b_id": p.id, "person_id": person_id})
            _link(conn, crm, "person", p.email, person_id, now)
        for domain in new_companies:
            _link(conn, crm, "company", domain, company_ids[domain], now)
            conn.execute(
                update(accounts).where(accounts.c.domain == domain)
                .values(crm_company_id=company_ids[domain])
            )  # fmt: skip
        _mark_done(conn, queued, now)
    report.pushed += len(queued)
    report.outcomes[PUSH_LEAD, "pushed"] += len(queued)


def _send_people(
    connector: CrmConnector, people: Sequence[Any], owners: Mapping[str, str]
) -> tuple[list[str], dict[str, str], list[str]]:
    """Upsert companies not linked yet, the people, and associate them.

    Returns the people's CRM ids (in order), every company id by domain, and
    the domains whose companies were upserted now (to be linked). The owner
    travels in the upserts (every connector sets it there), so there is no
    separate assign call.
    """
    company_ids: dict[str, str] = {}
    new_companies: list[str] = []
    for p in people:
        domain = p.account_domain
        if not domain or domain in company_ids:
            continue
        if p.linked_company_id:  # pushed with an earlier lead
            company_ids[domain] = p.linked_company_id
        elif not p.email_free:
            company_ids[domain] = connector.upsert_company(
                CrmCompany(domain=domain, name=p.account_name or p.company, industry=p.industry,
                           employees=p.employees, country=p.account_country,
                           owner_id=owners.get((p.ae_email or "").lower()))
            )  # fmt: skip
            new_companies.append(domain)
    batch = [
        CrmPerson(
            email=p.email,
            first_name=p.first_name,
            last_name=p.last_name,
            title=p.title,
            phone=p.phone,
            company=p.account_name or p.company,
            domain=p.account_domain or p.domain,
            owner_id=owners.get((p.ae_email or "").lower()),
            properties={
                k: str(v)
                for k, v in (("score", p.score), ("grade", p.grade), ("lifecycle", p.lifecycle))
                if v is not None
            },
        )
        for p in people
    ]
    ids = connector.upsert_people(batch) if batch else []
    for p, person_id in zip(people, ids, strict=True):
        company_id = company_ids.get(p.account_domain or "")
        if company_id:
            connector.associate(person_id, company_id)
    return ids, company_ids, new_companies


def _push_activity(engine: Engine, connector: CrmConnector, row: Any, now: datetime) -> None:
    crm = connector.name
    with engine.connect() as conn:
        t = conn.execute(
            select(touches, prospects.c.email, enrollments.c.owner_email,
                   tasks.c.outcome, tasks.c.notes, tasks.c.body.label("task_body"))
            .join(enrollments, enrollments.c.id == touches.c.enrollment_id)
            .join(prospects, prospects.c.id == enrollments.c.prospect_id)
            .outerjoin(tasks, tasks.c.touch_key == touches.c.key)
            .where(touches.c.key == row.key)
        ).one_or_none()  # fmt: skip
        person_id = conn.execute(
            select(crm_links.c.external_id).where(
                crm_links.c.crm == crm, crm_links.c.kind == "person",
                crm_links.c.local_key == (t.email if t else ""),
            )
        ).scalar()  # fmt: skip
    if t is None:
        raise FatalError(f"no touch {row.key}", connector=crm, operation="log_activity")
    if person_id is None:
        # The person is not in the CRM yet: push them first, then this again.
        person_id = connector.upsert_people([CrmPerson(email=t.email)])[0]
        with engine.begin() as conn:
            _link(conn, crm, "person", t.email, person_id, now)
    kind = t.channel if t.channel in ("email", "call", "sms", "linkedin") else "task"
    body = t.notes or t.task_body or ""
    activity_id = connector.log_activity(
        CrmActivity(
            person_id=person_id,
            kind=kind,  # type: ignore[arg-type]
            subject=t.subject or f"{t.channel}: {t.step_id}",
            body=body[:5000],
            occurred_at=t.sent_at or t.executed_at,
            external_key=t.key,
            outcome=t.outcome,
        )
    )
    with engine.begin() as conn:
        _link(conn, crm, "activity", t.key, activity_id, now)


def _person_id(engine: Engine, connector: CrmConnector, email: str, now: datetime) -> str:
    """The person's CRM id; pushed first when the CRM does not have them yet."""
    crm = connector.name
    with engine.connect() as conn:
        person_id = conn.execute(
            select(crm_links.c.external_id).where(
                crm_links.c.crm == crm, crm_links.c.kind == "person",
                crm_links.c.local_key == email,
            )
        ).scalar()  # fmt: skip
    if person_id is None:
        person_id = connector.upsert_people([CrmPerson(email=email)])[0]
        with engine.begin() as conn:
            _link(conn, crm, "person", email, person_id, now)
    return str(person_id)


def _push_call_summary(engine: Engine, connector: CrmConnector, row: Any, now: datetime) -> None:
    # Imported here: the guidance package (stemmers, automaton) is for calls only.
    from touchflow.domain.guidance.summary import CallSummary, summary_lines

    crm = connector.name
    with engine.connect() as conn:
        s = conn.execute(
            select(call_summaries.c.summary, prospects.c.email, tasks.c.title, tasks.c.step_id,
                   tasks.c.outcome)
            .join(prospects, prospects.c.id == call_summaries.c.prospect_id)
            .outerjoin(tasks, tasks.c.id == call_summaries.c.task_id)
            .where(call_summaries.c.call_sid == row.key)
        ).one_or_none()  # fmt: skip
    if s is None:
        raise FatalError(f"no call summary {row.key}", connector=crm, operation="log_activity")
    summary = CallSummary.from_dict(s.summary)
    person_id = _person_id(engine, connector, s.email, now)
    key = f"call-summary:{row.key}"
    heard = ", ".join(t.tracker for t in summary.trackers) or "no trackers"
    activity_id = connector.log_activity(
        CrmActivity(
            person_id=person_id,
            kind="call",
            subject=f"Call summary: {s.title or s.step_id or row.key} ({heard})"[:250],
            body="\n".join(summary_lines(summary))[:5000],
            occurred_at=summary.ended_at,
            external_key=key,
            outcome=s.outcome,
        )
    )
    with engine.begin() as conn:
        _link(conn, crm, "activity", key, activity_id, now)


def _mark_done(conn: Connection, rows: Sequence[Any], now: datetime) -> None:
    """Mark outbox rows done, by their unique (crm, operation, key)."""
    by_op: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        by_op.setdefault((r.crm, r.operation), []).append(r.key)
    for (crm, operation), keys in by_op.items():
        conn.execute(
            _MARK_DONE, {"b_crm": crm, "b_operation": operation, "keys": keys, "done_at": now}
        )


def _done(engine: Engine, rows: Sequence[Any], now: datetime, report: DrainReport) -> None:
    with engine.begin() as conn:
        _mark_done(conn, rows, now)
    report.pushed += len(rows)
    for r in rows:
        report.outcomes[r.operation, "pushed"] += 1


def _failed(engine: Engine, rows: Sequence[Any], exc: TouchflowError, now: datetime,
            max_attempts: int, report: DrainReport) -> None:  # fmt: skip
    report.errors[type(exc).__name__] += len(rows)
    with engine.begin() as conn:
        for r in rows:
            attempts = r.attempts + 1
            retry = isinstance(exc, RetryableError) and attempts < max_attempts
            wait = min(BACKOFF * 2 ** (attempts - 1), MAX_BACKOFF)
            if isinstance(exc, RateLimited) and exc.retry_after:
                wait = max(wait, timedelta(seconds=exc.retry_after))
            conn.execute(
                update(crm_outbox)
                .where(
                    crm_outbox.c.crm == r.crm,
                    crm_outbox.c.operation == r.operation,
                    crm_outbox.c.key == r.key,
                )
                .values(
                    status="pending" if retry else "failed",
                    attempts=attempts,
                    next_attempt_at=now + wait,
                    last_error=str(exc)[:2000],
                )
            )
            if retry:
                report.retrying += 1
            else:
                report.failed += 1
            report.outcomes[r.operation, "retrying" if retry else "failed"] += 1
            report.reasons[r.operation, str(exc)[:300]] += 1


# -- pulling -----------------------------------------------------------------------


@dataclass
class PullReport:
    """What one pull of CRM changes did."""

    changes: int = 0
    new: int = 0
    ended: int = 0
    paused: int = 0
    unmatched: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def pull_changes(
    engine: Engine,
    connector: CrmConnector,
    runtimes: RuntimeCache,
    now: datetime,
    *,
    first_since: datetime | None = None,
    owner_change_pause: timedelta = timedelta(days=3),
    max_pages: int = 1000,
    owner_ids: Mapping[str, str] | None = None,
) -> PullReport:
    """Apply CRM changes since the last pull, a page per transaction (resumable).

    Each change is stored once in ``events`` (``crm:<crm>:<external id>``); a
    change seen again (an overlapping window, a retried page) does nothing.
    """
    report = PullReport()
    crm = connector.name
    with engine.connect() as conn:
        state = conn.execute(select(crm_cursors).where(crm_cursors.c.crm == crm)).one_or_none()
    since = state.since if state else (first_since or now - timedelta(days=1))
    cursor = state.cursor if state else None
    owners: dict[str, str] | None = None
    latest = since
    for _ in range(max_pages):
        page = connector.changes_since(since, cursor)
        with engine.begin() as conn:
            for ch in page.changes:
                report.changes += 1
                latest = max(latest, ch.occurred_at)
                if ch.kind == "owner_changed" and owners is None:
                    owners = {v: k for k, v in _owner_ids(connector, owner_ids).items()}
                _apply_change(conn, crm, ch, runtimes, now, owner_change_pause,
                              owners or {}, report)  # fmt: skip
            cursor = page.cursor
            _save_cursor(conn, crm, since if cursor else latest, cursor, now)
        if cursor is None:
            break
    return report


def _save_cursor(conn: Connection, crm: str, since: datetime, cursor: str | None,
                 now: datetime) -> None:  # fmt: skip
    stmt = dialect_insert(conn, crm_cursors).values(
        crm=crm, since=since, cursor=cursor, updated_at=now
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["crm"], set_={"since": since, "cursor": cursor, "updated_at": now}
        )
    )


def _apply_change(conn: Connection, crm: str, ch: Any, runtimes: RuntimeCache, now: datetime,
                  pause: timedelta, owner_emails: Mapping[str, str],
                  report: PullReport) -> None:  # fmt: skip
    pid = conn.execute(
        select(prospects.c.id).where(prospects.c.email == ch.person_email.strip().lower())
    ).scalar()
    stored = conn.execute(
        dialect_insert(conn, events)
        .values(
            provider_event_id=f"crm:{crm}:{ch.external_id}"[:200],
            prospect_id=pid,
            type=ch.kind,
            occurred_at=ch.occurred_at,
            source=f"crm:{crm}",
            payload={"owner_id": ch.owner_id, "detail": ch.detail},
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(events.c.id)
    ).scalar()
    if stored is None:
        return  # seen before
    report.new += 1
    if pid is None:
        report.unmatched += 1
        return
    if ch.kind in ("meeting_booked", "deal_created"):
        res = apply_exit_event(conn, runtimes, pid, ch.kind, now, source=f"crm:{crm}",
                               touch_key="", record=False)  # fmt: skip
        report.ended += res.ended
        return
    # owner_changed: the new owner takes the person over; cadences pause so they can look.
    new_owner = owner_emails.get(ch.owner_id or "")
    values: dict[str, Any] = {"updated_at": now}
    if new_owner:
        conn.execute(update(prospects).where(prospects.c.id == pid).values(ae_email=new_owner))
        values["owner_email"] = new_owner
    for row in conn.execute(
        select(enrollments.c.id, enrollments.c.state).where(
            enrollments.c.prospect_id == pid,
            enrollments.c.state.in_([State.PENDING.value, State.ACTIVE.value]),
            enrollments.c.next_due_at.is_not(None),
        )
    ).all():
        conn.execute(
            update(enrollments)
            .where(enrollments.c.id == row.id)
            .values(state=transition(row.state, Event.PAUSE).value, reason="crm_owner_changed",
                    next_due_at=now + pause, claimed_at=None, **values)
        )  # fmt: skip
        report.paused += 1


@dataclass(frozen=True)
class CrmSync:
    """The three steps of one CRM sync over one store, with the deployment's limits.

    The ``sync-crm`` flow runs each step as a Prefect task; ``touchflow crm
    sync`` runs them in a row (:meth:`run`). :meth:`close` releases the
    connector.
    """

    engine: Engine
    connector: CrmConnector
    runtimes: RuntimeCache
    batch_size: int
    max_attempts: int
    owner_change_pause: timedelta
    #: team.yaml's ``crm_owner_id`` by member email (:func:`team_owner_ids`).
    owner_ids: Mapping[str, str] = field(default_factory=dict)

    def queue(self, now: datetime) -> int:
        """Queue the touches and completed tasks not yet logged in the CRM; how many."""
        with self.engine.begin() as conn:
            touches_ = queue_new_activities(conn, self.connector.name, now)
            return touches_ + queue_new_call_summaries(conn, self.connector.name, now)

    def backfill(self, now: datetime) -> int:
        """Queue every routed lead this CRM never had (:func:`queue_backfill`); how many."""
        with self.engine.begin() as conn:
            return queue_backfill(conn, self.connector.name, now)

    def unqueued_leads(self) -> int:
        """How many routed leads this CRM never had: what :meth:`backfill` would queue."""
        with self.engine.connect() as conn:
            return unqueued_lead_count(conn, self.connector.name)

    def push(self, now: datetime, rounds: int = 50) -> dict[str, int]:
        """Drain the outbox: up to ``rounds`` batches of :attr:`batch_size` rows."""
        return self.push_report(now, rounds).as_dict()

    def push_report(self, now: datetime, rounds: int = 50) -> DrainReport:
        """:meth:`push`, with outcomes per operation and why rows did not go."""
        return drain_report(
            self.engine,
            self.connector,
            now,
            batch_size=self.batch_size,
            max_attempts=self.max_attempts,
            rounds=rounds,
            owner_ids=self.owner_ids,
        )

    def pull(self, now: datetime) -> dict[str, int]:
        """Apply meetings booked, deals created and owner changes since the last pull."""
        report = pull_changes(
            self.engine,
            self.connector,
            self.runtimes,
            now,
            owner_change_pause=self.owner_change_pause,
            owner_ids=self.owner_ids,
        )
        return report.as_dict()

    def run(self, now: datetime) -> dict[str, dict[str, int] | int]:
        """Queue, push, pull: one whole sync."""
        return {"queued": self.queue(now), "push": self.push(now), "pull": self.pull(now)}

    def close(self) -> None:
        """Release the connector's connections."""
        self.connector.close()
