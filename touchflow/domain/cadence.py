"""Cadence schema and loader: YAML -> pydantic models, every problem as ``file:line:col``.

A cadence file (format v1) names its schedule and its steps::

    id: enterprise-outbound            # kebab-case, equals the file name
    name: Enterprise outbound
    schedule:
      timezone: prospect                # prospect | sender | an IANA zone
      fallback_timezone: America/New_York
      window: {days: [mon, tue, wed, thu, fri], start: "08:00", end: "17:30"}
      holidays: prospect                # prospect | [US, CA, ...] | none
      jitter_minutes: 0                 # 0..240
      # optional: windows per country, blackout dates, named calendars of
      # config/calendars.yaml (see touchflow.domain.calendars)
      windows: {IR: {days: [sat, sun, mon, tue, wed], start: "08:00", end: "16:00"}}
      blackouts: [{name: Offsite, from: 2027-01-12, to: 2027-01-14}]
      calendars: [nowruz]
    exit_on: [reply, bounce, unsubscribe, meeting_booked]
    steps:
      - id: intro
        channel: email
        subject: "{{ prospect.company }} and pipeline predictability"
        template: email/intro.txt.j2
      - id: bump
        after: 3 business days
        channel: email
        thread: intro
        template: email/bump.txt.j2
        when: "not touched('intro', 'replied')"

Validation happens in two passes so that one run reports every problem of a
file: pydantic checks types and single values (each error has a ``loc`` that
:class:`~touchflow.domain.yaml_source.YamlDocument` maps to a position), then
:func:`_cross_check` checks what involves several values (duplicate ids,
threads, templates, ``when`` conditions) on the raw data, so it still runs
when some unrelated part of the file is invalid. Named calendars are looked up
in the calendars file the loader is given; the file's text becomes part of the
cadence's version (stored with it under :data:`CALENDARS_SNAPSHOT`), so a
pinned enrollment keeps the blackouts and windows it started with.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Self, get_args
from zoneinfo import available_timezones

import holidays as holidays_lib
import yaml
from jinja2 import TemplateSyntaxError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from touchflow.domain.calendars import (
    KEBAB,
    BlackoutSpec,
    CalendarName,
    CalendarSpec,
    CountryCode,
    WindowSpec,
    calendar_findings,
    calendars_from_yaml,
)
from touchflow.domain.model_findings import at as _at
from touchflow.domain.model_findings import hint as _hint
from touchflow.domain.model_findings import model_findings, read_text, reported_as
from touchflow.domain.render import lint_ast, parse_condition, parse_template, template_dependencies
from touchflow.domain.yaml_source import YamlDocument, parse_yaml, syntax_finding
from touchflow.errors import CadenceError, ConfigFileError, Finding, FindingsError

#: Where a cadence version stores the calendars file it was loaded with, next to its
#: templates. Not a template name (those are relative), so no template can include it.
CALENDARS_SNAPSHOT = "/config/calendars.yaml"

Channel = Literal["email", "sms", "call", "linkedin", "task"]
#: Channels whose steps become tasks for a person instead of automatic sends.
MANUAL_CHANNELS: frozenset[str] = frozenset({"call", "linkedin", "task"})
ExitEvent = Literal["reply", "bounce", "unsubscribe", "meeting_booked", "deal_created"]
#: Events that end an enrollment when listed in ``exit_on`` (all of them by default).
EXIT_EVENTS: tuple[ExitEvent, ...] = (
    "reply",
    "bounce",
    "unsubscribe",
    "meeting_booked",
    "deal_created",
)
#: Events ``touched(step_id, event)`` can test in a ``when`` condition.
TOUCH_EVENTS: tuple[str, ...] = ("sent", "opened", "clicked", "replied", "completed", "skipped")
#: Outcomes of a task (``touchflow task done ID --outcome ...``): ``outcome(step_id)``
#: in a ``when`` condition is one of them, and ``touched(step_id, <outcome>)`` tests one.
TASK_OUTCOMES: tuple[str, ...] = (
    "completed",
    "skipped",
    "connected",
    "voicemail",
    "no_answer",
    "wrong_number",
    "meeting_booked",
    "not_interested",
)
#: What ``touched()`` accepts: touch events and task outcomes.
CONDITION_EVENTS: tuple[str, ...] = tuple(dict.fromkeys((*TOUCH_EVENTS, *TASK_OUTCOMES)))

#: What a reply from one contact does to this cadence's enrollments of the
#: other contacts at the same account (same company domain).
AccountRule = Literal["continue", "pause", "finish"]
#: Preconditions a prospect must meet for the cadence's SMS steps to run.
Requirement = Literal["sms_consent"]

_KEBAB = KEBAB
# Step and variant ids end up in touch keys, touched() calls and dashboards.
_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_DELAY = re.compile(r"^\s*(\d+)\s+(business\s+days?|days?|hours?|minutes?)\s*$", re.IGNORECASE)
_DELAY_UNITS = {
    "business day": "business_days",
    "day": "days",
    "hour": "hours",
    "minute": "minutes",
}


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _countries() -> frozenset[str]:
    return frozenset(holidays_lib.list_supported_countries())


def _check_zone(value: str, *, allow: tuple[str, ...] = ()) -> str:
    if value in allow or value in _zones():
        return value
    extra = _did_you_mean(value, sorted(_zones()))
    what = "".join(f"{a!r}, " for a in allow[:-1])
    what += f"{allow[-1]!r} or an IANA time zone" if allow else "an IANA time zone"
    raise ValueError(f"{value!r} is not {what}{extra}")


# ---------------------------------------------------------------------------- models


class Delay(BaseModel):
    """How long after the previous step a step becomes due: ``2 business days``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: int = Field(ge=0)
    unit: Literal["business_days", "days", "hours", "minutes"]

    @classmethod
    def parse(cls, text: str) -> Delay:
        """Parse ``N business day(s)``, ``N day(s)``, ``N hour(s)`` or ``N minute(s)``."""
        match = _DELAY.match(text) if isinstance(text, str) else None
        if not match:
            raise ValueError(
                f"{text!r} is not a delay: use 'N business days', 'N days', "
                "'N hours' or 'N minutes'"
            )
        unit_text = " ".join(match.group(2).lower().split()).removesuffix("s")
        return cls(amount=int(match.group(1)), unit=_DELAY_UNITS[unit_text])  # type: ignore[arg-type]

    def __str__(self) -> str:
        word = self.unit.replace("_", " ")
        return f"{self.amount} {word.removesuffix('s') if self.amount == 1 else word}"


def _parse_delay(value: Any) -> Any:
    if isinstance(value, Delay) or value is None:
        return value
    if isinstance(value, str):
        return Delay.parse(value)
    raise ValueError(f"must be text like '2 business days', not {value!r}")


def _check_slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{value!r} must be lowercase letters and digits joined by '-' or '_'")
    return value


def _check_holidays(value: Any) -> Any:
    """``prospect``, ``none`` or a list of ISO country codes with a holiday calendar."""
    if value in ("prospect", "none"):
        return value
    if not isinstance(value, list):
        raise _at("must be 'prospect', 'none' or a list of ISO country codes")
    codes: list[str] = []
    for i, code in enumerate(value):
        if not isinstance(code, str):
            raise _at(f"holiday country must be an ISO country code, not {code!r}", i)
        if code.upper() not in _countries():
            raise _at(f"unknown holiday country {code!r} (no holiday calendar for it)", i)
        codes.append(code.upper())
    return codes


Slug = Annotated[str, AfterValidator(_check_slug)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(_Model):
    """When a cadence may touch a prospect."""

    timezone: str = "prospect"
    fallback_timezone: str = "America/New_York"
    window: WindowSpec
    holidays: Annotated[
        Literal["prospect", "none"] | list[str], BeforeValidator(_check_holidays)
    ] = "prospect"
    jitter_minutes: StrictInt = Field(default=0, ge=0, le=240)
    windows: dict[CountryCode, WindowSpec] = Field(default_factory=dict)
    blackouts: list[BlackoutSpec] = Field(default_factory=list)
    calendar: CalendarName | None = None
    calendars: list[CalendarName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_way_to_name_calendars(self) -> Self:
        if self.calendar is not None and self.calendars:
            raise _at("use either calendar or calendars, not both", "calendar", key=True)
        return self

    @property
    def calendar_names(self) -> list[str]:
        """The named calendars of ``config/calendars.yaml``, in the order given."""
        return [self.calendar] if self.calendar is not None else list(self.calendars)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_zone(value, allow=("prospect", "sender"))

    @field_validator("fallback_timezone")
    @classmethod
    def _fallback_timezone(cls, value: str) -> str:
        return _check_zone(value)


class Variant(_Model):
    """An A/B variant of a step; may override the subject and/or the template."""

    id: Slug
    weight: StrictInt = 1
    subject: str | None = None
    template: str | None = None

    @field_validator("weight")
    @classmethod
    def _weight(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, not {value}")
        return value


class Step(_Model):
    """One touch of a cadence."""

    id: Slug
    channel: Channel
    after: Annotated[Delay | None, BeforeValidator(_parse_delay)] = None
    subject: str | None = None
    template: str | None = None
    variants: list[Variant] = Field(default_factory=list)
    thread: str | None = None
    when: str | None = None

    @property
    def manual(self) -> bool:
        """True when a person does this step (call, LinkedIn, task) rather than a provider."""
        return self.channel in MANUAL_CHANNELS


@dataclass(frozen=True)
class ResolvedTouch:
    """What to render for one step of one enrollment: its variant, subject and template."""

    step: Step
    variant: Variant | None
    subject: str | None  # template text of the subject line (email only)
    template: str | None  # template name under templates/


class Audience(_Model):
    """Who may be enrolled: checked against the prospect's ICP score at enrollment."""

    min_score: StrictInt | None = None
    grades: list[Literal["A", "B", "C", "D"]] | None = None
    lifecycle: list[Literal["lead", "mql", "sql"]] | None = None

    def refuses(self, score: int | None, grade: str | None, lifecycle: str | None) -> str | None:
        """Why a prospect with this score is not in the audience (None: they are).

        An unscored prospect is outside any audience that sets a rule, and a
        disqualified one is outside every audience.
        """
        if lifecycle == "disqualified":
            return "disqualified"
        if self.min_score is not None and (score is None or score < self.min_score):
            return f"score {score if score is not None else 'none'} < {self.min_score}"
        if self.grades is not None and grade not in self.grades:
            return f"grade {grade or 'none'} not in {'/'.join(self.grades)}"
        if self.lifecycle is not None and lifecycle not in self.lifecycle:
            return f"lifecycle {lifecycle or 'none'} not in {'/'.join(self.lifecycle)}"
        return None


class Cadence(_Model):
    """A validated cadence, plus the snapshot (YAML text and templates) it was loaded from."""

    id: str
    name: str
    description: str | None = None
    schedule: Schedule
    exit_on: list[ExitEvent] = Field(default_factory=lambda: list(EXIT_EVENTS))
    on_account_reply: AccountRule = "continue"
    requires: list[Requirement] = Field(default_factory=list)
    audience: Audience = Field(default_factory=Audience)
    steps: list[Step]

    # Not part of the YAML schema: set by the loader.
    _source_path: str = PrivateAttr(default="")
    _yaml_text: str = PrivateAttr(default="")
    _templates: dict[str, str] = PrivateAttr(default_factory=dict)
    _calendars_text: str | None = PrivateAttr(default=None)
    _calendar_specs: list[CalendarSpec] = PrivateAttr(default_factory=list)
    _version: str = PrivateAttr(default="")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str, info: ValidationInfo) -> str:
        if not _KEBAB.match(value):
            raise ValueError(
                f"{value!r} must be kebab-case (lowercase letters and digits joined by '-')"
            )
        stem = (info.context or {}).get("stem")
        if stem is not None and value != stem:
            raise ValueError(f"{value!r} must equal the file name {stem!r}")
        return value

    @field_validator("steps")
    @classmethod
    def _some_steps(cls, steps: list[Step]) -> list[Step]:
        if not steps:
            raise ValueError("a cadence needs at least one step")
        return steps

    @property
    def source_path(self) -> str:
        """The path the cadence was loaded from, as given to the loader."""
        return self._source_path

    @property
    def yaml_text(self) -> str:
        """The YAML text this cadence was loaded from."""
        return self._yaml_text

    @property
    def templates(self) -> dict[str, str]:
        """Every template the cadence uses (including includes): name -> source."""
        return dict(self._templates)

    @property
    def calendar_specs(self) -> list[CalendarSpec]:
        """The calendars the schedule names, in the order named (empty for most cadences)."""
        return list(self._calendar_specs)

    @property
    def stored_files(self) -> dict[str, str]:
        """What a stored version keeps besides the YAML: the templates and, when the schedule
        names calendars, the calendars file under :data:`CALENDARS_SNAPSHOT`."""
        files = dict(self._templates)
        if self._calendars_text is not None:
            files[CALENDARS_SNAPSHOT] = self._calendars_text
        return files

    @property
    def version(self) -> str:
        """16 hex chars of sha256 over the YAML text and every used template (name and source)."""
        return self._version

    def step(self, step_id: str) -> Step:
        """The step with this id; KeyError if there is none."""
        return self.steps[self.step_index(step_id)]

    def step_index(self, step_id: str) -> int:
        """The 0-based position of the step with this id; KeyError if there is none."""
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        raise KeyError(f"cadence {self.id!r} has no step {step_id!r}")

    def resolve(
        self, step_id: str, enrollment_key: str, variant_id: str | None = None
    ) -> ResolvedTouch:
        """The variant, subject text and template name this enrollment gets for a step.

        A threaded email without a subject answers its thread: ``Re: <subject>``
        of the subject the same enrollment got on the first email of the thread.
        ``variant_id`` forces a variant (``preview`` shows each one); by default
        the enrollment's own (:func:`choose_variant`).
        """
        step = self.step(step_id)
        if variant_id is None:
            variant = choose_variant(step, enrollment_key)
        else:
            variant = next((v for v in step.variants if v.id == variant_id), None)
            if variant is None:
                raise KeyError(f"step {step_id!r} has no variant {variant_id!r}")
        subject = (variant.subject if variant else None) or step.subject
        if subject is None and step.thread is not None:
            root = self.resolve(step.thread, enrollment_key).subject
            if root is not None:
                subject = root if root.lower().startswith("re:") else f"Re: {root}"
        template = (variant.template if variant else None) or step.template
        return ResolvedTouch(step=step, variant=variant, subject=subject, template=template)


def choose_variant(step: Step, enrollment_key: str) -> Variant | None:
    """Pick a variant by weight, deterministically per enrollment; None when there are none.

    sha256 rather than ``hash()``: the choice must survive process restarts
    and be the same on every worker.
    """
    if not step.variants:
        return None
    digest = hashlib.sha256(f"{enrollment_key}:{step.id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in step.variants)
    for variant in step.variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("unreachable")  # pragma: no cover


def cadence_version(yaml_text: str, templates: Mapping[str, str]) -> str:
    """16 hex chars of sha256 over the YAML and every template's name and source, sorted."""
    h = hashlib.sha256()

    def part(text: str) -> None:
        data = text.encode("utf-8")
        # Length-prefixed, so moving text between parts changes the hash.
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)

    part(yaml_text)
    for name in sorted(templates):
        part(name)
        part(templates[name])
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------- errors


# ---------------------------------------------------------------------------- cross checks


def _is_template_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


class _Checker:
    """Checks that involve more than one value, on raw YAML data (tolerates bad parts)."""

    def __init__(
        self,
        doc: YamlDocument,
        templates: Mapping[str, str],
        templates_label: str,
        trackers: TrackerNames | None = None,
    ) -> None:
        self.doc = doc
        self.trackers = trackers
        self.templates = templates
        self.templates_label = templates_label
        self.findings: list[Finding] = []
        #: Every template the cadence uses, name -> source (the version snapshot).
        self.used: dict[str, str] = {}
        self._linted: set[str] = set()

    def add(self, loc: tuple[Any, ...], message: str, *, key: bool = False) -> None:
        self.findings.append(self.doc.finding(loc, message, key=key))

    def template_path(self, name: str) -> str:
        return f"{self.templates_label}/{name}"

    def check(self) -> None:
        data = self.doc.data
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list):
            return
        steps = [(i, s) for i, s in enumerate(raw_steps) if isinstance(s, dict)]
        ids: dict[str, int] = {}  # step id -> index of its first definition
        channels: dict[str, Any] = {}
        for i, s in steps:
            sid = s.get("id")
            if not isinstance(sid, str):
                continue
            if sid in ids:
                line = self.doc.position_for(("steps", ids[sid], "id"))[0]
                self.add(
                    ("steps", i, "id"), f"duplicate step id {sid!r} (first used on line {line})"
                )
            else:
                ids[sid] = i
                channels[sid] = s.get("channel")
        for i, s in steps:
            self._step(i, s, ids, channels)

    def _step(
        self, i: int, s: dict[str, Any], ids: dict[str, int], channels: dict[str, Any]
    ) -> None:
        loc = ("steps", i)
        sid = s.get("id") if isinstance(s.get("id"), str) else f"#{i + 1}"
        channel = s.get("channel")
        known_channel = channel in get_args(Channel)
        thread = s.get("thread")
        if isinstance(thread, str) and known_channel:
            if channel != "email":
                self.add(
                    (*loc, "thread"), f"thread is only for email steps, not {channel}", key=True
                )
            elif thread not in ids:
                self.add((*loc, "thread"), f"thread {thread!r} is not a step of this cadence")
            elif ids[thread] >= i:
                self.add((*loc, "thread"), f"thread {thread!r} must be an earlier email step")
            elif channels.get(thread) != "email":
                self.add(
                    (*loc, "thread"),
                    f"thread {thread!r} must be an earlier email step, "
                    f"but it is a {channels.get(thread)} step",
                )
        if known_channel:
            if channel in ("email", "sms") and "template" not in s:
                self.add(loc, f"{channel} step {sid!r} needs a template")
            if channel == "email" and "subject" not in s and "thread" not in s:
                self.add(loc, f"email step {sid!r} needs a subject (or a thread to reply in)")
            if channel != "email" and "subject" in s:
                self.add(
                    (*loc, "subject"), f"subject is only for email steps, not {channel}", key=True
                )
        if isinstance(s.get("template"), str):
            self._template(s["template"], (*loc, "template"))
        if isinstance(s.get("subject"), str):
            self._subject(s["subject"], (*loc, "subject"))
        variants = s.get("variants")
        if isinstance(variants, list):
            seen: set[str] = set()
            for j, v in enumerate(variants):
                if not isinstance(v, dict):
                    continue
                vloc = (*loc, "variants", j)
                vid = v.get("id")
                if isinstance(vid, str):
                    if vid in seen:
                        self.add((*vloc, "id"), f"duplicate variant id {vid!r} in step {sid!r}")
                    seen.add(vid)
                if isinstance(v.get("template"), str):
                    self._template(v["template"], (*vloc, "template"))
                if isinstance(v.get("subject"), str):
                    if known_channel and channel != "email":
                        self.add(
                            (*vloc, "subject"),
                            f"subject is only for email steps, not {channel}",
                            key=True,
                        )
                    self._subject(v["subject"], (*vloc, "subject"))
        if isinstance(s.get("when"), str):
            self._when(s["when"], (*loc, "when"), i, ids, channels)

    def _template(self, name: str, loc: tuple[Any, ...]) -> None:
        if not _is_template_name(name):
            self.add(loc, f"template {name!r} must be a relative path under templates/")
            return
        if name not in self.templates:
            self.add(loc, f"template {name!r} not found ({self.template_path(name)})")
            return
        self._lint(name)

    def _lint(self, name: str) -> None:
        if name in self._linted:
            return
        self._linted.add(name)
        source = self.templates[name]
        self.used[name] = source
        label = self.template_path(name)
        ast, findings = parse_template(label, source)
        self.findings.extend(findings)
        if ast is None:
            return
        self.findings.extend(lint_ast(label, source, ast))
        for dep, lineno in template_dependencies(ast):
            if not _is_template_name(dep) or dep not in self.templates:
                self.findings.append(
                    Finding(label, lineno, 1, f"included template {dep!r} not found")
                )
            else:
                self._lint(dep)

    def _subject(self, text: str, loc: tuple[Any, ...]) -> None:
        line, col = self.doc.position_for(loc)
        ast, errors = parse_template(self.doc.path, text)
        if ast is None:
            for err in errors:
                self.add(loc, f"subject: {err.message}")
            return
        self.findings.extend(lint_ast(self.doc.path, text, ast, at=(line, col)))
        for _dep, _ in template_dependencies(ast):
            self.add(loc, "subjects cannot include other templates")

    def _when(
        self,
        expr: str,
        loc: tuple[Any, ...],
        index: int,
        ids: dict[str, int],
        channels: dict[str, Any],
    ) -> None:
        try:
            info = parse_condition(expr)
        except TemplateSyntaxError as exc:
            self.add(loc, f"when does not compile: {exc.message}")
            return
        for name in sorted(info.names):
            why = "conditions can only call touched(), outcome() and tracker()"
            self.add(loc, f"when: unknown name {name!r} ({why})")
        for problem in info.problems:
            self.add(loc, f"when: {problem}")
        for step_id, event in info.calls:
            self._when_step("touched", step_id, loc, index, ids)
            if event not in CONDITION_EVENTS:
                self.add(
                    loc,
                    f"when: unknown event {event!r}{_did_you_mean(event, CONDITION_EVENTS)} "
                    f"(use one of {', '.join(CONDITION_EVENTS)})",
                )
            elif (
                event not in TOUCH_EVENTS
                and step_id in channels
                and channels[step_id] in get_args(Channel)
                and channels[step_id] not in MANUAL_CHANNELS
            ):
                self.add(
                    loc,
                    f"when: {event!r} is a task outcome, but {step_id!r} is a "
                    f"{channels[step_id]} step (outcomes are for call, linkedin and task steps)",
                )
        for step_id in info.outcome_steps:
            self._when_step("outcome", step_id, loc, index, ids)
            channel = channels.get(step_id)
            if channel in get_args(Channel) and channel not in MANUAL_CHANNELS:
                self.add(
                    loc,
                    f"when: outcome({step_id!r}) is always none: {step_id!r} is a {channel} "
                    "step (outcomes are for call, linkedin and task steps)",
                )
        for step_id, name in info.trackers:
            self._when_step("tracker", step_id, loc, index, ids)
            channel = channels.get(step_id)
            if channel in get_args(Channel) and channel != "call":
                self.add(
                    loc,
                    f"when: tracker({step_id!r}, ...) is always false: {step_id!r} is a "
                    f"{channel} step (trackers are heard on call steps' calls)",
                )
            known = self.trackers
            if known is not None and name not in known.names:
                self.add(
                    loc,
                    f"when: unknown tracker {name!r}{_did_you_mean(name, known.names)} "
                    f"(the trackers are in {known.path})",
                )
        for name in info.outcomes:
            if name not in TASK_OUTCOMES:
                self.add(
                    loc,
                    f"when: unknown outcome {name!r}{_did_you_mean(name, TASK_OUTCOMES)} "
                    f"(use one of {', '.join(TASK_OUTCOMES)})",
                )

    def _when_step(
        self, fn: str, step_id: str, loc: tuple[Any, ...], index: int, ids: dict[str, int]
    ) -> None:
        if step_id not in ids:
            self.add(loc, f"when: {fn}({step_id!r}) names no step of this cadence")
        elif ids[step_id] >= index:
            self.add(
                loc,
                f"when: {fn}({step_id!r}) must name an earlier step, not this one or a later one",
            )


def _did_you_mean(value: str, choices: Sequence[str]) -> str:
    hint = difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


# ---------------------------------------------------------------------------- loading


class DirectoryTemplates(Mapping[str, str]):
    """Templates read on demand from a directory: ``name`` is a path relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, str | None] = {}

    def _read(self, name: str) -> str | None:
        if name not in self._cache:
            text: str | None = None
            if _is_template_name(name):
                path = self.root / name
                try:
                    text = path.read_text(encoding="utf-8") if path.is_file() else None
                except (OSError, UnicodeDecodeError):
                    text = None
            self._cache[name] = text
        return self._cache[name]

    def __getitem__(self, name: str) -> str:
        text = self._read(name)
        if text is None:
            raise KeyError(name)
        return text

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._read(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (p.relative_to(self.root).as_posix() for p in sorted(self.root.rglob("*.j2")))

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class CalendarsSource:
    """The calendars file named cadences are resolved against: its path, and its text
    (None when there is no such file)."""

    path: str
    text: str | None

    @classmethod
    def read(cls, path: Path | None) -> CalendarsSource | None:
        """The file at ``path`` (None: no calendars file was configured)."""
        if path is None:
            return None
        return cls(str(path), read_text(path) if path.exists() else None)


@dataclass(frozen=True)
class TrackerNames:
    """The trackers ``tracker()`` conditions may name: those of ``config/guidance.yaml``.

    Without a guidance file there is nothing to check against, so ``tracker()`` names
    are not checked (the condition is false until a call summary says otherwise);
    with one, a name it does not define is an error with a did-you-mean.
    """

    path: str
    names: tuple[str, ...]

    @classmethod
    def read(cls, path: Path | None) -> TrackerNames | None:
        """The tracker ids in the file at ``path``; None when there is no such file.

        Only the ids are read (``trackers:`` keys): the file's own mistakes are
        ``touchflow validate``'s to report, with the guidance file.
        """
        if path is None or not path.exists():
            return None
        try:
            doc = parse_yaml(read_text(path), str(path))
        except FindingsError:
            return cls(str(path), ())
        data = doc.data if isinstance(doc.data, dict) else {}
        trackers = data.get("trackers")
        names = tuple(str(k) for k in trackers) if isinstance(trackers, dict) else ()
        return cls(str(path), names)


def _named_calendars(
    doc: YamlDocument, schedule: Schedule, source: CalendarsSource | None
) -> tuple[list[CalendarSpec], list[Finding]]:
    """The calendars ``schedule`` names, from ``source``; or findings saying why not."""
    names = schedule.calendar_names
    if not names:
        return [], []
    key = "calendar" if schedule.calendar is not None else "calendars"
    where = (
        [("schedule", key)]
        if key == "calendar"
        else [("schedule", key, i) for i in range(len(names))]
    )
    if source is None or source.text is None:
        missing = source.path if source is not None else "config/calendars.yaml"
        return [], [
            doc.finding(where[0], f"calendar {names[0]!r}: there is no calendars file ({missing})")
        ]
    try:
        book = calendars_from_yaml(source.text, source.path)
    except ConfigFileError as exc:
        return [], exc.findings
    specs: list[CalendarSpec] = []
    findings: list[Finding] = []
    for name, loc in zip(names, where, strict=True):
        spec = book.calendars.get(name)
        if spec is None:
            known = sorted(book.calendars)
            findings.append(
                doc.finding(
                    loc,
                    f"calendar {name!r} is not defined in {source.path}"
                    + (_hint(name, known) if known else " (it defines no calendars)"),
                )
            )
        else:
            specs.append(spec)
    return specs, findings


def _build(
    yaml_text: str,
    path: str,
    templates: Mapping[str, str],
    templates_label: str,
    calendars: CalendarsSource | None = None,
    trackers: TrackerNames | None = None,
) -> Cadence:
    doc = parse_yaml(yaml_text, path)
    findings = list(doc.findings)
    if not isinstance(doc.data, dict):
        line, col = doc.position_for(())
        findings.append(
            Finding(path, line, col, "a cadence must be a mapping with id, name, schedule, steps")
        )
        raise CadenceError(findings)
    cadence: Cadence | None = None
    try:
        cadence = Cadence.model_validate(doc.data, context={"stem": PurePosixPath(path).stem})
    except ValidationError as exc:
        findings.extend(model_findings(doc, exc, Cadence, name="cadence"))
    checker = _Checker(doc, templates, templates_label, trackers)
    checker.check()
    findings.extend(checker.findings)
    specs: list[CalendarSpec] = []
    if cadence is not None:
        specs, found = _named_calendars(doc, cadence.schedule, calendars)
        findings.extend(found)
    if findings or cadence is None:
        raise CadenceError(sorted(set(findings)))
    cadence._source_path = path
    cadence._yaml_text = yaml_text
    cadence._templates = dict(sorted(checker.used.items()))
    snapshot = dict(checker.used)
    if cadence.schedule.calendar_names and calendars is not None:
        # Part of the version: a pinned enrollment keeps the calendars it started with.
        cadence._calendars_text = snapshot[CALENDARS_SNAPSHOT] = calendars.text or ""
        cadence._calendar_specs = specs
    cadence._version = cadence_version(yaml_text, snapshot)
    return cadence


@reported_as(CadenceError)
def load_cadence(
    path: Path,
    templates_dir: Path,
    calendars: Path | None = None,
    guidance: Path | None = None,
) -> Cadence:
    """Load and validate one cadence file; raise CadenceError with every finding.

    ``calendars`` is the calendars file (``config/calendars.yaml``) named calendars are
    looked up in; it need not exist unless the cadence names one. ``guidance``
    (``config/guidance.yaml``) names the trackers ``tracker()`` conditions may use
    (:class:`TrackerNames`; not checked when it does not exist).
    """
    return _build(
        read_text(path),
        str(path),
        DirectoryTemplates(templates_dir),
        str(templates_dir),
        CalendarsSource.read(calendars),
        TrackerNames.read(guidance),
    )


@reported_as(CadenceError)
def load_cadence_source(yaml_text: str, path: str, templates: Mapping[str, str]) -> Cadence:
    """Validate a cadence from text and its stored files (a pinned version from the DB).

    ``templates`` is :attr:`Cadence.stored_files`: the templates, plus the calendars file
    under :data:`CALENDARS_SNAPSHOT` when the cadence names calendars.
    """
    text = templates.get(CALENDARS_SNAPSHOT)
    source = CalendarsSource(CALENDARS_SNAPSHOT, text) if text is not None else None
    return _build(yaml_text, path, templates, "templates", source)


def _cadence_files(cadences_dir: Path) -> list[Path]:
    return sorted([*cadences_dir.glob("*.yaml"), *cadences_dir.glob("*.yml")])


@reported_as(CadenceError)
def load_cadences(
    cadences_dir: Path,
    templates_dir: Path,
    calendars: Path | None = None,
    guidance: Path | None = None,
) -> dict[str, Cadence]:
    """Load every ``*.yaml``/``*.yml`` in a directory: ``{id: Cadence}``.

    Raises CadenceError with the findings of all files together. ``calendars``: as for
    :func:`load_cadence`.
    """
    templates = DirectoryTemplates(templates_dir)
    source = CalendarsSource.read(calendars)
    trackers = TrackerNames.read(guidance)
    cadences: dict[str, Cadence] = {}
    findings: list[Finding] = []
    for path in _cadence_files(cadences_dir):
        try:
            cadence = _build(
                read_text(path), str(path), templates, str(templates_dir), source, trackers
            )
        except FindingsError as exc:
            findings.extend(exc.findings)
            continue
        if cadence.id in cadences:
            findings.append(
                Finding(
                    str(path),
                    1,
                    1,
                    f"cadence id {cadence.id!r} is also defined by "
                    f"{cadences[cadence.id].source_path}",
                )
            )
            continue
        cadences[cadence.id] = cadence
    if findings:
        raise CadenceError(sorted(set(findings)))
    return cadences


# ---------------------------------------------------------------------------- validate

_SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__"})


def _walk(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    found = []
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).parts
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel[:-1]):
            continue
        if p.is_file() and p.name.endswith(suffixes):
            found.append(p)
    return found


def _is_config(path: Path) -> bool:
    return "config" in path.parent.parts


def _validate_yaml_only(path: Path) -> list[Finding]:
    try:
        parse_yaml(read_text(path), str(path))
    except FindingsError as exc:
        return exc.findings
    except yaml.YAMLError as exc:  # pragma: no cover - parse_yaml wraps these
        return [syntax_finding(str(path), exc)]
    return []


def _validate_calendars(path: Path) -> list[Finding]:
    try:
        return calendar_findings(read_text(path), str(path))
    except FindingsError as exc:
        return exc.findings


def _validate_guidance(path: Path) -> list[Finding]:
    # Imported here: the stemmers and the automaton are not needed to load a cadence.
    from touchflow.domain.guidance.config import guidance_findings

    try:
        return guidance_findings(read_text(path), str(path))
    except FindingsError as exc:
        return exc.findings


def _validate_template_file(path: Path, templates_dir: Path) -> list[Finding]:
    try:
        source = read_text(path)
    except FindingsError as exc:
        return exc.findings
    label = str(path)
    ast, findings = parse_template(label, source)
    if ast is None:
        return findings
    findings.extend(lint_ast(label, source, ast))
    available = DirectoryTemplates(templates_dir)
    for dep, lineno in template_dependencies(ast):
        if dep not in available:
            findings.append(Finding(label, lineno, 1, f"included template {dep!r} not found"))
    return findings


def validate_paths(
    paths: Sequence[Path],
    templates_dir: Path,
    policy: Callable[[Cadence], list[Finding]] | None = None,
    calendars: Path | None = None,
    guidance: Path | None = None,
) -> list[Finding]:
    """Validate cadences, templates and config files; return every finding, sorted.

    ``policy`` adds house rules for each cadence that loaded (the email footer);
    ``calendars`` is the calendars file cadences name calendars from, ``guidance`` the
    guidance file their ``tracker()`` conditions name trackers from.

    - a ``.yaml``/``.yml`` file is a cadence, unless it lives under a ``config``
      directory: then ``calendars.yaml`` and ``guidance.yaml`` are checked in full, and
      any other file only has to parse as YAML (the CLI checks the ICP, team and routing
      files itself);
    - a ``.j2`` file is linted on its own (syntax, variables, includes);
    - a directory is searched recursively for both (hidden dirs and ``.venv`` skipped).
    """
    findings: list[Finding] = []
    for path in paths:
        if path.is_dir():
            files = _walk(path, (".yaml", ".yml", ".j2"))
        elif path.exists():
            files = [path]
        else:
            findings.append(Finding(str(path), 1, 1, "no such file or directory"))
            continue
        for file in files:
            if file.name.endswith(".j2"):
                findings.extend(_validate_template_file(file, templates_dir))
            elif file.suffix in (".yaml", ".yml"):
                if _is_config(file) and file.name == "calendars.yaml":
                    findings.extend(_validate_calendars(file))
                elif _is_config(file) and file.name == "guidance.yaml":
                    findings.extend(_validate_guidance(file))
                elif _is_config(file):
                    findings.extend(_validate_yaml_only(file))
                else:
                    try:
                        cadence = load_cadence(file, templates_dir, calendars, guidance)
                    except CadenceError as exc:
                        findings.extend(exc.findings)
                    else:
                        if policy is not None:
                            findings.extend(policy(cadence))
            else:
                findings.append(
                    Finding(str(file), 1, 1, "not a cadence (.yaml), template (.j2) or directory")
                )
    return sorted(set(findings))
