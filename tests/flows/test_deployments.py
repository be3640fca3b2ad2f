"""prefect.yaml's deployments (a flow, a schedule, heartbeats); pyproject's Prefect settings."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Iterator
from typing import Any

import yaml
from prefect import Flow

from tests.conftest import ROOT
from touchflow.entrypoints.flows.zombies import SILENCE, TAG


def test_every_deployment_entrypoint_is_a_flow():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = set()
    for dep in spec["deployments"]:
        path, func = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, func), Flow), dep["name"]
        # Shards are started by run-cadences, never by a schedule.
        assert bool(dep.get("schedules")) == (dep["name"] != "tick-shard"), dep["name"]
        assert dep["work_pool"]["name"] == "touchflow"
        names.add(dep["name"])
    assert {
        "run-cadences",
        "tick-shard",
        "poll-replies",
        "sync-crm",
        "intake",
        "purge-transcripts",
        "sync-deals",
        "snapshot-pipeline",
        "summarise-calls",
    } <= names


def test_the_parent_submits_to_the_shard_deployment_prefect_yaml_declares():
    from touchflow.entrypoints.flows.run_cadences import SHARD_DEPLOYMENT

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (shard,) = [d for d in spec["deployments"] if d["name"] == "tick-shard"]
    module = importlib.import_module(shard["entrypoint"].split(":")[0][:-3].replace("/", "."))
    flow_obj = getattr(module, shard["entrypoint"].split(":")[1])
    assert f"{flow_obj.name}/{shard['name']}" == SHARD_DEPLOYMENT
    # Every shard of a default tick can start at once.
    from touchflow.settings import TickSettings

    assert shard["concurrency_limit"]["limit"] >= TickSettings().shards


def test_every_deployment_sends_heartbeats_the_zombie_automation_watches():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for dep in spec["deployments"]:
        assert TAG in dep["tags"], dep["name"]
        env = dep["work_pool"]["job_variables"]["env"]
        beat = int(env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"])
        # Prefect's minimum is 30; the automation waits three missed heartbeats.
        assert beat >= 30 and 3 * beat <= SILENCE.total_seconds(), dep["name"]


def _flush_intervals(table: dict[str, Any], path: str = "tool.prefect") -> Iterator[tuple]:
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flush_intervals(value, f"{path}.{key}")
        elif key == "flush_interval":
            yield f"{path}.{key}", value


def test_prefect_flush_intervals_in_pyproject_are_whole_positive_seconds():
    """Prefect truncates them to int: 0.5 became 0, and a flush loop of sleep(0) spins a core."""
    prefect = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["prefect"]
    found = list(_flush_intervals(prefect))
    assert found  # the task-run recorder's, at least
    for where, value in found:
        assert type(value) is int and value >= 1, f"{where} = {value!r}"
