"""The composition root: settings checked at start-up, adapters built lazily."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from touchflow import bootstrap
from touchflow.errors import ConfigError
from touchflow.settings import SenderDefaults, SendgridSettings, Settings
from touchflow.store.db import make_engine, upgrade

SAFE_SENDER = SenderDefaults(owner_email="sdr@acme.example", email="sam@acme.example")


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _pg(**values: object) -> Settings:
    return _settings(database_url="postgresql://db.internal/touchflow", **values)


def test_a_shared_database_is_production() -> None:
    assert not _settings().production
    assert _settings(env="production").production
    assert _pg().production


def test_production_refuses_the_development_secret_and_the_sample_sender(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bundled team.yaml's mailbox secrets are set: they are not what this checks.
    for name in ("SAM_SMTP_PASSWORD", "SAM_IMAP_PASSWORD"):
        monkeypatch.setenv(name, "set")
    report = bootstrap.startup_report(_pg(), "worker")
    assert any("TOUCHFLOW_UNSUBSCRIBE_SECRET" in r for r in report.refusals)
    assert any(
        "TOUCHFLOW_SENDER__EMAIL" in r and "TOUCHFLOW_SENDER__OWNER_EMAIL" in r
        for r in report.refusals
    )
    safe = _pg(
        unsubscribe_secret=SecretStr("s3cret-of-our-own"),
        sender=SAFE_SENDER,
        unsubscribe_mailto="unsubscribe@acme.example",
    )
    assert bootstrap.startup_report(safe, "worker").refusals == ()


def test_development_starts_with_the_samples() -> None:
    assert bootstrap.startup_report(_settings(), "worker").refusals == ()


def test_a_transport_without_its_key_is_refused_at_start_up() -> None:
    report = bootstrap.startup_report(_settings(email_transport="sendgrid"), "worker")
    assert report.refusals == (
        "TOUCHFLOW_EMAIL_TRANSPORT=sendgrid needs TOUCHFLOW_SENDGRID__API_KEY",
    )
    crm = bootstrap.startup_report(_settings(crm={"provider": "hubspot"}), "serve")
    assert "TOUCHFLOW_CRM__PROVIDER=hubspot needs TOUCHFLOW_CRM__TOKEN" in crm.refusals


def test_serve_names_each_missing_webhook_key() -> None:
    warnings = bootstrap.startup_report(_settings(), "serve").warnings
    for name in (
        "TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY",
        "TOUCHFLOW_SENDGRID__INBOUND_PARSE_TOKEN",
        "TOUCHFLOW_TWILIO__AUTH_TOKEN",
        "TOUCHFLOW_API_KEY",
    ):
        assert any(w.startswith(f"{name} is not set") for w in warnings), (name, warnings)
    bad_key = _settings(sendgrid=SendgridSettings(webhook_public_key="not a key"))
    assert any(
        "TOUCHFLOW_SENDGRID__WEBHOOK_PUBLIC_KEY is not a valid EC public key" in r
        for r in bootstrap.startup_report(bad_key, "serve").refusals
    )


def test_checked_settings_raise_every_refusal_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHFLOW_ENV", "production")
    monkeypatch.setenv("TOUCHFLOW_EMAIL_TRANSPORT", "sendgrid")
    logged: list[str] = []
    with pytest.raises(ConfigError) as caught:
        bootstrap.checked_settings("worker", log=logged.append)
    message = str(caught.value)
    assert message.startswith("touchflow worker refuses to start")
    for name in ("TOUCHFLOW_UNSUBSCRIBE_SECRET", "TOUCHFLOW_SENDGRID__API_KEY"):
        assert name in message


def test_a_worker_refuses_a_database_without_the_schema_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env; the default URL is ./touchflow.db
    monkeypatch.delenv("TOUCHFLOW_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError) as caught:
        bootstrap.checked_settings("worker")
    assert str(caught.value) == (
        "touchflow worker refuses to start: TOUCHFLOW_DATABASE_URL=sqlite:///touchflow.db: "
        f"the SQLite file {tmp_path / 'touchflow.db'} does not exist: "
        "run `touchflow db upgrade` to create it"
    )
    assert not (tmp_path / "touchflow.db").exists()  # nothing created on the way
    # A file, but no schema. (An absolute URL: engines are cached per URL, and
    # another test's ./touchflow.db may be open under the relative one.)
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    (tmp_path / "empty.db").touch()
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", url)
    with pytest.raises(ConfigError, match="no touchflow schema yet") as caught:
        bootstrap.checked_settings("worker")
    assert "\n" not in str(caught.value)
    upgrade(make_engine(url))
    assert bootstrap.checked_settings("worker").database_url == url


def test_serve_refuses_to_start_in_production_with_the_samples(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    from touchflow.entrypoints.cli import app

    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("TOUCHFLOW_ENV", "production")
    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(a))
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1 and started == []
    assert "TOUCHFLOW_UNSUBSCRIBE_SECRET" in result.stderr  # one message, no traceback


def test_the_app_factory_refuses_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from touchflow.entrypoints.api.server import app_from_environment

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", "postgresql://db.internal/touchflow")
    with pytest.raises(ConfigError, match="TOUCHFLOW_UNSUBSCRIBE_SECRET"):
        app_from_environment()


def test_pinned_settings_answer_load_settings() -> None:
    mine = _settings(batch_size=7)
    with bootstrap.pinned_settings(mine):
        assert bootstrap.load_settings() is mine
    assert bootstrap.load_settings() is not mine


def test_the_crm_sync_knows_team_yaml_owner_ids():
    from tests.conftest import ROOT
    from touchflow.bootstrap import team
    from touchflow.services.crm_sync import team_owner_ids

    settings = Settings(_env_file=None, config_dir=ROOT / "config")
    ids = team_owner_ids(team(settings))
    assert ids["ana.souza@yourco.com"] == "0055e000001AnaS"
    assert team_owner_ids(team(Settings(_env_file=None, config_dir=ROOT / "nowhere"))) == {}


# -- team mailboxes ----------------------------------------------------------------

TEAM = """\
members:
  - email: ana@yourco.example
    name: Ana Souza
    mailbox:
      smtp: {host: smtp.yourco.example, username: ana, password_env: TF_T_ANA_SMTP}
      imap: {host: imap.yourco.example, username: ana, password_env: TF_T_ANA_IMAP}
  - email: ben@yourco.example
    name: Ben Keller
    mailbox:
      imap: {host: imap.yourco.example, username: ben, password_env: TF_T_BEN_IMAP}
  - email: cy@yourco.example
    name: Cy
    mailbox: {title: AE}
"""


def _team(tmp_path: Path, **values: object) -> Settings:
    (tmp_path / "team.yaml").write_text(TEAM)
    return _settings(config_dir=tmp_path, **values)


def test_each_team_mailbox_with_smtp_gets_its_own_sender_unless_mail_goes_to_files(
    tmp_path: Path,
) -> None:
    from touchflow.adapters.mailboxes import MailboxEmailSender
    from touchflow.adapters.outbox.email_sender import OutboxEmailSender
    from touchflow.adapters.smtp.email_sender import SmtpEmailSender

    routed = bootstrap.email_sender(_team(tmp_path))
    assert isinstance(routed, MailboxEmailSender)
    assert isinstance(routed.default, SmtpEmailSender)
    assert isinstance(routed.sender_for("cy@yourco.example"), SmtpEmailSender)  # the default
    files = bootstrap.email_sender(_team(tmp_path, email_transport="outbox"))
    assert isinstance(files, OutboxEmailSender)  # nothing leaves the machine
    plain = bootstrap.email_sender(_settings(config_dir=tmp_path / "nowhere"))
    assert isinstance(plain, SmtpEmailSender)


def test_a_team_mailbox_reads_its_password_from_the_environment_or_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from touchflow.adapters.mailboxes import MailboxEmailSender

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TF_T_ANA_SMTP", raising=False)
    routed = bootstrap.email_sender(_team(tmp_path))
    assert isinstance(routed, MailboxEmailSender)
    with pytest.raises(ConfigError, match=r"TF_T_ANA_SMTP is not set .*ana@yourco\.example"):
        routed.sender_for("ana@yourco.example")
    (tmp_path / ".env").write_text("TF_T_ANA_SMTP=from-dotenv\n")
    assert getattr(routed.sender_for("ana@yourco.example"), "_password", None) == "from-dotenv"


def test_production_workers_refuse_a_team_mailbox_without_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("TF_T_ANA_SMTP", "TF_T_ANA_IMAP", "TF_T_BEN_IMAP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TF_T_ANA_IMAP", "x")
    prod = {"env": "production", "unsubscribe_secret": SecretStr("own"), "sender": SAFE_SENDER}
    refusals = bootstrap.startup_report(_team(tmp_path, **prod), "worker").refusals
    assert [r.split(" (")[0] for r in refusals if "TF_T_" in r] == [
        "TF_T_ANA_SMTP is not set",
        "TF_T_BEN_IMAP is not set",
    ]
    # In development it starts; the mailbox's own sends fail, naming the variable.
    assert bootstrap.startup_report(_team(tmp_path), "worker").refusals == ()


def test_reply_mailboxes_are_the_environments_then_each_team_imap_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TF_T_BEN_IMAP", raising=False)
    env_box = {"host": "IMAP.yourco.example", "username": "ana", "password": "p"}
    settings = _team(tmp_path, replies={"mailboxes": [env_box]})
    boxes = bootstrap.reply_mailboxes(settings)
    assert [b.label for b in boxes] == ["ana", "ben"]  # Ana's login is configured once
    with pytest.raises(ConfigError, match="TF_T_BEN_IMAP is not set"):
        boxes[1].open()
    assert bootstrap.reply_mailboxes(_settings(config_dir=tmp_path / "nowhere")) == []
