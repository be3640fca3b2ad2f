import pytest

from touchflow.domain.enrollment import TERMINAL, TRANSITIONS, Event, State, can, transition
from touchflow.errors import TransitionError


def test_happy_path():
    s = transition(State.PENDING, Event.START)
    assert s is State.ACTIVE
    assert transition(s, Event.ADVANCE) is State.ACTIVE
    assert transition(s, Event.REPLY) is State.FINISHED


def test_illegal_event_names_event_and_state():
    with pytest.raises(TransitionError) as exc:
        transition(State.FINISHED, Event.START)
    assert exc.value.event == "start" and exc.value.state == "finished"
    assert "'start'" in str(exc.value) and "'finished'" in str(exc.value)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_accept_nothing(state):
    for event in Event:
        assert not can(state, event), (state, event)


def test_opt_out_reaches_every_open_state():
    for state in (State.PENDING, State.ACTIVE, State.PAUSED, State.FAILED):
        assert transition(state, Event.OPT_OUT) is State.OPTED_OUT


def test_every_target_is_a_state():
    for table in TRANSITIONS.values():
        for src, dst in table.items():
            assert isinstance(src, State) and isinstance(dst, State)


def test_bulk_transitions_name_their_sources_and_one_target():
    from touchflow.domain.enrollment import bulk_target, sources

    assert sources(Event.PAUSE) == ("active", "pending")
    assert bulk_target(Event.PAUSE) == State.PAUSED
    assert sources(Event.OPT_OUT) == ("active", "failed", "paused", "pending")
    assert bulk_target(Event.FINISH) == State.FINISHED
    assert bulk_target(Event.HOLD) == State.PENDING  # pending -> pending, active -> pending
    for event in Event:  # every event can be applied in bulk today
        assert bulk_target(event) in set(TRANSITIONS[event].values())
