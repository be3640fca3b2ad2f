"""Without dovecot the IMAP tests skip on a laptop and fail in CI (tests/support/imap_server.py)."""

from __future__ import annotations

import pytest

from tests.support import imap_server


@pytest.fixture
def no_dovecot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap_server.shutil, "which", lambda *_a, **_kw: None)


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_missing_dovecot_fails_in_ci(no_dovecot, monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"dovecot is not installed.*CI=true"):
        imap_server.dovecot_server()


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_dovecot_skips_outside_ci(
    no_dovecot, monkeypatch: pytest.MonkeyPatch, value: str | None
):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y dovecot-imapd"):
        imap_server.dovecot_server()
