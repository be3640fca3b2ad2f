"""``enroll --owner`` and ``replies`` with the team's mailboxes (config/team.yaml), end to end."""

from __future__ import annotations

import email.parser
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.e2e.test_cli import PEOPLE, _csv
from tests.support.imap_server import dovecot_server
from touchflow.entrypoints.cli import app

runner = CliRunner()
NOW = "2026-11-30T16:00:00Z"


def _imported(project: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    path = _csv(project / "people.csv", PEOPLE)
    assert runner.invoke(app, ["import", str(path), "--now", NOW]).exit_code == 0


def _enroll(*owner: str):
    args = ["enroll", "enterprise-outbound", "--all", *owner, "--now", NOW]
    return runner.invoke(app, args, catch_exceptions=False)


def test_enroll_owner_with_a_team_mailbox_sends_as_that_rep(project: Path) -> None:
    _imported(project)
    result = _enroll("--owner", "Sam@YourCo.com")
    assert result.exit_code == 0, result.output
    assert "owner sam@yourco.com, sending as Sam Rivera <sam@yourco.com>: their mailbox" in (
        result.stdout
    )
    assert runner.invoke(app, ["run", "--now", "2026-11-30T16:25:00Z"]).exit_code == 0
    sent = sorted((project / "outbox" / "email").glob("*.eml"))
    assert sent, "the intros went out"
    for path in sent:
        msg = email.parser.BytesParser().parsebytes(path.read_bytes())
        assert msg["From"] == "Sam Rivera <sam@yourco.com>"
        body = msg.get_payload(decode=True).decode()
        assert "Account Development, yourco" in body  # his signature
        assert "100 Broadway, New York" in body  # his office, not the sample's San Francisco
        assert "548 Market St" not in body


@pytest.mark.parametrize("owner", ["not an email", "sam@", "@yourco.com"])
def test_enroll_owner_that_is_not_an_email_is_a_usage_error(project: Path, owner: str) -> None:
    _imported(project)
    result = _enroll("--owner", owner)
    assert result.exit_code == 2
    assert "is not an email address" in result.output
    assert "Traceback" not in result.output


def test_enroll_owner_without_a_mailbox_is_refused_in_one_line(project: Path) -> None:
    _imported(project)
    for owner in ("nobody@yourco.com", "ana.souza@yourco.com"):  # not on the team; no mailbox
        result = _enroll("--owner", owner)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert f"--owner {owner} is not a team member with a mailbox" in lines[0]
        assert "sam@yourco.com" in lines[0]  # who could own them
    assert "0 enrolled" not in _enroll("--owner", "sam@yourco.com").stdout


def test_without_team_mailboxes_every_owner_sends_as_the_default_sender(project: Path) -> None:
    team = project / "config" / "team.yaml"
    data = yaml.safe_load(team.read_text())
    for member in data["members"]:
        member.pop("mailbox", None)
    team.write_text(yaml.safe_dump(data))
    _imported(project)
    result = _enroll("--owner", "someone@me.example")
    assert result.exit_code == 0, result.output
    assert (
        "owner someone@me.example, sending as Sam Rivera <sam@touchflow.example>: "
        "the default sender (TOUCHFLOW_SENDER__*" in result.stdout
    )
    assert "3 enrolled" in result.stdout


def test_a_literal_password_in_team_yaml_fails_validate_at_its_line(project: Path) -> None:
    team = project / "config" / "team.yaml"
    text = team.read_text().replace("password_env: SAM_SMTP_PASSWORD", "password: hunter2")
    team.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "password: hunter2" in t)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    assert f"team.yaml:{line}:" in result.output
    assert "no secrets in team.yaml" in result.output
    assert "hunter2" not in result.output.replace("password: hunter2", "")


# -- replies: each team mailbox with imap is polled ------------------------------------


def _reply(to: str, n: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"Prospect {n} <p{n}@acme.example>"
    m["To"] = to
    m["Subject"] = "Re: hello"
    m["Message-ID"] = f"<reply-{n}@acme.example>"
    m.set_content("Thanks, not now.")
    return bytes(m)


def test_replies_polls_every_team_mailbox_and_names_a_missing_password(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = {"sam@yourco.com": "sam-pw", "lena.vogel@yourco.com": "lena-pw", "env@x.example": "e"}
    server = dovecot_server(users)
    with server:
        for n, user in enumerate(users):
            server.append(user, _reply(user, n))
        team = project / "config" / "team.yaml"
        data = yaml.safe_load(team.read_text())
        for member in data["members"]:
            if member["email"] in users:
                member["mailbox"]["imap"] = {
                    "host": server.host,
                    "port": server.port,
                    "username": member["email"],
                    "password_env": f"TF_TEST_{member['name'].split()[0].upper()}_IMAP",
                    "ssl": False,
                }
        team.write_text(yaml.safe_dump(data))
        monkeypatch.setenv(
            "TOUCHFLOW_REPLIES__MAILBOXES",
            f'[{{"host": "{server.host}", "port": {server.port}, "username": "env@x.example",'
            f' "password": "e", "ssl": false}}]',
        )
        monkeypatch.setenv("TF_TEST_SAM_IMAP", "sam-pw")
        monkeypatch.delenv("TF_TEST_LENA_IMAP", raising=False)
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0

        result = runner.invoke(app, ["replies"])
        assert result.exit_code == 1  # Lena's mailbox could not be opened
        assert "unmatched: 2" in result.stdout  # the environment's mailbox and Sam's
        assert "not polled: lena.vogel@yourco.com: TF_TEST_LENA_IMAP is not set" in result.stderr
        assert server.uids("sam@yourco.com") == [] and server.uids("env@x.example") == []
        assert len(server.uids("lena.vogel@yourco.com")) == 1

        monkeypatch.setenv("TF_TEST_LENA_IMAP", "lena-pw")
        result = runner.invoke(app, ["replies"])
        assert result.exit_code == 0, result.output
        assert "unmatched: 1" in result.stdout
        assert server.uids("lena.vogel@yourco.com") == []


def test_preview_renders_as_the_owners_mailbox(project: Path) -> None:
    result = runner.invoke(
        app, ["preview", "enterprise-outbound", "--sample", "--owner", "lena.vogel@yourco.com"]
    )
    assert result.exit_code == 0, result.output
    assert "Sales Development EMEA, yourco" in result.stdout
    assert "Friedrichstraße 68, 10117 Berlin" in result.stdout
    default = runner.invoke(app, ["preview", "enterprise-outbound", "--sample"])
    assert "548 Market St, San Francisco" in default.stdout  # the default sender's
    refused = runner.invoke(app, ["preview", "enterprise-outbound", "--sample", "--owner", "x@y.z"])
    assert refused.exit_code == 1 and "not a team member with a mailbox" in refused.stderr
