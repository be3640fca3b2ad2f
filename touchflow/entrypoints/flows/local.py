"""Running flows in-process on Prefect's ephemeral server (CLI, demo, tests).

Two settings matter for short local runs and are applied here rather than in
pyproject (TOML cannot say "no heartbeat"):

* flow heartbeats off: the heartbeat thread sleeps in one-second steps and is
  joined at the end of every flow run, adding up to a second per tick;
* a short pause before the process exits so the server's task-run recorder
  (batched, flushing every second, see ``[tool.prefect...task_run_recorder]``)
  has written every task run: otherwise shutdown cancels the flush, which
  prints tracebacks and loses those task runs.

Flow runs stay at WARNING here: a local run (the demo's hundreds of ticks)
prints its own report, and the INFO summary each flow logs (see
:mod:`touchflow.entrypoints.flows.tasks`) is for the logs of a worker.

Deployments on a worker run without this wrapper and keep heartbeats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from touchflow.entrypoints.flows.tasks import FLOW_RUN_LOGGER

RECORDER_DRAIN_S = 1.5


@contextmanager
def local_prefect() -> Iterator[None]:
    """Context for running flows locally: no heartbeats, quiet flow runs, drain the recorder."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    flow_runs = logging.getLogger(FLOW_RUN_LOGGER)
    level = flow_runs.level
    ran = False
    try:
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            ran = True
            flow_runs.setLevel(logging.WARNING)  # a level set: flow_log() leaves it
            yield
    finally:
        flow_runs.setLevel(level)
        if ran:
            time.sleep(RECORDER_DRAIN_S)
