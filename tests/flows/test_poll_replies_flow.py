"""poll_replies' per-mailbox task without the engine (``.fn``), over team.yaml mailboxes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from touchflow import bootstrap
from touchflow.entrypoints.flows.poll_replies import poll_one
from touchflow.settings import Settings

TEAM = """\
members:
  - email: sam@yourco.example
    name: Sam Rivera
    mailbox:
      imap: {host: 127.0.0.1, port: 1, username: sam, password_env: TF_T_SAM_IMAP}
"""


def test_a_team_mailbox_without_its_password_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TF_T_SAM_IMAP", raising=False)
    (tmp_path / "team.yaml").write_text(TEAM)
    settings = Settings(_env_file=None, config_dir=tmp_path)  # type: ignore[call-arg]
    with bootstrap.pinned_settings(settings):
        assert [b.label for b in bootstrap.reply_mailboxes(settings)] == ["sam"]
        counts = poll_one.fn(0, datetime(2026, 11, 30, tzinfo=UTC))
    assert counts == {"config_errors": 1}
    assert "not polled: sam: TF_T_SAM_IMAP is not set" in capsys.readouterr().out
