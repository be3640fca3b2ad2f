"""prefect.yaml points every deployment at a real flow with a schedule."""

from __future__ import annotations

import importlib

import yaml
from prefect import Flow

from tests.conftest import ROOT


def test_every_deployment_entrypoint_is_a_flow():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = set()
    for dep in spec["deployments"]:
        path, func = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, func), Flow), dep["name"]
        assert dep["schedules"] and dep["work_pool"]["name"] == "touchflow"
        names.add(dep["name"])
    assert {"run-cadences", "poll-replies", "sync-crm", "intake"} <= names
