"""Send caps hold when ticks overlap, and a message that did not go gives its slot back.

Each tick reads the counts, admits what fits, and adds what it admitted; the
reservation (PostgreSQL: an advisory lock per mailbox and domain, SQLite: the
claim's write lock) makes read-and-add one step, so K ticks at once admit no
more than one tick would.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from tests.support.harness import SENDER, TEMPLATES, Harness, make_cadence, prospect
from touchflow.adapters.fakes import FakeEmailSender
from touchflow.domain.compliance import CapPolicy, MailboxCaps, domain_of
from touchflow.errors import FatalError, RecipientRejected, RetryableError
from touchflow.services.tick import Ticker, TickReport
from touchflow.store import guards
from touchflow.store.cadence_versions import RuntimeCache
from touchflow.store.db import make_engine

MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York

EMAIL_ONLY = """\
id: mail-only
name: Mail only
schedule:
  timezone: prospect
  window: {days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
  holidays: none
steps:
  - id: intro
    channel: email
    subject: "Hi {{ prospect.first_name }}"
    template: email/intro.txt.j2
"""

SECOND = replace(SENDER, email="kim@touchflow.example", name="Kim Park")
# sam: 20 a day. kim: 120 an hour, so 10 per 5-minute bucket. Any recipient domain: 6 a day.
POLICY = CapPolicy(
    MailboxCaps(hourly=None, daily=20),
    {SECOND.email: MailboxCaps(hourly=120, daily=None)},
    domain_daily=6,
)
TICKS = 4


def _slow_reads(monkeypatch) -> None:
    """Hold every batch a moment between reading the counts and writing them.

    Without a reservation every overlapping tick reads the same counts in this
    window and admits the same capacity again; with one, the others wait.
    """
    real = guards.load_send_counts

    def slow(*args, **kw):
        counts = real(*args, **kw)
        time.sleep(0.2)
        return counts

    monkeypatch.setattr(guards, "load_send_counts", slow)


def test_overlapping_ticks_never_exceed_any_cap(backend, migrated_db_url, tmp_path, monkeypatch):
    setup = make_engine(migrated_db_url)
    h = Harness(setup, make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES))
    # sam: 40 prospects at 40 domains (its daily cap binds). kim: 20 at bigco
    # (the domain cap binds) and 20 at 20 other domains (kim's stagger binds).
    h.add([prospect(f"s{i}@sam{i}.example") for i in range(40)], MON, sender=SENDER)
    kim = [prospect(f"k{i}@bigco.example") for i in range(20)]
    kim += [prospect(f"k{i}@kim{i}.example") for i in range(20)]
    h.add(kim, MON, sender=SECOND)
    setup.dispose()
    _slow_reads(monkeypatch)

    senders = [FakeEmailSender() for _ in range(TICKS)]
    reports = [TickReport() for _ in range(TICKS)]
    barrier = threading.Barrier(TICKS)
    errors: list[BaseException] = []

    def tick(i: int) -> None:
        # Each tick has its own engine (connection pool), like another worker.
        engine = make_engine(migrated_db_url)
        tk = Ticker(
            engine,
            email=senders[i],
            sms=None,
            sender_defaults=SENDER,
            runtimes=RuntimeCache("http://localhost:8000"),
            caps=POLICY,
        )
        try:
            barrier.wait()
            while (r := tk.run_batch(MON, 20)).claimed:
                reports[i] += r
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(TICKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    sent = [m for s in senders for m in s.sent]
    by_mailbox = Counter(m.from_addr for m in sent)
    by_domain = Counter(domain_of(m.to_addr) for m in sent)
    # Every cap is used to the full, and not one message past it.
    assert by_mailbox == {SENDER.email: 20, SECOND.email: 10}
    assert max(by_domain.values()) <= 6
    assert sum(r.capped for r in reports) == 80 - 30
    if backend == "postgres":
        # The ticks shared the work. (On SQLite one tick may win the single
        # writer's lock batch after batch while the others wait.)
        assert sum(1 for s in senders if s.sent) >= 2
    with make_engine(migrated_db_url).connect() as conn:
        usage = guards.mailbox_usage(conn, MON)
    assert usage == [(SECOND.email, 10, 10), (SENDER.email, 20, 20)]


class _Refusing(FakeEmailSender):
    """Answers each recipient's local part: ``retry*`` 503, ``fatal*`` 535, ``gone*`` 550."""

    def __init__(self) -> None:
        errors = {
            "retry": RetryableError("503 try later", connector="fake", operation="send"),
            "fatal": FatalError("535 auth failed", connector="fake", operation="send"),
            "gone": RecipientRejected("550 no such user", connector="fake", operation="send"),
        }
        fail = {f"{k}{i}@x{i}.example": e for k, e in errors.items() for i in range(3)}
        super().__init__(fail=fail)


def test_messages_that_did_not_go_give_their_capacity_back(db, tmp_path):
    policy = CapPolicy(MailboxCaps(hourly=None, daily=10), {}, domain_daily=None)
    h = Harness(db, make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES), email=_Refusing(), caps=policy)
    people = [prospect(f"{k}{i}@x{i}.example") for k in ("ok", "retry", "fatal") for i in range(3)]
    h.add(people, MON)
    report = h.tick(MON)
    assert (report.sent, report.retrying, report.failed) == (3, 3, 3)
    with db.connect() as conn:
        # The three accepted count; the six the provider refused outright do not.
        assert guards.mailbox_usage(conn, MON) == [(SENDER.email, 3, 3)]
    # So the day still has room for 7: three new prospects go now.
    h.add([prospect(f"new{i}@n{i}.example") for i in range(3)], MON)
    assert h.tick(MON).sent == 3
    with db.connect() as conn:
        assert guards.mailbox_usage(conn, MON) == [(SENDER.email, 6, 6)]


def test_a_rejected_recipient_still_counts_against_the_cap(db, tmp_path):
    policy = CapPolicy(MailboxCaps(hourly=None, daily=10), {}, domain_daily=None)
    h = Harness(db, make_cadence(tmp_path, EMAIL_ONLY, TEMPLATES), email=_Refusing(), caps=policy)
    h.add([prospect(f"gone{i}@x{i}.example") for i in range(3)], MON)
    assert h.tick(MON).bounced == 3
    with db.connect() as conn:
        # The provider took the attempt (and the bounce shield counts it as a send).
        assert guards.mailbox_usage(conn, MON) == [(SENDER.email, 3, 3)]
