"""The Router: who gets a lead, and why (pure).

The rules of ``routing.yaml`` are tried in order, first match wins (see
:mod:`touchflow.domain.routing.rules`).

A pool that filters on ``territories`` holds, for each lead, only the members whose territories
cover the lead's country (:meth:`Router.pool_for`); its ledger is the rule's, so a member who
covers two overlapping regions is levelled with everyone in the rule's pool.

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

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from touchflow.domain.routing.checks import cross_check
from touchflow.domain.routing.fields import Segment
from touchflow.domain.routing.rules import Match, RoutingConfig, Rule, pool_members
from touchflow.domain.routing.team import Member, TeamConfig
from touchflow.errors import ConfigFileError

__all__ = ["Decision", "LeadInput", "LedgerEntry", "Router", "RoutingState"]


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
    lead: str = ""  # the lead's email: who got what

    @property
    def is_queue(self) -> bool:
        return "@" not in self.assignee


class Router:
    """Decides routes from a team and a routing config; raises ConfigFileError if they disagree."""

    def __init__(self, team: TeamConfig, routing: RoutingConfig) -> None:
        findings = cross_check(team, routing)
        if findings:
            raise ConfigFileError(sorted(set(findings)))
        self.team = team
        self.routing = routing
        # Each rule's pool as a whole (every country it covers): what the ledger is kept for.
        self.pools: dict[str, list[Member]] = {
            r.name: pool_members(team, routing, r.pool) for r in routing.rules if r.pool
        }
        self._narrowed: dict[tuple[str, str], list[Member]] = {}

    def pool_for(self, rule: Rule, country: str | None) -> list[Member]:
        """The members of ``rule``'s pool who may get a lead from ``country``.

        A territory-filtered pool holds only the members whose territories cover the lead's
        country (see :func:`~touchflow.domain.routing.rules.pool_members`); a listed pool, or
        a lead of unknown country, gets the pool as a whole.
        """
        code = (country or "").upper()
        if rule.pool is None or rule.pool.territories is None or not code:
            return self.pools[rule.name]
        key = (rule.name, code)
        if key not in self._narrowed:
            self._narrowed[key] = pool_members(self.team, self.routing, rule.pool, code)
        return self._narrowed[key]

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
        return replace(self._decide(lead, state, now, excluded), lead=lead.email)

    def _decide(
        self, lead: LeadInput, state: RoutingState, now: datetime, excluded: frozenset[str]
    ) -> Decision:
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
        members = self.pool_for(rule, lead.country)
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
        narrowed = len(members) < len(self.pools[pool])
        if narrowed:
            matched += f"; pool narrowed to members covering {(lead.country or '').upper()}"
        if not candidates:
            target = rule.fallback or self.routing.fallback
            empty = f"nobody in it covers {(lead.country or '').upper()}" if narrowed else ""
            why_none = "; ".join(passed) or empty or "the pool is empty"
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
