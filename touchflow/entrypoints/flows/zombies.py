"""Mark a flow run whose process died as Crashed: an automation on missing heartbeats.

A flow run on a worker sends a ``prefect.flow-run.heartbeat`` event every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (``prefect.yaml`` sets 30 for
touchflow's deployments; Prefect 3.9's default is 180). When its process dies
(``kill -9``, out of memory, the machine gone, with or without its worker)
nothing marks the run final: it stays ``Running`` in the UI and keeps a slot of
its deployment's concurrency limit until the slot's lease lapses (300 s), and
meanwhile the next scheduled tick is cancelled ("Deployment concurrency limit
reached."). A self-hosted Prefect server has no rule for this built in (Prefect
Cloud's is "Unresponsive run detection"); this automation is that rule, after
Prefect's guide (docs.prefect.io/v3/advanced/detect-zombie-flows): after a
heartbeat of a run of a touchflow deployment (tag ``touchflow``) it expects
another event of the same run within :data:`SILENCE`; when none comes it sets
the run ``Crashed``, which releases the slot at once.

The same rule watches runs a worker took and never started: a worker killed
between setting a run ``Pending`` and starting its process leaves it
``Pending`` with no process and so no heartbeat at all (seen in
``tests/e2e/test_prefect_workers.py``: one of a dead worker's two shards). A
``Pending`` run is expected to say ``Running`` within :data:`SILENCE` too,
and a ``Running`` one to send its first heartbeat (sent at once on start): a
process killed before that heartbeat reached the server left nothing else to
start the watch from. Known gap: in that test the ``Pending`` watch does not
fire (such a run stays ``Pending``; see docs/operations.md).

A crashed tick is safe to leave: the next tick's recovery settles its claims
from the ledger (see docs/operations.md).

Create it once per Prefect server (running it again changes nothing)::

    python -m touchflow.entrypoints.flows.zombies [--silence SECONDS]

``--silence`` (default 90) must stay above the heartbeat interval, with a
margin for a busy machine: a run silent for less is alive.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

NAME = "touchflow: crash flow runs that stopped sending heartbeats"
#: The tag every deployment in prefect.yaml carries: the automation touches only those runs.
TAG = "touchflow"
#: How long a run may be silent: three heartbeats at prefect.yaml's 30 s.
SILENCE = timedelta(seconds=90)


def zombie_automation(silence: timedelta = SILENCE) -> AutomationCore:
    """The automation, as it should be on the server."""
    return AutomationCore(
        name=NAME,
        description=(
            f"A touchflow flow run silent for {silence.seconds} s after a heartbeat "
            "(or after Pending) lost its process: "
            "mark it Crashed so it releases its deployment concurrency slot."
        ),
        trigger=EventTrigger(
            after={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Pending",
                "prefect.flow-run.Running",
            },
            # Any event of the run: another heartbeat, or a state change whatever its name.
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {"prefect.resource.id": f"prefect.tag.{TAG}", "prefect.resource.role": "tag"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silence,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                # Forced: without it the server may refuse Pending -> Crashed for a run
                # whose worker died before starting its process (seen: such a run
                # stayed Pending in the real-server test).
                force=True,
                message=(
                    f"no heartbeat (or start) for {silence.seconds} s: "
                    "the flow run's process is gone"
                ),
            )
        ],
    )


def ensure_zombie_automation(silence: timedelta = SILENCE) -> str:
    """Create the automation on the current Prefect API, or bring it up to date.

    Returns what was done: ``created``, ``updated`` or ``unchanged``.
    """
    wanted = zombie_automation(silence)
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(NAME)
        if not found:
            client.create_automation(wanted)
            return "created"
        current = found[0]
        fields = ("description", "trigger", "actions", "enabled")
        if all(getattr(current, f) == getattr(wanted, f) for f in fields):
            return "unchanged"
        client.update_automation(current.id, wanted)
        return "updated"


def main(argv: list[str] | None = None) -> None:
    """``python -m touchflow.entrypoints.flows.zombies``: ensure the automation; what was done."""
    parser = argparse.ArgumentParser(prog="python -m touchflow.entrypoints.flows.zombies")
    parser.add_argument(
        "--silence",
        type=int,
        default=int(SILENCE.total_seconds()),
        help="seconds without an event after a heartbeat before a run is marked Crashed",
    )
    args = parser.parse_args(argv)
    print(f"{NAME}: {ensure_zombie_automation(timedelta(seconds=args.silence))}")


if __name__ == "__main__":
    main()
