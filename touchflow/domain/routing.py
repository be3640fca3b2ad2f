"""Lead routing: territories, account owners, weighted round robin, caps, PTO, SLA (pure).

Two files, written by RevOps and reviewed in git:

``config/team.yaml``: who can receive leads::

    working_hours: {timezone: America/New_York, days: [mon, tue, wed, thu, fri],
                    start: "09:00", end: "17:00"}          # default for members without their own
    members:
      - email: ana@yourco.com
        name: Ana Souza
        role: ae                       # ae | sdr
        crm_owner_id: "0055e000001AbCd"
        territories: [na]              # region names (lowercase) and/or ISO codes (uppercase)
        segments: [enterprise]         # smb | mid | enterprise
        weight: 2                      # > 0, default 1: Ana gets twice Ben's share
        daily_capacity: 12             # at most 12 new leads per local day; omit for no cap
        pto: [2026-07-03, {from: 2026-08-10, to: 2026-08-14}]
        working_hours: {timezone: America/Chicago, days: [mon, tue, wed, thu, fri],
                        start: "08:00", end: "17:00"}
        active: true

``config/routing.yaml``: how a lead finds its AE::

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
  ``min_score``, ``grades``; a list means any of) -> weighted round robin over ``pool``.
- ``pool``: matches every lead; must be the last rule.

When the matched rule's pool has nobody eligible, the rule's ``fallback`` (else the global one)
gets the lead: ``Decision.fallback`` is true and the reason lists why each member was passed
over. The fallback is never checked for eligibility, so no lead is ever left unassigned, and a
fallback assignment has no SLA (the fallback is the end of the line).

Eligibility of a member for one lead, checked in this order: ``active``; not on PTO today (the
member's local date); within working hours, when ``outside_working_hours: skip``; under
``daily_capacity`` (assignments since the member's local midnight, any rule, rerouted ones
included); not excluded (a reroute excludes everyone who already missed the SLA on the lead).

Fairness: weighted round robin by virtual finish time (stride scheduling)
--------------------------------------------------------------------------

The ledger keeps, per pool and member, ``assigned`` (leads given in this pool) and ``credit``
(leads credited without being given, see below); ``load = assigned + credit``. A lead goes to
the eligible member with the smallest ``(load + 1) / weight``; ties go to the larger weight,
then to the order of the pool. For members who are always eligible, after N leads each member's
load is within one lead of ``N * weight / sum(weights)``, so shares converge to the weights.

- Capacity: a member skipped because they are at capacity keeps their load: no penalty, their
  place in line is kept (they are first in line once under capacity again).
- Away (inactive, on PTO, outside working hours with ``skip``): a member is not credited for
  leads that arrived while they were away. Whenever a lead is routed in a pool, every away
  member's load is raised to at least ``level * weight``, where ``level`` is the pool's
  weighted level ``sum(load) / sum(weight)`` over the members eligible for that lead (this
  raises ``credit``; ``assigned`` stays the true count). So a member back from PTO rejoins
  level with the team and gets their weighted share from then on, not the leads they
  "missed". (The weighted *minimum* would not do: members' ``load / weight`` spread by up to
  ``1 / weight`` of the lightest member, and a returning heavy member would get that whole
  spread in a burst.)
- New member (in the pool's config but with no ledger entry while the pool has entries):
  starts level the same way. A pool with no entries at all starts everyone at zero.
- A missed SLA keeps the lead counted for the member who missed it (rerouting takes a lead
  from them and gives it to someone else, who is counted too).

Everything here is pure: ``now`` comes in, :class:`RoutingState` (ledger and today's counts)
comes in and is updated in place; ``touchflow.store.routing_store`` loads and saves it.
"""

from __future__ import annotations

import csv
import difflib
import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from touchflow.domain.cadence import TimeOfDay, Weekday, _check_zone
from touchflow.domain.calendar import WEEKDAYS, BusinessCalendar, SendWindow
from touchflow.domain.model_findings import at as _at
from touchflow.domain.model_findings import model_findings, read_text, reported_as
from touchflow.domain.normalize import checked_email
from touchflow.domain.yaml_source import YamlDocument, parse_yaml
from touchflow.errors import ConfigFileError, Finding, FindingsError

__all__ = [
    "BacktestLead",
    "BacktestReport",
    "Decision",
    "LeadInput",
    "LedgerEntry",
    "Member",
    "Router",
    "RoutingConfig",
    "RoutingState",
    "TeamConfig",
    "backtest",
    "load_router",
    "read_backtest_csv",
    "routing_from_yaml",
    "team_from_yaml",
]

Role = Literal["ae", "sdr"]
Segment = Literal["smb", "mid", "enterprise"]
RuleKind = Literal["account_owner", "territory", "pool"]

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_NAME = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_GRADES = ("A", "B", "C", "D")


def _check_email(value: str) -> str:
    return checked_email(value.strip()).normalized.lower()


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} must be lowercase letters and digits joined by '-' or '_'")
    return value


def _check_country(value: str) -> str:
    if not _COUNTRY.match(value):
        raise ValueError(f"{value!r} is not an ISO country code (two capital letters, e.g. 'DE')")
    return value


def _check_territory(value: str) -> str:
    if not (_COUNTRY.match(value) or _NAME.match(value)):
        raise ValueError(
            f"{value!r} is neither a region name (lowercase, e.g. 'emea') "
            "nor an ISO country code (uppercase, e.g. 'DE')"
        )
    return value


def _check_grade(value: str) -> str:
    if value not in _GRADES:
        raise ValueError(f"{value!r} is not a grade: use {', '.join(_GRADES)}")
    return value


def _check_fallback(value: str) -> str:
    if "@" in value:
        return _check_email(value)
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is neither an email (a person) nor a queue name "
            "(lowercase letters and digits joined by '-' or '_')"
        )
    return value


def _one_day_or_range(value: Any) -> Any:
    return value if isinstance(value, dict) else {"from": value, "to": value}


Email = Annotated[str, AfterValidator(_check_email)]
Name = Annotated[str, AfterValidator(_check_name)]
Country = Annotated[str, AfterValidator(_check_country)]
Territory = Annotated[str, AfterValidator(_check_territory)]
Grade = Annotated[str, AfterValidator(_check_grade)]
Fallback = Annotated[str, AfterValidator(_check_fallback)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------- team.yaml


class WorkingHours(_Model):
    """A member's working days and hours ``[start, end)`` in their time zone."""

    timezone: str
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
    start: TimeOfDay
    end: TimeOfDay

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if not self.days:
            raise _at("working hours need at least one day", "days")
        if self.end <= self.start:
            raise _at(f"end {self.end:%H:%M} must be after start {self.start:%H:%M}", "end")
        return self

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def calendar(self) -> BusinessCalendar:
        window = SendWindow(
            days=frozenset(WEEKDAYS.index(d) for d in self.days), start=self.start, end=self.end
        )
        return BusinessCalendar(self.tz, window)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {','.join(self.days)} {self.timezone}"


_DEFAULT_HOURS = {"timezone": "UTC", "start": "09:00", "end": "17:00"}


class Pto(_Model):
    """Days off, both ends included; a bare date in YAML is a one-day range."""

    from_: date = Field(alias="from")
    to: date

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to < self.from_:
            raise _at(f"PTO ends ({self.to}) before it starts ({self.from_})", "to")
        return self


class Member(_Model):
    """One person who can receive leads."""

    email: Email
    name: str
    role: Role = "ae"
    crm_owner_id: str | None = None
    territories: list[Territory] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    weight: float = Field(default=1.0, gt=0)
    daily_capacity: int | None = Field(default=None, ge=0)
    pto: list[Annotated[Pto, BeforeValidator(_one_day_or_range)]] = Field(default_factory=list)
    working_hours: WorkingHours | None = None
    active: bool = True

    def on_pto(self, day: date) -> Pto | None:
        """The PTO range that covers ``day`` (a local date), if any."""
        return next((p for p in self.pto if p.from_ <= day <= p.to), None)


class TeamConfig(_Model):
    """``config/team.yaml``: the members and the default working hours."""

    working_hours: WorkingHours = Field(
        default_factory=lambda: WorkingHours.model_validate(_DEFAULT_HOURS)
    )
    members: list[Member]

    _doc: YamlDocument | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: dict[str, int] = {}
        for i, m in enumerate(self.members):
            if m.email in seen:
                raise _at(
                    f"{m.email} is listed twice (also member #{seen[m.email] + 1})",
                    "members",
                    i,
                    "email",
                )
            seen[m.email] = i
        return self

    def member(self, email: str | None) -> Member | None:
        if not email:
            return None
        return self.by_email.get(email.strip().lower())

    @cached_property
    def by_email(self) -> dict[str, Member]:
        return {m.email: m for m in self.members}

    def hours(self, member: Member) -> WorkingHours:
        return member.working_hours or self.working_hours


# ---------------------------------------------------------------------------- routing.yaml


class SegmentBounds(_Model):
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


class Match(_Model):
    """Conditions of a territory rule: all given ones must hold; a list means any of."""

    countries: list[Country] | None = None
    regions: list[Name] | None = None
    segments: list[Segment] | None = None
    min_score: int | None = None
    grades: list[Grade] | None = None


class PoolSpec(_Model):
    """A pool: an explicit list of members, or every team member matching a filter."""

    members: list[Email] | None = None
    role: Role = "ae"
    territories: list[Territory] | None = None
    segments: list[Segment] | None = None


def _pool_spec(value: Any) -> Any:
    return {"members": value} if isinstance(value, list) else value


class Rule(_Model):
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


class RoutingConfig(_Model):
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


# ---------------------------------------------------------------------------- loading


def _load_model(
    model: type[TeamConfig] | type[RoutingConfig], text: str, path: str
) -> tuple[Any, list[Finding]]:
    doc = parse_yaml(text, path)
    findings = list(doc.findings)
    if not isinstance(doc.data, dict):
        findings.append(Finding(path, *doc.position_for(()), f"{path} must be a mapping"))
        return None, findings
    try:
        obj = model.model_validate(doc.data)
    except ValidationError as exc:
        findings.extend(model_findings(doc, exc, model, name=PurePosixPath(path).stem))
        return None, findings
    obj._doc = doc
    return obj, findings


@reported_as(ConfigFileError)
def team_from_yaml(text: str, path: str = "config/team.yaml") -> TeamConfig:
    """Validate team.yaml text; raises ConfigFileError with every ``file:line:col`` finding."""
    team, findings = _load_model(TeamConfig, text, path)
    if findings or team is None:
        raise ConfigFileError(sorted(set(findings)))
    return team


@reported_as(ConfigFileError)
def routing_from_yaml(text: str, path: str = "config/routing.yaml") -> RoutingConfig:
    """Validate routing.yaml text (alone); raises ConfigFileError with every finding."""
    routing, findings = _load_model(RoutingConfig, text, path)
    if findings or routing is None:
        raise ConfigFileError(sorted(set(findings)))
    return routing


def load_router(config_dir: Path) -> Router:
    """Load ``team.yaml`` and ``routing.yaml`` from ``config_dir`` and cross-check them.

    Raises ConfigFileError with the findings of both files together.
    """
    findings: list[Finding] = []
    loaded = []
    for name, model in (("team.yaml", TeamConfig), ("routing.yaml", RoutingConfig)):
        path = config_dir / name
        try:
            obj, found = _load_model(model, read_text(path), str(path))
        except FindingsError as exc:
            obj, found = None, exc.findings
        loaded.append(obj)
        findings.extend(found)
    if findings:
        raise ConfigFileError(sorted(set(findings)))
    return Router(loaded[0], loaded[1])


def _finding(obj: Any, loc: tuple[Any, ...], message: str, default: str) -> Finding:
    doc: YamlDocument | None = obj._doc
    if doc is None:
        return Finding(default, 1, 1, message)
    return doc.finding(loc, message)


def _cross_check(team: TeamConfig, routing: RoutingConfig) -> list[Finding]:
    """What involves both files: territories, pool members, non-empty pools."""
    out: list[Finding] = []
    regions = set(routing.regions)

    def territory(obj: Any, loc: tuple[Any, ...], name: str, default: str) -> None:
        if _NAME.match(name) and name not in regions:
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
        if rule.pool is not None and not _pool_members(team, routing, rule.pool):
            out.append(
                _finding(
                    routing,
                    ("rules", i, "pool"),
                    f"rule {rule.name!r}: no team member is in this pool",
                    "config/routing.yaml",
                )
            )
    return out


def _countries(routing: RoutingConfig, territories: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for t in territories:
        out |= set(routing.regions.get(t, ())) if _NAME.match(t) else {t}
    return out


def _pool_members(team: TeamConfig, routing: RoutingConfig, spec: PoolSpec) -> list[Member]:
    if spec.members is not None:
        found = [team.member(e) for e in spec.members]
        return [m for m in found if m is not None]
    out = []
    wanted = _countries(routing, spec.territories) if spec.territories is not None else None
    for m in team.members:
        if m.role != spec.role:
            continue
        if wanted is not None and not wanted & _countries(routing, m.territories):
            continue
        if spec.segments is not None and not set(spec.segments) & set(m.segments):
            continue
        out.append(m)
    return out


# ---------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class LeadInput:
    """What routing needs to know about a lead."""

    email: str
    domain: str | None = None
    country: str | None = None  # ISO code
    employees: int | None = None
    score: int | None = None
    grade: str | None = None
    account_owner: str | None = None  # accounts.owner_email


@dataclass
class LedgerEntry:
    """Fairness state of one member in one pool (a ``routing_ledger`` row)."""

    assigned: int = 0
    credit: float = 0.0

    @property
    def load(self) -> float:
        return self.assigned + self.credit


@dataclass
class RoutingState:
    """The working copy of the ledger and today's counts; :meth:`Router.route` updates it.

    ``today`` counts each member's assignments since their local midnight (see
    :meth:`Router.day_start`); ``changed`` names the ledger entries to save.
    """

    ledger: dict[tuple[str, str], LedgerEntry] = field(default_factory=dict)
    today: Counter[str] = field(default_factory=Counter)
    changed: set[tuple[str, str]] = field(default_factory=set)

    def entry(self, pool: str, email: str) -> LedgerEntry:
        return self.ledger.setdefault((pool, email), LedgerEntry())


@dataclass(frozen=True)
class Decision:
    """Who gets the lead and why. ``assignee`` is an email, or a queue name (``is_queue``)."""

    assignee: str
    rule: str
    reason: str
    pool: str | None
    fallback: bool
    sla_due_at: datetime | None = None

    @property
    def is_queue(self) -> bool:
        return "@" not in self.assignee


class Router:
    """Decides routes from a team and a routing config; raises ConfigFileError if they disagree."""

    def __init__(self, team: TeamConfig, routing: RoutingConfig) -> None:
        findings = _cross_check(team, routing)
        if findings:
            raise ConfigFileError(sorted(set(findings)))
        self.team = team
        self.routing = routing
        self.pools: dict[str, list[Member]] = {
            r.name: _pool_members(team, routing, r.pool) for r in routing.rules if r.pool
        }

    # -- time helpers the store uses too

    def day_start(self, email: str, now: datetime) -> datetime:
        """The member's (else the team default zone's) local midnight of ``now``, in UTC."""
        member = self.team.member(email)
        tz = self.team.hours(member).tz if member else self.team.working_hours.tz
        local = now.astimezone(tz)
        return datetime.combine(local.date(), datetime.min.time(), tz).astimezone(UTC)

    def today_counts(
        self, assignments: Iterable[tuple[str, datetime]], now: datetime
    ) -> Counter[str]:
        """Count ``(assignee, assigned_at)`` pairs that fall on each assignee's local today."""
        starts: dict[str, datetime] = {}
        out: Counter[str] = Counter()
        for email, at in assignments:
            if email not in starts:
                starts[email] = self.day_start(email, now)
            if starts[email] <= at <= now:
                out[email] += 1
        return out

    def sla_due(self, email: str, now: datetime) -> datetime | None:
        """``sla_minutes`` after ``now``, or after the assignee's next working-hours opening."""
        if self.routing.sla_minutes is None:
            return None
        member = self.team.member(email)
        start = now
        if member is not None:
            start = self.team.hours(member).calendar.next_open(now)
        return start + timedelta(minutes=self.routing.sla_minutes)

    # -- eligibility

    def _why_not(
        self, m: Member, state: RoutingState, now: datetime, exclude: frozenset[str]
    ) -> tuple[str, bool] | None:
        """``(reason, away)`` when ``m`` cannot take a lead now; None when eligible."""
        hours = self.team.hours(m)
        if not m.active:
            return "inactive", True
        pto = m.on_pto(now.astimezone(hours.tz).date())
        if pto is not None:
            return f"on PTO until {pto.to.isoformat()}", True
        if self.routing.outside_working_hours == "skip" and not hours.calendar.is_open(now):
            return f"outside working hours ({hours})", True
        if m.email in exclude:
            return "missed the SLA on this lead", False
        if m.daily_capacity is not None and state.today[m.email] >= m.daily_capacity:
            return f"at daily capacity ({state.today[m.email]}/{m.daily_capacity})", False
        return None

    def eligible(self, email: str, state: RoutingState, now: datetime) -> bool:
        m = self.team.member(email)
        return m is not None and self._why_not(m, state, now, frozenset()) is None

    # -- matching

    def segment_of(self, lead: LeadInput) -> Segment | None:
        return self.routing.segments.of(lead.employees)

    def _matches(self, match: Match, lead: LeadInput) -> bool:
        country = (lead.country or "").upper() or None
        if match.countries is not None and country not in match.countries:
            return False
        if match.regions is not None and not self.routing.regions_of(country) & set(match.regions):
            return False
        if match.segments is not None and self.segment_of(lead) not in match.segments:
            return False
        if match.min_score is not None and (lead.score is None or lead.score < match.min_score):
            return False
        return match.grades is None or (lead.grade or "").upper() in match.grades

    # -- the decision

    def route(
        self,
        lead: LeadInput,
        state: RoutingState,
        now: datetime,
        *,
        exclude: Iterable[str] = (),
    ) -> Decision:
        """Route one lead and record it in ``state`` (ledger and today's counts).

        ``exclude`` names members who may not get this lead (they missed its SLA).
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        excluded = frozenset(e.lower() for e in exclude)
        notes: list[str] = []
        for rule in self.routing.rules:
            if rule.kind == "account_owner":
                owner = (lead.account_owner or "").strip().lower()
                if not owner:
                    continue
                member = self.team.member(owner)
                if member is None:
                    notes.append(f"account owner {owner} is not on the team")
                    continue
                why = self._why_not(member, state, now, excluded)
                if why is not None:
                    notes.append(f"account owner {owner} is {why[0]}")
                    continue
                return self._give(
                    state,
                    now,
                    member.email,
                    rule.name,
                    None,
                    False,
                    [*notes, f"owns the account {lead.domain or ''}".rstrip()],
                )
            if rule.kind == "territory" and rule.match and not self._matches(rule.match, lead):
                continue
            return self._round_robin(rule, lead, state, now, excluded, notes)
        raise AssertionError("the last rule is a pool rule")  # pragma: no cover

    def _round_robin(
        self,
        rule: Rule,
        lead: LeadInput,
        state: RoutingState,
        now: datetime,
        excluded: frozenset[str],
        notes: list[str],
    ) -> Decision:
        pool = rule.name
        members = self.pools[pool]
        fresh_pool = not any(k[0] == pool for k in state.ledger)
        candidates: list[tuple[int, Member]] = []
        away: list[Member] = []
        passed: list[str] = []
        for order, m in enumerate(members):
            why = self._why_not(m, state, now, excluded)
            if why is None:
                candidates.append((order, m))
            else:
                passed.append(f"{m.email} {why[0]}")
                if why[1]:
                    away.append(m)
        new = {m.email for m in members if (pool, m.email) not in state.ledger and not fresh_pool}
        known = [m for _, m in candidates if m.email not in new]
        if known:
            level = sum(state.entry(pool, m.email).load for m in known) / sum(
                m.weight for m in known
            )
            for m in [*away, *(m for m in members if m.email in new)]:
                entry = state.entry(pool, m.email)
                floor = level * m.weight
                if entry.load < floor:
                    entry.credit = floor - entry.assigned
                    state.changed.add((pool, m.email))
        if fresh_pool:
            for m in members:
                state.entry(pool, m.email)
                state.changed.add((pool, m.email))
        matched = f"rule {rule.name}" + (f" ({self._describe(rule, lead)})" if rule.match else "")
        if not candidates:
            target = rule.fallback or self.routing.fallback
            why_none = "; ".join(passed) or "the pool is empty"
            return self._give(
                state,
                now,
                target,
                rule.name,
                pool,
                True,
                [
                    *notes,
                    matched,
                    f"nobody eligible in pool {pool}: {why_none}",
                    f"fallback to {target}",
                ],
            )

        def key(item: tuple[int, Member]) -> tuple[float, float, int]:
            order, m = item
            return ((state.entry(pool, m.email).load + 1) / m.weight, -m.weight, order)

        _, chosen = min(candidates, key=key)
        entry = state.entry(pool, chosen.email)
        entry.assigned += 1
        state.changed.add((pool, chosen.email))
        return self._give(
            state,
            now,
            chosen.email,
            rule.name,
            pool,
            False,
            [
                *notes,
                matched,
                f"weighted round robin in pool {pool} "
                f"(weight {chosen.weight:g}, {entry.assigned} assigned)",
            ],
        )

    def _describe(self, rule: Rule, lead: LeadInput) -> str:
        parts = []
        if lead.country:
            parts.append(lead.country.upper())
        seg = self.segment_of(lead)
        if seg:
            parts.append(seg)
        if lead.grade:
            parts.append(f"grade {lead.grade}")
        return ", ".join(parts)

    def _give(
        self,
        state: RoutingState,
        now: datetime,
        assignee: str,
        rule: str,
        pool: str | None,
        fallback: bool,
        reasons: list[str],
    ) -> Decision:
        if "@" in assignee:
            state.today[assignee] += 1
        due = None if fallback else self.sla_due(assignee, now)
        reason = "; ".join(r for r in reasons if r)
        return Decision(assignee, rule, reason[:500], pool, fallback, due)


# ---------------------------------------------------------------------------- backtest


@dataclass(frozen=True)
class BacktestLead:
    """A past lead: when it arrived and, if known, when its first assignee accepted it."""

    lead: LeadInput
    at: datetime
    accepted_at: datetime | None = None


@dataclass(frozen=True)
class MemberShare:
    email: str
    weight: float
    expected: float  # weight / sum of the pool's weights
    actual: float  # share of the pool's round-robin leads
    assigned: int


@dataclass
class BacktestReport:
    leads: int = 0
    by_assignee: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    shares: dict[str, list[MemberShare]] = field(default_factory=dict)  # pool -> members
    cap_breaches: list[tuple[str, date, int, int]] = field(default_factory=list)
    fallbacks: int = 0
    sla_misses: int = 0
    reroutes: int = 0
    decisions: list[tuple[datetime, str, Decision]] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        """The report as text lines (for the CLI)."""
        yield (
            f"leads: {self.leads}  fallbacks: {self.fallbacks}  sla misses: {self.sla_misses}"
            f"  reroutes: {self.reroutes}  cap breaches: {len(self.cap_breaches)}"
        )
        for pool, shares in self.shares.items():
            yield f"pool {pool}:"
            for s in shares:
                yield (
                    f"  {s.email:<32} weight {s.weight:>4g}  expected {s.expected:6.1%}  "
                    f"actual {s.actual:6.1%}  ({s.assigned})"
                )
        for email, d, n, cap in self.cap_breaches:
            yield f"cap breach: {email} got {n} leads on {d} (cap {cap})"


def backtest(
    leads: Iterable[BacktestLead], team: TeamConfig, routing: RoutingConfig
) -> BacktestReport:
    """Replay past leads in time order through a fresh ledger; see :class:`BacktestReport`.

    Each lead's first assignee accepts at ``accepted_at`` (immediately when missing). An
    assignee who would accept after the SLA misses it: at the deadline the lead is rerouted,
    excluding everyone who missed it, and the new assignee accepts immediately.
    """
    router = Router(team, routing)
    state = RoutingState()
    report = BacktestReport()
    per_day: Counter[tuple[str, date]] = Counter()
    log: list[tuple[str, datetime]] = []  # recent (assignee, at), for today's counts
    # SLA deadlines still to fire: (due, seq, lead, the members who missed it).
    misses: list[tuple[datetime, int, LeadInput, tuple[str, ...]]] = []

    def decide(lead: LeadInput, now: datetime, accept: datetime, exclude: tuple[str, ...]) -> None:
        state.today = router.today_counts(log, now)
        d = router.route(lead, state, now, exclude=exclude)
        report.decisions.append((now, lead.email, d))
        report.by_assignee[d.assignee] += 1
        report.by_rule[d.rule] += 1
        report.fallbacks += d.fallback
        member = router.team.member(d.assignee)
        if member is not None:
            log.append((member.email, now))
            per_day[(member.email, now.astimezone(team.hours(member).tz).date())] += 1
        if d.sla_due_at is not None and accept > d.sla_due_at:
            entry = (d.sla_due_at, len(report.decisions), lead, (*exclude, d.assignee))
            heapq.heappush(misses, entry)

    def reroute_until(until: datetime | None) -> None:
        while misses and (until is None or misses[0][0] <= until):
            due, _, lead, exclude = heapq.heappop(misses)
            report.sla_misses += 1
            report.reroutes += 1
            decide(lead, due, due, exclude)

    for item in sorted(leads, key=lambda x: x.at):
        reroute_until(item.at)
        report.leads += 1
        decide(item.lead, item.at, item.accepted_at or item.at, ())
        # Only the last local day matters for capacity: keep the log short.
        cutoff = item.at - timedelta(days=2)
        if log and log[0][1] < cutoff:
            log[:] = [a for a in log if a[1] >= cutoff]
    reroute_until(None)

    for (email, day), n in sorted(per_day.items()):
        member = router.team.member(email)
        if member and member.daily_capacity is not None and n > member.daily_capacity:
            report.cap_breaches.append((email, day, n, member.daily_capacity))
    given: dict[str, Counter[str]] = defaultdict(Counter)
    for _, _, d in report.decisions:
        if d.pool and not d.fallback:
            given[d.pool][d.assignee] += 1
    for pool, members in router.pools.items():
        total = sum(given[pool].values())
        wsum = sum(m.weight for m in members)
        report.shares[pool] = [
            MemberShare(
                m.email,
                m.weight,
                m.weight / wsum,
                given[pool][m.email] / total if total else 0.0,
                given[pool][m.email],
            )
            for m in members
        ]
    return report


#: Columns of a backtest CSV; only ``email`` and ``received_at`` are required.
BACKTEST_COLUMNS = (
    "email",
    "received_at",
    "accepted_at",
    "domain",
    "country",
    "employees",
    "score",
    "grade",
    "account_owner",
)


class _CsvRow:
    """One CSV row, whose bad cells become findings at ``file:line:col``."""

    def __init__(self, label: str, line: int, header: list[str], row: dict[str, Any]) -> None:
        self.label, self.line, self.header, self.row = label, line, header, row

    def error(self, name: str, message: str) -> ConfigFileError:
        col = self.header.index(name) + 1 if name in self.header else 1
        return ConfigFileError(Finding(self.label, self.line, col, f"{name}: {message}"))

    def text(self, name: str) -> str | None:
        return (self.row.get(name) or "").strip() or None

    def number(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return int(float(value))
        except ValueError as exc:
            raise self.error(name, f"{value!r} is not a number") from exc

    def time(self, name: str) -> datetime | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError as exc:
            raise self.error(name, f"{value!r} is not an ISO 8601 date and time") from exc
        return when if when.tzinfo else when.replace(tzinfo=UTC)


@reported_as(ConfigFileError)
def read_backtest_csv(path: Path | str, text: str | None = None) -> list[BacktestLead]:
    """Read past leads from CSV (see :data:`BACKTEST_COLUMNS`); naive times are UTC.

    Raises ConfigFileError naming ``file:line:col`` of the first bad cell.
    """
    label = str(path)
    if text is None:
        text = Path(path).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    header = list(reader.fieldnames or [])
    missing = [c for c in ("email", "received_at") if c not in header]
    if missing:
        raise ConfigFileError(Finding(label, 1, 1, f"missing column(s): {', '.join(missing)}"))
    out = []
    for raw in reader:
        row = _CsvRow(label, reader.line_num, header, raw)
        email, received = row.text("email"), row.time("received_at")
        if email is None:
            raise row.error("email", "required")
        if received is None:
            raise row.error("received_at", "required")
        lead = LeadInput(
            email=email,
            domain=row.text("domain"),
            country=(row.text("country") or "").upper() or None,
            employees=row.number("employees"),
            score=row.number("score"),
            grade=row.text("grade"),
            account_owner=row.text("account_owner"),
        )
        out.append(BacktestLead(lead, received, row.time("accepted_at")))
    return out
