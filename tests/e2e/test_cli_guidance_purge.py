"""``touchflow guidance purge`` and the daily flow delete transcripts past retention only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from touchflow.domain.transcripts import Speaker, TranscriptSegment
from touchflow.entrypoints.cli import app
from touchflow.ports import TranscriptStarted

runner = CliRunner()
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def _call(engine, sid: str, days_ago: int) -> None:
    from touchflow.services.call_transcripts import CallTranscripts

    at = NOW - timedelta(days=days_ago)
    CallTranscripts(engine).publish([
        TranscriptStarted(call_sid=sid, at=at, source="twilio"),
        TranscriptSegment(call_sid=sid, track="inbound_track", seq=1, said_by=Speaker.REP,
                          text="hello", final=True, at=at),
    ])  # fmt: skip


def _sids(engine) -> list[str]:
    from sqlalchemy import select

    from touchflow.store.schema import call_transcripts

    with engine.connect() as conn:
        return sorted(conn.execute(select(call_transcripts.c.call_sid)).scalars())


def test_purge_keeps_what_is_within_retention(project: Path):
    from touchflow import bootstrap

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = bootstrap.database(bootstrap.load_settings())
    for sid, days in (("CA-old", 45), ("CA-week", 7), ("CA-today", 0)):
        _call(engine, sid, days)
    now = ["--now", NOW.isoformat()]
    result = runner.invoke(app, ["guidance", "purge", *now])  # config/calls.yaml: 30 days
    assert result.exit_code == 0, result.output
    assert "deleted 1 call transcripts and 1 segments older than 30 days" in result.stdout
    assert _sids(engine) == ["CA-today", "CA-week"]
    result = runner.invoke(app, ["guidance", "purge", "--older-than", "3", *now])
    assert result.exit_code == 0 and _sids(engine) == ["CA-today"]
    assert runner.invoke(app, ["guidance", "purge", "--older-than", "-1"]).exit_code == 2

    from touchflow.entrypoints.flows.purge_transcripts import purge

    _call(engine, "CA-old-2", 31)
    settings = bootstrap.load_settings()
    assert purge(settings, NOW) == {"calls": 1, "segments": 1, "retention_days": 30}
    assert purge(settings, NOW)["calls"] == 0  # a rerun deletes nothing more
    assert _sids(engine) == ["CA-today"]


def test_validate_reports_a_broken_calls_yaml_at_file_line_col(project: Path):
    assert runner.invoke(app, ["validate"]).exit_code == 0
    (project / "config" / "calls.yaml").write_text(
        "retention_days: 30\ncountries:\n  US: {consent: maybe}\n  de: announce\n"
    )
    result = runner.invoke(app, ["validate"])
    assert result.exit_code != 0
    output = result.stdout + result.stderr
    assert "calls.yaml:3:" in output and "calls.yaml:4:3" in output, output
