"""Pure compliance rules: contact hours, caps and stagger, bounce shield, email footer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.harness import TEMPLATES, make_cadence
from touchflow.domain.compliance import (
    BounceShield,
    CapGate,
    CapPolicy,
    MailboxCaps,
    SendCounts,
    bucket_of,
    footer_findings,
    next_contact_opening,
    within_contact_hours,
)

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]


@pytest.mark.parametrize(
    "utc,tz,ok",
    [
        ("2026-11-30T12:59", "America/New_York", False),  # 07:59
        ("2026-11-30T13:00", "America/New_York", True),  # 08:00
        ("2026-12-01T01:59", "America/New_York", True),  # 20:59
        ("2026-12-01T02:00", "America/New_York", False),  # 21:00
        ("2026-11-30T02:30", "Asia/Kolkata", True),  # 08:00 IST
    ],
)
def test_within_contact_hours(utc, tz, ok):
    at = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert within_contact_hours(at, tz) is ok


def test_next_opening_across_spring_forward():
    # Sunday 8 March 2026, 02:00 New York does not exist; 08:00 does, at 12:00 UTC.
    at = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)  # Sat 22:00 EST
    assert next_contact_opening(at, "America/New_York") == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
    st.sampled_from(ZONES),
)
def test_next_opening_is_inside_hours_and_never_in_the_past(naive, tz):
    at = naive.replace(tzinfo=UTC)
    opening = next_contact_opening(at, tz)
    assert opening >= at
    assert within_contact_hours(opening, tz)
    assert opening - at < timedelta(hours=14)


def test_buckets_are_five_minutes():
    at = datetime(2026, 11, 30, 10, 7, 31, tzinfo=UTC)
    assert bucket_of(at) == datetime(2026, 11, 30, 10, 5, tzinfo=UTC)


def test_cap_gate_orders_its_reasons_and_counts_what_it_admits():
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    policy = CapPolicy(MailboxCaps(hourly=120, daily=3), {"vip@x": MailboxCaps(None, None)}, 2)
    gate = CapGate(policy, SendCounts(), now)
    assert gate.admit("a@x", "d1") is None
    assert gate.admit("a@x", "d1") is None
    assert gate.admit("a@x", "d1")[0] == "cap:domain_daily"
    assert gate.admit("a@x", "d2") is None
    assert gate.admit("a@x", "d3")[0] == "cap:mailbox_daily"
    assert gate.admit("vip@x", "d4") is None  # override: unlimited mailbox
    assert gate.admitted == {("mailbox", "a@x"): 3, ("mailbox", "vip@x"): 1, ("domain", "d1"): 2,
                             ("domain", "d2"): 1, ("domain", "d4"): 1}  # fmt: skip


def test_stagger_is_an_even_share_of_the_hourly_cap():
    assert MailboxCaps(hourly=100).per_bucket == 9
    assert MailboxCaps(hourly=5).per_bucket == 1
    assert MailboxCaps(hourly=None).per_bucket is None


def test_bounce_shield_needs_a_minimum_sample():
    shield = BounceShield(threshold=0.05, min_sends=50)
    assert not shield.tripped(49, 49)
    assert not shield.tripped(100, 5)
    assert shield.tripped(100, 6)
    assert "6 bounces in 100 sends (6.0%)" in shield.describe(100, 6)


def test_footer_rule_names_each_template_missing_a_link_or_address(tmp_path):
    templates = dict(TEMPLATES)
    templates["email/intro.txt.j2"] = "Hi {{ prospect.first_name }}\n{% include 'email/_f.j2' %}"
    templates["email/_f.j2"] = "{{ unsubscribe_url }}\n{{ sender.postal_address }}\n"
    templates["email/bump.txt.j2"] = "Bump.\n1 Test Way\n"  # the literal configured address
    cadence = make_cadence(tmp_path, templates=templates)
    found = footer_findings(cadence, "templates", "1 Test Way")
    messages = sorted((f.path, f.message.split(":")[0]) for f in found)
    assert messages == [
        ("templates/email/breakup.txt.j2", "email template has no postal address"),
        ("templates/email/bump.txt.j2", "email template has no unsubscribe link"),
    ]
