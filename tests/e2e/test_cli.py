"""The CLI end to end, in-process (typer's runner), against a real SQLite file."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from tests.support.harness import write_cadence
from touchflow.entrypoints.cli import app

runner = CliRunner()


def _csv(path: Path, rows: list[dict[str, str]]) -> Path:
    cols = sorted({k for r in rows for k in r}, key=lambda c: (c != "email", c))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


PEOPLE = [
    {
        "email": "ana@northwind.example",
        "first_name": "Ana",
        "last_name": "Silva",
        "title": "VP Sales",
        "company": "Northwind",
        "country": "US",
        "timezone": "America/Los_Angeles",
        "phone": "+14155550101",
        "industry": "Software",
    },
    {
        "email": "jonas@fabrik.example",
        "first_name": "Jonas",
        "last_name": "Weber",
        "title": "Head of RevOps",
        "company": "Fabrik",
        "country": "DE",
        "phone": "+493012345678",
    },
    {
        "email": "yuki@kaisha.example",
        "first_name": "Yuki",
        "last_name": "Sato",
        "title": "Sales Director",
        "company": "Kaisha",
        "phone": "+81312345678",
        "country": "JP",
    },
]


def test_validate_bundled_content_is_clean(project: Path):
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output


def test_validate_reports_file_line_col_and_exits_1(project: Path):
    (project / "cadences" / "broken.yaml").write_text(
        "id: broken\nname: Broken\nschedule:\n  window: {days: [mon], start: '09:00', "
        "end: '17:00'}\n  timezone: Mars/Base\nsteps:\n  - id: a\n    channel: email\n"
        "    subject: hi\n    template: email/nope.txt.j2\n"
    )
    result = runner.invoke(app, ["validate", "cadences/broken.yaml"])
    assert result.exit_code == 1
    lines = [ln for ln in result.stdout.splitlines() if ": error: " in ln]
    assert any(ln.startswith("cadences/broken.yaml:5:13: error:") for ln in lines), lines
    assert any("email/nope.txt.j2" in ln for ln in lines), lines


def test_usage_error_exits_2(project: Path):
    assert runner.invoke(app, ["simulate"]).exit_code == 2
    assert runner.invoke(app, ["enroll", "enterprise-outbound"]).exit_code == 2


def test_simulate_json(project: Path):
    prospects = _csv(project / "p.csv", PEOPLE)
    events = _csv(
        project / "e.csv",
        [{"email": "yuki@kaisha.example", "event": "reply", "at": "2026-12-03T01:00:00Z"}],
    )
    result = runner.invoke(
        app,
        [
            "simulate",
            "enterprise-outbound",
            "--prospects",
            str(prospects),
            "--start",
            "2026-11-30T06:00:00Z",
            "--days",
            "30",
            "--events",
            str(events),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    touches = [r for r in records if "step" in r]
    exits = {r["prospect"]: r["exit"] for r in records if "exit" in r}
    assert exits["yuki@kaisha.example"] == "replied"
    for r in touches:
        base = {"prospect", "step", "channel", "variant", "at", "local_at", "status"}
        extra = {"task": {"outcome", "done_at"}, "skipped": {"reason"}, "sent": set()}
        assert set(r) == base | extra[r["status"]], r
        local = datetime.fromisoformat(r["local_at"])
        assert datetime.fromisoformat(r["at"]) == local
        assert local.weekday() < 5
    first = next(r for r in touches if r["prospect"] == "ana@northwind.example")
    assert first["local_at"].startswith("2026-11-30T") and first["local_at"].endswith("-08:00")
    assert first["variant"] in ("a", "b")
    assert not any(
        r["prospect"] == "yuki@kaisha.example" and r["at"] > "2026-12-03T01" for r in touches
    )


def test_import_enroll_status_tasks_event(project: Path):
    rows = [
        *PEOPLE,
        {"email": "broken", "first_name": "X"},
        {"email": "tz@bad.example", "timezone": "Nowhere/City"},
    ]
    path = _csv(project / "people.csv", rows)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["import", str(path), "--now", "2026-11-28T12:00:00Z"])
    assert result.exit_code == 1  # findings: two rows rejected
    assert "3 new, 0 updated, 2 rejected" in result.stdout
    with open(project / "people.rejects.csv") as fh:
        rejects = list(csv.DictReader(fh))
    assert [r["email"] for r in rejects] == ["broken", "tz@bad.example"]
    assert "timezone" in rejects[1]["_reason"]
    # Importing again changes nothing.
    again = runner.invoke(app, ["import", str(path), "--now", "2026-11-29T12:00:00Z"])
    assert "0 new, 0 updated" in again.stdout

    result = runner.invoke(
        app,
        [
            "enroll",
            "enterprise-outbound",
            "--all",
            "--owner",
            "sam@yourco.com",
            "--now",
            "2026-11-28T12:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 enrolled" in result.stdout
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0 and "pending" in result.stdout

    result = runner.invoke(
        app, ["event", "ana@northwind.example", "unsubscribe", "--at", "2026-11-29T12:00:00Z"]
    )
    assert result.exit_code == 0 and "1 enrollment(s) ended" in result.stdout
    assert runner.invoke(app, ["event", "nobody@x.example", "reply"]).exit_code == 1
    assert runner.invoke(app, ["event", "ana@northwind.example", "wave"]).exit_code == 2
    assert runner.invoke(app, ["tasks"]).exit_code == 0
    assert runner.invoke(app, ["task", "done", "999"]).exit_code == 1
    assert runner.invoke(app, ["retry"]).exit_code == 2
    assert runner.invoke(app, ["retry", "--all-failed"]).exit_code == 1  # none failed


def test_preview_sample_renders_every_step(project: Path):
    result = runner.invoke(app, ["preview", "enterprise-outbound", "--sample"])
    assert result.exit_code == 0, result.output
    assert "Jordan" in result.stdout


def test_preview_shows_missing_data(project: Path, tmp_path: Path):
    write_cadence(tmp_path)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    path = _csv(
        tmp_path / "one.csv", [{"email": "no.title@x.example", "first_name": "N", "company": "C"}]
    )
    runner.invoke(app, ["import", str(path)])
    result = runner.invoke(app, ["preview", "t-cadence", "--prospect", "no.title@x.example"])
    assert result.exit_code == 1
    assert "missing_data (prospect.title is empty)" in result.stdout


def test_preview_threads_the_bump_on_the_subject_the_prospect_gets(project: Path, tmp_path: Path):
    """The engine renders preview: the bump answers the intro variant this prospect gets."""
    from touchflow.domain.cadence import choose_variant, load_cadence

    cdir, tdir = write_cadence(tmp_path)
    cadence = load_cadence(cdir / "t-cadence.yaml", tdir)
    chosen = choose_variant(cadence.step("intro"), "t-cadence:jordan.lee@northwind.example")
    assert chosen is not None
    expected = "Hi Jordan" if chosen.id == "a" else "Question for Northwind Analytics"
    result = runner.invoke(app, ["preview", "t-cadence", "--sample"])
    assert result.exit_code == 0, result.output
    assert f"Subject: Re: {expected}" in result.stdout
    assert "/unsubscribe/preview-intro-1." in result.stdout  # a signed link, as sent


def test_simulate_reads_a_file_as_import_does(project: Path):
    """A ;-delimited file with a BOM and a country name: import reads it, so simulate does."""
    path = project / "semi.csv"
    path.write_text(
        "\ufeffemail;first_name;title;company;country;phone\n"
        "anna@beispiel.example;Anna;Leiterin Vertrieb;Beispiel GmbH;Germany;030 1234567\n",
        encoding="utf-8",
    )
    args = ["simulate", "enterprise-outbound", "--prospects", str(path)]
    result = runner.invoke(app, [*args, "--start", "2026-11-30T06:00:00Z", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert {r["prospect"] for r in records} == {"anna@beispiel.example"}
    assert "rejected" not in result.output
    # Skipped steps are shown with their reason, and the breakup still goes.
    skipped = {r["step"]: r["reason"] for r in records if r.get("status") == "skipped"}
    assert skipped["sms-nudge"] in ("when_false", "no_phone")
    assert any(r.get("step") == "breakup" and r["status"] == "sent" for r in records)


def test_simulate_reports_rows_it_reads_with_warnings_and_rejections(project: Path):
    """A bad phone is a warning (the row is simulated, its phone steps skipped); a bad email
    is a rejection, reported with its line; a duplicate is simulated once."""
    path = project / "mixed.csv"
    path.write_text(
        "email;first_name;title;company;phone\n"
        "ok@x.example;Ok;CRO;X;12\n"
        "not-an-email;No;CRO;X;\n"
        "OK@x.example;Again;CRO;X;\n",
        encoding="utf-8",
    )
    args = ["simulate", "enterprise-outbound", "--prospects", str(path)]
    result = runner.invoke(app, [*args, "--start", "2026-11-30T06:00:00Z", "--json"])
    assert result.exit_code == 1  # a rejected row is a finding, as in import
    assert f"{path}:2: warning: invalid_phone" in result.stderr
    assert f"{path}:3: rejected: invalid_email" in result.stderr
    assert f"{path}:4: duplicate of line 2" in result.stderr
    assert "1 row(s) rejected (invalid_email 1)" in result.stderr
    records = json.loads(result.stdout)
    assert {r["prospect"] for r in records} == {"ok@x.example"}
    skipped = {(r["step"], r["reason"]) for r in records if r.get("status") == "skipped"}
    # No call without a number, so no call outcome to text after.
    assert skipped == {("call-1", "no_phone"), ("sms-nudge", "when_false")}


def test_preview_shows_steps_the_prospect_cannot_take(project: Path, tmp_path: Path):
    """No phone: the call and the text would be skipped (no_phone), not held; exit 0."""
    write_cadence(tmp_path)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    person = {"email": "no.phone@x.example", "first_name": "N", "title": "CRO", "company": "C"}
    runner.invoke(app, ["import", str(_csv(tmp_path / "one.csv", [person]))])
    result = runner.invoke(app, ["preview", "t-cadence", "--prospect", "no.phone@x.example"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("would skip: no_phone") == 2  # call-1 and nudge
    assert "would skip: no_phone (no usable phone number)" in result.stdout
    assert "would skip: no_phone (no phone number that takes texts)" in result.stdout
    assert "missing_data" not in result.stdout


def test_simulate_events_take_task_outcomes_and_the_table_shows_skips(project: Path):
    prospects = _csv(project / "p.csv", PEOPLE[:2])
    events = _csv(
        project / "e.csv",
        [
            {"email": "ana@northwind.example", "event": "no_answer", "step": "call-1",
             "at": "2026-11-30T06:00:00Z"},
        ],
    )  # fmt: skip
    args = ["simulate", "enterprise-outbound", "--prospects", str(prospects),
            "--start", "2026-11-30T06:00:00Z", "--events", str(events)]  # fmt: skip
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    nudges = {r["prospect"]: r for r in json.loads(result.stdout) if r.get("step") == "sms-nudge"}
    assert nudges["ana@northwind.example"]["status"] == "sent"  # no answer: text her
    assert (nudges["jonas@fabrik.example"]["status"], nudges["jonas@fabrik.example"]["reason"]) == (
        "skipped",
        "when_false",
    )
    table = runner.invoke(app, args, terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "skipped" in table.stdout and "when_false" in table.stdout
    assert "no_answer" in table.stdout  # the task's outcome
    assert "skipped: {'when_false': 1}" in table.stdout

    bad = _csv(
        project / "bad.csv",
        [{"email": "ana@northwind.example", "event": "connected", "step": "call-9",
          "at": "2026-11-30T06:00:00Z"}],
    )  # fmt: skip
    result = runner.invoke(app, [*args[:-2], "--events", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: line 2: no step 'call-9' in enterprise-outbound" in result.output


def test_event_reply_applies_on_account_reply(project: Path):
    """`touchflow event EMAIL reply` is a reply like one from a mailbox: the colleague at
    the same account pauses (on_account_reply: pause), another account goes on.

    Before, the CLI ended the replier's enrollment and left the colleague active.
    """
    path = project / "cadences" / "enterprise-outbound.yaml"
    path.write_text(path.read_text().replace("exit_on:", "on_account_reply: pause\nexit_on:", 1))
    people = [
        {**PEOPLE[0]},
        {**PEOPLE[0], "email": "bo@northwind.example", "first_name": "Bo"},
        PEOPLE[1],
    ]
    csv_path = _csv(project / "people.csv", people)
    now = "2026-11-28T12:00:00Z"
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["import", str(csv_path), "--now", now]).exit_code == 0
    result = runner.invoke(app, ["enroll", "enterprise-outbound", "--all", "--now", now])
    assert "3 enrolled" in result.stdout, result.output
    result = runner.invoke(
        app, ["event", "ana@northwind.example", "reply", "--at", "2026-11-29T12:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    assert "1 enrollment(s) ended" in result.stdout
    assert "at the same account 1 paused, 0 finished" in result.stdout
    status = runner.invoke(app, ["status"], terminal_width=200).stdout
    assert "account_replied" in status
