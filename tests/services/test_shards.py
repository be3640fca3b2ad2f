"""A tick's shards: how many a tick starts, and the loop each runs (budget, short batch)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.harness import SENDER, Harness, make_cadence, prospect
from touchflow.adapters.fakes import FakeEmailSender
from touchflow.services.shards import drain, fans_out, shard_count
from touchflow.services.tick import Ticker, batch_step
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.db import make_engine

SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def _harness(db, tmp_path, n: int) -> Harness:
    h = Harness(db, make_cadence(tmp_path))
    h.add([prospect(f"p{i}@d{i}.example") for i in range(n)], SAT)
    return h


def test_one_shard_per_due_batch_at_most_the_setting(db, tmp_path):
    _harness(db, tmp_path, 25)
    assert shard_count(db, MON, shards=4, batch_size=10) == 3
    assert shard_count(db, MON, shards=2, batch_size=10) == 2
    assert shard_count(db, MON, shards=4, batch_size=1000) == 1
    assert shard_count(db, SAT - timedelta(days=1), shards=4, batch_size=10) == 0


def test_only_postgresql_fans_out(db, backend):
    assert fans_out(db) == (backend == "postgres")


def test_drain_stops_at_a_short_batch(db, tmp_path):
    h = _harness(db, tmp_path, 25)
    calls: list[int] = []

    def counted(tk, now, limit):
        calls.append(limit)
        return batch_step(tk, now, limit)

    report, stopped = drain(h.ticker, MON, 10, run_batch=counted)
    assert (report.claimed, report.sent, stopped) == (25, 25, False)
    assert calls == [10, 10, 10]
    sent_to = sorted(m.to_addr for m in h.email.sent)
    assert sent_to == sorted(f"p{i}@d{i}.example" for i in range(25))


def test_drain_stops_between_batches_when_its_budget_is_spent(db, tmp_path):
    h = _harness(db, tmp_path, 25)
    ticks = iter([0.0, 5.0, 11.0, 99.0])  # the start, then after each batch

    report, stopped = drain(h.ticker, MON, 10, budget_s=10, clock=lambda: next(ticks))
    assert (report.claimed, report.sent, stopped) == (20, 20, True)
    # What is left is the next tick's: a second drain finds the last 5.
    rest, stopped = drain(h.ticker, MON, 10, budget_s=10)
    assert (rest.sent, stopped) == (5, False)


@pytest.mark.postgres
def test_three_shards_at_once_send_each_touch_once_and_all_of_them(pg_migrated_url, tmp_path):
    setup = make_engine(pg_migrated_url)
    n = 450
    _harness(setup, tmp_path, n)
    senders = [FakeEmailSender() for _ in range(3)]
    claimed = [0, 0, 0]
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def shard(i: int) -> None:
        engine = make_engine(pg_migrated_url)  # a process of its own, as on a worker
        tk = Ticker(
            engine,
            email=senders[i],
            sms=None,
            sender_defaults=SENDER,
            runtimes=RuntimeCache("http://localhost:8000"),
        )
        try:
            barrier.wait()
            claimed[i] = drain(tk, MON, 25, budget_s=60)[0].claimed
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    to = Counter(addr for s in senders for addr in (m.to_addr for m in s.sent))
    assert len(to) == n and set(to.values()) == {1}
    assert sum(claimed) == n
    setup.dispose()
