"""``touchflow crm check``: is the connected CRM set up for what touchflow sends it?

Two questions, asked read-only of the CRM:

- Owners: every team member's ``crm_owner_id`` (team.yaml) must be an active owner/user in the
  CRM, or pushed leads get an owner the CRM refuses or a wrong one. A member without an id is
  matched on their email, as lead pushes do; an AE matched by neither gets leads with no owner.
- Custom fields: each connector names the fields it needs as configured (HubSpot's
  ``touchflow_key`` on activities, Salesforce's ``Touchflow_Key__c`` on Task, Pipedrive's
  organization domain field), and says whether each is there and usable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from touchflow.domain.crm import CrmFieldCheck, OwnerCheck, check_owners
from touchflow.ports import CrmConnector

__all__ = ["CrmCheckReport", "TeamOwner", "check_crm"]


@dataclass(frozen=True)
class TeamOwner:
    """A team member as the owner check needs them."""

    email: str
    crm_owner_id: str | None
    receives_leads: bool  # an active AE: their leads need an owner in the CRM


@dataclass(frozen=True)
class CrmCheckReport:
    """What ``crm check`` found: one line per team member checked, one per custom field."""

    crm: str
    owners: list[OwnerCheck]
    fields: list[CrmFieldCheck]

    @property
    def problems(self) -> int:
        """Owners and fields that need fixing (notes on usable fields are not problems)."""
        return sum(not o.ok for o in self.owners) + sum(not f.ok for f in self.fields)


def check_crm(connector: CrmConnector, team: Iterable[TeamOwner]) -> CrmCheckReport:
    """Check the team's owner ids and the connector's custom fields against the CRM.

    Members with a ``crm_owner_id`` are always checked; members without one only when they
    receive leads (SDRs own no pushed record). Raises the connector's errors (a bad token is
    :class:`~touchflow.errors.FatalError`) for the caller to print.
    """
    members = [(m.email, m.crm_owner_id) for m in team if m.crm_owner_id or m.receives_leads]
    owners = check_owners(members, connector.list_owners())
    return CrmCheckReport(connector.name, owners, connector.check_fields())
