"""HubspotCrm.check_fields against the stand-in: a property that is not unique, a 403."""

from __future__ import annotations

from tests.adapters.crm.backends import hubspot


def test_a_key_property_without_unique_values_is_a_problem():
    with hubspot() as (crm, standin):
        assert standin is not None
        standin.properties["tasks"]["touchflow_key"]["hasUniqueValue"] = False  # type: ignore[attr-defined]
        by_type = {c.object: c for c in crm.check_fields()}
        assert by_type["tasks"].problem and "unique" in by_type["tasks"].problem
        assert by_type["calls"].ok


def test_a_token_without_the_scope_is_reported_per_property_not_raised():
    with hubspot() as (crm, standin):
        assert standin is not None
        standin.fail_next(403, times=4)
        checks = crm.check_fields()
        assert len(checks) == 4
        assert all(c.problem and c.problem.startswith("cannot read it") for c in checks)
