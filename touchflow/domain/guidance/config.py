"""``config/guidance.yaml``: trackers, cards and the call checklist, validated (pure).

The file format is documented in ``docs/guidance.md``. :func:`guidance_from_yaml`
validates a file's text and reports every mistake as ``file:line:col`` (unknown keys with a
"did you mean", a tracker naming a card that does not exist, a phrase with no words,
...); :func:`load_guidance` reads the file and compiles it into a :class:`Guidance`,
which holds the one automaton every call session of the process shares.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from touchflow.domain.guidance.matcher import PhraseMatcher, PhraseRule
from touchflow.domain.guidance.text import LANGUAGES, Stemmers, language_of, tokens
from touchflow.domain.model_findings import (
    findings_of,
    model_from_yaml,
    read_text,
    reported_as,
)
from touchflow.domain.yaml_source import YamlDocument, parse_yaml
from touchflow.errors import ConfigFileError, Finding

__all__ = [
    "CardSpec",
    "ChecklistItem",
    "Guidance",
    "GuidanceFile",
    "LinkSpec",
    "TrackerSpec",
    "guidance_findings",
    "guidance_from_yaml",
    "load_guidance",
    "score_event_warnings",
]

_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URL = re.compile(r"^(https?://[^\s/$.?#][^\s]*|/[^\s]*)$")


def _check_id(value: str) -> str:
    if not _KEBAB.match(value):
        raise ValueError(
            f"{value!r} must be kebab-case (lowercase letters and digits joined by '-')"
        )
    return value


def _check_language(value: str) -> str:
    if value in LANGUAGES:
        return value
    close = difflib.get_close_matches(language_of(value), list(LANGUAGES), n=1, cutoff=0.5)
    if language_of(value) in LANGUAGES:
        raise ValueError(f"{value!r}: write the language alone (did you mean {close[0]!r}?)")
    also = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(
        f"{value!r} is not a language touchflow can stem ({also}use one of {', '.join(LANGUAGES)})"
    )


_EVENT = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_event(value: str) -> str:
    if not _EVENT.match(value):
        raise ValueError(f"{value!r} must be lowercase_with_underscores (an icp.yaml event)")
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_phrase(value: str) -> str:
    if not tokens(value):
        raise ValueError(f"{value!r} has no words (punctuation and symbols are ignored)")
    return value


def _check_url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{value!r} is not a link: use an http(s) URL or a path starting with /")
    return value


Id = Annotated[str, AfterValidator(_check_id)]
Language = Annotated[str, AfterValidator(_check_language)]
Phrase = Annotated[str, AfterValidator(_check_phrase)]
Phrases = Annotated[list[Phrase], BeforeValidator(_one_or_many)]
Url = Annotated[str, AfterValidator(_check_url)]
ScoreEvent = Annotated[str, AfterValidator(_check_event)]
SaidBy = Literal["prospect", "rep", "anyone"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkSpec(_Model):
    """A link on a card: a battle card, a case study, the pricing page."""

    label: str = Field(min_length=1)
    url: Url


class CardSpec(_Model):
    """What the rep sees when a tracker fires: a title, Markdown text and links."""

    title: str = Field(min_length=1)
    text: str = ""
    links: list[LinkSpec] = Field(default_factory=list)


class TrackerSpec(_Model):
    """Phrases to listen for, who must say them, and the card they bring up.

    With ``not_said_within`` the tracker fires when its phrases were *not* said (by
    ``said_by``) within that many seconds of the call's start.
    """

    description: str | None = None
    phrases: dict[Language, Phrases] = Field(min_length=1)
    exclude: dict[Language, Phrases] = Field(default_factory=dict)
    said_by: SaidBy = "anyone"
    not_said_within: float | None = Field(default=None, gt=0)
    cooldown_s: float = Field(default=0, ge=0)
    max_per_call: int | None = Field(default=None, ge=1)
    priority: int = 0
    card: str | None = None
    #: The engagement event a call where this tracker was heard gives the prospect
    #: (``asked_for_pricing``): its points are in ``config/icp.yaml`` ``engagement.points``.
    score_event: ScoreEvent | None = None


class ChecklistItem(_Model):
    """One thing to cover on the call, ticked when its tracker is heard."""

    id: Id
    label: str = Field(min_length=1)
    tracker: str


class GuidanceFile(_Model):
    """``config/guidance.yaml``."""

    default_language: Language = "en"
    match_all_languages: bool = False
    partial_stability: float = Field(default=0.8, ge=0, le=1)
    reorder_timeout_s: float = Field(default=2.0, ge=0)
    trackers: dict[Id, TrackerSpec] = Field(default_factory=dict)
    cards: dict[Id, CardSpec] = Field(default_factory=dict)
    checklist: list[ChecklistItem] = Field(default_factory=list)

    def rules(self) -> Iterator[PhraseRule]:
        """Every phrase and exclusion of every tracker."""
        for tracker_id, tracker in self.trackers.items():
            for exclude, table in ((False, tracker.phrases), (True, tracker.exclude)):
                for language, phrases in table.items():
                    for phrase in phrases:
                        yield PhraseRule(tracker_id, language, phrase, exclude)


def _did_you_mean(value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _cross_findings(doc: YamlDocument, parsed: GuidanceFile) -> list[Finding]:
    """What one model cannot see: names that must point at a card or a tracker."""
    found = []
    cards = list(parsed.cards)
    trackers = list(parsed.trackers)
    for tracker_id, tracker in parsed.trackers.items():
        where = ("trackers", tracker_id)
        if tracker.card is not None and tracker.card not in parsed.cards:
            found.append(
                doc.finding(
                    (*where, "card"),
                    f"trackers.{tracker_id}.card: no card {tracker.card!r} in cards"
                    + _did_you_mean(tracker.card, cards),
                )
            )
        if tracker.not_said_within is not None and tracker.card is None:
            found.append(
                doc.finding(
                    (*where, "not_said_within"),
                    f"trackers.{tracker_id}: a not_said_within tracker needs a card "
                    "(it has nothing else to show)",
                    key=True,
                )
            )
        for language in tracker.exclude:
            if language not in tracker.phrases:
                found.append(
                    doc.finding(
                        (*where, "exclude", language),
                        f"trackers.{tracker_id}.exclude.{language}: no phrases in "
                        f"{language!r} to exclude from",
                        key=True,
                    )
                )
    seen: dict[str, int] = {}
    for i, item in enumerate(parsed.checklist):
        if item.tracker not in parsed.trackers:
            found.append(
                doc.finding(
                    ("checklist", i, "tracker"),
                    f"checklist[{i}].tracker: no tracker {item.tracker!r} in trackers"
                    + _did_you_mean(item.tracker, trackers),
                )
            )
        if item.id in seen:
            line, _ = doc.position_for(("checklist", seen[item.id], "id"))
            found.append(
                doc.finding(
                    ("checklist", i, "id"),
                    f"checklist[{i}].id: {item.id!r} is already an item (line {line})",
                )
            )
        seen.setdefault(item.id, i)
    return found


@reported_as(ConfigFileError)
def guidance_from_yaml(text: str, path: str = "config/guidance.yaml") -> GuidanceFile:
    """Validate ``guidance.yaml`` text; raises ConfigFileError with every ``file:line:col``."""
    return model_from_yaml(
        GuidanceFile, text, path,
        not_a_mapping="guidance.yaml must be a mapping: trackers:", empty_is_default=True,
        checks=_cross_findings,
    )[0]  # fmt: skip


def guidance_findings(text: str, path: str) -> list[Finding]:
    """Every problem of a ``guidance.yaml`` text (empty when it is valid)."""
    return findings_of(guidance_from_yaml, text, path)


def score_event_warnings(
    text: str, path: str, points: Collection[str], icp_path: str
) -> list[Finding]:
    """Warnings for ``score_event`` names ``config/icp.yaml`` gives no points to.

    A warning, not an error: the event is recorded after every call all the same and
    counts as soon as icp.yaml gives it points. Empty when the guidance file is invalid
    (its own findings say why).
    """
    try:
        parsed = guidance_from_yaml(text, path)
    except ConfigFileError:
        return []
    doc = parse_yaml(text, path)
    known = sorted(points)
    found = []
    for tracker_id, tracker in parsed.trackers.items():
        event = tracker.score_event
        if event is not None and event not in points:
            finding = doc.finding(
                ("trackers", tracker_id, "score_event"),
                f"trackers.{tracker_id}.score_event: {event!r} has no points in "
                f"{icp_path} engagement.points{_did_you_mean(event, known)}: it scores nothing",
            )
            found.append(replace(finding, severity="warning"))
    return found


@dataclass(frozen=True)
class Guidance:
    """A validated guidance file and its compiled matcher; shared by every call session."""

    file: GuidanceFile
    matcher: PhraseMatcher

    @classmethod
    def compile(cls, file: GuidanceFile, stemmers: Stemmers | None = None) -> Guidance:
        """Build the automaton of ``file``'s phrases (once per process, not per call)."""
        return cls(file, PhraseMatcher(file.rules(), stemmers))

    def languages_for(self, language: str | None) -> tuple[str, ...]:
        """The languages a segment in ``language`` is read in.

        Every language with phrases when ``match_all_languages``; else the segment's own
        (its primary subtag: ``en-US`` is ``en``) when trackers use it, else the default.
        """
        if self.file.match_all_languages:
            return tuple(sorted(self.matcher.languages))
        own = language_of(language)
        return (own if own in self.matcher.languages else self.file.default_language,)


def load_guidance(path: Path) -> Guidance:
    """Read, validate and compile ``config/guidance.yaml``; ConfigFileError on any finding."""
    with reported_as(ConfigFileError):
        text = read_text(path)
    return Guidance.compile(guidance_from_yaml(text, str(path)))
