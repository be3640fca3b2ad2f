"""``tracker('call-1', 'pricing')`` in a step's ``when``: checked at load against
config/guidance.yaml (file:line:col, did you mean), evaluated by the engine on what the
after-call summary of the step's call heard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.domain.test_cadence_errors import CALL, HEAD, INTRO, NUDGE, _write_tree
from touchflow.domain.cadence import load_cadence, load_cadences, validate_paths
from touchflow.domain.engine import (
    WHEN_FALSE,
    CadenceRuntime,
    Complete,
    EnrollmentView,
    Execute,
    ExecutedStep,
    SenderInfo,
)
from touchflow.domain.prospects import Prospect
from touchflow.errors import CadenceError

GUIDANCE = """\
trackers:
  pricing:
    phrases: {en: [price]}
  competitor:
    phrases: {en: [gong]}
"""


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _write_tree(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "guidance.yaml").write_text(GUIDANCE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


GUIDE = Path("config/guidance.yaml")


def _findings(when: str, guidance: Path | None = GUIDE, body: str | None = None) -> list[str]:
    Path("cadences/bad.yaml").write_text(body or HEAD + INTRO + CALL + NUDGE.format(when=when))
    with pytest.raises(CadenceError) as info:
        load_cadence(Path("cadences/bad.yaml"), Path("templates"), None, guidance)
    return [str(f) for f in info.value.findings]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (
            "tracker('call-1', 'pricnig')",
            "cadences/bad.yaml:15:11: error: when: unknown tracker 'pricnig' "
            "(did you mean 'pricing'?) (the trackers are in config/guidance.yaml)",
        ),
        (
            "tracker('intro', 'pricing')",
            "cadences/bad.yaml:15:11: error: when: tracker('intro', ...) is always false: "
            "'intro' is a email step (trackers are heard on call steps' calls)",
        ),
        (
            "tracker('call-2', 'pricing')",
            "cadences/bad.yaml:15:11: error: when: tracker('call-2') names no step of this cadence",
        ),
        (
            "tracker('call-1')",
            "cadences/bad.yaml:15:11: error: when: tracker() takes a step id and a tracker: "
            "tracker('call-1', 'pricing')",
        ),
        (
            "tracker('call-1', name)",
            "cadences/bad.yaml:15:11: error: when: tracker() needs string literals: "
            "tracker('call-1', 'pricing')",
        ),
    ],
)
def test_a_bad_tracker_condition_is_reported_where_it_is(tree: Path, when: str, message: str):
    assert message in _findings(when)


def test_a_tracker_condition_must_name_an_earlier_call(tree: Path) -> None:
    body = HEAD + INTRO + NUDGE.format(when="tracker('call-1', 'pricing')") + CALL
    assert any("tracker('call-1') must name an earlier step" in f for f in _findings("", body=body))


def test_tracker_names_are_checked_only_when_there_is_a_guidance_file(tree: Path) -> None:
    Path("cadences/bad.yaml").write_text(
        HEAD + INTRO + CALL + NUDGE.format(when="tracker('call-1', 'anything-at-all')")
    )
    # No guidance file configured, or configured and absent: nothing to check against.
    for guidance in (None, Path("config/nope.yaml")):
        cadence = load_cadence(Path("cadences/bad.yaml"), Path("templates"), None, guidance)
        assert cadence.step("nudge").when == "tracker('call-1', 'anything-at-all')"
    with pytest.raises(CadenceError):
        load_cadences(Path("cadences"), Path("templates"), None, GUIDE)
    found = validate_paths([Path("cadences")], Path("templates"), guidance=GUIDE)
    assert [f.message for f in found] == [
        "when: unknown tracker 'anything-at-all' (the trackers are in config/guidance.yaml)"
    ]


def test_known_trackers_load(tree: Path) -> None:
    when = "tracker('call-1', 'pricing') and not tracker('call-1', 'competitor')"
    Path("cadences/bad.yaml").write_text(HEAD + INTRO + CALL + NUDGE.format(when=when))
    cadence = load_cadence(Path("cadences/bad.yaml"), Path("templates"), None, GUIDE)
    assert cadence.step("nudge").when == when


T0 = datetime(2026, 12, 1, 15, tzinfo=UTC)  # a Tuesday, inside the window


def test_the_engine_takes_or_skips_a_step_on_what_the_call_heard(tree: Path) -> None:
    when = "tracker('call-1', 'pricing')"
    Path("cadences/bad.yaml").write_text(HEAD + INTRO + CALL + NUDGE.format(when=when))
    runtime = CadenceRuntime(load_cadence(Path("cadences/bad.yaml"), Path("templates")))
    person = Prospect(email="ann@acme.example", first_name="Ann", phone="+12125550123",
                      country="US", timezone="America/New_York")  # fmt: skip
    sender = SenderInfo(email="sam@x.example", name="Sam")

    def decide(heard: set[str]) -> object:
        view = EnrollmentView("bad:ann@acme.example", "1", person, sender, step_index=2)
        view.executed["intro"] = ExecutedStep("intro", T0 - timedelta(days=3))
        view.executed["call-1"] = ExecutedStep("call-1", T0 - timedelta(days=1), trackers=heard)
        return runtime.decide(view, T0)

    taken = decide({"competitor", "pricing"})
    assert isinstance(taken, Execute) and taken.step.id == "nudge" and not taken.skipped
    skipped = decide({"competitor"})
    assert isinstance(skipped, Complete)
    assert [(s.step_id, s.reason) for s in skipped.skipped] == [("nudge", WHEN_FALSE)]


def test_simulate_reads_a_tracker_column_on_call_outcomes(tree: Path) -> None:
    from tests.services.test_call_summaries import BRANCHY
    from tests.support.harness import SENDER, make_cadence, prospect
    from touchflow.domain.simulate import read_events_csv, simulate

    events = Path("events.csv")
    events.write_text(
        "email,event,at,step,tracker\n"
        "ann@x.example,connected,2026-12-02T16:00:00Z,call-1,pricing;competitor\n"
        "bob@x.example,connected,2026-12-02T16:00:00Z,call-1,\n"
    )
    cadence = make_cadence(tree / "sim", BRANCHY)
    people = [prospect("ann@x.example"), prospect("bob@x.example")]
    start = datetime(2026, 11, 30, 15, tzinfo=UTC)
    records = simulate(cadence, people, start=start, days=7, sender=SENDER,
                       events=read_events_csv(events))  # fmt: skip
    by = {(r["prospect"], r["step"]): r for r in records if "step" in r}
    assert by[("ann@x.example", "call-1")]["trackers"] == ["pricing", "competitor"]
    assert by[("ann@x.example", "pricing-follow-up")]["status"] == "sent"
    assert by[("ann@x.example", "bump")]["status"] == "skipped"
    assert by[("bob@x.example", "pricing-follow-up")]["status"] == "skipped"
    assert by[("bob@x.example", "bump")]["status"] == "sent"
    bad = Path("bad.csv")
    bad.write_text("email,event,at,tracker\nann@x.example,opened,2026-12-02T16:00:00Z,pricing\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2: trackers are heard on a call"):
        read_events_csv(bad)
