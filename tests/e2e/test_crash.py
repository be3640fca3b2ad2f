"""Kill -9 a tick midway (a real subprocess, a real SMTP server), rerun: nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

from sqlalchemy import select

from tests.conftest import ROOT
from tests.support.harness import SENDER, Harness, make_cadence, prospect
from touchflow.adapters.smtp.sink import LocalSmtpSink
from touchflow.store.db import make_engine
from touchflow.store.schema import touches

SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
N = 300


def _run(env: dict[str, str], *, kill_after: int | None, sink: LocalSmtpSink) -> int:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "e2e" / "crash_tick.py"), MON.isoformat(), "20"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if kill_after is not None:
        deadline = time.monotonic() + 60
        while sink.count < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    return proc.returncode


def test_kill_minus_nine_midway_then_rerun(tmp_path: Path, migrated_sqlite):
    url = migrated_sqlite(tmp_path / "crash.db")
    engine = make_engine(url)
    cadence = make_cadence(tmp_path)
    h = Harness(engine, cadence)
    h.add([prospect(f"p{i}@x.example") for i in range(N)], SAT)

    with LocalSmtpSink() as sink:
        env = {
            **os.environ,
            "TOUCHFLOW_DATABASE_URL": url,
            "TOUCHFLOW_EMAIL_TRANSPORT": "smtp",
            "TOUCHFLOW_SMTP__HOST": sink.host,
            "TOUCHFLOW_SMTP__PORT": str(sink.port),
            "TOUCHFLOW_SENDER__EMAIL": SENDER.email,
            # All 300 go in one tick: no send caps (they are tested elsewhere).
            "TOUCHFLOW_COMPLIANCE": '{"mailbox": {"hourly": null, "daily": null}, '
            '"recipient_domain_daily": null}',
            "TOUCHFLOW_CLAIM_LEASE_S": "0",
        }
        code = _run(env, kill_after=N // 3, sink=sink)
        assert code == -signal.SIGKILL
        first = sink.count
        assert 0 < first < N, "the kill must land midway"
        assert _run(env, kill_after=None, sink=sink) == 0
        received = [message_from_bytes(raw) for _frm, _rcpt, raw in sink.messages]

    per_person = Counter(m["To"] for m in received)
    assert max(per_person.values()) == 1, "nobody gets a message twice"
    with engine.connect() as conn:
        rows = conn.execute(select(touches.c.key, touches.c.status)).all()
    statuses = Counter(r.status for r in rows)
    assert set(statuses) <= {"sent", "unknown"}, statuses
    assert len(rows) == N
    got_keys = {m["X-Touchflow-Touch"] for m in received}
    for key, status in rows:
        if status == "sent":
            assert key in got_keys
    # Whatever arrived but is not recorded as sent is visibly unknown, not lost.
    recorded = {k for k, s in rows if s == "sent"}
    assert got_keys - recorded <= {k for k, s in rows if s == "unknown"}
    assert statuses["sent"] >= N - 20  # at most one batch was in flight at the kill
    engine.dispose()
