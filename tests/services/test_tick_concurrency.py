"""Four ticks at once against PostgreSQL on the same due set: every touch sent once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import func, select

from tests.support.harness import SENDER, Harness, make_cadence, prospect
from touchflow.adapters.fakes import FakeEmailSender
from touchflow.services.tick import Ticker, TickReport
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.db import make_engine
from touchflow.store.schema import touches

MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_four_concurrent_ticks_send_every_touch_exactly_once(pg_migrated_url, tmp_path):
    setup = make_engine(pg_migrated_url)
    h = Harness(setup, make_cadence(tmp_path))
    n = 600
    h.add([prospect(f"p{i}@x.example") for i in range(n)], SAT)

    senders = [FakeEmailSender() for _ in range(4)]
    reports = [TickReport() for _ in range(4)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        # Each worker has its own engine (connection pool), like a separate machine.
        engine = make_engine(pg_migrated_url)
        tk = Ticker(
            engine,
            email=senders[i],
            sms=None,
            sender_defaults=SENDER,
            runtimes=RuntimeCache("http://localhost:8000"),
        )
        try:
            barrier.wait()
            while True:
                r = tk.run_batch(MON, 25)
                reports[i] += r
                if r.claimed == 0:
                    return
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    sent = Counter(m.to_addr for s in senders for m in s.sent)
    assert len(sent) == n
    assert max(sent.values()) == 1
    # The work really was shared between the workers.
    assert sum(1 for s in senders if s.sent) >= 2
    assert sum(r.conflicts for r in reports) == 0
    with setup.connect() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(touches).where(touches.c.status == "sent")
            ).scalar_one()
            == n
        )
    setup.dispose()
