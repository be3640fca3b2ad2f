"""Scores in the store: rescore prospects in batches, explain one prospect's score.

Functions take a SQLAlchemy ``Connection`` inside the caller's transaction
(as in :mod:`touchflow.store.enrollments`); time comes in as ``now``. The deciding is
:meth:`touchflow.domain.scoring.IcpConfig.score`; this module only loads and writes.

A batch costs three queries and two ``executemany`` updates plus one
multi-row insert, whatever its size: prospects joined with their accounts
(keyset pagination on ``id``), the batch's engagement events (an ``id`` range,
only the event types the ICP scores, only as old as ``max_age_days``), the
updates, and ``score_history`` rows for the prospects whose score, grade or
lifecycle changed. A rescore that changes nothing appends no history, so the
history reads as a list of real changes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Connection, Select, bindparam, select, update

from touchflow.domain.batching import IN_LIMIT, chunks
from touchflow.domain.prospects import normalize_email
from touchflow.domain.scoring import IcpConfig, Reason, ScoreInput, ScoreResult
from touchflow.store import fastpath
from touchflow.store.schema import accounts, events, prospects, score_history


@dataclass
class RescoreReport:
    """What a rescore did: how many scored and changed, and the new distribution."""

    scored: int = 0
    changed: int = 0
    by_grade: dict[str, int] = field(default_factory=dict)
    by_lifecycle: dict[str, int] = field(default_factory=dict)
    icp_version: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    """One ``score_history`` row."""

    scored_at: datetime
    score: int
    fit: int
    engagement: int
    grade: str
    lifecycle: str
    reasons: list[Reason]
    icp_version: str


@dataclass(frozen=True)
class Explanation:
    """A prospect's score recomputed now, what is stored, and the history (newest first)."""

    prospect_id: int
    email: str
    result: ScoreResult
    stored_score: int | None
    stored_grade: str | None
    stored_lifecycle: str | None
    scored_at: datetime | None
    history: list[HistoryEntry]
    icp_version: str

    @property
    def stale(self) -> bool:
        """True when the stored score differs from the one recomputed now (rescore due)."""
        r = self.result
        return (self.stored_score, self.stored_grade, self.stored_lifecycle) != (
            r.score,
            r.grade,
            r.lifecycle,
        )

    def lines(self) -> list[str]:
        """Plain text for ``touchflow explain``: the verdict, the reasons, the history."""
        r = self.result
        out = [
            f"{self.email}: score {r.score} (fit {r.fit}, engagement {r.engagement}), "
            f"grade {r.grade}, {r.lifecycle}",
            *(f"  {reason}" for reason in r.reasons),
        ]
        if not r.reasons:
            out.append("  (no rule matched)")
        if self.stale:
            stored = (
                f"score {self.stored_score}, grade {self.stored_grade}, {self.stored_lifecycle}"
                if self.stored_score is not None
                else "never scored"
            )
            out.append(f"stored: {stored}; run `touchflow score` to update")
        if self.history:
            out.append("history (newest first):")
            out += [
                f"  {h.scored_at:%Y-%m-%d %H:%M} score {h.score} (fit {h.fit}, "
                f"engagement {h.engagement}), grade {h.grade}, {h.lifecycle} [icp {h.icp_version}]"
                for h in self.history
            ]
        return out


def _technologies(value: Any) -> tuple[str, ...]:
    # A JSON column: a list from the enricher, but tolerate a bare string.
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if v is not None)
    return ()


def score_input_from_row(row: Mapping[str, Any] | Any) -> ScoreInput:
    """A :class:`ScoreInput` from a row of :func:`_prospect_query` (or any mapping alike).

    ``domain`` falls back to the email's domain; account columns are
    ``account_<name>`` and may be missing or None (no account yet).
    """
    m = row if isinstance(row, Mapping) else row._mapping
    domain = m.get("domain")
    if not domain and m.get("email") and "@" in m["email"]:
        domain = m["email"].rsplit("@", 1)[1]
    employees = m.get("account_employees")
    return ScoreInput(
        title=m.get("title"),
        seniority=m.get("seniority"),
        department=m.get("department"),
        country=m.get("country"),
        domain=domain.lower() if domain else None,
        email_free=m.get("email_free"),
        email_role=m.get("email_role"),
        account_domain=m.get("account_domain"),
        account_name=m.get("account_name"),
        account_industry=m.get("account_industry"),
        account_employees=int(employees) if employees is not None else None,
        account_revenue_band=m.get("account_revenue_band"),
        account_country=m.get("account_country"),
        account_technologies=_technologies(m.get("account_technologies")),
    )


def _prospect_query() -> Select[Any]:
    p, a = prospects.c, accounts.c
    return select(
        p.id,
        p.email,
        p.title,
        p.seniority,
        p.department,
        p.country,
        p.domain,
        p.email_free,
        p.email_role,
        p.score,
        p.grade,
        p.lifecycle,
        p.scored_at,
        a.domain.label("account_domain"),
        a.name.label("account_name"),
        a.industry.label("account_industry"),
        a.employees.label("account_employees"),
        a.revenue_band.label("account_revenue_band"),
        a.country.label("account_country"),
        a.technologies.label("account_technologies"),
    ).select_from(prospects.outerjoin(accounts, accounts.c.id == p.account_id))


def _events_query(config: IcpConfig, now: datetime) -> Select[Any]:
    e = events.c
    q = select(e.prospect_id, e.type, e.occurred_at).where(
        e.type.in_(sorted(config.engagement.points)), e.occurred_at <= now
    )
    if config.engagement.max_age_days is not None:
        q = q.where(e.occurred_at >= now - timedelta(days=config.engagement.max_age_days))
    return q


@cache
def _events_of_ids(max_age: bool) -> Select[Any]:
    """Events of a list of prospects (``ids``, ``types``, ``now``, ``since`` if ``max_age``).

    Built once per shape: an inbound lead scores one prospect per request.
    """
    e = events.c
    q = select(e.prospect_id, e.type, e.occurred_at).where(
        e.prospect_id.in_(bindparam("ids", expanding=True)),
        e.type.in_(bindparam("types", expanding=True)),
        e.occurred_at <= bindparam("now", type_=e.occurred_at.type),
    )
    if max_age:
        q = q.where(e.occurred_at >= bindparam("since", type_=e.occurred_at.type))
    return q


def _load_events(
    conn: Connection, config: IcpConfig, now: datetime, ids: Sequence[int], *, by_range: bool
) -> dict[int, list[tuple[str, datetime]]]:
    out: dict[int, list[tuple[str, datetime]]] = {}
    if not ids or not config.engagement.points:
        return out
    wanted = set(ids)
    # (prospect_id, type, occurred_at) rows; mypy sees rows of untyped columns unpack as `object`.
    found: Iterable[tuple[int, str, datetime]]
    if by_range:
        # Keyset batches are dense id ranges: one range scan on the prospect_id index.
        q = _events_query(config, now).where(events.c.prospect_id.between(ids[0], ids[-1]))
        found = cast("Iterable[tuple[int, str, datetime]]", conn.execute(q))
    else:
        max_age = config.engagement.max_age_days
        params: dict[str, Any] = {"types": sorted(config.engagement.points), "now": now}
        if max_age is not None:
            params["since"] = now - timedelta(days=max_age)
        stmt = _events_of_ids(max_age is not None)
        found = (
            row
            for chunk in chunks(ids)
            for row in cast(
                "Iterable[tuple[int, str, datetime]]",
                conn.execute(stmt, {**params, "ids": list(chunk)}),
            )
        )
    for pid, kind, at in found:
        if pid in wanted:
            out.setdefault(pid, []).append((kind, at))
    return out


def _batches(
    conn: Connection, prospect_ids: Iterable[int] | None, batch_size: int
) -> Iterable[tuple[list[Any], bool]]:
    """Yield ``(rows, by_range)``: keyset pages of every prospect, or pages of the given ids."""
    q = _prospect_query()
    if prospect_ids is None:
        last = 0
        while True:
            rows = list(
                conn.execute(
                    q.where(prospects.c.id > last).order_by(prospects.c.id).limit(batch_size)
                )
            )
            if not rows:
                return
            yield rows, True
            last = rows[-1].id
    ids = sorted(set(prospect_ids))
    for chunk in chunks(ids, min(batch_size, IN_LIMIT)):
        rows = list(conn.execute(_BY_IDS, {"ids": list(chunk)}))
        if rows:
            yield rows, False


# Built once: an inbound lead rescores one prospect per request.
_BY_IDS = (
    _prospect_query()
    .where(prospects.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(prospects.c.id)
)

_SET_CHANGED = (
    update(prospects)
    .where(prospects.c.id == bindparam("b_id"))
    .values(
        score=bindparam("b_score"),
        grade=bindparam("b_grade"),
        lifecycle=bindparam("b_lifecycle"),
        scored_at=bindparam("b_at"),
        updated_at=bindparam("b_at"),
    )
)
_INSERT_HISTORY = score_history.insert().values(
    {c: bindparam(c) for c in ("prospect_id", "score", "fit", "engagement", "grade", "lifecycle",
                               "reasons", "icp_version", "scored_at")}
)  # fmt: skip
_SET_SCORED_AT = (
    update(prospects).where(prospects.c.id == bindparam("b_id")).values(scored_at=bindparam("b_at"))
)


def rescore(
    conn: Connection,
    config: IcpConfig,
    now: datetime,
    *,
    prospect_ids: Iterable[int] | None = None,
    batch_size: int = 2000,
    results: dict[int, ScoreResult] | None = None,
) -> RescoreReport:
    """Score every prospect (or only ``prospect_ids``) as of ``now`` and store the results.

    ``results``, when given, receives each prospect's :class:`ScoreResult` by id
    (the API answers a lead with its reasons without scoring it twice).

    Every scored prospect gets ``scored_at = now``; those whose score, grade or
    lifecycle changed also get the new values, ``updated_at = now`` and a
    ``score_history`` row (with the reasons and ``config.version``). Runs in
    the caller's transaction.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RescoreReport(icp_version=config.version)
    grades: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    score = config.scorer().score
    for rows, by_range in _batches(conn, prospect_ids, batch_size):
        ids = [r.id for r in rows]
        evs = _load_events(conn, config, now, ids, by_range=by_range)
        changed: list[dict[str, Any]] = []
        same: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        for row in rows:
            result = score(score_input_from_row(row), evs.get(row.id, ()), now)
            if results is not None:
                results[row.id] = result
            grades[result.grade] += 1
            stages[result.lifecycle] += 1
            if (row.score, row.grade, row.lifecycle) == (
                result.score,
                result.grade,
                result.lifecycle,
            ):
                same.append({"b_id": row.id, "b_at": now})
                continue
            changed.append(
                {
                    "b_id": row.id,
                    "b_score": result.score,
                    "b_grade": result.grade,
                    "b_lifecycle": result.lifecycle,
                    "b_at": now,
                }
            )
            history.append(
                {
                    "prospect_id": row.id,
                    "score": result.score,
                    "fit": result.fit,
                    "engagement": result.engagement,
                    "grade": result.grade,
                    "lifecycle": result.lifecycle,
                    # Serialized here: the fastpath hands values to the driver as they are.
                    "reasons": json.dumps(result.reasons_json()),
                    "icp_version": config.version,
                    "scored_at": now,
                }
            )
        # Plain columns go through the driver directly (fastpath): SQLAlchemy's
        # per-row parameter processing cost more than the scoring itself.
        if changed:
            fastpath.executemany(conn, _SET_CHANGED, changed)
            fastpath.executemany(conn, _INSERT_HISTORY, history)
        if same:
            fastpath.executemany(conn, _SET_SCORED_AT, same)
        report.scored += len(rows)
        report.changed += len(changed)
    report.by_grade = dict(sorted(grades.items()))
    report.by_lifecycle = dict(sorted(stages.items()))
    return report


def _reasons(data: Any) -> list[Reason]:
    return [
        Reason(int(r.get("points", 0)), str(r.get("rule", "")), str(r.get("why", "")))
        for r in data or ()
        if isinstance(r, Mapping)
    ]


def history(conn: Connection, prospect_id: int, *, limit: int | None = None) -> list[HistoryEntry]:
    """A prospect's score history, newest first."""
    h = score_history.c
    q = (
        select(
            h.scored_at,
            h.score,
            h.fit,
            h.engagement,
            h.grade,
            h.lifecycle,
            h.reasons,
            h.icp_version,
        )
        .where(h.prospect_id == prospect_id)
        .order_by(h.scored_at.desc(), h.id.desc())
    )
    if limit is not None:
        q = q.limit(limit)
    return [
        HistoryEntry(
            scored_at=r.scored_at,
            score=r.score,
            fit=r.fit,
            engagement=r.engagement,
            grade=r.grade,
            lifecycle=r.lifecycle,
            reasons=_reasons(r.reasons),
            icp_version=r.icp_version,
        )
        for r in conn.execute(q)
    ]


def explain(conn: Connection, config: IcpConfig, email: str, now: datetime) -> Explanation | None:
    """Recompute one prospect's score as of ``now`` with its reasons; None if no such email.

    Read-only: the stored score is shown next to the recomputed one
    (:attr:`Explanation.stale` says whether a rescore would change it).
    """
    address = normalize_email(email)
    row = conn.execute(_prospect_query().where(prospects.c.email == address)).first()
    if row is None:
        return None
    evs = _load_events(conn, config, now, [row.id], by_range=False)
    result = config.score(score_input_from_row(row), evs.get(row.id, ()), now)
    return Explanation(
        prospect_id=row.id,
        email=row.email,
        result=result,
        stored_score=row.score,
        stored_grade=row.grade,
        stored_lifecycle=row.lifecycle,
        scored_at=row.scored_at,
        history=history(conn, row.id),
        icp_version=config.version,
    )
