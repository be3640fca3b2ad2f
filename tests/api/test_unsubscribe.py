"""One-click unsubscribe (RFC 8058): no login, forged tokens refused, idempotent."""

from __future__ import annotations

from sqlalchemy import select

from tests.api.conftest import PEOPLE, UNSUB_SECRET, World
from touchflow.domain.unsubscribe import sign
from touchflow.store.schema import suppressions

ANN, BOB, CY = PEOPLE


def test_get_shows_a_button_and_changes_nothing(world: World):
    token = sign(world.touch(ANN).key, UNSUB_SECRET)
    r = world.client.get(f"/unsubscribe/{token}")
    assert r.status_code == 200
    assert '<form method="post"' in r.text and "Unsubscribe" in r.text
    assert r.headers["cache-control"] == "no-store"
    assert world.prospect(ANN).opted_out_at is None
    assert world.event_count() == 0


def test_one_click_post_opts_out_everywhere_once(world: World):
    token = sign(world.touch(ANN).key, UNSUB_SECRET)
    for _ in range(3):  # the mail client's POST, then the person clicks the page twice
        r = world.client.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
        assert "You are unsubscribed" in r.text
    assert {e.state for e in world.enrollments_of(ANN)} == {"opted_out"}
    assert world.prospect(ANN).opted_out_at is not None
    with world.engine.connect() as conn:
        assert conn.execute(select(suppressions.c.value)).scalars().all() == [ANN]
    assert [e.type for e in world.events()] == ["unsubscribe"]
    assert world.events()[0].touch_key == world.touch(ANN).key
    assert world.enrollments_of(BOB)[0].state == "active"


def test_the_page_button_works_too(world: World):
    token = sign(world.touch(BOB).key, UNSUB_SECRET)
    r = world.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    assert world.enrollments_of(BOB)[0].state == "opted_out"


def test_forged_or_unknown_tokens_get_404_and_change_nothing(world: World):
    key = world.touch(ANN).key
    forged = [
        sign(key, "another-secret"),
        f"{key}.",
        key,
        "",
        sign(key, UNSUB_SECRET)[:-2] + "xx",
        sign("999999-intro-1", UNSUB_SECRET),  # signed, but no such touch
    ]
    for token in forged:
        r = world.client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
        assert r.status_code in (404, 405), (token, r.status_code)
    for token in forged[:2]:
        assert world.client.get(f"/unsubscribe/{token}").status_code == 404
    assert world.prospect(ANN).opted_out_at is None
    assert world.event_count() == 0


def test_a_token_with_non_ascii_text_is_not_valid_never_a_500(world: World):
    # hmac.compare_digest refuses str with non-ASCII characters (TypeError): this was a 500.
    key = world.touch(ANN).key
    paths = ("/unsubscribe/k.%C3%A9", f"/unsubscribe/{key}.%C3%A9t", "/unsubscribe/%E2%82%AC.x")
    for path in paths:
        assert world.client.get(path).status_code == 404, path
        assert world.client.post(path).status_code == 404, path
    assert world.prospect(ANN).opted_out_at is None
    assert world.event_count() == 0


def test_an_overlong_token_is_not_valid(world: World):
    token = sign("k" * 5000, UNSUB_SECRET)
    assert world.client.get(f"/unsubscribe/{token}").status_code == 404
    assert world.client.post(f"/unsubscribe/{token}").status_code == 404
