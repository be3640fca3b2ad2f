"""Every tracker phrase in one Aho-Corasick automaton over stemmed words (pure).

A phrase is its stems, one per word (:mod:`.text`). Each distinct ``(language, stem)`` gets
a number of its own, written as two characters (two "digits", each position with its own
alphabet), so a phrase becomes a short string and a segment the string of its words' codes
(a word no phrase uses gets a code no key holds). One ``pyahocorasick`` automaton holds the
keys of all phrases and exclusions of all trackers in all languages; matching a segment is
one pass over a string twice as long as the segment has words, whatever the number of
trackers. A match always starts and ends on word boundaries: a key starts with a first-digit
character, which only ever stands at the start of a word's code. Languages do not collide:
the same stem in two languages has two codes.

Why two characters and not one: pyahocorasick finds a node's child by scanning its
children, and with one character per stem the root has one child per distinct stem (tens of
thousands for 1,000 trackers in five languages), which made a 20-word segment cost ~100 µs;
two digits of base sqrt(stems) keep every node under a few hundred children (~6 µs).

A hit is suppressed when an exclusion phrase of the same tracker overlaps it (``"no budget
problem"`` excludes the ``"no budget"`` inside it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ahocorasick

from touchflow.domain.guidance.text import CACHE_LIMIT, Stemmers, tokens

__all__ = ["Hit", "PhraseMatcher", "PhraseRule"]

# Code characters start past ASCII and Latin-1.
_FIRST_CODE = 0x100


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
        ids: dict[tuple[str, str], int] = {}
        phrases: list[tuple[PhraseRule, list[int]]] = []
        for rule in rules:
            stems = self._stemmers.stems(rule.language, rule.phrase)
            if not stems:
                raise ValueError(f"phrase {rule.phrase!r} has no words")
            numbers = [ids.setdefault((rule.language, stem), len(ids)) for stem in stems]
            phrases.append((rule, numbers))
        # Two digits of base `base`; the first digit `base` is reserved for unknown words.
        self._base = base = max(2, math.isqrt(len(ids)) + 1)
        self._unknown = chr(_FIRST_CODE + base) + chr(_FIRST_CODE + base + 1)
        self._codes = {key: self._code(number) for key, number in ids.items()}
        # Per language: normalised word -> its code.
        self._memo: dict[str, dict[str, str]] = {}
        keys: dict[str, list[_Entry]] = {}
        for rule, numbers in phrases:
            key = "".join(self._code(number) for number in numbers)
            entry = _Entry(rule.tracker, rule.phrase, rule.language, len(numbers), rule.exclude)
            entries = keys.setdefault(key, [])
            if entry not in entries:
                entries.append(entry)
        self.languages: frozenset[str] = frozenset(rule.language for rule, _ in phrases)
        self._automaton = ahocorasick.Automaton()
        for key, found in keys.items():
            self._automaton.add_word(key, tuple(found))
        if keys:
            self._automaton.make_automaton()
        self._empty = not keys

    def _code(self, number: int) -> str:
        high, low = divmod(number, self._base)
        # First digits: [FIRST, FIRST + base] (base: unknown); second: from FIRST + base + 1.
        return chr(_FIRST_CODE + high) + chr(_FIRST_CODE + self._base + 1 + low)

    def encode(self, words: Sequence[str], language: str) -> str:
        """The automaton's string for normalised ``words`` read in ``language``."""
        memo = self._memo.get(language)
        if memo is None:
            memo = self._memo[language] = {}
        out = []
        for word in words:
            code = memo.get(word)
            if code is None:
                if len(memo) >= CACHE_LIMIT:
                    memo.clear()
                stem = self._stemmers.stem(language, word)
                code = memo[word] = self._codes.get((language, stem), self._unknown)
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
            for last_char, entries in self._automaton.iter(self.encode(words, language)):
                last = last_char // 2  # two characters a word
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
