"""Unsubscribe tokens: a forged, malformed or non-ASCII token is refused, never an error."""

from __future__ import annotations

from touchflow.domain.unsubscribe import sign, verify

SECRET = "s3cret"


def test_a_signed_token_verifies_and_a_forged_one_does_not():
    assert verify(sign("42-intro-1", SECRET), SECRET) == "42-intro-1"
    assert verify(sign("42-intro-1", "other"), SECRET) is None


def test_non_ascii_text_anywhere_in_a_token_is_refused_not_raised():
    good = sign("42-intro-1", SECRET)
    for token in ("k.é", good + "é", "é." + good.split(".")[1], "k.\udcff", "k.\x00"):
        assert verify(token, SECRET) is None, token
