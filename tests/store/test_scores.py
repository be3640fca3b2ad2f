"""Rescoring in the store: scores written, history only on change, explain (SQLite + PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from touchflow.domain.scoring import IcpConfig, load_icp
from touchflow.store.schema import accounts, events, prospects, score_history
from touchflow.store.scores import explain, rescore, score_input_from_row

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def icp() -> IcpConfig:
    return load_icp(ROOT / "config" / "icp.yaml")


def add_account(conn: Any, domain: str, **kw: Any) -> int:
    values = {"domain": domain, "created_at": NOW, "updated_at": NOW, **kw}
    return conn.execute(accounts.insert().values(**values)).inserted_primary_key[0]


def add_prospect(conn: Any, email: str, **kw: Any) -> int:
    values = {
        "email": email,
        "domain": email.split("@")[1],
        "fields": {},
        "created_at": NOW - timedelta(days=30),
        "updated_at": NOW - timedelta(days=30),
        **kw,
    }
    return conn.execute(prospects.insert().values(**values)).inserted_primary_key[0]


def add_event(conn: Any, prospect_id: int, kind: str, at: datetime) -> None:
    conn.execute(
        events.insert().values(
            prospect_id=prospect_id, type=kind, occurred_at=at, source="test", created_at=at
        )
    )


def seed(db: Engine) -> dict[str, int]:
    with db.begin() as conn:
        northwind = add_account(
            conn,
            "northwind.example",
            name="Northwind",
            industry="Software",
            employees=850,
            country="US",
            technologies=["Salesforce", "Slack"],
        )
        shop = add_account(conn, "shop.example", industry="Retail", employees=40, country="BR")
        ids = {
            "vp": add_prospect(
                conn,
                "jordan@northwind.example",
                title="VP Revenue Operations",
                seniority="vp",
                department="revops",
                country="US",
                email_free=False,
                email_role=False,
                account_id=northwind,
            ),
            "dev": add_prospect(
                conn,
                "ana@shop.example",
                title="Developer",
                seniority="ic",
                department="engineering",
                account_id=shop,
            ),
            "nobody": add_prospect(conn, "someone@unknown.example"),
        }
        add_event(conn, ids["dev"], "opened", NOW - timedelta(days=2))
        add_event(conn, ids["dev"], "bounce", NOW - timedelta(days=1))  # not scored
    return ids


def stored(db: Engine, pid: int) -> tuple[Any, ...]:
    with db.connect() as conn:
        row = conn.execute(
            select(prospects.c.score, prospects.c.grade, prospects.c.lifecycle).where(
                prospects.c.id == pid
            )
        ).one()
    return tuple(row)


def history_rows(db: Engine, pid: int | None = None) -> int:
    q = select(func.count()).select_from(score_history)
    if pid is not None:
        q = q.where(score_history.c.prospect_id == pid)
    with db.connect() as conn:
        return conn.execute(q).scalar_one()


def test_rescore_writes_scores_and_history_only_on_change(db, icp):
    ids = seed(db)
    with db.begin() as conn:
        report = rescore(conn, icp, NOW, batch_size=2)  # two keyset batches
    assert (report.scored, report.changed) == (3, 3)
    assert report.by_lifecycle == {"lead": 2, "mql": 1}
    assert report.by_grade == {"A": 1, "D": 2}
    assert report.icp_version == icp.version
    assert stored(db, ids["vp"]) == (80, "A", "mql")
    assert stored(db, ids["dev"]) == (1, "D", "lead")  # one open, two days ago
    assert history_rows(db) == 3

    with db.connect() as conn:
        first = conn.execute(
            select(score_history).where(score_history.c.prospect_id == ids["vp"])
        ).one()
    assert (first.fit, first.engagement, first.icp_version) == (80, 0, icp.version)
    assert {"points": 20, "rule": "industry", "why": "industry Software"} in first.reasons

    # Nothing changed: scored_at moves, history does not.
    later = NOW + timedelta(hours=1)
    with db.begin() as conn:
        report = rescore(conn, icp, later)
    assert (report.scored, report.changed) == (3, 0)
    assert history_rows(db) == 3
    with db.connect() as conn:
        scored_at = conn.execute(select(prospects.c.scored_at)).scalars().all()
    assert set(scored_at) == {later}


def test_a_new_reply_raises_the_score_and_adds_history(db, icp):
    ids = seed(db)
    with db.begin() as conn:
        rescore(conn, icp, NOW)
        add_event(conn, ids["vp"], "replied", NOW + timedelta(hours=2))
    at = NOW + timedelta(days=1)
    with db.begin() as conn:
        report = rescore(conn, icp, at, prospect_ids=[ids["vp"]])
    assert (report.scored, report.changed) == (1, 1)
    score, grade, lifecycle = stored(db, ids["vp"])
    assert (grade, lifecycle) == ("A", "sql")
    assert score == 80 + round(30 * 0.5 ** (22 / 24 / 14))  # replied 22 hours ago
    assert history_rows(db, ids["vp"]) == 2

    with db.connect() as conn:
        explanation = explain(conn, icp, "  Jordan@Northwind.example ", at)
    assert explanation is not None
    assert not explanation.stale
    assert explanation.result.score == score
    assert [h.lifecycle for h in explanation.history] == ["sql", "mql"]  # newest first
    assert str(explanation.history[0].reasons[-1]) == (
        "+29 engagement: replied today (30, half-life 14 d)"
    )
    text = "\n".join(explanation.lines())
    assert "+15 VP title" in text
    assert "+29 engagement: replied today (30, half-life 14 d)" in text
    assert "history (newest first):" in text


def test_explain_reads_without_writing_and_says_when_stale(db, icp):
    ids = seed(db)
    with db.connect() as conn:
        explanation = explain(conn, icp, "ana@shop.example", NOW)
        assert explain(conn, icp, "missing@nowhere.example", NOW) is None
    assert explanation is not None
    assert explanation.prospect_id == ids["dev"]
    assert explanation.stale and explanation.history == []
    assert [str(r) for r in explanation.result.reasons] == [
        "+1 engagement: opened 2 days ago (1, half-life 14 d)"
    ]
    assert "never scored; run `touchflow score` to update" in "\n".join(explanation.lines())
    assert stored(db, ids["dev"]) == (None, None, None)


def test_competitors_are_disqualified(db, icp):
    with db.begin() as conn:
        pid = add_prospect(conn, "rep@outreach.io", seniority="vp", department="sales")
        rescore(conn, icp, NOW)
    score, grade, lifecycle = stored(db, pid)
    assert (grade, lifecycle) == ("D", "disqualified")
    assert score == 15 + 10 - 5 - 100  # VP, sales, no title, competitor


def test_score_input_from_row_falls_back_to_the_email_domain():
    p = score_input_from_row(
        {"email": "x@Outreach.IO", "account_technologies": "HubSpot", "account_employees": "12"}
    )
    assert (p.domain, p.account_technologies, p.account_employees) == (
        "outreach.io",
        ("HubSpot",),
        12,
    )
