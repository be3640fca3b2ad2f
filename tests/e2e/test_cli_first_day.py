"""First-day mistakes end in one line naming the setting, never in a traceback or a secret."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.conftest import postgres_url, requires_postgres
from touchflow.entrypoints.cli import app
from touchflow.settings import redact_url
from touchflow.store.db import driver_url, make_engine, url_problem

runner = CliRunner()


def _one_line_error(args: list[str]) -> str:
    """Run a command that must fail cleanly: exit 1, one ``error:`` line, no exception."""
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args", [["status"], ["run"], ["tasks"], ["task", "done", "1"], ["retry", "--all-failed"]]
)
def test_a_command_before_db_upgrade_says_to_run_it(project: Path, args: list[str]):
    line = _one_line_error(args)
    assert "TOUCHFLOW_DATABASE_URL=" in line
    assert "run `touchflow db upgrade`" in line


def test_a_server_that_does_not_answer_names_the_setting_and_hides_the_password(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    port = _closed_port()
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", f"postgresql://tf:s3cret@127.0.0.1:{port}/tf")
    line = _one_line_error(["status"])
    assert f"TOUCHFLOW_DATABASE_URL=postgresql://tf:***@127.0.0.1:{port}/tf" in line
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}" in line
    assert "s3cret" not in line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql+nope://u:s3cret@h/x", "unknown database scheme 'mysql+nope'"),
        ("touchflow.db", "not a database URL"),
        ("postgresql+asyncpg://u:s3cret@h/x", "asyncio driver"),
        ("sqlite:///no/such/folder/tf.db", "no/such/folder, does not exist"),
    ],
)
def test_a_url_that_cannot_work_is_one_line_before_connecting(
    project: Path, monkeypatch: pytest.MonkeyPatch, url: str, says: str
):
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", url)
    line = _one_line_error(["db", "upgrade"])
    assert line.startswith("error: TOUCHFLOW_DATABASE_URL=") and says in line, line
    assert "s3cret" not in line


def test_a_sqlite_path_under_a_file_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch):
    (project / "notes.txt").write_text("a file, not a folder")
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", "sqlite:///notes.txt/tf.db")
    assert "notes.txt, does not exist" in _one_line_error(["status"])


def test_postgres_scheme_is_accepted_as_postgresql():
    assert driver_url("postgres://u:p@h:5432/x") == "postgresql+psycopg://u:p@h:5432/x"
    assert url_problem("postgres://u:p@h:5432/x") is None
    engine = make_engine("postgres://u:p@h:5432/x")
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def test_a_bad_setting_is_one_line_naming_the_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TOUCHFLOW_BATCH_SIZE", "many")
    assert _one_line_error(["status"]).startswith("error: TOUCHFLOW_BATCH_SIZE: ")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/tf", "postgresql://app:***@db:5432/tf"),
        ("postgres://app:p%40ss@db/tf", "postgres://app:***@db/tf"),
        (
            "postgresql://db/tf?sslmode=require&password=s3cret",
            "postgresql://db/tf?sslmode=require&password=***",
        ),
        ("sqlite:///touchflow.db", "sqlite:///touchflow.db"),
        ("postgresql://app@db/tf", "postgresql://app@db/tf"),
    ],
)
def test_redact_url_masks_passwords_only(url: str, shown: str):
    assert redact_url(url) == shown


@requires_postgres
def test_a_database_that_does_not_exist_says_so(project: Path, monkeypatch: pytest.MonkeyPatch):
    base = make_url(driver_url(postgres_url() or ""))
    missing = base.set(database="touchflow_no_such_db").render_as_string(hide_password=False)
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", missing)
    line = _one_line_error(["status"])
    assert "database 'touchflow_no_such_db' does not exist" in line
    if base.password:
        assert base.password not in line


@requires_postgres
def test_db_upgrade_prints_the_url_without_its_password(
    project: Path, monkeypatch: pytest.MonkeyPatch, pg_schema_url: str
):
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", pg_schema_url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("database at head: ")
    password = make_url(driver_url(pg_schema_url)).password
    if password:
        assert password not in result.stdout


def test_validate_without_a_cadences_folder_fails(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TOUCHFLOW_CADENCES_DIR", str(project / "nowhere"))
    line = _one_line_error(["validate"])
    assert "nowhere (TOUCHFLOW_CADENCES_DIR)" in line
    assert "ok:" not in line


def test_validate_in_an_empty_folder_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(["validate"])
    assert "cadences (TOUCHFLOW_CADENCES_DIR), templates (TOUCHFLOW_TEMPLATES_DIR)" in line


def test_a_cadence_is_accepted_by_path_and_a_typo_gets_the_nearest(project: Path):
    result = runner.invoke(app, ["preview", "cadences/enterprise-outbound.yaml", "--sample"])
    assert result.exit_code == 0, result.output
    assert "1. intro" in result.stdout
    line = _one_line_error(["preview", "enterprise-outbond", "--sample"])
    assert "did you mean 'enterprise-outbound'" in line
    assert "cadences: enterprise-outbound, inbound-fast-follow" in line
    line = _one_line_error(["preview", "cadences/enterprise-outbond.yaml", "--sample"])
    assert "did you mean 'enterprise-outbound'" in line


def test_cadence_pause_takes_a_path_and_refuses_an_unknown_id(project: Path):
    runner.invoke(app, ["db", "upgrade"])
    result = runner.invoke(app, ["cadence", "pause", "cadences/enterprise-outbound.yaml"])
    assert result.exit_code == 0, result.output
    assert "enterprise-outbound: paused" in result.stdout
    assert "did you mean 'enterprise-outbound'" in _one_line_error(
        ["cadence", "pause", "enterprise-outbund"]
    )
    result = runner.invoke(app, ["cadence", "resume", "cadences/enterprise-outbound.yaml"])
    assert result.exit_code == 0 and "enterprise-outbound: resumed" in result.stdout


def test_version(project: Path):
    from touchflow import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"touchflow {__version__}"


def _commands() -> list[tuple[list[str], object]]:
    import typer.main

    found: list[tuple[list[str], object]] = []

    def walk(cmd: object, path: list[str]) -> None:
        found.append((path, cmd))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_and_option_is_documented():
    undocumented = [
        " ".join(["touchflow", *path, getattr(p, "opts", [p.name])[0]])
        for path, cmd in _commands()
        for p in cmd.params  # type: ignore[attr-defined]
        if not p.help and p.name != "help"
    ]
    assert undocumented == []
    assert [path for path, cmd in _commands() if not cmd.help] == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", [path for path, _ in _commands()], ids=" ".join)
def test_help_has_no_rst_markup_or_type_noise(path: list[str]):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "``" not in text and ":func:" not in text and ":class:" not in text
    noise = re.findall(r"<(?:str|int|bool|float|file|path|int range|list\[\w+\])>", text)
    assert noise == [], text
    assert "<=x<=" not in text and "x>=" not in text


def test_serve_refuses_a_database_url_that_cannot_work(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(a))
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", "mysql+nope://u:s3cret@h/x")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1 and started == []
    assert "TOUCHFLOW_DATABASE_URL=mysql+nope://u:***@h/x: unknown database scheme" in result.stderr
    assert "s3cret" not in result.output


def test_a_schema_older_than_the_code_says_to_upgrade(project: Path):
    from sqlalchemy import text

    from touchflow.store.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{project / 'tf.db'}")
    upgrade(engine)
    with engine.begin() as conn:  # as if a later migration had not run yet
        conn.execute(text("ALTER TABLE tasks DROP COLUMN notes"))
    line = _one_line_error(["tasks"])
    assert "older than this touchflow: run `touchflow db upgrade`" in line
