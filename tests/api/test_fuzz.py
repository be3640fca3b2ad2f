"""Fuzzed Event Webhook bodies: never a 500, and a valid event mixed in is never lost."""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import PEOPLE, World

# Any JSON value, strings with any code point (lone surrogates and NUL included).
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
# Objects that look like events, with every field possibly wrong.
_field = st.sampled_from(
    ["event", "sg_event_id", "timestamp", "email", "touch_key", "type", "reason"]
)
_eventish = st.dictionaries(_field, _json | _text, max_size=7)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(junk=st.lists(_json | _eventish, max_size=6), position=st.integers(0, 6))
def test_valid_event_survives_any_company(world: World, junk: list, position: int):
    good = world.sg_event(PEOPLE[2], "delivered", sg_event_id=uuid.uuid4().hex)
    batch = list(junk)
    batch.insert(min(position, len(batch)), good)
    r = world.post_events(json.dumps(batch).encode())
    assert r.status_code == 200, r.text
    assert world.events(provider_event_id=f"sg:{good['sg_event_id']}")


@FUZZ
@given(value=_json | _eventish)
def test_any_json_value_gets_an_answer_below_500(world: World, value: object):
    r = world.post_events(json.dumps(value).encode())
    assert r.status_code in (200, 400), r.text


@FUZZ
@given(body=st.binary(max_size=300))
def test_any_bytes_get_a_4xx(world: World, body: bytes):
    r = world.post_events(body)
    assert 400 <= r.status_code < 500, r.text
