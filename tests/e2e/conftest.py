"""Fixtures for the end-to-end suites."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the bundled cadences and templates."""
    shutil.copytree(ROOT / "cadences", tmp_path / "cadences")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOUCHFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'tf.db'}")
    monkeypatch.setenv("TOUCHFLOW_EMAIL_TRANSPORT", "outbox")
    return tmp_path
