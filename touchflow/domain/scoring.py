"""ICP scoring: fit rules, disqualifiers and decaying engagement, each point with a reason.

``config/icp.yaml`` is written by RevOps and loaded into :class:`IcpConfig`;
a broken file raises :class:`~touchflow.errors.ConfigFileError` whose findings
name ``file:line:col`` (the same machinery as cadences, see
:mod:`touchflow.domain.yaml_source`). :meth:`IcpConfig.score` is pure and
deterministic: ``now`` comes in as an argument.

How a score is made::

    fit         = sum of the fit rules that match            (each rule counts once)
                + sum of the disqualify rules that match     (usually -100 each)
    engagement  = per event type: points * 0.5 ** (age_days / half_life_days),
                  summed over that type's events and rounded half away from zero;
                  the sum over types is capped at ``engagement.cap``. Events after
                  ``now`` or older than ``max_age_days`` are left out.
    score       = fit + engagement
    grade       = the first band of ``grades`` whose minimum the fit reaches
                  (the lowest band also takes everything below it)
    lifecycle   = disqualified if any disqualify rule matched, else
                  sql (score >= thresholds.sql), mql (>= thresholds.mql) or lead

Nothing is clamped: ``score`` is exactly the sum of ``reasons``' points. When
the engagement cap bites, it appears as a negative reason of its own
(``-14 engagement capped at 60``), so the invariant holds and the explanation
says why a reply did not count in full. A disqualified prospect's score can be
negative.

Rules are compiled once per config (closures over case-folded values and
precompiled regexes), so scoring 100k prospects is pure-Python arithmetic.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import operator
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    field_validator,
    model_validator,
)

from touchflow.domain.model_findings import at as _at
from touchflow.domain.model_findings import (
    hint,
    model_from_yaml,
    read_text,
    reported_as,
)
from touchflow.errors import ConfigFileError, Finding, FindingsError

FieldKind = Literal["text", "number", "bool", "list"]

#: Fields a rule can test, and their kind (which decides the operators allowed).
#: ``domain`` is the prospect's email domain; ``account.*`` come from the account.
FIELDS: dict[str, FieldKind] = {
    "title": "text",
    "seniority": "text",  # c_level|vp|director|manager|ic
    "department": "text",  # sales|marketing|revops|engineering|finance|it|hr|...
    "country": "text",  # ISO 3166 alpha-2
    "domain": "text",
    "email_free": "bool",  # gmail.com, outlook.com, ...
    "email_role": "bool",  # info@, sales@, ...
    "account.domain": "text",
    "account.name": "text",
    "account.industry": "text",
    "account.employees": "number",
    "account.revenue_band": "text",
    "account.country": "text",
    "account.technologies": "list",
}

#: Operators, and the field kinds each one applies to.
OPS: dict[str, tuple[FieldKind, ...]] = {
    "equals": ("text", "number", "bool"),
    "in": ("text", "number"),
    "gte": ("number",),
    "lte": ("number",),
    "between": ("number",),
    "contains": ("text", "list"),
    "matches": ("text",),
    "present": ("text", "number", "bool", "list"),
    "absent": ("text", "number", "bool", "list"),
}

#: Event types touchflow stores (``events.type``). Engagement may name others
#: (custom events), but a name one typo away from these is reported.
KNOWN_EVENTS: tuple[str, ...] = (
    "replied",
    "meeting_booked",
    "clicked",
    "opened",
    "form_fill",
    "completed",
    "call_started",
    "out_of_office",
    "auto_reply",
    "delivered",
    "bounce",
    "unsubscribe",
    "skipped",
    # After-call events (a guidance tracker's score_event; any name is allowed).
    "asked_for_pricing",
    "competitor_mentioned",
)

Lifecycle = Literal["lead", "mql", "sql", "disqualified"]

_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_EVENT = re.compile(r"^[a-z][a-z0-9_]*$")
_GRADE = re.compile(r"^[A-Z]$")


# ---------------------------------------------------------------------------- the model


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class Condition(BaseModel):
    """``{field: account.industry, op: in, value: [software, saas]}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str
    op: str
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, v: str) -> str:
        if v not in FIELDS:
            raise _at(f"unknown field {v!r}{hint(v, list(FIELDS))}")
        return v

    @field_validator("op")
    @classmethod
    def _known_op(cls, v: str) -> str:
        if v not in OPS:
            raise _at(f"unknown op {v!r}{hint(v, list(OPS))}")
        return v

    @model_validator(mode="after")
    def _value_fits(self) -> Condition:
        kind = FIELDS[self.field]
        if kind not in OPS[self.op]:
            ops = [op for op, kinds in OPS.items() if kind in kinds]
            raise _at(
                f"op {self.op!r} does not apply to {self.field} ({kind}); use {', '.join(ops)}",
                "op",
            )
        has_value = "value" in self.model_fields_set and self.value is not None
        v = self.value
        if self.op in ("present", "absent"):
            if has_value:
                raise _at(f"op {self.op!r} takes no value", "value")
            return self
        if not has_value:
            raise _at(f"op {self.op!r} needs a value", "value")
        scalar = {"text": str, "number": None, "bool": bool}.get(kind)
        want = {"text": "a string", "number": "a number", "bool": "true or false"}.get(kind, "")

        def ok(x: Any) -> bool:
            return _is_number(x) if kind == "number" else isinstance(x, scalar or str)

        if self.op == "equals" and not ok(v):
            raise _at(f"{self.field} equals needs {want}, got {v!r}", "value")
        if self.op == "in":
            if not isinstance(v, list) or not v:
                raise _at("op 'in' needs a non-empty list", "value")
            for i, x in enumerate(v):
                if not ok(x):
                    raise _at(f"{self.field} in needs {want} items, got {x!r}", "value", i)
        if self.op in ("gte", "lte") and not _is_number(v):
            raise _at(f"op {self.op!r} needs a number, got {v!r}", "value")
        if self.op == "between":
            if not (isinstance(v, list) and len(v) == 2 and all(map(_is_number, v))):
                raise _at(f"op 'between' needs [low, high], got {v!r}", "value")
            if v[0] > v[1]:
                raise _at(f"between [{v[0]}, {v[1]}]: low is above high", "value")
        if self.op == "contains":
            items = v if isinstance(v, list) else [v]
            if not items or not all(isinstance(x, str) and x for x in items):
                raise _at("op 'contains' needs a string or a list of strings", "value")
        if self.op == "matches":
            if not isinstance(v, str):
                raise _at(f"op 'matches' needs a regular expression, got {v!r}", "value")
            try:
                re.compile(v)
            except re.error as exc:
                raise _at(f"bad regular expression {v!r}: {exc}", "value") from None
        return self


def _as_list(v: Any) -> Any:
    # `when:` is one condition or a list of them (all must match).
    return [v] if isinstance(v, dict) else v


_SAMPLE = {"text": "Software", "number": 1000, "bool": True, "list": "salesforce"}


class Rule(BaseModel):
    """A fit rule: when every condition matches, add ``points`` and say ``reason``.

    ``reason`` may use ``{value}``: the prospect's value of the first
    condition's field (for ``contains`` on a list, the item that matched).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    when: Annotated[list[Condition], BeforeValidator(_as_list), Field(min_length=1)]
    points: StrictInt
    reason: str | None = None

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(f"rule id {v!r} must be lowercase words joined by - or _")
        return v

    @model_validator(mode="after")
    def _reason_formats(self) -> Rule:
        if self.reason is None:
            return self
        try:
            names = {n for _, n, _, _ in string.Formatter().parse(self.reason) if n is not None}
        except ValueError as exc:
            raise _at(f"reason {self.reason!r}: {exc}", "reason") from None
        if names - {"value"}:
            bad = ", ".join(sorted("{" + n + "}" for n in names - {"value"}))
            raise _at(f"reason may only use {{value}}, not {bad}", "reason")
        try:
            self.reason.format(value=_SAMPLE[FIELDS[self.when[0].field]])
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise _at(f"reason {self.reason!r}: {exc}", "reason") from None
        return self

    @property
    def text(self) -> str:
        return self.reason if self.reason is not None else self.id.replace("_", " ")


class DisqualifyRule(Rule):
    """A rule that makes the prospect ``disqualified`` whatever the score (points optional)."""

    points: StrictInt = 0


class Engagement(BaseModel):
    """Points per event type, halved every ``half_life_days``, capped at ``cap`` in total."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    points: dict[str, StrictInt]
    half_life_days: float = Field(gt=0)
    cap: StrictInt = Field(ge=0)
    #: Events older than this are ignored (and not even loaded); None keeps all.
    max_age_days: StrictInt | None = Field(default=None, gt=0)

    @field_validator("points")
    @classmethod
    def _event_names(cls, v: dict[str, int]) -> dict[str, int]:
        for name in v:
            if not isinstance(name, str) or not _EVENT.match(name):
                raise _at(f"event type {name!r} must be lowercase_with_underscores", name, key=True)
            if name not in KNOWN_EVENTS:
                close = difflib.get_close_matches(name, KNOWN_EVENTS, n=1, cutoff=0.75)
                if close:
                    raise _at(
                        f"unknown event type {name!r} (did you mean {close[0]!r}?)", name, key=True
                    )
        return v

    @field_validator("half_life_days", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if not _is_number(v):
            raise ValueError(f"half_life_days must be a number of days, got {v!r}")
        return v


class Thresholds(BaseModel):
    """Total score (fit + engagement) at which a lead becomes an MQL, then an SQL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mql: StrictInt
    sql: StrictInt

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.sql <= self.mql:
            raise _at(f"sql ({self.sql}) must be above mql ({self.mql})", "sql")
        return self


def _grades(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        raise _at("grades must map letters to minimum fit scores, e.g. {A: 70, B: 50, C: 30, D: 0}")
    previous: tuple[str, int] | None = None
    for letter, minimum in v.items():
        if not isinstance(letter, str) or not _GRADE.match(letter):
            raise _at(f"grade {letter!r} must be one capital letter", letter, key=True)
        if not _is_number(minimum) or not isinstance(minimum, int):
            raise _at(f"grade {letter}: minimum must be a whole number, got {minimum!r}", letter)
        if previous is not None and minimum >= previous[1]:
            raise _at(
                f"grade {letter} ({minimum}) must be below grade {previous[0]} ({previous[1]}): "
                "list bands best first",
                letter,
            )
        previous = (letter, minimum)
    return v


class IcpConfig(BaseModel):
    """The ideal customer profile: ``config/icp.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fit: list[Rule] = []
    disqualify: list[DisqualifyRule] = []
    engagement: Engagement
    grades: Annotated[dict[str, int], BeforeValidator(_grades)]
    thresholds: Thresholds

    _version: str | None = PrivateAttr(default=None)
    _source_path: str | None = PrivateAttr(default=None)
    _scorer: _Scorer | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_ids(self) -> IcpConfig:
        seen: set[str] = set()
        for section in ("fit", "disqualify"):
            for i, rule in enumerate(getattr(self, section)):
                if rule.id in seen:
                    raise _at(f"rule id {rule.id!r} is used twice", section, i, "id")
                seen.add(rule.id)
        return self

    @property
    def version(self) -> str:
        """16 hex chars of sha256 over the YAML text (or the model, when built in code)."""
        if self._version is None:
            self._version = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]
        return self._version

    @property
    def source_path(self) -> str | None:
        return self._source_path

    def score(
        self, prospect: ScoreInput, events: Sequence[tuple[str, datetime]], now: datetime
    ) -> ScoreResult:
        """Score one prospect; ``events`` are ``(type, occurred_at)`` pairs, any order."""
        return self.scorer().score(prospect, events, now)

    def scorer(self) -> _Scorer:
        """The compiled rules (built once); hoist ``.score`` out of loops over many prospects."""
        scorer = self._scorer
        if scorer is None:
            scorer = self._scorer = _Scorer(self)
        return scorer

    def grade_for(self, fit: int) -> str:
        items = list(self.grades.items())
        for letter, minimum in items:
            if fit >= minimum:
                return letter
        return items[-1][0]

    def lifecycle_for(self, score: int, *, disqualified: bool) -> Lifecycle:
        if disqualified:
            return "disqualified"
        if score >= self.thresholds.sql:
            return "sql"
        if score >= self.thresholds.mql:
            return "mql"
        return "lead"


# ---------------------------------------------------------------------------- loading


def icp_version(yaml_text: str) -> str:
    """16 hex chars of sha256 over the file's text: stored with every score."""
    return hashlib.sha256(yaml_text.encode("utf-8")).hexdigest()[:16]


@reported_as(ConfigFileError)
def load_icp_source(yaml_text: str, path: str) -> IcpConfig:
    """Validate an ICP from text; raise ConfigFileError with every finding (file:line:col)."""
    config, _doc = model_from_yaml(
        IcpConfig, yaml_text, path,
        not_a_mapping="icp.yaml must be a mapping with fit, engagement, grades",
        name="icp", squash=True,
    )  # fmt: skip
    config._version = icp_version(yaml_text)
    config._source_path = path
    return config


@reported_as(ConfigFileError)
def load_icp(path: Path | str) -> IcpConfig:
    """Load ``config/icp.yaml``; raise ConfigFileError (file:line:col findings) when it is bad."""
    path = Path(path)
    return load_icp_source(read_text(path), str(path))


def icp_findings(path: Path | str) -> list[Finding]:
    """Every finding of an ICP file (empty when it loads): for ``touchflow validate``."""
    try:
        load_icp(path)
    except FindingsError as exc:
        return exc.findings
    return []


def is_icp_file(path: Path | str) -> bool:
    return PurePosixPath(Path(path).as_posix()).name in ("icp.yaml", "icp.yml")


# ---------------------------------------------------------------------------- scoring


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """What scoring reads of a prospect and its account (None when unknown)."""

    title: str | None = None
    seniority: str | None = None
    department: str | None = None
    country: str | None = None
    domain: str | None = None
    email_free: bool | None = None
    email_role: bool | None = None
    account_domain: str | None = None
    account_name: str | None = None
    account_industry: str | None = None
    account_employees: int | None = None
    account_revenue_band: str | None = None
    account_country: str | None = None
    account_technologies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reason:
    """``points`` from ``rule``, and why: ``str(reason)`` is ``"+25 industry software"``."""

    points: int
    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.points:+d} {self.text}"

    def as_json(self) -> dict[str, Any]:
        """The shape stored in ``score_history.reasons``."""
        return {"points": self.points, "rule": self.rule, "why": self.text}


@dataclass(frozen=True, slots=True)
class ScoreResult:
    score: int
    fit: int
    engagement: int
    grade: str
    lifecycle: Lifecycle
    reasons: list[Reason]

    @property
    def disqualified(self) -> bool:
        return self.lifecycle == "disqualified"

    def reasons_json(self) -> list[dict[str, Any]]:
        return [r.as_json() for r in self.reasons]


_MISS = object()
# Returns the value to show in the reason, or _MISS.
Test = Callable[[ScoreInput], Any]


def _fold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == ()


def _compile(cond: Condition) -> Test:
    """One condition as a closure; string comparisons ignore case."""
    attr = cond.field.replace(".", "_")
    kind = FIELDS[cond.field]
    op = cond.op
    v = cond.value

    get: Callable[[ScoreInput], Any] = operator.attrgetter(attr)

    if op == "present":
        return lambda p: _MISS if _empty(x := get(p)) else x
    if op == "absent":
        return lambda p: "" if _empty(get(p)) else _MISS
    if op == "equals":
        want = _fold(v)
        if kind == "bool":
            return lambda p: x if (x := get(p)) is want else _MISS
        if kind == "number":
            return lambda p: x if (x := get(p)) is not None and x == want else _MISS
        return lambda p: x if (x := get(p)) is not None and x.casefold() == want else _MISS
    if op == "in":
        wanted = frozenset(_fold(x) for x in v)
        if kind == "number":
            return lambda p: x if (x := get(p)) is not None and x in wanted else _MISS
        return lambda p: x if (x := get(p)) is not None and x.casefold() in wanted else _MISS
    if op == "gte":
        return lambda p: x if (x := get(p)) is not None and x >= v else _MISS
    if op == "lte":
        return lambda p: x if (x := get(p)) is not None and x <= v else _MISS
    if op == "between":
        lo, hi = v
        return lambda p: x if (x := get(p)) is not None and lo <= x <= hi else _MISS
    if op == "contains":
        needles = tuple(_fold(x) for x in (v if isinstance(v, list) else [v]))
        if kind == "list":
            wanted = frozenset(needles)

            def has_item(p: ScoreInput) -> Any:
                for item in get(p) or ():
                    if isinstance(item, str) and item.casefold() in wanted:
                        return item
                return _MISS

            return has_item

        def has_text(p: ScoreInput) -> Any:
            x = get(p)
            if x:
                folded = x.casefold()
                if any(n in folded for n in needles):
                    return x
            return _MISS

        return has_text
    if op == "matches":
        rx = re.compile(v, re.IGNORECASE)
        return lambda p: x if (x := get(p)) and rx.search(x) else _MISS
    raise AssertionError(f"unknown op {op!r}")  # pragma: no cover - validated


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    id: str
    points: int
    reason: str
    uses_value: bool
    first: Test
    rest: tuple[Test, ...]

    def apply(self, p: ScoreInput) -> Reason | None:
        value = self.first(p)
        if value is _MISS:
            return None
        for test in self.rest:
            if test(p) is _MISS:
                return None
        text = self.reason.format(value=value) if self.uses_value else self.reason
        return Reason(self.points, self.id, text)


def _compile_rule(rule: Rule) -> _CompiledRule:
    tests = [_compile(c) for c in rule.when]
    return _CompiledRule(
        rule.id, rule.points, rule.text, "{" in rule.text, tests[0], tuple(tests[1:])
    )


def _round(x: float) -> int:
    """Half away from zero: 2.5 -> 3, -2.5 -> -3 (Python's round() would give 2)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _ago(days: float) -> str:
    whole = int(days)
    if whole <= 0:
        return "today"
    return "1 day ago" if whole == 1 else f"{whole} days ago"


class _Scorer:
    """An IcpConfig compiled for speed: closures, tuples, precomputed constants."""

    def __init__(self, config: IcpConfig) -> None:
        self.config = config
        self.fit = tuple(_compile_rule(r) for r in config.fit)
        self.disqualify = tuple(_compile_rule(r) for r in config.disqualify)
        eng = config.engagement
        self.points = dict(eng.points)
        self.half_life = float(eng.half_life_days)
        self.half_life_text = f"{eng.half_life_days:g}"
        self.cap = eng.cap
        self.max_age = eng.max_age_days
        self.grades = tuple(config.grades.items())
        self.mql = config.thresholds.mql
        self.sql = config.thresholds.sql

    def score(
        self, p: ScoreInput, events: Sequence[tuple[str, datetime]], now: datetime
    ) -> ScoreResult:
        reasons: list[Reason] = []
        fit = 0
        for rule in self.fit:
            r = rule.apply(p)
            if r is not None:
                reasons.append(r)
                fit += r.points
        disqualified = False
        for rule in self.disqualify:
            r = rule.apply(p)
            if r is not None:
                reasons.append(r)
                fit += r.points
                disqualified = True
        engagement = self._engagement(events, now, reasons) if events else 0
        total = fit + engagement
        grade = self.grades[-1][0]
        for letter, minimum in self.grades:
            if fit >= minimum:
                grade = letter
                break
        lifecycle: Lifecycle
        if disqualified:
            lifecycle = "disqualified"
        elif total >= self.sql:
            lifecycle = "sql"
        elif total >= self.mql:
            lifecycle = "mql"
        else:
            lifecycle = "lead"
        return ScoreResult(total, fit, engagement, grade, lifecycle, reasons)

    def _engagement(
        self, events: Sequence[tuple[str, datetime]], now: datetime, reasons: list[Reason]
    ) -> int:
        # type -> [decayed sum, count, youngest age in days]
        by_type: dict[str, list[float]] = {}
        for kind, at in events:
            base = self.points.get(kind)
            if base is None:
                continue
            # A score is "as of now": a later event has not happened yet (a
            # simulation replays time); a skewed clock's is picked up next run.
            age = (now - at).total_seconds() / 86400.0
            if age < 0 or (self.max_age is not None and age > self.max_age):
                continue
            value = base * 0.5 ** (age / self.half_life)
            acc = by_type.get(kind)
            if acc is None:
                by_type[kind] = [value, 1.0, age]
            else:
                acc[0] += value
                acc[1] += 1
                acc[2] = min(acc[2], age)
        total = 0
        # Biggest first, then by name: the explanation reads best-first, deterministically.
        ranked = sorted(
            ((_round(acc[0]), kind, acc) for kind, acc in by_type.items()),
            key=lambda t: (-abs(t[0]), t[1]),
        )
        for points, kind, (_, count, youngest) in ranked:
            if points == 0:
                continue
            name = kind.replace("_", " ")
            base = self.points[kind]
            decay = f"half-life {self.half_life_text} d"
            if count == 1:
                text = f"engagement: {name} {_ago(youngest)} ({base}, {decay})"
            else:
                text = (
                    f"engagement: {name} {int(count)} times, latest {_ago(youngest)} "
                    f"({base} each, {decay})"
                )
            reasons.append(Reason(points, f"engagement.{kind}", text))
            total += points
        if total > self.cap:
            reasons.append(
                Reason(self.cap - total, "engagement.cap", f"engagement capped at {self.cap}")
            )
            total = self.cap
        return total
