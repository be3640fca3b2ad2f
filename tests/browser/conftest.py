"""A real server and a real browser: ``touchflow serve``'s app under uvicorn, Debian's chromium.

The server runs in its own process on a free port over a migrated test
database (SQLite and PostgreSQL), seeded through the store with two reps'
prospects and four users. Chromium is Debian's (``/usr/bin/chromium``,
installed by ``make test-services``) driven by Playwright for Python; the
Playwright-managed browsers are never downloaded. Without chromium the tests
skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from tests.support.harness import Harness, make_cadence, prospect
from tests.support.imap_server import in_ci
from touchflow.services.users import add_user

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "chromium is not installed: run `make test-services` or `apt-get install -y chromium`"
)
PASSWORD = "correct horse battery"
ANA, BEN, MGR, ADMIN = "ana@x.example", "ben@x.example", "mgr@x.example", "admin@x.example"
API_KEY = "browser-api-key"
TWILIO_TOKEN = "browser-twilio-token"
ROOT = Path(__file__).resolve().parents[2]


def _chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found is None:
        if in_ci():
            pytest.fail(f"{INSTALL_HINT} (CI=true: the browser tests must run)", pytrace=False)
        pytest.skip(INSTALL_HINT)
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        if in_ci():
            pytest.fail("playwright is not installed (pip install -e '.[dev]')", pytrace=False)
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    url: str
    env: dict[str, str]
    cwd: Path
    shots: Path

    def touchflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``touchflow`` CLI against the server's database (a real public path)."""
        done = subprocess.run(
            [sys.executable, "-m", "touchflow", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done

    def sign_in(self, page: Any, email: str, password: str = PASSWORD) -> None:
        page.goto(f"{self.url}/dashboard")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.url}/dashboard")

    def shot(self, page: Any, name: str) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


def _seed(url: str, root: Path) -> None:
    engine = create_engine(url)
    try:
        h = Harness(engine, make_cadence(root))
        # Sent over the last days, so the chart has bars (the server's clock is the wall clock).
        start = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
        start -= timedelta(days=3)
        while start.weekday() >= 5:
            start -= timedelta(days=1)
        h.add([prospect("ann@acme.example", first_name="Ann", company="Acme")], start, owner=ANA)
        h.add([prospect("bob@acme.example", first_name="Bob", company="Acme")], start, owner=ANA)
        h.add([prospect("cy@globex.example", first_name="Cy", company="Globex")], start, owner=BEN)
        h.tick(start)
        now = datetime.now(UTC)
        for email, role, manager in (
            (ADMIN, "admin", None),
            (MGR, "manager", None),
            (ANA, "rep", MGR),
            (BEN, "rep", None),
        ):
            add_user(engine, email, role, now, manager=manager, password=PASSWORD)
    finally:
        engine.dispose()


@pytest.fixture
def site(browser: Any, migrated_db_url: str, tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "work"
    _seed(migrated_db_url, root)
    port = _free_port()
    env = {
        **os.environ,
        "TOUCHFLOW_DATABASE_URL": migrated_db_url,
        "TOUCHFLOW_CADENCES_DIR": str(root / "cadences"),
        "TOUCHFLOW_TEMPLATES_DIR": str(root / "templates"),
        "TOUCHFLOW_LEADS__INBOUND_CADENCE": "",
        "TOUCHFLOW_CONFIG_DIR": str(tmp_path / "config"),
        "TOUCHFLOW_API_KEY": API_KEY,
        "TOUCHFLOW_LIVE__POLL_INTERVAL_S": "0.2",
        "TOUCHFLOW_REPORTS__FORECAST_WAIT_S": "120",  # the forecast page waits for it
        # PostgreSQL runs as production: secrets and a sender of our own.
        "TOUCHFLOW_AUTH__SESSION_SECRET": "browser-test-session-secret",
        "TOUCHFLOW_UNSUBSCRIBE_SECRET": "browser-test-unsubscribe-secret",
        "TOUCHFLOW_SENDER__EMAIL": "sam@acme.example",
        "TOUCHFLOW_SENDER__OWNER_EMAIL": "sam@acme.example",
        "TOUCHFLOW_UNSUBSCRIBE_MAILTO": "unsubscribe@acme.example",
        # Signed Twilio callbacks (the live call screen's scripted call) reach this server.
        "TOUCHFLOW_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TOUCHFLOW_TWILIO__AUTH_TOKEN": TWILIO_TOKEN,
    }
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    shutil.copy(ROOT / "config" / "guidance.yaml", config / "guidance.yaml")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "touchflow.entrypoints.api.server:app_from_environment",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise AssertionError((tmp_path / "server.log").read_text())
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    "the server did not come up:\n" + (tmp_path / "server.log").read_text()
                )
            time.sleep(0.1)
        shots = tmp_path / "screenshots"
        shots.mkdir()
        yield Site(url, env, tmp_path, shots)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
