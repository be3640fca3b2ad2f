"""check_crm: the team's owner ids and the connector's custom fields, against a CRM."""

from __future__ import annotations

from touchflow.adapters.fake_crm import FakeCrm
from touchflow.services.crm_check import TeamOwner, check_crm


def test_check_crm_checks_ids_and_lead_receivers_and_the_connector_fields():
    crm = FakeCrm()
    ae = crm.seed_owner("ae@co.com", "An AE")
    report = check_crm(
        crm,
        [
            TeamOwner("ae@co.com", ae, receives_leads=True),
            TeamOwner("sdr@co.com", None, receives_leads=False),  # owns nothing pushed: skipped
            TeamOwner("new@co.com", None, receives_leads=True),
        ],
    )
    assert [(o.email, o.status) for o in report.owners] == [
        ("ae@co.com", "ok"),
        ("new@co.com", "no_owner"),
    ]
    assert [(f.object, f.field, f.ok) for f in report.fields] == [
        ("activity", "touchflow_key", True)
    ]
    assert report.problems == 1
