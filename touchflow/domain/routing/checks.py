"""Cross-checks of team.yaml against routing.yaml: what involves both files (pure).

Every region a territory names must be defined in routing.yaml, every pool member listed by
email must be on the team, and every pool must have at least one member. The :class:`Router`
runs these and raises ConfigFileError with every finding.
"""

from __future__ import annotations

import difflib
from typing import Any

from touchflow.domain.routing.fields import NAME
from touchflow.domain.routing.rules import RoutingConfig, pool_members
from touchflow.domain.routing.team import TeamConfig
from touchflow.domain.yaml_source import YamlDocument
from touchflow.errors import Finding

__all__ = ["cross_check"]


def _finding(obj: Any, loc: tuple[Any, ...], message: str, default: str) -> Finding:
    doc: YamlDocument | None = obj._doc
    if doc is None:
        return Finding(default, 1, 1, message)
    return doc.finding(loc, message)


def cross_check(team: TeamConfig, routing: RoutingConfig) -> list[Finding]:
    """What involves both files: territories, pool members, non-empty pools."""
    out: list[Finding] = []
    regions = set(routing.regions)

    def territory(obj: Any, loc: tuple[Any, ...], name: str, default: str) -> None:
        if NAME.match(name) and name not in regions:
            hint = difflib.get_close_matches(name, sorted(regions), n=1)
            extra = (
                f" (did you mean {hint[0]!r}?)"
                if hint
                else f" (regions: {', '.join(sorted(regions)) or 'none'})"
            )
            out.append(_finding(obj, loc, f"unknown region {name!r}{extra}", default))

    for i, m in enumerate(team.members):
        for j, t in enumerate(m.territories):
            territory(team, ("members", i, "territories", j), t, "config/team.yaml")
    for i, rule in enumerate(routing.rules):
        loc = ("rules", i)
        if rule.match and rule.match.regions:
            for j, r in enumerate(rule.match.regions):
                territory(routing, (*loc, "match", "regions", j), r, "config/routing.yaml")
        if rule.pool is None:
            continue
        if rule.pool.members is not None:
            for j, email in enumerate(rule.pool.members):
                if team.member(email) is None:
                    hint = difflib.get_close_matches(email, [m.email for m in team.members], n=1)
                    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                    out.append(
                        _finding(
                            routing,
                            (*loc, "pool", j),
                            f"{email} is not a member in team.yaml{extra}",
                            "config/routing.yaml",
                        )
                    )
        for j, t in enumerate(rule.pool.territories or ()):
            territory(routing, (*loc, "pool", "territories", j), t, "config/routing.yaml")
    if out:
        return out
    for i, rule in enumerate(routing.rules):
        if rule.pool is not None and not pool_members(team, routing, rule.pool):
            out.append(
                _finding(
                    routing,
                    ("rules", i, "pool"),
                    f"rule {rule.name!r}: no team member is in this pool",
                    "config/routing.yaml",
                )
            )
    return out
