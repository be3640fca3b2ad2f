"""`touchflow tasks` and `touchflow task done` as an SDR works them, through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from touchflow.entrypoints.cli import app

runner = CliRunner()

PROSPECTS = (
    "email,first_name,last_name,title,company,domain,phone,country,timezone\n"
    "jordan.lee@northwind-analytics.com,Jordan,Lee,VP Revenue Operations,Northwind Analytics,"
    "northwind-analytics.com,+14155550100,US,America/Los_Angeles\n"
    "anna.schmidt@example.de,Anna,Schmidt,Leiterin Vertrieb,Example GmbH,example.de,"
    "+4930123456,DE,Europe/Berlin\n"
)
OWNER = "sam@yourco.com"


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def call_tasks(project: Path) -> Path:
    """The README's tour up to the first call task (Jordan's, due Wed 2 Dec 20:00 UTC)."""
    (project / "prospects.csv").write_text(PROSPECTS)
    _ok(["db", "upgrade"])
    _ok(["import", "prospects.csv"])
    _ok(
        [
            "enroll",
            "enterprise-outbound",
            "--all",
            "--owner",
            OWNER,
            "--now",
            "2026-11-30T16:00:00Z",
        ]
    )
    _ok(["run", "--now", "2026-11-30T16:25:00Z"])
    _ok(["run", "--now", "2026-12-02T20:00:00Z"])
    return project


def test_tasks_due_today_shows_both_local_times_and_the_phone(call_tasks: Path):
    shown = _ok(["tasks", "--owner", OWNER, "--due", "today", "--now", "2026-12-02T20:10:00Z"])
    assert "Tasks (open, due today): 1" in shown
    assert "due (America/New_York)" in shown  # the SDR's zone (TOUCHFLOW_SENDER__TIMEZONE)
    assert "Wed 02 Dec 15:00" in shown  # 20:00 UTC in New York
    assert "Wed 12:00 America/Los_Angeles" in shown  # and in Jordan's own time
    assert "+14155550100" in shown and "Jordan Lee" in shown
    berlin = _ok(
        ["tasks", "--due", "today", "--tz", "Europe/Berlin", "--now", "2026-12-02T20:10:00Z"]
    )
    assert "due (Europe/Berlin)" in berlin and "Wed 02 Dec 21:00" in berlin
    # The day before, nothing is due "today".
    assert "due today): 0" in _ok(["tasks", "--due", "today", "--now", "2026-12-01T20:00:00Z"])


def test_task_done_says_what_it_did_and_a_repeat_is_already_done(call_tasks: Path):
    done = ["task", "done", "1", "--outcome", "voicemail", "--now", "2026-12-02T20:30:00Z"]
    first = _ok(done)
    assert first.startswith("task 1 (Call: Jordan Lee")
    assert "voicemail; enrollment 1 advanced to step 3. linkedin-connect, due 2026-12-03" in first
    again = _ok(done)
    assert "already done (voicemail, 2026-12-02 20:30 UTC); nothing changed" in again
    result = runner.invoke(app, ["task", "done", "1", "99"])
    assert result.exit_code == 1
    assert "already done" in result.stdout and "error: no task 99" in result.stderr


def test_task_done_all_due_for_one_owner(call_tasks: Path):
    at = "2026-12-03T21:00:00Z"
    assert "Tasks (open): 1" in _ok(["tasks", "--now", at])
    nothing = _ok(["task", "done", "--all-due", "--owner", "nobody@yourco.com", "--now", at])
    assert "no open task due by 2026-12-03 21:00 UTC for nobody@yourco.com" in nothing
    done = _ok(
        ["task", "done", "--all-due", "--owner", OWNER, "--outcome", "not_interested", "--now", at]
    )
    assert "not_interested; enrollment 1 finished (not_interested)" in done
    assert "Tasks (open): 0" in _ok(["tasks"])


def test_task_done_with_several_ids(call_tasks: Path):
    _ok(["task", "done", "1", "--outcome", "voicemail", "--now", "2026-12-02T20:30:00Z"])
    _ok(["run", "--now", "2026-12-04T21:00:00Z"])  # Jordan's LinkedIn step: task 2
    assert "linkedin" in _ok(["tasks"])
    out = _ok(["task", "done", "1", "2", "--now", "2026-12-04T21:05:00Z"])
    assert "task 1 (Call: Jordan Lee" in out and "already done (voicemail" in out
    assert "task 2 (" in out and "completed; enrollment 1 advanced to step 4." in out


@pytest.mark.parametrize(
    "args",
    [["task", "done"], ["task", "done", "1", "--all-due"], ["task", "done", "1", "--owner", OWNER]],
)
def test_task_done_usage(call_tasks: Path, args: list[str]):
    assert runner.invoke(app, args).exit_code == 2


def test_run_on_an_idle_database_says_nothing_is_due(project: Path):
    _ok(["db", "upgrade"])
    shown = _ok(["run", "--now", "2026-11-30T16:25:00Z"])
    assert shown.strip() == "nothing due at 2026-11-30 16:25 UTC; next touch due: none"


def test_run_and_status_say_why_sends_fail(project: Path, monkeypatch: pytest.MonkeyPatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on: the SMTP server is "down"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (project / "prospects.csv").write_text(PROSPECTS)
    _ok(["db", "upgrade"])
    _ok(["import", "prospects.csv"])
    _ok(["enroll", "enterprise-outbound", "--all", "--now", "2026-11-30T16:00:00Z"])
    assert "next touch due: 2026-11-30 16:" in _ok(["run", "--now", "2026-11-30T15:00:00Z"])
    monkeypatch.setenv("TOUCHFLOW_EMAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("TOUCHFLOW_SMTP__PORT", str(port))
    monkeypatch.setenv("TOUCHFLOW_SMTP__TIMEOUT_S", "2")
    ran = _ok(["run", "--now", "2026-11-30T16:25:00Z"])  # retrying, not failed: exit 0
    assert "Sends that failed in this tick" in ran
    assert "Connection refused" in ran and "│     2 │" in ran  # one line, counted
    status = _ok(["status"])
    assert "RetryableError" not in status
    assert "retrying:smtp." in status and "Send failures, last 24 h" in status


def test_a_meeting_on_a_cadence_that_does_not_exit_on_one_moves_the_enrollment_on(
    project: Path,
):
    """meeting_booked ends the cadences that list it in exit_on; one that does not goes on.

    Before, the enrollment stayed waiting on a task that was already done.
    """
    cadence = project / "cadences" / "enterprise-outbound.yaml"
    text = cadence.read_text()
    assert "meeting_booked, deal_created]" in text
    cadence.write_text(text.replace("meeting_booked, deal_created]", "deal_created]"))
    (project / "prospects.csv").write_text(PROSPECTS)
    _ok(["db", "upgrade"])
    _ok(["import", "prospects.csv"])
    _ok(["enroll", "enterprise-outbound", "--all", "--owner", OWNER,
         "--now", "2026-11-30T16:00:00Z"])  # fmt: skip
    _ok(["run", "--now", "2026-11-30T16:25:00Z"])
    _ok(["run", "--now", "2026-12-02T20:00:00Z"])
    said = _ok(["task", "done", "1", "--outcome", "meeting_booked",
                "--now", "2026-12-02T20:30:00Z"])  # fmt: skip
    assert "advanced to step 3. linkedin-connect" in said, said
    assert "waiting_task" not in _ok(["status"])
