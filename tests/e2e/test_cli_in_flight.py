"""A crash mid-send as the operator sees it: `status` says in flight, `retry` will not guess."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from tests.support.harness import Harness, make_cadence, prospect
from touchflow.entrypoints.cli import app
from touchflow.store.db import make_engine
from touchflow.store.schema import enrollments

runner = CliRunner()
SAT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MON = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


class _Lost(Exception):
    """The worker's process dies while the provider has the messages."""


def _status() -> str:
    result = runner.invoke(app, ["status"], terminal_width=250)
    assert result.exit_code == 0, result.output
    return result.stdout


def _rows(text: str, first: str) -> list[list[str]]:
    """The table rows of ``text`` whose first cell is ``first``, as stripped cells."""
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()]
    return [c for c in cells if c and c[0] == first]


@pytest.fixture
def crashed(project: Path):
    """Two enrollments claimed by a tick whose worker died while sending."""
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(f"sqlite:///{project / 'tf.db'}")
    h = Harness(engine, make_cadence(project / "h"))
    h.add([prospect("a@x.example"), prospect("b@x.example")], SAT)

    def die(_messages):
        raise _Lost

    h.ticker.email.send_batch = die
    with pytest.raises(_Lost):
        h.ticker.run_batch(MON, 100)
    yield h
    engine.dispose()


def test_status_shows_a_claim_inside_its_lease_as_in_flight_with_its_age(crashed):
    text = _status()
    rows = _rows(text, "t-cadence")
    flying = [r for r in rows if r[1] == "in flight"]
    assert len(flying) == 1 and flying[0][3] == "2", rows
    assert flying[0][2].startswith("claimed ") and flying[0][2].endswith(" s ago"), flying
    # Not counted as waiting: no plain `pending` row for them.
    assert not [r for r in rows if r[1] == "pending"], rows
    assert ["email", "sending (in flight)", "2"] in _rows(text, "email")


def test_status_says_what_happens_to_a_claim_past_its_lease(crashed):
    with crashed.engine.begin() as conn:
        conn.execute(update(enrollments).values(claimed_at=datetime.now(UTC) - timedelta(hours=2)))
    text = _status()
    (flying,) = [r for r in _rows(text, "t-cadence") if r[1] == "in flight"]
    assert flying[2] == "claimed 2 h ago, past the lease"
    assert (
        "2 in flight past the 10 min claim lease (TOUCHFLOW_CLAIM_LEASE_S): their worker was "
        "lost; the next tick marks their touches unknown"
    ) in text


def test_retry_refuses_an_unknown_touch_without_force_and_says_why(crashed):
    crashed.ticker.lease = timedelta(0)  # the lease passed: the next tick settles the claims
    assert crashed.ticker.recover().unknown == 2
    result = runner.invoke(app, ["retry", "--all-failed"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: 2 enrollment(s) not requeued (1, 2): their touch is unknown and may have been "
        "delivered (the worker was lost or the provider timed out after taking it); check the "
        "provider or the rep's Sent folder, then requeue the ones that did not arrive with --force"
    )
    assert crashed.enrollment("a@x.example").state == "failed"  # left as it was
    result = runner.invoke(app, ["retry", "1", "--force"])
    assert result.exit_code == 0, result.output
    assert "1 enrollment(s) requeued" in result.stdout
    assert crashed.enrollment("a@x.example").state == "active"
    assert crashed.enrollment("b@x.example").state == "failed"
