"""``touchflow guidance summarise`` (and the summarise_calls flow) summarise the calls that
never got theirs; ``touchflow task show`` shows what the call covered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from tests.e2e.test_cli_tasks import OWNER, call_tasks  # noqa: F401  (fixture)
from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.entrypoints.cli import app
from touchflow.ports import TranscriptStarted, TranscriptStopped

runner = CliRunner()
T0 = datetime(2026, 12, 2, 20, 5, tzinfo=UTC)


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.stdout


def _record_call(task_id: int, *, stop: bool) -> None:
    """The transcript as the webhook records it, without the after-call hook (it failed)."""
    from touchflow import bootstrap
    from touchflow.services.call_transcripts import CallTranscripts

    sid = "CA-cli"
    lines = [
        ("inbound_track", 1, Speaker.REP, "Hi Jordan, what do you use for calls today?", 3),
        ("outbound_track", 1, Speaker.PROSPECT, "We use Gong, but what is your pricing?", 9),
        ("inbound_track", 2, Speaker.REP, "Happy to share. Shall we book a demo as next step?", 15),
    ]
    events: list = [TranscriptStarted(call_sid=sid, at=T0, source="twilio", task_id=task_id)]
    events += [
        TranscriptSegment(call_sid=sid, track=track, seq=seq, said_by=who, text=text, final=True,
                          at=T0 + timedelta(seconds=secs), language="en-US")
        for track, seq, who, text, secs in lines
    ]  # fmt: skip
    if stop:
        events.append(TranscriptStopped(call_sid=sid, at=T0 + timedelta(seconds=30)))
    CallTranscripts(bootstrap.database(bootstrap.load_settings())).publish(events)


def _task_id() -> int:
    shown = _ok(["tasks", "--owner", OWNER, "--due", "today", "--now", "2026-12-02T20:10:00Z"])
    assert "Tasks (open, due today): 1" in shown
    from sqlalchemy import select

    from touchflow import bootstrap
    from touchflow.store.schema import tasks

    with bootstrap.database(bootstrap.load_settings()).connect() as conn:
        return int(conn.execute(select(tasks.c.id)).scalar_one())


def test_task_show_shows_the_summary_the_sweep_made(call_tasks: Path):  # noqa: F811
    task_id = _task_id()
    before = _ok(["task", "show", str(task_id)])
    assert "After the call" not in before
    _record_call(task_id, stop=False)  # dropped: no stop event
    # Not yet quiet for 30 minutes: nothing to do.
    assert "summarised 0 calls" in _ok(["guidance", "summarise", "--now", "2026-12-02T20:20:00Z"])
    assert "summarised 1 calls" in _ok(["guidance", "summarise", "--now", "2026-12-02T21:00:00Z"])
    assert "summarised 0 calls" in _ok(["guidance", "summarise", "--now", "2026-12-02T21:10:00Z"])
    shown = _ok(["task", "show", str(task_id)])
    after = shown[shown.index("After the call") :]
    assert "Call CA-cli: 0:15 long" in after  # ended at its last segment
    assert "  competitor (1x)" in after and "  pricing (1x)" in after
    assert '0:09 prospect: "We use Gong, but what is your pricing?"' in after
    assert "[x] next-step" in after and "[ ] budget" in after
    assert "Talk ratio: rep " in after and "Longest monologue: " in after
    assert "Questions asked: 2 by the rep, 1 by the prospect" in after
    # Summarised again by hand: still one summary.
    assert f"summarised CA-cli (task {task_id})" in _ok(
        ["guidance", "summarise", "CA-cli", "--now", "2026-12-02T21:30:00Z"]
    )
    assert _ok(["task", "show", str(task_id)]).count("After the call") == 1
    result = runner.invoke(app, ["guidance", "summarise", "CA-nope"])
    assert result.exit_code == 1 and "no transcript of call CA-nope" in result.output


def test_the_flow_sweeps_in_one_batch_and_a_rerun_does_nothing(call_tasks: Path):  # noqa: F811
    from touchflow import bootstrap
    from touchflow.entrypoints.flows.summarise_calls import sweep

    _record_call(_task_id(), stop=True)
    settings = bootstrap.load_settings()
    now = T0 + timedelta(minutes=1)
    assert sweep(settings, now) == {"summarised": 1, "failed": 0}
    assert sweep(settings, now) == {"summarised": 0, "failed": 0}
