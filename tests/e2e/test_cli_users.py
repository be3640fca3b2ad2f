"""``touchflow users add|list|remove``, and a manager's team from config/team.yaml."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine
from typer.testing import CliRunner

from touchflow.bootstrap import load_settings, team
from touchflow.entrypoints.cli import app
from touchflow.services.users import authenticate, viewer_for

runner = CliRunner()
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def run(*args: str, stdin: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_users_are_added_listed_changed_and_removed(project: Path) -> None:
    run("db", "upgrade")
    assert "no users yet" in run("users", "list")
    run("users", "add", "Mia@YourCo.example", "--role", "manager", stdin="first-pass\nfirst-pass\n")
    out = run(
        "users",
        "add",
        "ana@yourco.example",
        "--role",
        "rep",
        "--manager",
        "mia@yourco.example",
        "--password-stdin",
        stdin="ana-secret-1\n",
    )
    assert out.strip() == "added ana@yourco.example (rep)"
    run("users", "add", "sso@yourco.example", "--role", "rep", "--no-password")
    listing = run("users", "list")
    assert "mia@yourco.example" in listing and "proxy only" in listing
    engine = create_engine(load_settings().database_url)
    assert authenticate(engine, "MIA@yourco.example", "first-pass", NOW) == "mia@yourco.example"
    assert authenticate(engine, "ana@yourco.example", "wrong-pass", NOW) is None
    assert authenticate(engine, "sso@yourco.example", "", NOW) is None  # proxy only
    # Re-adding updates: a new password, a new role.
    assert "updated" in run(
        "users",
        "add",
        "ana@yourco.example",
        "--role",
        "manager",
        "--password-stdin",
        stdin="ana-secret-2\n",
    )
    assert authenticate(engine, "ana@yourco.example", "ana-secret-2", NOW) is not None
    assert "removed" in run("users", "remove", "ana@yourco.example")
    gone = runner.invoke(app, ["users", "remove", "ana@yourco.example"])
    assert gone.exit_code == 1 and "no user" in gone.output
    engine.dispose()


def test_bad_input_is_refused_with_a_reason(project: Path) -> None:
    run("db", "upgrade")
    assert runner.invoke(app, ["users", "add", "a@x.example", "--role", "boss"]).exit_code == 2
    short = runner.invoke(
        app, ["users", "add", "a@x.example", "--role", "rep", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 1 and "at least 8" in short.output
    self_managed = runner.invoke(
        app,
        [
            "users",
            "add",
            "a@x.example",
            "--role",
            "rep",
            "--manager",
            "a@x.example",
            "--no-password",
        ],
    )
    assert self_managed.exit_code == 1 and "own manager" in self_managed.output


def test_a_manager_sees_the_team_yaml_members_who_name_them(project: Path) -> None:
    team_file = project / "config" / "team.yaml"
    text = team_file.read_text()
    settings = load_settings()
    members = team(settings)
    assert members is not None and len(members.members) >= 2
    first, second = members.members[0].email, members.members[1].email
    # Give the first member a manager in the YAML (right after their email line).
    text = text.replace(
        f"email: {first}\n", f"email: {first}\n    manager: boss@yourco.example\n", 1
    )
    team_file.write_text(text)
    run("db", "upgrade")
    run("users", "add", "boss@yourco.example", "--role", "manager", "--no-password")
    engine = create_engine(settings.database_url)
    loaded = team(load_settings())
    assert loaded is not None and loaded.member(first).manager == "boss@yourco.example"  # type: ignore[union-attr]
    with engine.connect() as conn:
        viewer = viewer_for(conn, "boss@yourco.example", loaded)
    assert viewer is not None and viewer.owners == frozenset({"boss@yourco.example", first})
    assert second not in viewer.owners
    engine.dispose()
