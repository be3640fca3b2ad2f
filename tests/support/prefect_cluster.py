"""A real Prefect server and process workers on this machine, for the end-to-end test and bench.

``prefect server start`` on a free port (its own ``PREFECT_HOME`` and SQLite
database in a temporary folder, the scheduler off so only what the caller
starts runs), the ``touchflow`` process pool, ``prefect deploy --all`` of the
project's ``prefect.yaml`` from the project directory, and ``prefect worker
start --limit N`` processes with the caller's ``TOUCHFLOW_*`` settings. Flow
runs are started and read through the server's REST API.

Every process is a subprocess in a session of its own: :meth:`close` ends
them all, and :meth:`kill_worker` sends ``SIGKILL`` to a worker and every
process under it (its flow runs), as a machine that died.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
T = TypeVar("T")


class ClusterError(RuntimeError):
    """The server, a CLI call or a wait failed; the message carries the output that says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


class PrefectCluster:
    """One Prefect server and its workers; a context manager that stops everything."""

    def __init__(
        self, home: Path, touchflow_env: Mapping[str, str], database_url: str | None = None
    ) -> None:
        self.home = home
        # Prefect's own database: PostgreSQL when given (what production runs; SQLite
        # answers 503 "database is locked" under two busy workers), else SQLite in home.
        self.database_url = database_url or f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.touchflow_env = dict(touchflow_env)
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(base_url=self.api_url, timeout=30)
        home.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ processes

    @property
    def env(self) -> dict[str, str]:
        """The environment of every Prefect process here: this server, quiet, no scheduler."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TOUCHFLOW_"))}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_UI_ENABLED": "false",
                "PREFECT_SERVER_API_HOST": "127.0.0.1",
                "PREFECT_SERVER_API_PORT": str(self.port),
                "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
                # Only what the test starts runs: no cron ticks in the middle of it.
                "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "PWD": str(ROOT),  # prefect.yaml's pull step: set_working_directory {{ $PWD }}
            }
        )
        return env

    def _spawn(self, args: list[str], log: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        out = open(self.home / log, "wb")  # noqa: SIM115 - the child owns it
        try:
            return subprocess.Popen(
                args, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        finally:
            out.close()

    def start(self, timeout: float = 120) -> None:
        """Start the server; wait until its API answers (a ClusterError with its log if not)."""
        self.server = self._spawn([PREFECT, "server", "start"], "server.log", self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise ClusterError(
                    f"prefect server exited with {self.server.returncode}:\n"
                    + _tail(self.home / "server.log")
                )
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise ClusterError(
            f"prefect server did not answer on {self.api_url} within {timeout:.0f} s:\n"
            + _tail(self.home / "server.log")
        )

    def cli(self, *args: str, timeout: float = 180) -> str:
        """Run ``prefect ARGS`` (or ``python -m`` when args[0] is ``-m``) against this server."""
        cmd = [sys.executable, *args] if args[0] == "-m" else [PREFECT, *args]
        done = subprocess.run(
            cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise ClusterError(
                f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def deploy(self) -> None:
        """The process pool, then every deployment of prefect.yaml, as docs/operations.md says."""
        self.cli("work-pool", "create", "touchflow", "--type", "process")
        self.cli("--no-prompt", "deploy", "--all")

    def start_worker(self, name: str, limit: int) -> subprocess.Popen[bytes]:
        """``prefect worker start --pool touchflow --limit N`` with the touchflow settings."""
        env = {**self.env, **self.touchflow_env}
        args = [PREFECT, "worker", "start", "--pool", "touchflow", "--name", name]
        proc = self._spawn([*args, "--limit", str(limit)], f"worker-{name}.log", env)
        self.workers[name] = proc
        return proc

    def wait_for_workers(self, timeout: float = 90) -> None:
        """Until every started worker has said hello to the server."""

        def online() -> bool:
            for name, proc in self.workers.items():
                if proc.poll() is not None:
                    raise ClusterError(
                        f"worker {name} exited:\n" + _tail(self.home / f"worker-{name}.log")
                    )
            found = self.call("POST", "/work_pools/touchflow/workers/filter", json={})
            return set(self.workers) <= {w["name"] for w in found}

        self.wait(online, timeout, "the workers to come online")

    def worker_children(self, name: str) -> list[psutil.Process]:
        """The processes a worker started (its flow runs), alive now."""
        try:
            return psutil.Process(self.workers[name].pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill_worker(self, name: str) -> int:
        """SIGKILL a worker, then every process under it; how many flow processes died with it."""
        children = self.worker_children(name)
        self.workers[name].kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self.workers[name].wait(timeout=10)
        return len(children)

    def close(self) -> None:
        for proc in [*self.workers.values(), self.server]:
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in [*self.workers.values(), self.server]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.http.close()

    def __enter__(self) -> PrefectCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the API

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """One API call, retried on 503 and 429 as Prefect's own client does; its JSON."""
        for attempt in range(10):
            got = self.http.request(method, path, **kw)
            if got.status_code not in (429, 503):
                break
            time.sleep(0.2 * (attempt + 1))
        got.raise_for_status()
        return got.json()

    def run_deployment(self, name: str, parameters: Mapping[str, Any]) -> str:
        """Start a flow run of ``flow/deployment`` now; its id."""
        deployment = self.call("GET", f"/deployments/name/{name}")
        run = self.call(
            "POST",
            f"/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": dict(parameters)},
        )
        return str(run["id"])

    def flow_runs(self, flow_name: str) -> list[dict[str, Any]]:
        """Every flow run of a flow, oldest first."""
        return list(
            self.call(
                "POST",
                "/flow_runs/filter",
                json={"flows": {"name": {"any_": [flow_name]}}, "sort": "EXPECTED_START_TIME_ASC"},
            )
        )

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/flow_runs/{run_id}"))

    def wait(self, check: Callable[[], T], timeout: float, what: str, every: float = 0.5) -> T:
        """Poll ``check`` until it returns something true; a ClusterError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            got = check()
            if got:
                return got
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {p.name}\n{_tail(p, 15)}" for p in sorted(self.home.glob("*.log"))
                )
                raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
            time.sleep(every)


def fresh_database(url: str, name: str) -> str:
    """Drop and create database ``name`` on ``url``'s PostgreSQL server; its asyncpg URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url.split("?")[0].replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return base.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )


def state(run: Mapping[str, Any]) -> str:
    """A flow run's state type: ``COMPLETED``, ``RUNNING``, ``CRASHED`` ..."""
    return str((run.get("state") or {}).get("type"))


def worker_of(run: Mapping[str, Any]) -> str | None:
    """The name of the worker that ran a flow run (the label the worker gives it)."""
    return (run.get("labels") or {}).get("prefect.worker.name")
