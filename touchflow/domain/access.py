"""Who is looking: the dashboard's and the live screens' viewer, and what they may see.

Roles: ``admin`` sees everything; ``manager`` sees their own numbers and
their team's (the members of ``config/team.yaml`` that name them as
``manager:``, and the users added with ``--manager``); ``rep`` sees only
their own. "Own" means rows whose owner (an enrollment's or task's
``owner_email``) is the viewer's address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["ROLES", "Role", "Viewer"]

Role = Literal["admin", "manager", "rep"]
ROLES: tuple[Role, ...] = ("admin", "manager", "rep")


@dataclass(frozen=True)
class Viewer:
    """A signed-in person (or an API key): their address, role and whose rows they see."""

    email: str
    role: Role
    owners: frozenset[str] | None  # the owner emails they may see; None: everyone's
    via: str = "session"  # session | proxy | api_key

    def can_see(self, owner: str | None) -> bool:
        """Whether a row owned by ``owner`` is theirs to see (unowned rows: admins only)."""
        if self.owners is None:
            return True
        return owner is not None and owner in self.owners

    def narrowed(self, owners: Iterable[str] | None) -> frozenset[str] | None:
        """The owners a filter asks for, cut down to the ones this viewer may see.

        ``None`` asks for everything the viewer may see. An owner outside
        their team is dropped (not an error: the filter bar only offers theirs).
        """
        if owners is None:
            return self.owners
        wanted = frozenset(o.strip().lower() for o in owners if o.strip())
        if not wanted:
            return self.owners
        return wanted if self.owners is None else wanted & self.owners

    @staticmethod
    def team_of(email: str, role: Role, reports: Iterable[str]) -> frozenset[str] | None:
        """The owners ``email`` in ``role`` may see, given the people reporting to them."""
        if role == "admin":
            return None
        if role == "manager":
            return frozenset({email, *reports})
        return frozenset({email})
