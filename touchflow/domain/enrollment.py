"""The enrollment state machine: states are nouns, events are verbs.

::

    enroll -> pending --start--> active --advance--> active
    pending/active --hold(missing_data)--> pending
    active/pending --pause--> paused --resume--> active
    active/pending/paused --reply|finish--> finished(reason)
    active/pending/paused --bounce--> bounced          (terminal)
    active/pending/paused/failed --opt_out--> opted_out (terminal; global)
    active/pending --fail--> failed --retry--> active

An event that is not allowed in a state raises :class:`TransitionError`
naming both, so a bug never silently moves an enrollment.
"""

from __future__ import annotations

from enum import StrEnum

from touchflow.errors import TransitionError


class State(StrEnum):
    """Where an enrollment is in its lifecycle."""

    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"
    BOUNCED = "bounced"
    OPTED_OUT = "opted_out"
    FAILED = "failed"


class Event(StrEnum):
    """What can happen to an enrollment."""

    START = "start"
    HOLD = "hold"
    ADVANCE = "advance"
    PAUSE = "pause"
    RESUME = "resume"
    REPLY = "reply"
    FINISH = "finish"
    BOUNCE = "bounce"
    OPT_OUT = "opt_out"
    FAIL = "fail"
    RETRY = "retry"


TERMINAL: frozenset[State] = frozenset({State.FINISHED, State.BOUNCED, State.OPTED_OUT})
#: States in which an enrollment still belongs to its cadence (exit events apply).
OPEN: frozenset[State] = frozenset({State.PENDING, State.ACTIVE, State.PAUSED, State.FAILED})

_P, _A, _Z, _F = State.PENDING, State.ACTIVE, State.PAUSED, State.FAILED

TRANSITIONS: dict[Event, dict[State, State]] = {
    Event.START: {_P: _A},
    Event.HOLD: {_P: _P, _A: _P},
    Event.ADVANCE: {_A: _A},
    Event.PAUSE: {_P: _Z, _A: _Z},
    Event.RESUME: {_Z: _A},
    Event.REPLY: {_P: State.FINISHED, _A: State.FINISHED, _Z: State.FINISHED},
    Event.FINISH: {_P: State.FINISHED, _A: State.FINISHED, _Z: State.FINISHED},
    Event.BOUNCE: {_P: State.BOUNCED, _A: State.BOUNCED, _Z: State.BOUNCED},
    Event.OPT_OUT: {s: State.OPTED_OUT for s in (_P, _A, _Z, _F)},
    Event.FAIL: {_P: _F, _A: _F},
    Event.RETRY: {_F: _A},
}

#: Prospect-level exit events (CLI/webhooks) -> (enrollment event, finish reason).
EXIT_EVENTS: dict[str, tuple[Event, str]] = {
    "reply": (Event.REPLY, "replied"),
    "meeting_booked": (Event.FINISH, "meeting"),
    "deal_created": (Event.FINISH, "deal_created"),  # from the CRM
    "bounce": (Event.BOUNCE, "bounced"),
    "unsubscribe": (Event.OPT_OUT, "unsubscribed"),
}


#: Why an enrollment failed when its touch may or may not have arrived (a worker
#: lost mid-send, a provider timeout after the request went out): the reason is
#: ``delivery_unknown:<step id>``, and a retry could deliver that step twice.
DELIVERY_UNKNOWN = "delivery_unknown"


def delivery_unknown(step_id: str) -> str:
    """The failure reason of an enrollment whose ``step_id`` touch is ``unknown``."""
    return f"{DELIVERY_UNKNOWN}:{step_id}"


def is_delivery_unknown(reason: str | None) -> bool:
    """Whether a failure reason says the touch may have been delivered."""
    return (reason or "").startswith(f"{DELIVERY_UNKNOWN}:")


def transition(state: State | str, event: Event | str) -> State:
    """Return the state after ``event``; raise :class:`TransitionError` if not allowed."""
    state = State(state)
    event = Event(event)
    try:
        return TRANSITIONS[event][state]
    except KeyError:
        raise TransitionError(event.value, state.value) from None


def can(state: State | str, event: Event | str) -> bool:
    """Whether ``event`` is allowed in ``state``."""
    return State(state) in TRANSITIONS[Event(event)]


def sources(event: Event | str) -> tuple[str, ...]:
    """The states ``event`` is allowed in, as stored: a bulk update filters on them."""
    return tuple(sorted(s.value for s in TRANSITIONS[Event(event)]))


def bulk_target(event: Event | str) -> State:
    """The one state ``event`` leads to from each of its sources (what a bulk update sets).

    Every event has one today (``hold``: pending stays pending, active goes
    back to pending); an event whose target came to depend on the source could
    not be applied in bulk, and this raises ``ValueError`` for it.
    """
    targets = set(TRANSITIONS[Event(event)].values())
    if len(targets) != 1:
        raise ValueError(f"event {Event(event).value!r} has no single target: apply it per row")
    return targets.pop()
