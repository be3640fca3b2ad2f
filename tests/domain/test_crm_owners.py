"""check_owners: team.yaml's crm_owner_id against the owners a CRM lists."""

from __future__ import annotations

from touchflow.domain.crm import CrmOwner, check_owners

OWNERS = [
    CrmOwner("0055e000001AnaSAAQ", "ana@co.com"),  # Salesforce's 18-character form
    CrmOwner("701", "ben@co.com", active=False),
    CrmOwner("702", "cy@co.com"),
]


def test_each_owner_id_is_ok_unknown_or_inactive():
    got = check_owners(
        [("ana@co.com", "0055e000001AnaS"), ("ben@co.com", "701"), ("dee@co.com", "0055e0typo")],
        OWNERS,
    )
    assert [(c.email, c.status, c.ok) for c in got] == [
        ("ana@co.com", "ok", True),  # the 15-character id of the same user
        ("ben@co.com", "inactive", False),
        ("dee@co.com", "unknown", False),
    ]
    assert got[0].owner == OWNERS[0] and got[2].owner is None


def test_a_member_without_an_id_is_matched_by_email_as_pushes_do():
    got = check_owners([("CY@co.com", None), ("eve@co.com", None), ("ben@co.com", None)], OWNERS)
    assert [c.status for c in got] == ["matched_by_email", "no_owner", "no_owner"]
    assert got[0].ok and not got[1].ok
