"""Operating commands end to end: suppressions, cadence pauses, the email footer rule."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from touchflow.entrypoints.cli import app

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_suppressions_are_normalized_listed_and_lifted(project: Path):
    _ok(["db", "upgrade"])
    _ok(["suppress", "add", "phone", "(415) 555-0101", "--country", "US", "--reason", "by phone"])
    _ok(["suppress", "add", "email", " Ana@Northwind.Example "])
    _ok(["suppress", "add", "domain", "@competitor.example", "--reason", "competitor"])
    listing = _ok(["suppress", "list"])
    for value in ("+14155550101", "ana@northwind.example", "competitor.example", "by phone"):
        assert value in listing
    assert "domain: 1, email: 1, phone: 1" in listing
    assert "suppressed: domain 1, email 1, phone 1" in _ok(["status"])
    _ok(["suppress", "remove", "phone", "+1 415 555 0101"])
    assert runner.invoke(app, ["suppress", "remove", "phone", "+14155550101"]).exit_code == 1
    assert runner.invoke(app, ["suppress", "add", "fax", "123"]).exit_code == 2
    assert runner.invoke(app, ["suppress", "add", "phone", "not a number"]).exit_code == 2


def test_cadence_pause_and_resume(project: Path):
    _ok(["db", "upgrade"])
    assert "no cadence is paused" in _ok(["cadence", "paused"])
    _ok(["cadence", "pause", "enterprise-outbound", "--reason", "list hygiene review"])
    assert runner.invoke(app, ["cadence", "pause", "enterprise-outbound"]).exit_code == 1
    assert "list hygiene review" in _ok(["cadence", "paused"])
    status = runner.invoke(app, ["status"])
    assert "paused: enterprise-outbound" in status.stderr
    _ok(["cadence", "resume", "enterprise-outbound"])
    assert runner.invoke(app, ["cadence", "resume", "enterprise-outbound"]).exit_code == 1


def test_validate_refuses_an_email_without_footer(project: Path):
    (project / "templates/email/intro.txt.j2").write_text("Hi {{ prospect.first_name }}\n")
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    assert "templates/email/intro.txt.j2:1:1: error: email template has no unsubscribe link" in (
        result.stdout
    )
    assert "no postal address" in result.stdout


def test_task_show_prints_the_script_and_call_needs_twilio(
    project: Path, tmp_path: Path, monkeypatch
):
    from datetime import UTC, datetime

    from tests.support.harness import Harness, make_cadence, prospect
    from touchflow.store.db import make_engine

    _ok(["db", "upgrade"])
    h = Harness(make_engine(f"sqlite:///{project / 'tf.db'}"), make_cadence(tmp_path / "c"))
    mon = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    h.add([prospect("ana@northwind.example", first_name="Ana", company="Northwind")], mon)
    h.tick(mon)
    h.tick(h.enrollment("ana@northwind.example").next_due_at)  # the call step
    shown = _ok(["task", "show", "1"])
    assert "Ana Lee <ana@northwind.example>, Northwind; phone +12125550123" in shown
    assert "(America/New_York)" in shown
    assert "Call Ana about Northwind." in shown  # the rendered script
    assert "touchflow task call 1" in shown
    assert runner.invoke(app, ["task", "show", "99"]).exit_code == 1
    call = ["task", "call", "1", "--agent-number", "+12125550199"]
    result = runner.invoke(app, call)
    assert result.exit_code == 1 and "TOUCHFLOW_TWILIO__FROM_NUMBER" in result.stderr
    monkeypatch.setenv("TOUCHFLOW_TWILIO__FROM_NUMBER", "+12125550100")
    result = runner.invoke(app, call)
    assert result.exit_code == 1 and "TOUCHFLOW_TWILIO__ACCOUNT_SID" in result.stderr


def test_route_takes_mqls_by_default_and_a_lower_stage_when_asked(project: Path):
    from sqlalchemy import create_engine, func, select

    from touchflow.demo.data import generate_rows, write_csv
    from touchflow.store.schema import prospects

    _ok(["db", "upgrade"])
    write_csv(project / "leads.csv", generate_rows(120))
    imported = runner.invoke(app, ["import", "leads.csv"])
    assert imported.exit_code == 1 and "122 new" in imported.output  # + 3 messy rows aside
    _ok(["enrich"])
    _ok(["score"])
    engine = create_engine(f"sqlite:///{project / 'tf.db'}")

    def count(*where: object) -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(prospects).where(*where)).scalar()

    qualified = count(prospects.c.lifecycle.in_(["mql", "sql"]), prospects.c.opted_out_at.is_(None))
    rest = count(
        prospects.c.lifecycle.is_(None) | (prospects.c.lifecycle == "lead"),
        prospects.c.opted_out_at.is_(None),
    )
    assert qualified and rest  # the generated base has both
    assert f"Routed {qualified} lead(s)" in _ok(["route", "--now", "2026-12-01T15:00:00Z"])
    routed = count(prospects.c.ae_email.is_not(None))
    assert 0 < routed <= qualified  # people, or a queue (no ae_email)
    assert count(prospects.c.ae_email.is_not(None), prospects.c.lifecycle == "lead") == 0
    assert f"Routed {rest} lead(s)" in _ok(
        ["route", "--min-lifecycle", "lead", "--now", "2026-12-01T15:00:00Z"]
    )
    assert runner.invoke(app, ["route", "--min-lifecycle", "disqualified"]).exit_code == 1
