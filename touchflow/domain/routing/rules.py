"""``config/routing.yaml``: how a lead finds its AE (pure)::

    regions: {na: [US, CA], emea: [GB, DE, FR]}    # "na" is a region, "NA" would be Namibia
    segments: {smb: 200, mid: 1000}                # smb < 200 employees, mid < 1000, enterprise
    sla_minutes: 15                                # not accepted in 15 min -> rerouted
    outside_working_hours: route                   # route | skip
    rules:                                         # first match wins
      - {name: account-owner, kind: account_owner}
      - {name: enterprise-na, kind: territory,
         match: {regions: [na], segments: [enterprise]}, pool: [ana@yourco.com, ben@yourco.com]}
      - {name: emea, kind: territory, match: {regions: [emea]}, pool: {territories: [emea]}}
      - {name: everyone, kind: pool, pool: {role: ae}}
    fallback: dana@yourco.com                      # a person (email) or a queue name

Rules, in order, first match wins:

- ``account_owner``: the lead's account has an owner who is on the team and eligible -> them.
  An owner who is not eligible (PTO, capacity, ...) lets the next rule decide, and the reason
  says why the owner was passed over.
- ``territory``: every condition of ``match`` holds (``countries``, ``regions``, ``segments``,
  ``min_score``, ``grades``; a list means any of) -> weighted round robin over ``pool``. A pool
  that filters on ``territories`` is narrowed, per lead, to the members whose territories cover
  the lead's country (regions may overlap: see :func:`pool_members`).
- ``pool``: matches every lead; must be the last rule.

What happens when a rule's pool has nobody eligible, and who in a pool gets the lead, is
:mod:`touchflow.domain.routing.router`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, PrivateAttr, model_validator

from touchflow.domain.model_findings import at as _at
from touchflow.domain.routing.fields import (
    NAME,
    ConfigModel,
    Country,
    Email,
    Fallback,
    Grade,
    Name,
    Role,
    RuleKind,
    Segment,
    Territory,
)
from touchflow.domain.routing.team import Member, TeamConfig
from touchflow.domain.yaml_source import YamlDocument

__all__ = ["RoutingConfig", "countries_of", "pool_members"]


class SegmentBounds(ConfigModel):
    """Segments by account employee count: smb below ``smb``, mid below ``mid``, else enterprise."""

    smb: int = Field(default=200, gt=0)
    mid: int = Field(default=1000, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.mid <= self.smb:
            raise _at(f"mid ({self.mid}) must be above smb ({self.smb})", "mid")
        return self

    def of(self, employees: int | None) -> Segment | None:
        if employees is None:
            return None
        if employees < self.smb:
            return "smb"
        return "mid" if employees < self.mid else "enterprise"


class Match(ConfigModel):
    """Conditions of a territory rule: all given ones must hold; a list means any of."""

    countries: list[Country] | None = None
    regions: list[Name] | None = None
    segments: list[Segment] | None = None
    min_score: int | None = None
    grades: list[Grade] | None = None


class PoolSpec(ConfigModel):
    """A pool: an explicit list of members, or every team member matching a filter."""

    members: list[Email] | None = None
    role: Role = "ae"
    territories: list[Territory] | None = None
    segments: list[Segment] | None = None


def _pool_spec(value: Any) -> Any:
    return {"members": value} if isinstance(value, list) else value


class Rule(ConfigModel):
    name: Name
    kind: RuleKind
    match: Match | None = None
    pool: Annotated[PoolSpec, BeforeValidator(_pool_spec)] | None = None
    fallback: Fallback | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.kind == "account_owner":
            for key in ("match", "pool", "fallback"):
                if getattr(self, key) is not None:
                    raise _at(f"an account_owner rule takes no {key!r}", key)
        elif self.kind == "territory":
            if self.match is None:
                raise _at("a territory rule needs 'match'", "kind")
            if self.pool is None:
                raise _at("a territory rule needs 'pool'", "kind")
        else:
            if self.match is not None:
                raise _at("a pool rule matches every lead and takes no 'match'", "match")
            if self.pool is None:
                raise _at("a pool rule needs 'pool'", "kind")
        return self


class RoutingConfig(ConfigModel):
    """``config/routing.yaml``: regions, segments, ordered rules, fallback, SLA."""

    regions: dict[Name, list[Country]] = Field(default_factory=dict)
    segments: SegmentBounds = Field(default_factory=SegmentBounds)
    rules: list[Rule]
    fallback: Fallback
    sla_minutes: int | None = Field(default=15, gt=0)
    outside_working_hours: Literal["route", "skip"] = "route"

    _doc: YamlDocument | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if not self.rules:
            raise _at("at least one rule is needed (the last one a 'pool' rule)", "rules")
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                raise _at(f"duplicate rule name {rule.name!r}", "rules", i, "name")
            seen.add(rule.name)
            if rule.kind == "pool" and i != len(self.rules) - 1:
                raise _at(
                    f"rule {rule.name!r} matches every lead, so the rules after it never run: "
                    "a pool rule must be last",
                    "rules",
                    i + 1,
                )
        if self.rules[-1].kind != "pool":
            raise _at(
                "the last rule must be a 'pool' rule so that every lead matches a rule",
                "rules",
                len(self.rules) - 1,
                "kind",
            )
        return self

    def regions_of(self, country: str | None) -> set[str]:
        if not country:
            return set()
        return {name for name, codes in self.regions.items() if country in codes}


def countries_of(routing: RoutingConfig, territories: Iterable[str]) -> set[str]:
    """The ISO codes a list of territories stands for (regions expanded, codes as they are)."""
    out: set[str] = set()
    for t in territories:
        out |= set(routing.regions.get(t, ())) if NAME.match(t) else {t}
    return out


def pool_members(
    team: TeamConfig, routing: RoutingConfig, spec: PoolSpec, country: str | None = None
) -> list[Member]:
    """The team members in a pool: the listed ones (in that order), else those matching it.

    A pool that filters on ``territories`` holds, for a lead from ``country``, only the members
    whose own territories cover that country. Regions may overlap (``mena`` and ``emea`` both
    holding AE): without this, every member whose territory shares *any* country with the pool's
    territories would be in it, and an Iranian lead could go to an AE who covers only Europe.
    ``country`` None (the pool as a whole, or a lead of unknown country) keeps that wider
    membership. A listed pool is the author's choice and is never narrowed.
    """
    if spec.members is not None:
        found = [team.member(e) for e in spec.members]
        return [m for m in found if m is not None]
    out = []
    wanted = countries_of(routing, spec.territories) if spec.territories is not None else None
    code = country.upper() if country else None
    for m in team.members:
        if m.role != spec.role:
            continue
        if wanted is not None:
            covered = countries_of(routing, m.territories)
            if not wanted & covered or (code is not None and code not in covered):
                continue
        if spec.segments is not None and not set(spec.segments) & set(m.segments):
            continue
        out.append(m)
    return out
