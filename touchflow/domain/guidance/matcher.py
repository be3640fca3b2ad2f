"""Every tracker phrase in one Aho-Corasick automaton over stemmed words (pure).

A phrase is its stems, one per word (:mod:`.text`). Each distinct ``(language, stem)`` gets
one character of its own, so a phrase becomes a short string of those characters and a
segment the string of its words' characters (a word no phrase uses becomes a space, which
no key holds). One ``pyahocorasick`` automaton holds the keys of all phrases and exclusions
of all trackers in all languages; matching a segment is one pass over a string as long as
the segment has words, whatever the number of trackers, and a match always starts and ends
on word boundaries because a character *is* a word. Languages do not collide: the same
stem in two languages has two characters.

A hit is suppressed when an exclusion phrase of the same tracker overlaps it (``"no budget
problem"`` excludes the ``"no budget"`` inside it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ahocorasick

from touchflow.domain.guidance.text import Stemmers, tokens

__all__ = ["Hit", "PhraseMatcher", "PhraseRule"]

# Characters for stems start here (past ASCII and Latin-1, which the space marker uses).
_FIRST_CODE = 0x100
_SURROGATES = range(0xD800, 0xE000)
_UNKNOWN = " "


@dataclass(frozen=True)
class PhraseRule:
    """One phrase of a tracker: ``exclude`` phrases suppress the tracker's hits they overlap."""

    tracker: str
    language: str
    phrase: str
    exclude: bool = False


@dataclass(frozen=True)
class Hit:
    """A tracker found in a text: the first phrase that matched, at words ``[start, end)``."""

    tracker: str
    phrase: str
    language: str
    start: int
    end: int


@dataclass(frozen=True)
class _Entry:
    tracker: str
    phrase: str
    language: str
    length: int
    exclude: bool


class PhraseMatcher:
    """Finds every tracker whose phrases a text contains, in one automaton pass per language.

    Build it once per guidance file (it is immutable after construction, apart from its
    word memo) and share it between calls.
    """

    def __init__(self, rules: Iterable[PhraseRule], stemmers: Stemmers | None = None) -> None:
        self._stemmers = stemmers or Stemmers()
        self._codes: dict[tuple[str, str], str] = {}
        # Per language: normalised word -> its character (stems no phrase uses -> space).
        self._memo: dict[str, dict[str, str]] = {}
        keys: dict[str, list[_Entry]] = {}
        languages: set[str] = set()
        for rule in rules:
            stems = self._stemmers.stems(rule.language, rule.phrase)
            if not stems:
                raise ValueError(f"phrase {rule.phrase!r} has no words")
            key = "".join(self._code(rule.language, stem) for stem in stems)
            entry = _Entry(rule.tracker, rule.phrase, rule.language, len(stems), rule.exclude)
            keys.setdefault(key, [])
            if entry not in keys[key]:
                keys[key].append(entry)
            languages.add(rule.language)
        self.languages: frozenset[str] = frozenset(languages)
        self._automaton = ahocorasick.Automaton()
        for key, entries in keys.items():
            self._automaton.add_word(key, tuple(entries))
        if keys:
            self._automaton.make_automaton()
        self._empty = not keys

    def _code(self, language: str, stem: str) -> str:
        code = self._codes.get((language, stem))
        if code is None:
            n = _FIRST_CODE + len(self._codes)
            if n >= _SURROGATES.start:
                n += len(_SURROGATES)
            code = self._codes[(language, stem)] = chr(n)
        return code

    def encode(self, words: Sequence[str], language: str) -> str:
        """The automaton's string for normalised ``words`` read in ``language``."""
        memo = self._memo.get(language)
        if memo is None:
            memo = self._memo[language] = {}
        out = []
        for word in words:
            code = memo.get(word)
            if code is None:
                if len(memo) >= 100_000:
                    memo.clear()
                stem = self._stemmers.stem(language, word)
                code = memo[word] = self._codes.get((language, stem), _UNKNOWN)
            out.append(code)
        return "".join(out)

    def match(self, text: str, languages: Iterable[str]) -> list[Hit]:
        """The trackers ``text`` mentions, read in each of ``languages``: one :class:`Hit` per
        tracker (its earliest phrase not overlapped by an exclusion), in the order they occur.
        """
        if self._empty:
            return []
        words = tokens(text)
        if not words:
            return []
        found: dict[str, list[tuple[int, int, _Entry]]] = {}
        excluded: dict[str, list[tuple[int, int]]] = {}
        for language in languages:
            if language not in self.languages:
                continue
            for last, entries in self._automaton.iter(self.encode(words, language)):
                for entry in entries:
                    start = last - entry.length + 1
                    if entry.exclude:
                        excluded.setdefault(entry.tracker, []).append((start, last + 1))
                    else:
                        found.setdefault(entry.tracker, []).append((start, last + 1, entry))
        hits = []
        for tracker, spans in found.items():
            blocked = excluded.get(tracker, ())
            kept = [
                (start, end, entry)
                for start, end, entry in spans
                if not any(start < b_end and b_start < end for b_start, b_end in blocked)
            ]
            if kept:
                start, end, entry = min(kept, key=lambda s: (s[0], -s[1], s[2].phrase))
                hits.append(Hit(tracker, entry.phrase, entry.language, start, end))
        hits.sort(key=lambda h: (h.start, h.tracker))
        return hits
