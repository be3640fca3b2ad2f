"""The after-call summary: trackers heard, checklist, talk ratio, monologue, questions (pure).

:func:`summarise` works on what a :class:`~touchflow.domain.guidance.session.CallSession`
kept (its final segments, tracker hits, cards and checklist); :class:`CallSummary` is a
plain dataclass with :meth:`~CallSummary.to_dict`/:meth:`~CallSummary.from_dict`, so the
store can keep it as JSON and the CRM activity, cadence conditions and scoring read it.

Estimates, because a segment has a start (``at``) but no length: a segment is taken to last
``words / words_per_second`` (2.5 words a second is ordinary conversational speech), cut
short where the next segment of the other speaker starts. A monologue is a run of
consecutive segments by one speaker (ordered by ``at``), from its first segment's start to
its last segment's estimated end. Talk ratio counts words.

Questions, per language: a sentence is a question when it ends in ``?`` (``؟`` in Persian),
holds ``¿`` (Spanish), starts with an interrogative word (who/what/when...; wer/was/wann...;
qui/quand/combien/est-ce...; accented qué/cuándo/cuánto...), starts with an auxiliary
followed by a pronoun (``do you``, ``haben Sie``), is a French inversion (``avez-vous``),
or, in Persian, where question words stay in place, holds ``آیا``, ``چرا``, ``چه``, ``کی``,
``کجا``, ``چطور``, ``چند``, ``کدام`` anywhere. Recognisers that do not punctuate (the
offline one) are why the words matter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from touchflow.domain.guidance.session import CallSession, CardFired, TrackerHit
from touchflow.domain.guidance.text import language_of, normalise
from touchflow.domain.transcripts import Speaker, TranscriptSegment

__all__ = [
    "CallSummary",
    "Monologue",
    "Question",
    "TalkRatio",
    "TrackerMoment",
    "TrackerSummary",
    "is_question",
    "summarise",
    "summarise_session",
    "summary_lines",
]

_SENTENCES = re.compile(r"(?<=[.!?؟。])\s+|[\n;]+")
_WH = {
    "en": {"who", "whom", "whose", "what", "when", "where", "why", "how", "which"},
    "de": {
        "wer", "wen", "wem", "wessen", "was", "wann", "wo", "woher", "wohin", "warum", "wieso",
        "weshalb", "wie", "welche", "welcher", "welches", "welchen", "womit", "wofür",
    },
    "fr": {
        "qui", "que", "quoi", "quand", "où", "pourquoi", "comment", "combien", "quel",
        "quelle", "quels", "quelles", "lequel", "laquelle",
    },
    "es": {"qué", "quién", "quiénes", "cuándo", "dónde", "cómo", "cuánto", "cuánta", "cuántos",
           "cuántas", "cuál", "cuáles", "adónde"},
}  # fmt: skip
_AUX = {
    "en": {"do", "does", "did", "is", "are", "was", "were", "can", "could", "would", "will",
           "should", "have", "has", "had", "may", "might", "shall", "am"},
    "de": {"haben", "hat", "hast", "habt", "hätten", "sind", "ist", "bist", "seid", "kann",
           "können", "könnten", "kannst", "wollen", "willst", "würden", "würde", "gibt", "darf",
           "dürfen", "möchten", "müssen", "muss", "sollen", "soll", "werden", "wird", "nutzen",
           "arbeiten", "planen"},
}  # fmt: skip
_PRONOUNS = {
    "en": {"you", "we", "they", "it", "i", "he", "she", "there", "that", "this", "your", "our"},
    "de": {"sie", "ihr", "du", "wir", "es", "man", "er"},
}
_OBJECTS = {"it", "this", "that"}
_FR_INVERSION = re.compile(r"\w+-(?:t-)?(?:vous|tu|ils?|elles?|on|nous)\b", re.IGNORECASE)
_FA_QUESTION = {"آیا", "چرا", "چه", "چی", "کی", "کجا", "چطور", "چگونه", "چند", "کدام", "مگر", "مگه"}


def is_question(sentence: str, language: str) -> bool:
    """Whether one sentence asks something (module docstring for the heuristics)."""
    stripped = sentence.strip()
    if not stripped:
        return False
    if stripped.endswith(("?", "؟")) or "¿" in stripped:
        return True
    words = normalise(stripped).split()
    if not words:
        return False
    lang = language_of(language)
    if lang == "fa":
        return any(word in _FA_QUESTION for word in words)
    if words[0] in _WH.get(lang, ()):
        return True
    if lang == "fr" and (stripped.lower().startswith("est-ce") or _FR_INVERSION.search(stripped)):
        return True
    if len(words) < 2 or words[0] not in _AUX.get(lang, ()):
        return False
    if lang == "en" and words[0] == "do" and words[1] in _OBJECTS:
        return False  # "do it now" is an order
    return words[1] in _PRONOUNS.get(lang, ())


def _sentences(text: str) -> list[str]:
    return [part for part in _SENTENCES.split(text) if part.strip()]


@dataclass(frozen=True)
class TrackerMoment:
    """One moment a tracker was heard."""

    at: datetime
    offset_s: float
    said_by: str
    phrase: str
    text: str


@dataclass(frozen=True)
class TrackerSummary:
    """A tracker heard on the call, and when."""

    tracker: str
    count: int
    moments: tuple[TrackerMoment, ...]


@dataclass(frozen=True)
class TalkRatio:
    """Who spoke how much, in words."""

    rep_words: int
    prospect_words: int
    rep_share: float
    prospect_share: float


@dataclass(frozen=True)
class Monologue:
    """The longest run of one speaker (estimated seconds; module docstring)."""

    said_by: str
    seconds: float
    start: datetime
    end: datetime
    segments: int
    words: int


@dataclass(frozen=True)
class Question:
    """A question asked on the call."""

    said_by: str
    at: datetime
    text: str


@dataclass(frozen=True)
class CallSummary:
    """Everything the task, the CRM activity, cadence conditions and scoring need."""

    call_sid: str
    started_at: datetime
    ended_at: datetime
    duration_s: float
    trackers: tuple[TrackerSummary, ...]
    cards: tuple[str, ...]
    checklist: dict[str, bool]
    talk: TalkRatio
    longest_monologue: Monologue | None
    questions_by_rep: int
    questions_by_prospect: int
    questions: tuple[Question, ...]

    def heard(self, tracker: str) -> bool:
        """Whether ``tracker`` was heard (for ``tracker('call-1', 'pricing')`` conditions)."""
        return any(t.tracker == tracker for t in self.trackers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 strings."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        out: dict[str, Any] = plain(asdict(self))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallSummary:
        """The inverse of :meth:`to_dict`."""
        at = datetime.fromisoformat
        mono = data.get("longest_monologue")
        return cls(
            call_sid=data["call_sid"],
            started_at=at(data["started_at"]),
            ended_at=at(data["ended_at"]),
            duration_s=float(data["duration_s"]),
            trackers=tuple(
                TrackerSummary(
                    t["tracker"],
                    int(t["count"]),
                    tuple(
                        TrackerMoment(
                            at(m["at"]), float(m["offset_s"]), m["said_by"], m["phrase"], m["text"]
                        )
                        for m in t["moments"]
                    ),
                )
                for t in data["trackers"]
            ),
            cards=tuple(data["cards"]),
            checklist=dict(data["checklist"]),
            talk=TalkRatio(**data["talk"]),
            longest_monologue=None
            if mono is None
            else Monologue(
                mono["said_by"],
                float(mono["seconds"]),
                at(mono["start"]),
                at(mono["end"]),
                int(mono["segments"]),
                int(mono["words"]),
            ),
            questions_by_rep=int(data["questions_by_rep"]),
            questions_by_prospect=int(data["questions_by_prospect"]),
            questions=tuple(
                Question(q["said_by"], at(q["at"]), q["text"]) for q in data["questions"]
            ),
        )


def _word_count(text: str) -> int:
    """Words as spoken: ``what's`` is one word (``normalise`` would split it in two)."""
    return sum(any(c.isalnum() for c in word) for word in text.split())


def _longest_monologue(
    segments: Sequence[TranscriptSegment], words_per_second: float
) -> Monologue | None:
    ordered = sorted(segments, key=lambda s: (s.at, s.track, s.seq))
    runs: list[list[TranscriptSegment]] = []
    for segment in ordered:
        if runs and runs[-1][0].said_by == segment.said_by:
            runs[-1].append(segment)
        else:
            runs.append([segment])
    best: Monologue | None = None
    for i, run in enumerate(runs):
        words = sum(_word_count(s.text) for s in run)
        start = run[0].at
        end = max(s.at + timedelta(seconds=_word_count(s.text) / words_per_second) for s in run)
        if i + 1 < len(runs):
            end = min(end, runs[i + 1][0].at)
        end = max(end, run[-1].at)
        seconds = (end - start).total_seconds()
        if best is None or seconds > best.seconds:
            best = Monologue(run[0].said_by.value, seconds, start, end, len(run), words)
    return best


def summarise(
    call_sid: str,
    started_at: datetime,
    ended_at: datetime,
    segments: Iterable[TranscriptSegment],
    hits: Iterable[TrackerHit],
    cards: Iterable[CardFired],
    checklist: Mapping[str, bool],
    *,
    words_per_second: float = 2.5,
) -> CallSummary:
    """The summary of a call from its final segments, hits, cards and checklist."""
    finals = [s for s in segments if s.final]
    moments: dict[str, list[TrackerMoment]] = {}
    for hit in sorted(hits, key=lambda h: (h.at, h.track, h.seq)):
        moments.setdefault(hit.tracker, []).append(
            TrackerMoment(
                hit.at,
                (hit.at - started_at).total_seconds(),
                hit.said_by.value,
                hit.phrase,
                hit.text,
            )
        )
    words = {Speaker.REP: 0, Speaker.PROSPECT: 0}
    questions: list[Question] = []
    for segment in sorted(finals, key=lambda s: (s.at, s.track, s.seq)):
        words[segment.said_by] += _word_count(segment.text)
        for sentence in _sentences(segment.text):
            if is_question(sentence, segment.language):
                questions.append(Question(segment.said_by.value, segment.at, sentence.strip()))
    total = words[Speaker.REP] + words[Speaker.PROSPECT]
    return CallSummary(
        call_sid=call_sid,
        started_at=started_at,
        ended_at=ended_at,
        duration_s=(ended_at - started_at).total_seconds(),
        trackers=tuple(
            TrackerSummary(tracker, len(found), tuple(found)) for tracker, found in moments.items()
        ),
        cards=tuple(card.tracker for card in cards),
        checklist=dict(checklist),
        talk=TalkRatio(
            words[Speaker.REP],
            words[Speaker.PROSPECT],
            round(words[Speaker.REP] / total, 4) if total else 0.0,
            round(words[Speaker.PROSPECT] / total, 4) if total else 0.0,
        ),
        longest_monologue=_longest_monologue(finals, words_per_second),
        questions_by_rep=sum(q.said_by == Speaker.REP.value for q in questions),
        questions_by_prospect=sum(q.said_by == Speaker.PROSPECT.value for q in questions),
        questions=tuple(questions),
    )


def summarise_session(
    session: CallSession, now: datetime | None = None, *, words_per_second: float = 2.5
) -> CallSummary:
    """:func:`summarise` of an ended session (or of a live one up to ``now``)."""
    ended = session.ended_at or now
    if ended is None:
        raise ValueError("a live call's summary needs now")
    return summarise(
        session.call_sid,
        session.started_at,
        ended,
        session.segments,
        session.hits,
        session.cards,
        session.checklist,
        words_per_second=words_per_second,
    )


def _clock(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def summary_lines(summary: CallSummary, *, max_questions: int = 10) -> list[str]:
    """The summary as plain text lines: ``touchflow task show`` and the CRM call activity.

    Trackers with the moments they were heard (minute:second into the call, who, what),
    the checklist, talk ratio, longest monologue and the questions asked.
    """
    lines = [f"Call {summary.call_sid}: {_clock(summary.duration_s)} long"]
    if summary.trackers:
        lines.append("Trackers heard:")
        for tracker in summary.trackers:
            lines.append(f"  {tracker.tracker} ({tracker.count}x)")
            for moment in tracker.moments:
                lines.append(f'    {_clock(moment.offset_s)} {moment.said_by}: "{moment.text}"')
    else:
        lines.append("Trackers heard: none")
    if summary.checklist:
        done = sum(summary.checklist.values())
        lines.append(f"Checklist ({done}/{len(summary.checklist)}):")
        for item, ticked in summary.checklist.items():
            lines.append(f"  [{'x' if ticked else ' '}] {item}")
    talk = summary.talk
    lines.append(
        f"Talk ratio: rep {talk.rep_share:.0%} ({talk.rep_words} words), "
        f"prospect {talk.prospect_share:.0%} ({talk.prospect_words} words)"
    )
    mono = summary.longest_monologue
    if mono is not None:
        lines.append(
            f"Longest monologue: {mono.said_by}, {mono.seconds:.0f} s "
            f"({mono.segments} segments, {mono.words} words)"
        )
    lines.append(
        f"Questions asked: {summary.questions_by_rep} by the rep, "
        f"{summary.questions_by_prospect} by the prospect"
    )
    for question in summary.questions[:max_questions]:
        offset = (question.at - summary.started_at).total_seconds()
        lines.append(f"  {_clock(offset)} {question.said_by}: {question.text}")
    if len(summary.questions) > max_questions:
        lines.append(f"  ... {len(summary.questions) - max_questions} more")
    return lines
