"""Cross-checks of team.yaml against routing.yaml: what involves both files (pure).

Every region a territory names must be defined in routing.yaml, every pool member listed by
email must be on the team, and every pool must have at least one member. The :class:`Router`
runs these and raises ConfigFileError with every finding.

:func:`pool_warnings` reports what is valid but may not be what the author meant (``touchflow
validate`` prints them as warnings and still exits 0): overlapping regions that put members of
another region in a rule's pool, and countries a rule matches that nobody in its pool covers.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

from touchflow.domain.routing.fields import NAME
from touchflow.domain.routing.rules import RoutingConfig, Rule, countries_of, pool_members
from touchflow.domain.routing.team import Member, TeamConfig
from touchflow.domain.yaml_source import YamlDocument
from touchflow.errors import Finding

__all__ = ["cross_check", "pool_warnings"]


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


def _matchable(routing: RoutingConfig, rule: Rule) -> set[str] | None:
    """The countries whose leads ``rule`` can match; None when it does not look at countries."""
    if rule.match is None:
        return None
    found: set[str] | None = None
    if rule.match.countries is not None:
        found = set(rule.match.countries)
    if rule.match.regions is not None:
        in_regions = countries_of(routing, rule.match.regions)
        found = in_regions if found is None else found & in_regions
    return found


def _through(routing: RoutingConfig, member: Member, country: str) -> list[str]:
    """The member's territories (region names, or the code itself) that cover ``country``."""
    return [t for t in member.territories if country in countries_of(routing, [t])]


def pool_warnings(team: TeamConfig, routing: RoutingConfig) -> list[Finding]:
    """Valid pools that could surprise their author (``severity="warning"``).

    For each rule whose pool filters on ``territories``:

    - a country in two regions (``mena`` and ``emea`` both holding AE) lets members of the other
      region into the pool for leads from that country: an AE lead matched by a ``mena`` rule may
      go to an AE who covers ``emea``. Their territory does cover the lead, so this is allowed,
      but it is named, with the members it lets in;
    - a country the rule matches that no member of the pool covers: such leads always go to the
      fallback.
    """
    out: list[Finding] = []
    in_regions: dict[str, list[str]] = {}
    for name, codes in routing.regions.items():
        for code in codes:
            in_regions.setdefault(code, []).append(name)
    shared = {code for code, names in in_regions.items() if len(names) > 1}

    def warn(i: int, message: str) -> None:
        finding = _finding(routing, ("rules", i, "pool"), message, "config/routing.yaml")
        out.append(replace(finding, severity="warning"))

    for i, rule in enumerate(routing.rules):
        if rule.pool is None or rule.pool.territories is None:
            continue
        named = set(rule.pool.territories)
        covered = countries_of(routing, rule.pool.territories)
        matchable = _matchable(routing, rule)
        seen = covered if matchable is None else covered & matchable
        # Members let in by another region, grouped so that one warning names each group.
        let_in: dict[tuple[str, ...], list[str]] = {}
        for code in sorted(shared & seen):
            others = [
                m
                for m in pool_members(team, routing, rule.pool, code)
                if not (named | {code}) & set(_through(routing, m, code))
            ]
            if others:
                let_in.setdefault(tuple(m.email for m in others), []).append(code)
        for emails, codes in let_in.items():
            regions = sorted({r for c in codes for r in in_regions[c] if r not in named})
            warn(
                i,
                f"rule {rule.name!r}: {', '.join(codes)} "
                f"{'is' if len(codes) == 1 else 'are'} also in region(s) {', '.join(regions)}, "
                f"so leads from there may go to {', '.join(emails)}, whose territory covers "
                f"them through {', '.join(regions)}; list the pool's members, or keep each "
                "country in one region, if that is not meant",
            )
        if matchable is not None:
            nobody = sorted(c for c in matchable if not pool_members(team, routing, rule.pool, c))
            if nobody and pool_members(team, routing, rule.pool):
                warn(
                    i,
                    f"rule {rule.name!r} matches leads from {', '.join(nobody)} but nobody in "
                    f"its pool covers {'it' if len(nobody) == 1 else 'them'}: those leads go to "
                    f"the fallback ({rule.fallback or routing.fallback})",
                )
    return out
