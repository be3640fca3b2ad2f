"""Who an enrollment's email goes out as: its owner's mailbox, else the default sender (pure).

Every rep sends as themselves. A team member with a ``mailbox:`` in
``config/team.yaml`` (:class:`~touchflow.domain.routing.mailbox.Mailbox`) is a
sender: their From address, name, title, phone, signature and office address.
The rules, in one place:

* **Sending** (the tick, task completion, reconciliation):
  :meth:`SenderDirectory.for_enrollment` answers the owner's mailbox; an
  owner without one keeps the sender stored on the enrollment (its address and
  name over the default sender's other fields), as before mailboxes existed.
  So an owner change (routing, the CRM) hands the next touches to the new
  owner's mailbox.
* **Enrolling** (``touchflow enroll --owner``): :meth:`SenderDirectory.choose`
  refuses an owner who is not a team member with a mailbox once any member has
  one; with no mailbox configured at all, every owner sends as the default
  sender (``TOUCHFLOW_SENDER__*``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from touchflow.domain.engine import SenderInfo
from touchflow.domain.normalize import checked_email
from touchflow.errors import OwnerRefused

if TYPE_CHECKING:  # the tick needs no YAML models: only bootstrap builds from them
    from touchflow.domain.routing.team import TeamConfig

__all__ = ["OwnerSender", "SenderDirectory", "team_senders"]


@dataclass(frozen=True)
class OwnerSender:
    """What enrolling decided: the owner and who their prospects hear from."""

    owner: str
    sender: SenderInfo
    from_team: bool  # True: the owner's own mailbox; False: the default sender


def team_senders(team: TeamConfig, defaults: SenderInfo) -> dict[str, SenderInfo]:
    """The sender of every member with a mailbox, keyed by the member's (lower-case) email.

    Fields a mailbox leaves out come from the member (name, the working hours'
    zone) or, for the company and the postal address, from the default sender.
    """
    found: dict[str, SenderInfo] = {}
    for member in team.members:
        box = member.mailbox
        if box is None:
            continue
        found[member.email] = SenderInfo(
            email=box.from_ or member.email,
            name=box.name or member.name,
            title=box.title,
            company=box.company or defaults.company,
            phone=box.phone,
            timezone=box.timezone or team.hours(member).timezone,
            postal_address=box.postal_address or defaults.postal_address,
            signature=box.signature,
        )
    return found


class SenderDirectory:
    """The senders of one deployment: team mailboxes by owner, and the default sender.

    Built once per process (or tick) by the composition root; every lookup is a
    dict access, so a batch resolves each mailbox once and each row in O(1).
    """

    def __init__(
        self,
        defaults: SenderInfo,
        by_owner: Mapping[str, SenderInfo] | None = None,
        *,
        source: str = "config/team.yaml",
    ) -> None:
        self.defaults = defaults
        self.by_owner: dict[str, SenderInfo] = {k.lower(): v for k, v in (by_owner or {}).items()}
        self.by_address: dict[str, SenderInfo] = {
            s.email.lower(): s for s in self.by_owner.values()
        }
        self.source = source  # where the mailboxes are configured, for messages
        self._stored: dict[tuple[str, str | None], SenderInfo] = {}

    @classmethod
    def of(cls, senders: SenderDirectory | SenderInfo) -> SenderDirectory:
        """``senders`` as a directory: a bare SenderInfo is a directory without mailboxes."""
        return senders if isinstance(senders, SenderDirectory) else cls(senders)

    @property
    def has_mailboxes(self) -> bool:
        return bool(self.by_owner)

    @property
    def addresses(self) -> Iterable[str]:
        """The From addresses of the team's mailboxes."""
        return self.by_address.keys()

    def for_owner(self, owner: str | None) -> SenderInfo | None:
        """The owner's own mailbox identity; None when they have none."""
        return self.by_owner.get(owner.strip().lower()) if owner else None

    def for_enrollment(
        self, owner: str | None, sender_email: str, sender_name: str | None
    ) -> SenderInfo:
        """Who an enrollment's next touch goes out as (the module docstring's rule)."""
        own = self.for_owner(owner)
        if own is not None:
            return own
        box = self.by_address.get(sender_email.lower())
        if box is not None:
            return box
        key = (sender_email, sender_name)
        stored = self._stored.get(key)
        if stored is None:
            stored = self._stored[key] = replace(
                self.defaults, email=sender_email, name=sender_name or self.defaults.name
            )
        return stored

    def choose(self, owner: str | None, default_owner: str) -> OwnerSender:
        """The owner and sender of a new enrollment, from ``--owner`` (None: not given).

        Raises :class:`~touchflow.errors.OwnerRefused` for an owner that is not
        an email address (``usage=True``), or, once the team has mailboxes, not
        a team member with one.
        """
        if owner is None:
            own = self.for_owner(default_owner)
            return OwnerSender(default_owner, own or self.defaults, own is not None)
        try:
            email = checked_email(owner.strip()).normalized.lower()
        except ValueError:
            raise OwnerRefused(f"--owner {owner!r} is not an email address", usage=True) from None
        own = self.for_owner(email)
        if own is not None:
            return OwnerSender(email, own, True)
        if self.has_mailboxes:
            raise OwnerRefused(
                f"--owner {email} is not a team member with a mailbox in {self.source} "
                f"(members with one: {', '.join(sorted(self.by_owner))})"
            )
        return OwnerSender(email, self.defaults, False)
