"""The composition root: settings checked at start-up, adapters built lazily."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from touchflow import bootstrap
from touchflow.errors import ConfigError
from touchflow.settings import SenderDefaults, SendgridSettings, Settings

SAFE_SENDER = SenderDefaults(owner_email="sdr@acme.example", email="sam@acme.example")


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _pg(**values: object) -> Settings:
    return _settings(database_url="postgresql://db.internal/touchflow", **values)


def test_a_shared_database_is_production() -> None:
    assert not _settings().production
    assert _settings(env="production").production
    assert _pg().production


def test_production_refuses_the_development_secret_and_the_sample_sender() -> None:
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
