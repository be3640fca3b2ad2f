"""Store side of the claim-time guards: suppressions, send counts, cadence pauses.

Each function is one or two queries for a whole batch; the rules themselves are
in :mod:`touchflow.domain.compliance`.

Send counts are a reservation: the claim reads them, admits what fits and adds
what it admitted in one transaction, with the counts of its mailboxes and
domains locked from the read to the commit (:func:`load_send_counts`), so
ticks that overlap never admit the same capacity twice. A message that then
did not go gives its slot back (:func:`release_send_counts`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    ScalarResult,
    String,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from touchflow.domain.compliance import BounceShield, SendCounts, bucket_of, window_starts
from touchflow.domain.enrollment import OPEN, State
from touchflow.store import fastpath
from touchflow.store.prebuilt import by_dialect, one_of, values_param
from touchflow.store.schema import cadence_pauses, enrollments, send_counts, suppressions, touches


@dataclass(frozen=True)
class Suppressed:
    """The suppressed values among those a batch is about to contact."""

    emails: frozenset[str]
    domains: frozenset[str]
    phones: frozenset[str]


# Built once (the tick asks for every batch; building the statement cost more
# than running it): an empty list matches nothing.
@by_dialect
def _suppressed(dialect: str) -> Any:
    return select(suppressions.c.kind, suppressions.c.value).where(
        or_(
            *(
                and_(
                    suppressions.c.kind == kind,
                    one_of(suppressions.c.value, kind, String(), dialect),
                )
                for kind in ("email", "domain", "phone")
            )
        )
    )


def suppressed(
    conn: Connection, emails: Iterable[str], domains: Iterable[str], phones: Iterable[str]
) -> Suppressed:
    """Which of these emails, domains and phones are on the suppression list (one query)."""
    wanted = {
        "email": {e.lower() for e in emails if e},
        "domain": {d.lower() for d in domains if d},
        "phone": {p for p in phones if p},
    }
    found: dict[str, set[str]] = {"email": set(), "domain": set(), "phone": set()}
    if any(wanted.values()):
        # Rows unpack as `object` to mypy: SQLAlchemy cannot type untyped Table columns.
        for kind, value in cast(
            "Iterable[tuple[str, str]]",
            conn.execute(
                _suppressed(conn), {k: values_param(conn, sorted(v)) for k, v in wanted.items()}
            ),
        ):
            found[kind].add(value)
    return Suppressed(
        frozenset(found["email"]), frozenset(found["domain"]), frozenset(found["phone"])
    )


# The first key of touchflow's two-key advisory locks on send counts ("tf" in ASCII):
# keeps them apart from any other application's advisory locks in the database.
_CAP_LOCK_SPACE = 0x7466
# Takes the locks in the order of the array (a function scan reads it in order);
# the caller sorts it, so two claims never wait on each other crosswise.
_LOCK_CAPS = text(
    "SELECT count(pg_advisory_xact_lock(:space, k)) FROM unnest(CAST(:keys AS int[])) AS k"
)


def _lock_key(scope: str, key: str) -> int:
    """A stable signed 32-bit key for one counter; a collision only makes two claims queue."""
    digest = hashlib.blake2b(f"{scope}:{key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_send_counts(conn: Connection, mailboxes: list[str], domains: list[str]) -> None:
    """Hold these counters until the transaction ends (PostgreSQL; one statement).

    An advisory transaction lock per mailbox and domain: a second claim for
    the same mailbox waits here, before reading, until the first committed
    what it admitted, and then reads it (READ COMMITTED: every statement sees
    what was committed before it began). SQLite needs none: the claim holds
    the single writer's lock from its first statement (:func:`~touchflow.store.db.begin_write`).
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted(
        {_lock_key("mailbox", m) for m in mailboxes} | {_lock_key("domain", d) for d in domains}
    )
    if keys:
        conn.execute(_LOCK_CAPS, {"space": _CAP_LOCK_SPACE, "keys": keys})


def load_send_counts(
    conn: Connection, now: datetime, mailboxes: Iterable[str], domains: Iterable[str]
) -> SendCounts:
    """Messages counted in the current bucket, rolling hour and rolling day, locked.

    Call it in the claim's write transaction (``begin_write``) and add what was
    admitted (:func:`add_send_counts`) before that commits: the counts of these
    mailboxes and domains stay locked until then. Two statements on PostgreSQL
    (the locks, the read), one on SQLite.
    """
    bucket, hour, day = window_starts(now)
    counts = SendCounts()
    mailboxes, domains = sorted(set(mailboxes)), sorted(set(domains))
    _lock_send_counts(conn, mailboxes, domains)
    clauses = []
    if mailboxes:
        clauses.append(and_(send_counts.c.scope == "mailbox", send_counts.c.key.in_(mailboxes)))
    if domains:
        clauses.append(and_(send_counts.c.scope == "domain", send_counts.c.key.in_(domains)))
    if not clauses:
        return counts
    rows = cast(
        "Iterable[tuple[str, str, datetime, int]]",
        conn.execute(
            select(
                send_counts.c.scope, send_counts.c.key, send_counts.c.bucket, send_counts.c.n
            ).where(or_(*clauses), send_counts.c.bucket >= day, send_counts.c.bucket <= bucket)
        ),
    )
    for scope, key, at, n in rows:
        if scope == "domain":
            counts.domain_day[key] += n
            continue
        counts.mailbox_day[key] += n
        if at >= hour:
            counts.mailbox_hour[key] += n
        if at == bucket:
            counts.mailbox_bucket[key] += n
    return counts


_ADD_COUNT = {
    name: dialect.insert(send_counts)
    .values(
        scope=bindparam("scope"), key=bindparam("key"), bucket=bindparam("bucket"), n=bindparam("n")
    )
    .on_conflict_do_update(
        index_elements=["scope", "key", "bucket"],
        set_={"n": send_counts.c.n + bindparam("n")},
    )
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


def add_send_counts(conn: Connection, now: datetime, admitted: Counter[tuple[str, str]]) -> None:
    """Count the messages a batch admitted in the current bucket."""
    if not admitted:
        return
    bucket = bucket_of(now)
    rows = [
        {"scope": scope, "key": key, "bucket": bucket, "n": n}
        for (scope, key), n in sorted(admitted.items())
    ]
    fastpath.executemany(conn, _ADD_COUNT[conn.dialect.name], rows)


_RELEASE_COUNT = (
    update(send_counts)
    .where(
        send_counts.c.scope == bindparam("b_scope"),
        send_counts.c.key == bindparam("b_key"),
        send_counts.c.bucket == bindparam("b_bucket"),
    )
    .values(n=send_counts.c.n - bindparam("n"))
)


def release_send_counts(conn: Connection, now: datetime, unsent: Counter[tuple[str, str]]) -> None:
    """Give back the slots of admitted messages that did not go (one statement).

    ``now`` is the tick's, as given to :func:`add_send_counts`: the slots return
    to the bucket they were taken from. Lowering a count needs no lock (it can
    only make room); run it last in its transaction, so the row lock it takes is
    held for a moment only.
    """
    if not unsent:
        return
    bucket = bucket_of(now)
    rows = [
        {"b_scope": scope, "b_key": key, "b_bucket": bucket, "n": n}
        for (scope, key), n in sorted(unsent.items())
    ]
    fastpath.executemany(conn, _RELEASE_COUNT, rows)


def paused_cadences(conn: Connection) -> set[str]:
    """Cadences whose enrollments must not be claimed (bounce shield or operator)."""
    return set(
        conn.execute(
            select(cadence_pauses.c.cadence_id).where(cadence_pauses.c.resumed_at.is_(None))
        ).scalars()
    )


def pause_cadence(
    conn: Connection,
    cadence_id: str,
    reason: str,
    now: datetime,
    *,
    sends: int = 0,
    bounces: int = 0,
) -> bool:
    """Pause a cadence; False if it already was."""
    if cadence_id in paused_cadences(conn):
        return False
    conn.execute(
        cadence_pauses.insert().values(
            cadence_id=cadence_id, reason=reason, sends=sends, bounces=bounces, paused_at=now
        )
    )
    return True


def resume_cadence(conn: Connection, cadence_id: str, now: datetime) -> bool:
    """Lift a pause; the bounce shield then counts only sends and bounces from ``now``."""
    done = conn.execute(
        update(cadence_pauses)
        .where(cadence_pauses.c.cadence_id == cadence_id, cadence_pauses.c.resumed_at.is_(None))
        .values(resumed_at=now)
    )
    return bool(done.rowcount)


def list_pauses(conn: Connection) -> list[Any]:
    """Every cadence pause still in force, oldest first."""
    return list(
        conn.execute(
            select(cadence_pauses)
            .where(cadence_pauses.c.resumed_at.is_(None))
            .order_by(cadence_pauses.c.paused_at)
        )
    )


def check_bounce_shield(conn: Connection, shield: BounceShield, now: datetime) -> list[str]:
    """Pause every running cadence over the shield's bounce rate; returns the ones paused.

    Counts email sends and bounced enrollments since the cadence was last
    resumed, so an operator's resume starts a fresh sample.
    """
    paused = paused_cadences(conn)
    since: dict[str, datetime | None] = dict(
        conn.execute(
            select(cadence_pauses.c.cadence_id, func.max(cadence_pauses.c.resumed_at)).group_by(
                cadence_pauses.c.cadence_id
            )
        ).all()
    )
    running = [
        c
        for c in cast(
            "ScalarResult[str]",
            conn.execute(
                select(enrollments.c.cadence_id)
                .where(enrollments.c.state.in_([s.value for s in OPEN]))
                .distinct()
            ).scalars(),
        )
        if c not in paused
    ]
    tripped: list[str] = []
    for cadence_id in running:
        start = since.get(cadence_id)
        sends_q = (
            select(func.count())
            .select_from(touches.join(enrollments, enrollments.c.id == touches.c.enrollment_id))
            .where(
                enrollments.c.cadence_id == cadence_id,
                touches.c.channel == "email",
                # A bounce at send time leaves the touch `failed`: it was a send.
                touches.c.status.in_(("sent", "failed")),
            )
        )
        bounces_q = select(func.count()).where(
            enrollments.c.cadence_id == cadence_id, enrollments.c.state == State.BOUNCED.value
        )
        if start is not None:
            sends_q = sends_q.where(touches.c.executed_at >= start)
            bounces_q = bounces_q.where(enrollments.c.updated_at >= start)
        sends = conn.execute(sends_q).scalar() or 0
        if sends < shield.min_sends:
            continue
        bounces = conn.execute(bounces_q).scalar() or 0
        if shield.tripped(sends, bounces):
            pause_cadence(
                conn, cadence_id, shield.describe(sends, bounces), now, sends=sends, bounces=bounces
            )
            tripped.append(cadence_id)
    return tripped


def remove_suppression(conn: Connection, kind: str, value: str) -> bool:
    """Lift a suppression (an SMS START, an operator's correction); False if there was none."""
    done = conn.execute(
        suppressions.delete().where(suppressions.c.kind == kind, suppressions.c.value == value)
    )
    return bool(done.rowcount)


def list_suppressions(conn: Connection, kind: str | None = None, limit: int = 100) -> list[Any]:
    """The most recent suppressions, optionally of one kind."""
    q = select(suppressions).order_by(suppressions.c.created_at.desc()).limit(limit)
    if kind is not None:
        q = q.where(suppressions.c.kind == kind)
    return list(conn.execute(q))


def count_suppressions(conn: Connection) -> dict[str, int]:
    """Suppressions per kind."""
    return dict(
        conn.execute(select(suppressions.c.kind, func.count()).group_by(suppressions.c.kind)).all()
    )


def mailbox_usage(conn: Connection, now: datetime) -> list[tuple[str, int, int]]:
    """(mailbox, sends in the rolling hour, sends in the rolling day) for every mailbox."""
    _bucket, hour, day = window_starts(now)
    usage: dict[str, list[int]] = {}
    for key, at, n in cast(
        "Iterable[tuple[str, datetime, int]]",
        conn.execute(
            select(send_counts.c.key, send_counts.c.bucket, send_counts.c.n).where(
                send_counts.c.scope == "mailbox", send_counts.c.bucket >= day
            )
        ),
    ):
        u = usage.setdefault(key, [0, 0])
        u[1] += n
        if at >= hour:
            u[0] += n
    return sorted((k, h, d) for k, (h, d) in usage.items())
