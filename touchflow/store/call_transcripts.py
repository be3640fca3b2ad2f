"""Call transcripts in the store: one row per call, one per segment.

A segment is ``(call_sid, track, seq)``. Sources deliver twice and out of
order, so every write is an upsert that says whether it changed anything:

* a segment seen for the first time is inserted;
* a final replaces a partial of the same ``seq`` (and a partial with other
  words replaces an older partial), never the other way round: a final is
  never overwritten, so a late partial or a redelivery changes nothing.

Functions take a ``Connection`` inside the caller's transaction; time comes
in as arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.store.prebuilt import dialect_insert, per_dialect
from touchflow.store.schema import call_cards, call_segments, call_transcripts, tasks

__all__ = [
    "CallTranscriptRow",
    "end_call",
    "purge_before",
    "read_transcript",
    "start_call",
    "upsert_segment",
    "upsert_segments",
]


@dataclass(frozen=True)
class CallTranscriptRow:
    """A call's transcript as stored: its status and its segments in (track, seq) order."""

    call_sid: str
    task_id: int | None
    status: str
    source: str
    language: str | None
    consent: str | None
    started_at: datetime
    ended_at: datetime | None
    segments: list[TranscriptSegment]


def _ensure(conn: Connection, call_sid: str, at: datetime, source: str, **extra: Any) -> bool:
    """Insert the call's row if it is not there yet; whether it was inserted."""
    stmt = (
        dialect_insert(conn, call_transcripts)
        .values(call_sid=call_sid, status="live", source=source, started_at=at, **extra)
        .on_conflict_do_nothing(index_elements=["call_sid"])
        .returning(call_transcripts.c.call_sid)
    )
    return conn.execute(stmt).first() is not None


def start_call(
    conn: Connection,
    call_sid: str,
    at: datetime,
    *,
    source: str,
    language: str | None = None,
    task_id: int | None = None,
    consent: str | None = None,
) -> bool:
    """Record that a call's transcript started; whether that is news.

    A segment that arrived before the start already made the row: the start
    then fills in what the segment did not know (language, task, consent).
    A ``task_id`` that names no task is not kept (the transcript still is).
    """
    if (
        task_id is not None
        and conn.execute(select(tasks.c.id).where(tasks.c.id == task_id)).first() is None
    ):
        task_id = None
    if _ensure(conn, call_sid, at, source, language=language, task_id=task_id, consent=consent):
        return True
    known = {"language": language, "task_id": task_id, "consent": consent}
    for column, value in known.items():
        if value is not None:
            conn.execute(
                update(call_transcripts)
                .where(
                    call_transcripts.c.call_sid == call_sid,
                    call_transcripts.c[column].is_(None),
                )
                .values({column: value})
            )
    return False


def end_call(conn: Connection, call_sid: str, at: datetime, *, source: str) -> bool:
    """Mark the call's transcript ended; whether it was live (a second stop is no news)."""
    _ensure(conn, call_sid, at, source)
    changed = conn.execute(
        update(call_transcripts)
        .where(call_transcripts.c.call_sid == call_sid, call_transcripts.c.status == "live")
        .values(status="ended", ended_at=at)
    ).rowcount
    return bool(changed)


def upsert_segment(conn: Connection, seg: TranscriptSegment, *, source: str) -> bool:
    """Store one segment; whether it changed what is stored (see the module docstring)."""
    _ensure(conn, seg.call_sid, seg.at, source)
    return bool(_upsert(conn, [_segment_values(seg)]))


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """The upsert of ``rows`` (distinct keys); the keys it inserted or replaced.

    A final is never overwritten; a partial only by a final or other words.
    """
    ins = dialect_insert(conn, call_segments).values(rows)
    stored = call_segments.c
    stmt = ins.on_conflict_do_update(
        index_elements=["call_sid", "track", "seq"],
        set_={k: ins.excluded[k] for k in _UPDATED},
        where=(stored.final.is_(False))
        & (ins.excluded.final.is_(True) | (ins.excluded.text != stored.text)),
    ).returning(stored.call_sid, stored.track, stored.seq)
    return {(r.call_sid, r.track, r.seq) for r in conn.execute(stmt)}


def _segment_values(seg: TranscriptSegment) -> dict[str, Any]:
    return {
        "call_sid": seg.call_sid,
        "track": seg.track,
        "seq": seg.seq,
        "said_by": seg.said_by.value,
        "text": seg.text,
        "final": seg.final,
        "stability": seg.stability,
        "confidence": seg.confidence,
        "language": seg.language,
        "at": seg.at,
    }


@per_dialect
def _ensure_calls(insert: Any) -> Any:
    return insert(call_transcripts).on_conflict_do_nothing(index_elements=["call_sid"])


def upsert_segments(
    conn: Connection, segs: Sequence[TranscriptSegment], *, source: str
) -> list[bool]:
    """:func:`upsert_segment` for many segments in a few statements; whether each changed.

    The group-commit writer's batch: one INSERT for the calls not stored yet, then one
    multi-row upsert per round, a round holding each ``(call_sid, track, seq)`` at most
    once (a key delivered twice in one batch goes to the next round, so the second is
    judged against the first, exactly as two single upserts would be). The rule of what
    replaces what is :func:`upsert_segment`'s, in the same SQL.
    """
    if not segs:
        return []
    first: dict[str, TranscriptSegment] = {}
    for seg in segs:
        first.setdefault(seg.call_sid, seg)
    conn.execute(
        _ensure_calls(conn),
        [
            {"call_sid": sid, "status": "live", "source": source, "started_at": seg.at}
            for sid, seg in first.items()
        ],
    )
    changed = [False] * len(segs)
    todo = list(range(len(segs)))
    while todo:
        keys: set[tuple[str, str, int]] = set()
        now: list[int] = []
        later: list[int] = []
        for i in todo:
            key = (segs[i].call_sid, segs[i].track, segs[i].seq)
            (later if key in keys else now).append(i)
            keys.add(key)
        rows = [_segment_values(segs[i]) for i in now]
        pg = conn.dialect.name == "postgresql"
        hit = _upsert_unnest(conn, rows) if pg else _upsert(conn, rows)
        for i in now:
            changed[i] = (segs[i].call_sid, segs[i].track, segs[i].seq) in hit
        todo = later
    return changed


#: The columns a later version of a segment replaces.
_UPDATED = ("said_by", "text", "final", "stability", "confidence", "language", "at")
#: PostgreSQL: one statement text whatever the number of rows (arrays, unnest), so it is
#: parsed and planned once per connection; a multi-row VALUES list is a new statement for
#: every batch size, and compiling it cost more than the write. The WHERE is
#: :func:`upsert_segment`'s rule.
_UNNEST_TYPES = (
    ("call_sid", "text"), ("track", "text"), ("seq", "integer"), ("said_by", "text"),
    ("text", "text"), ("final", "boolean"), ("stability", "float8"),
    ("confidence", "float8"), ("language", "text"), ("at", "timestamp"),
)  # fmt: skip
_UNNEST_SQL = (
    "INSERT INTO call_segments ({cols}) SELECT * FROM unnest({arrays}) "
    "ON CONFLICT (call_sid, track, seq) DO UPDATE SET {sets} "
    "WHERE call_segments.final IS false "
    "AND (excluded.final IS true OR excluded.text <> call_segments.text) "
    "RETURNING call_sid, track, seq"
).format(
    cols=", ".join(f'"{c}"' for c, _ in _UNNEST_TYPES),
    arrays=", ".join(f"%({c})s::{t}[]" for c, t in _UNNEST_TYPES),
    sets=", ".join(f'"{c}" = excluded."{c}"' for c in _UPDATED),
)


def _upsert_unnest(conn: Connection, rows: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """The multi-row upsert on PostgreSQL; the keys it inserted or replaced."""
    params: dict[str, list[Any]] = {c: [] for c, _ in _UNNEST_TYPES}
    for row in rows:
        for c, _ in _UNNEST_TYPES:
            params[c].append(row[c])
    # The column is naive UTC (UTCDateTime); the driver gets it as that type would.
    params["at"] = [at.astimezone(UTC).replace(tzinfo=None) for at in params["at"]]
    result = conn.exec_driver_sql(_UNNEST_SQL, params)
    return {(r[0], r[1], int(r[2])) for r in result}


def read_transcript(conn: Connection, call_sid: str) -> CallTranscriptRow | None:
    """The call's transcript, or None if nothing was ever recorded for it."""
    row = conn.execute(
        select(call_transcripts).where(call_transcripts.c.call_sid == call_sid)
    ).first()
    if row is None:
        return None
    segs = conn.execute(
        select(call_segments)
        .where(call_segments.c.call_sid == call_sid)
        .order_by(call_segments.c.track, call_segments.c.seq)
    )
    return CallTranscriptRow(
        call_sid=row.call_sid,
        task_id=row.task_id,
        status=row.status,
        source=row.source,
        language=row.language,
        consent=row.consent,
        started_at=row.started_at,
        ended_at=row.ended_at,
        segments=[
            TranscriptSegment(
                call_sid=s.call_sid,
                track=s.track,
                seq=s.seq,
                said_by=Speaker(s.said_by),
                text=s.text,
                final=s.final,
                at=s.at,
                language=s.language or "en",
                confidence=s.confidence,
                stability=s.stability,
            )
            for s in segs
        ],
    )


def purge_before(conn: Connection, cutoff: datetime) -> tuple[int, int]:
    """Delete transcripts of calls started before ``cutoff``, segments and all.

    Segments older than the cutoff go too, whatever their call (a call that
    ran past midnight of its retention day keeps only its newer words).
    Returns (calls, segments) deleted.
    """
    old_calls = select(call_transcripts.c.call_sid).where(call_transcripts.c.started_at < cutoff)
    conn.execute(delete(call_cards).where(call_cards.c.call_sid.in_(old_calls)))
    segments = conn.execute(
        delete(call_segments).where(
            call_segments.c.call_sid.in_(old_calls) | (call_segments.c.at < cutoff)
        )
    ).rowcount
    calls = conn.execute(
        delete(call_transcripts).where(call_transcripts.c.started_at < cutoff)
    ).rowcount
    return int(calls or 0), int(segments or 0)
