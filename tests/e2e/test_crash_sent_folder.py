"""Kill -9 a tick with a pooled SMTP batch in flight; settle it from the Sent folder; nothing twice.

The SMTP server here (LocalSmtpSink) saves every message it accepts to the
sender's Sent folder on a real Dovecot, with IMAP APPEND, before it answers
``250``: what a mail server with save-to-sent does (Gmail and Microsoft 365
keep a copy of what is submitted over SMTP). So a message in flight at the
kill may be in the Sent folder although touchflow never heard the ``250``.
"""

from __future__ import annotations

import json
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
from tests.support.imap_server import dovecot_server
from touchflow.adapters.smtp.sink import LocalSmtpSink, ReceivedMessage
from touchflow.store.db import make_engine
from touchflow.store.schema import touches

SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
N = 300
RECORD_EVERY = 20
PASSWORD = "sent-pw"


def _tick(env: dict[str, str], *, kill_at: int | None, sink: LocalSmtpSink) -> int:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "e2e" / "crash_tick.py"), MON.isoformat(), str(N)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if kill_at is not None:
        deadline = time.monotonic() + 60
        while sink.count < kill_at and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
    _out, errs = proc.communicate(timeout=120)
    if kill_at is not None:
        sink.wait_idle()  # what the dead process had already handed the server is in
    assert kill_at is not None or proc.returncode == 0, errs.decode()
    return proc.returncode


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "touchflow", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.key: r.status for r in conn.execute(select(touches.c.key, touches.c.status))}


def test_kill_minus_nine_mid_pooled_batch_then_sent_folder_then_retry(
    tmp_path: Path, migrated_sqlite
):
    url = migrated_sqlite(tmp_path / "crash.db")
    engine = make_engine(url)
    h = Harness(engine, make_cadence(tmp_path))
    h.add([prospect(f"p{i}@x.example") for i in range(N)], SAT)
    user = SENDER.email

    with dovecot_server({user: PASSWORD}) as imap:
        conn = imap.connect(user)
        conn.create('"Sent"')
        conn.logout()

        def save_to_sent(message: ReceivedMessage) -> None:
            imap.append(user, message.raw, folder="Sent", flags=r"\Seen")

        with LocalSmtpSink(on_message=save_to_sent) as sink:
            env = {
                **os.environ,
                "TOUCHFLOW_DATABASE_URL": url,
                "TOUCHFLOW_EMAIL_TRANSPORT": "smtp",
                "TOUCHFLOW_SMTP__HOST": sink.host,
                "TOUCHFLOW_SMTP__PORT": str(sink.port),
                "TOUCHFLOW_SMTP__POOL_SIZE": "2",
                "TOUCHFLOW_RECORD_EVERY": str(RECORD_EVERY),
                "TOUCHFLOW_SENDER__EMAIL": user,
                "TOUCHFLOW_COMPLIANCE": '{"mailbox": {"hourly": null, "daily": null}, '
                '"recipient_domain_daily": null}',
                "TOUCHFLOW_CLAIM_LEASE_S": "0",
                "TOUCHFLOW_REPLIES__MAILBOXES": json.dumps(
                    [
                        {
                            "host": imap.host,
                            "port": imap.port,
                            "username": user,
                            "password": PASSWORD,
                            "ssl": False,
                        }
                    ]
                ),
            }
            # Mid-sub-batch: 150 is inside the 8th sub-batch of 20 (140-159).
            assert _tick(env, kill_at=150, sink=sink) == -signal.SIGKILL
            delivered = {message_from_bytes(m.raw)["X-Touchflow-Touch"] for m in sink.messages}
            assert 150 <= len(delivered) < N

            after_kill = _statuses(engine)
            counts = Counter(after_kill.values())
            assert set(counts) <= {"sent", "sending", "queued"}, counts
            # One sub-batch (over both pooled connections) was with the server.
            assert counts["sending"] <= RECORD_EVERY
            assert (
                len(delivered - {k for k, s in after_kill.items() if s == "sent"}) <= RECORD_EVERY
            )
            assert counts["sending"] + counts["queued"] + counts["sent"] == N

            settled = _cli(env, "reconcile")
            after = _statuses(engine)
            in_flight = {k for k, s in after_kill.items() if s == "sending"}
            # Every message that reached the server (and so its Sent folder) is `sent` now.
            assert all(after[k] == "sent" for k in delivered if k in after), settled.stdout
            assert in_flight & delivered, "the kill must land with messages in flight"
            unknown = {k for k, s in after.items() if s == "unknown"}
            assert unknown == in_flight - delivered
            assert settled.returncode == (1 if unknown else 0), settled.stdout + settled.stderr
            assert "found in Sent folders" in settled.stdout
            # The queued rest never went out: recovery deleted those touches.
            assert not {k for k, s in after.items() if s in ("queued", "sending")}

            if unknown:
                # Only what really did not arrive is left: resending it duplicates nothing.
                retried = _cli(env, "retry", "--all-failed", "--force", "--now", MON.isoformat())
                assert retried.returncode == 0, retried.stdout + retried.stderr
            assert _tick(env, kill_at=None, sink=sink) == 0
            received = [message_from_bytes(m.raw) for m in sink.messages]

    per_person = Counter(m["To"] for m in received)
    assert len(per_person) == N
    assert max(per_person.values()) == 1, "nobody gets a message twice"
    final = Counter(_statuses(engine).values())
    assert final["sent"] == N, final
    engine.dispose()
