"""``touchflow task show`` leads the rep to the call's live screen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from touchflow.entrypoints.cli import app

runner = CliRunner()


def test_task_show_prints_the_live_call_screen_url(project: Path, tmp_path: Path, monkeypatch):
    from tests.support.harness import Harness, make_cadence, prospect
    from touchflow.ports import TranscriptStarted
    from touchflow.services.call_transcripts import CallTranscripts
    from touchflow.store.db import make_engine

    monkeypatch.setenv("TOUCHFLOW_PUBLIC_URL", "https://touchflow.acme.example/")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(f"sqlite:///{project / 'tf.db'}")
    h = Harness(engine, make_cadence(tmp_path / "c"))
    mon = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    h.add([prospect("ana@northwind.example", first_name="Ana", company="Northwind")], mon)
    h.tick(mon)
    h.tick(h.enrollment("ana@northwind.example").next_due_at)  # the call step
    before = runner.invoke(app, ["task", "show", "1"])
    assert before.exit_code == 0, before.output
    assert "live call screen: https://touchflow.acme.example/calls (once" in before.stdout
    sid = "CA" + "9" * 32
    CallTranscripts(engine).publish([TranscriptStarted(sid, mon, "twilio", "en-US", 1)])
    after = runner.invoke(app, ["task", "show", "1"])
    assert f"live call screen (live): https://touchflow.acme.example/calls/{sid}" in after.stdout
