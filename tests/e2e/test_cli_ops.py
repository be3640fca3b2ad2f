"""Operating commands end to end: suppressions, cadence pauses, the email footer rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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


def _mena_config(project: Path) -> None:
    """The trial's config: a MENA region overlapping EMEA on AE, SA, QA; Farid covers MENA."""
    routing = project / "config/routing.yaml"
    text = routing.read_text()
    text = text.replace("  emea: [GB,", "  mena: [IR, AE, SA, QA]\n  emea: [GB,", 1)
    text = text.replace(
        "  - name: emea\n",
        "  - name: mena\n    kind: territory\n    match: {regions: [mena]}\n"
        "    pool: {role: ae, territories: [mena]}\n\n  - name: emea\n",
        1,
    )
    routing.write_text(text)
    team = project / "config/team.yaml"
    team.write_text(team.read_text().replace("[AE, SA, QA, emea]", "[mena, emea]", 1))


def test_route_keeps_iranian_leads_in_mena_and_shows_who_got_what_and_why(project: Path):
    from sqlalchemy import create_engine, select

    from touchflow.store.schema import prospects

    _mena_config(project)
    checked = runner.invoke(app, ["validate", "config"])
    assert checked.exit_code == 0, checked.output
    assert re.search(
        r"config/routing.yaml:\d+:11: warning: rule 'mena': AE, QA, SA are also in", checked.stdout
    )
    assert "1 warning(s)" in checked.stderr
    _ok(["db", "upgrade"])
    rows = ["email,first_name,last_name,company,country"] + [
        f"p{i}@firm{i}.ir,Ali,Rezaei{i},Firm{i},IR"
        for i in range(5)  # Farid takes 5 a day
    ]
    (project / "ir.csv").write_text("\n".join(rows) + "\n")
    _ok(["import", "ir.csv"])
    shown = _ok(["route", "--min-lifecycle", "lead", "--now", "2026-12-01T15:00:00Z"])
    engine = create_engine(f"sqlite:///{project / 'tf.db'}")
    with engine.connect() as conn:
        owners = set(conn.execute(select(prospects.c.ae_email)).scalars())
    assert owners == {"farid.haddad@yourco.com"}  # not Berlin, not London
    assert "Routed 5 lead(s)" in shown
    assert any(
        "p0@firm0.ir" in line and "farid.haddad@yourco.com" in line and "mena" in line
        for line in shown.splitlines()
    ), shown
    assert "rule mena (IR); pool" in shown and "Leads per assignee" in shown


def test_crm_sync_backfills_leads_routed_before_the_crm_was_configured(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    _ok(["db", "upgrade"])
    rows = ["email,first_name,last_name,title,company,country"] + [
        f"p{i}@firm{i}.de,Hans,Muller{i},CTO,Firm{i},DE" for i in range(3)
    ]
    (project / "de.csv").write_text("\n".join(rows) + "\n")
    _ok(["import", "de.csv"])
    _ok(["route", "--min-lifecycle", "lead", "--now", "2026-12-01T15:00:00Z"])  # no CRM yet
    monkeypatch.setenv("TOUCHFLOW_CRM__PROVIDER", "fake")
    plain = runner.invoke(app, ["crm", "sync"])
    assert plain.exit_code == 0, plain.output
    assert "3 routed lead(s) were never queued for fake" in plain.stderr
    assert "--backfill" in plain.stderr
    filled = _ok(["crm", "sync", "--backfill"])
    assert "backfill: queued 3 routed lead(s) fake never had" in filled
    leads_row = next(line for line in filled.splitlines() if " leads " in line)
    assert leads_row.split("│")[3].strip() == "3"  # pushed
    again = runner.invoke(app, ["crm", "sync", "--backfill"])
    assert "queued 0 routed lead(s)" in again.stdout and "never queued" not in again.stderr


def test_crm_check_reports_unknown_owner_ids_and_missing_properties(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    import yaml

    from tests.support.standins.hubspot_api import HubspotStandin

    with HubspotStandin(page_size=2) as hubspot:
        monkeypatch.setenv("TOUCHFLOW_CRM__PROVIDER", "hubspot")
        monkeypatch.setenv("TOUCHFLOW_CRM__BASE_URL", hubspot.base_url)
        monkeypatch.setenv("TOUCHFLOW_CRM__TOKEN", hubspot.credentials)
        team = project / "config/team.yaml"
        text = team.read_text()
        # Every AE gets a real HubSpot owner id, except Farid, whose id is a typo.
        for member in yaml.safe_load(text)["members"]:
            email, old_id = member["email"], member.get("crm_owner_id")
            if old_id:
                new = "99999" if email.startswith("farid") else hubspot.seed_owner(email, email)
                text = text.replace(f'"{old_id}"', f'"{new}"')
        team.write_text(text)
        hubspot.seed_owner("someone.else@yourco.com", "Not on the team")

        ok = runner.invoke(app, ["crm", "check"])
        assert ok.exit_code == 1, ok.output
        farid = next(line for line in ok.stdout.splitlines() if "farid.haddad" in line)
        assert "99999" in farid and "unknown in the CRM" in farid
        assert "1 problem(s) in hubspot" in ok.stderr
        assert ok.stdout.count("touchflow_key") == 4  # notes, calls, emails, tasks: all there

        text = text.replace('"99999"', f'"{hubspot.seed_owner("farid.haddad@yourco.com", "F")}"')
        team.write_text(text)
        assert runner.invoke(app, ["crm", "check"]).exit_code == 0

        hubspot.drop_field("calls", "touchflow_key")
        missing = runner.invoke(app, ["crm", "check"])
        assert missing.exit_code == 1
        calls = next(line for line in missing.stdout.splitlines() if line.startswith("│ calls"))
        assert "missing: create a" in calls


def test_crm_sync_shows_why_pushes_failed_and_exits_1(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    from tests.support.standins.hubspot_api import HubspotStandin

    _ok(["db", "upgrade"])
    (project / "one.csv").write_text("email,first_name,company,country\na@firm.de,A,Firm,DE\n")
    _ok(["import", "one.csv"])
    _ok(["route", "--min-lifecycle", "lead", "--now", "2026-12-01T15:00:00Z"])
    with HubspotStandin() as hubspot:
        monkeypatch.setenv("TOUCHFLOW_CRM__PROVIDER", "hubspot")
        monkeypatch.setenv("TOUCHFLOW_CRM__BASE_URL", hubspot.base_url)
        monkeypatch.setenv("TOUCHFLOW_CRM__TOKEN", "pat-na1-revoked")
        result = runner.invoke(app, ["crm", "sync", "--backfill"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    row = next(line for line in result.stdout.splitlines() if " leads " in line)
    assert [c.strip() for c in row.split("│")[3:6]] == ["0", "0", "1"]  # pushed, retrying, failed
    assert "Not pushed, and why" in result.stdout and "Authentication" in result.stdout
    assert "pull failed: hubspot.changes_since" in result.stderr.replace("\n", " ")


@pytest.mark.parametrize(
    ("command", "broken", "where"),
    [
        (["route"], "routing.yaml", "routing.yaml:"),
        (["score"], "icp.yaml", "icp.yaml:"),
    ],
)
def test_route_and_score_list_a_broken_config_files_findings(
    project: Path, command: list[str], broken: str, where: str
):
    """A broken config file is reported as its findings (file:line:col), not one error line."""
    path = project / "config" / broken
    path.write_text(path.read_text() + "\nnot_a_key_anyone_knows: 1\n")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, command)
    assert result.exit_code == 1
    assert where in result.output, result.output
    assert "error(s)" in result.output
