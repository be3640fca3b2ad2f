"""Blackouts and windows per country through the CLI: simulate shows the times, validate the
mistakes of config/calendars.yaml, and a pinned version keeps its calendars in the store."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine
from typer.testing import CliRunner

from touchflow.domain.cadence import load_cadence
from touchflow.entrypoints.cli import app
from touchflow.store.cadence_versions import RuntimeCache, save_cadence_version
from touchflow.store.db import upgrade

runner = CliRunner()

MENA = """\
id: mena-outbound
name: MENA outbound
schedule:
  timezone: prospect
  window: {days: [mon, tue, wed, thu, fri, sat], start: "09:00", end: "17:00"}
  holidays: prospect
  calendars: [iran-business, gulf-business]
steps:
  - id: intro
    channel: email
    subject: Hello
    template: email/intro.txt.j2
  - id: bump
    after: 2 business days
    channel: email
    thread: intro
    template: email/bump.txt.j2
  - id: breakup
    after: 3 business days
    channel: email
    subject: Closing the loop
    template: email/breakup.txt.j2
"""

PEOPLE = [
    {
        "email": "reza@example.ir",
        "first_name": "Reza",
        "company": "Pars",
        "country": "IR",
        "title": "CEO",
        "last_name": "Ahmadi",
    },
    {
        "email": "omar@example.ae",
        "first_name": "Omar",
        "company": "Gulf",
        "country": "AE",
        "title": "CEO",
        "last_name": "Saeed",
    },
    {
        "email": "lena@example.de",
        "first_name": "Lena",
        "company": "Fabrik",
        "country": "DE",
        "title": "CEO",
        "last_name": "Weber",
    },
]


def _prospects(path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(PEOPLE[0]))
        writer.writeheader()
        writer.writerows(PEOPLE)
    return path


def test_simulate_shows_the_country_windows_and_the_nowruz_break(project: Path) -> None:
    (project / "cadences" / "mena-outbound.yaml").write_text(MENA)
    result = runner.invoke(
        app,
        [
            "simulate",
            "mena-outbound",
            "--prospects",
            str(_prospects(project / "p.csv")),
            "--start",
            "2026-03-18T06:00:00Z",
            "--days",
            "40",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    touches = [r for r in json.loads(result.stdout) if "step" in r]
    local = {
        p["email"]: [
            datetime.fromisoformat(r["local_at"]) for r in touches if r["prospect"] == p["email"]
        ]
        for p in PEOPLE
    }
    assert all(len(times) == 3 for times in local.values()), result.output
    for at in local["reza@example.ir"]:
        assert not date(2026, 3, 20) <= at.date() <= date(2026, 4, 2), at
        assert at.weekday() != 4  # Friday
    assert any(at.weekday() == 5 for at in local["reza@example.ir"])  # a Saturday touch
    assert all(at.weekday() < 5 for at in local["omar@example.ae"])  # Monday-Friday
    # Iran's bump, due 2 business days after Wednesday 18 March, waits for the break's end.
    assert local["reza@example.ir"][1] == datetime.fromisoformat("2026-04-04T09:30:00+03:30")
    # Germany has no window or blackout of its own: Nowruz is IR's, the default window
    # counts Saturday 21 March as a business day.
    assert [at.date() for at in local["lena@example.de"]] == [
        date(2026, 3, 18),
        date(2026, 3, 20),
        date(2026, 3, 24),
    ]


def test_validate_reports_calendars_yaml_mistakes(project: Path) -> None:
    path = project / "config" / "calendars.yaml"
    path.write_text(path.read_text().replace("from: 03-20, to: 04-02", "from: 03-20, to: 04-32"))
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    lines = [ln for ln in result.stdout.splitlines() if ": error: " in ln]
    assert any(
        ln.startswith("config/calendars.yaml:") and "'04-32' is not a date" in ln for ln in lines
    ), lines


def test_a_stored_version_keeps_its_calendars(project: Path) -> None:
    (project / "cadences" / "mena-outbound.yaml").write_text(MENA)
    cadence = load_cadence(
        project / "cadences" / "mena-outbound.yaml",
        project / "templates",
        project / "config" / "calendars.yaml",
    )
    engine = create_engine(f"sqlite:///{project / 'versions.db'}")
    upgrade(engine)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with engine.begin() as conn:
        version = save_cadence_version(conn, cadence, now)
    # The file changes (or disappears) after the enrollment started: the version does not.
    (project / "config" / "calendars.yaml").unlink()
    with engine.connect() as conn:
        runtime = RuntimeCache("http://localhost").get(conn, version)
    assert runtime.cadence.version == version
    assert [len(c.blackouts) for c in runtime.cadence.calendar_specs] == [1, 0]
    engine.dispose()


def test_preview_prints_the_schedule_the_prospect_gets(project: Path) -> None:
    (project / "cadences" / "mena-outbound.yaml").write_text(
        MENA.replace("  calendars: [iran-business, gulf-business]\n", "  calendar: company\n")
    )
    result = runner.invoke(app, ["preview", "mena-outbound", "--sample"])
    assert result.exit_code == 0, result.output
    # The sample prospect is in Los Angeles (US): the default window, the company's shutdown.
    assert (
        "Schedule: America/Los_Angeles, mon tue wed thu fri sat 09:00-17:00; holidays of US; "
        "blackouts: Year-end shutdown 12-24..01-01 every year"
    ) in result.stdout
