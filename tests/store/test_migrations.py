"""The Alembic migrations produce exactly the schema the code declares."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from touchflow.store.schema import metadata


def test_migrations_match_metadata(db_from_empty):
    with db_from_empty.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_enrollments_held_for_a_missing_phone_are_released(db_url):
    """0004: what the tick used to hold for a missing phone it now skips, so it is due again."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from touchflow.store.db import make_engine, upgrade
    from touchflow.store.schema import cadence_versions, enrollments, prospects

    engine = make_engine(db_url)
    upgrade(engine, "0003")
    then = datetime(2026, 11, 30, 16, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(cadence_versions),
            {"version": "v", "cadence_id": "c", "yaml_text": "", "source_path": "c.yaml",
             "templates": {}, "created_at": then},
        )  # fmt: skip
        conn.execute(
            insert(prospects),
            [
                {"id": i, "email": f"p{i}@acme.example", "fields": {}, "created_at": then,
                 "updated_at": then}
                for i in (1, 2)
            ],
        )  # fmt: skip
        conn.execute(
            insert(enrollments),
            [
                {"id": i, "prospect_id": i, "cadence_id": "c", "cadence_version": "v",
                 "state": "pending", "reason": reason, "step_index": 3, "attempt": 1,
                 "next_due_at": None, "enrolled_at": then, "updated_at": then,
                 "owner_email": "sam@yourco.com", "sender_email": "sam@yourco.com"}
                for i, reason in ((1, "missing_data:prospect.phone"),
                                  (2, "missing_data:prospect.title"))
            ],
        )  # fmt: skip
    upgrade(engine)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(enrollments))}
    engine.dispose()
    assert rows[1].reason is None and rows[1].next_due_at is not None
    assert rows[1].next_due_at > then
    # Other missing data still waits for the data.
    assert rows[2].reason == "missing_data:prospect.title" and rows[2].next_due_at is None


def test_the_mailbox_rollup_is_filled_from_the_delivery_rollup(db_url):
    """0018: rollup_mailbox starts as rollup_delivery summed over the recipient domains."""
    from datetime import date

    from sqlalchemy import text

    from touchflow.store import rollups
    from touchflow.store.db import make_engine, upgrade

    engine = make_engine(db_url)
    upgrade(engine, "0017_forecast_results")
    rows = [
        (date(2026, 11, 30), "sam@yourco.com", "acme.example", "sent", 3),
        (date(2026, 11, 30), "sam@yourco.com", "globex.example", "sent", 2),
        (date(2026, 11, 30), "sam@yourco.com", "globex.example", "bounced", 1),
        (date(2026, 12, 1), "sam@yourco.com", "acme.example", "sent", 4),
        (date(2026, 11, 30), "lena@yourco.com", "acme.example", "sent", 5),
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO rollup_delivery (day, mailbox, domain, metric, n)"
                " VALUES (:d, :mb, :dom, :m, :n)"
            ),
            [{"d": d, "mb": mb, "dom": dom, "m": m, "n": n} for d, mb, dom, m, n in rows],
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert rollups.rollup_mailbox_counts(conn) == {
            "sam@yourco.com": {"sent": 9, "bounced": 1},
            "lena@yourco.com": {"sent": 5},
        }
        assert rollups.rollup_mailbox_counts(conn, until=date(2026, 11, 30)) == {
            "sam@yourco.com": {"sent": 5, "bounced": 1},
            "lena@yourco.com": {"sent": 5},
        }
    engine.dispose()
