"""The automation that marks a flow run whose process died as Crashed, on a real Prefect API."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.schemas.events import ResourceSpecification
from prefect.testing.utilities import prefect_test_harness

from touchflow.entrypoints.flows.zombies import (
    NAME,
    SILENCE,
    TAG,
    ensure_zombie_automation,
    zombie_automation,
)


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_the_automation_is_created_once_and_watches_touchflow_runs(harness):
    assert ensure_zombie_automation() == "created"
    assert ensure_zombie_automation() == "unchanged"
    with get_client(sync_client=True) as client:
        (found,) = client.read_automations_by_name(NAME)
    trigger = found.trigger
    # A heartbeat; Pending (a worker that died before starting the run's process); Running
    # (a process that died before its first heartbeat reached the server).
    assert trigger.after == {
        "prefect.flow-run.heartbeat",
        "prefect.flow-run.Pending",
        "prefect.flow-run.Running",
    }
    assert trigger.posture == "Proactive" and trigger.within == SILENCE
    assert trigger.match_related == ResourceSpecification(
        {"prefect.resource.id": f"prefect.tag.{TAG}", "prefect.resource.role": "tag"}
    )
    (action,) = found.actions
    assert action.type == "change-flow-run-state" and action.state == StateType.CRASHED


def test_an_edited_automation_is_put_back(harness):
    ensure_zombie_automation()
    edited = zombie_automation()
    edited.trigger.within = SILENCE * 10  # someone changed it in the UI
    with get_client(sync_client=True) as client:
        (found,) = client.read_automations_by_name(NAME)
        client.update_automation(found.id, edited)
    assert ensure_zombie_automation() == "updated"
    with get_client(sync_client=True) as client:
        (found,) = client.read_automations_by_name(NAME)
    assert found.trigger.within == SILENCE
