"""Normalising and stemming what was said, the same way for tracker phrases and transcripts.

:func:`normalise` folds the surface differences a transcript and a hand-written phrase may
have: Unicode NFKC, case folding, punctuation (any Unicode punctuation or symbol becomes a
space, so ``"pricing?"``, ``"envoyez-moi"`` and ``"¿cuánto"`` split into plain words), and
for Arabic-script text the differences a Persian keyboard and a recogniser disagree on:
Arabic yeh and alef maksura (``ي``, ``ى``) become Persian yeh (``ی``), Arabic kaf (``ك``)
Persian kaf (``ک``), teh marbuta (``ة``) heh, hamza-carrying alefs plain alef; the
zero-width non-joiner (``قیمت‌ها`` -> ``قیمتها``), tatweel and the harakat are removed, and
Persian and Arabic-Indic digits become ASCII digits.

:class:`Stemmers` reduces each word to its stem with Snowball (``snowballstemmer``):
English, German, French, Spanish and about thirty other languages, so ``pricing``,
``prices`` and ``priced`` are all ``price`` and ``Preise``/``Preis`` are ``preis``. Stems
are then stripped of accents (``intéressé`` and ``interesse`` from a recogniser that drops
accents meet), which costs a few false friends and finds far more real mentions.

Persian: Snowball 3.1 added a Persian stemmer (``persian.sbl``), and ``snowballstemmer``
>= 3.1 ships it, so Persian gets Snowball too (``قیمتها``/``قیمتهای`` -> ``قیمت``). One
rule is added on top: a stem's final heh (``ه``) is dropped, because Snowball strips it
only when a suffix follows (``بودجه`` stays, ``بودجه‌ای`` becomes ``بودج``; ``جلسه`` stays,
``جلسات`` becomes ``جلس``): dropping it everywhere makes both forms meet. Pronominal
clitics (``قیمتش``, "its price") are not removed, because ``ش``/``م``/``ت`` at a word's end
are far more often part of the word; a tracker lists such forms as phrases of their own.

Stemming costs tens of microseconds a word in pure Python, so every stemmer memoises the
words it has seen (bounded): a call's vocabulary is small, and the automaton's lookup
then costs one dict access per word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import snowballstemmer

__all__ = [
    "CACHE_LIMIT",
    "LANGUAGES",
    "Stemmers",
    "language_of",
    "normalise",
    "strip_accents",
    "tokens",
]

#: Language codes a tracker may use (ISO 639-1) -> the Snowball algorithm that stems them.
LANGUAGES: dict[str, str] = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "fa": "persian",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "sv": "swedish",
    "da": "danish",
    "no": "norwegian",
    "fi": "finnish",
    "ru": "russian",
    "ar": "arabic",
    "tr": "turkish",
    "pl": "polish",
    "el": "greek",
    "hu": "hungarian",
    "ro": "romanian",
    "ca": "catalan",
    "cs": "czech",
    "id": "indonesian",
    "hi": "hindi",
}

_ARABIC_SCRIPT = str.maketrans(
    {
        "\u064a": "\u06cc",  # Arabic yeh -> Persian yeh
        "\u0649": "\u06cc",  # alef maksura -> Persian yeh
        "\u0643": "\u06a9",  # Arabic kaf -> Persian kaf
        "\u0629": "\u0647",  # teh marbuta -> heh
        "\u0623": "\u0627",  # alef with hamza above -> alef
        "\u0625": "\u0627",  # alef with hamza below -> alef
        "\u200c": None,  # zero-width non-joiner
        "\u200d": None,  # zero-width joiner
        "\u200e": None,  # left-to-right mark
        "\u200f": None,  # right-to-left mark
        "\u0640": None,  # tatweel
        **{chr(c): None for c in range(0x064B, 0x0660)},  # harakat (fathatan .. wavy hamza)
        "\u0670": None,  # superscript alef
        **{chr(0x06F0 + d): str(d) for d in range(10)},  # Persian digits
        **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
    }
)
# Anything that is not a letter, digit or whitespace (punctuation, symbols, underscore).
_NOT_WORD = re.compile(r"[^\w\s]|_")
_HEH = "\u0647"
#: A stemmer memoises at most this many words, then starts over.
CACHE_LIMIT = 100_000


def normalise(text: str) -> str:
    """``text`` folded for matching: NFKC, casefold, Arabic-script unification, no punctuation.

    Words are separated by single spaces; the result has no leading or trailing space.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    if not folded.isascii():  # the table only maps non-ASCII characters
        folded = folded.translate(_ARABIC_SCRIPT)
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def tokens(text: str) -> list[str]:
    """The words of ``text`` after :func:`normalise`."""
    return normalise(text).split()


def strip_accents(word: str) -> str:
    """``word`` without combining marks (``intéress`` -> ``interess``)."""
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


def language_of(code: str | None) -> str:
    """The primary subtag of a language tag, lower-case: ``"en-US"`` -> ``"en"``."""
    return (code or "").replace("_", "-").split("-", 1)[0].strip().lower()


def _persian(stem: Callable[[str], str]) -> Callable[[str], str]:
    def persian(word: str) -> str:
        out = stem(word)
        # Snowball drops a final heh only before a suffix; drop it always (module docstring).
        return out[:-1] if len(out) > 2 and out.endswith(_HEH) else out

    return persian


class Stemmers:
    """One memoising stemmer per language; unknown languages leave words as they are."""

    def __init__(self) -> None:
        self._stem: dict[str, Callable[[str], str]] = {}
        self._memo: dict[str, dict[str, str]] = {}

    def _stemmer(self, language: str) -> Callable[[str], str]:
        found = self._stem.get(language)
        if found is None:
            algorithm = LANGUAGES.get(language)
            if algorithm is None:
                found = str
            else:
                snowball = snowballstemmer.stemmer(algorithm)
                found = snowball.stemWord
                if language == "fa":
                    found = _persian(found)
            self._stem[language] = found
        return found

    def stem(self, language: str, word: str) -> str:
        """The accent-free stem of one normalised ``word`` in ``language``."""
        memo = self._memo.setdefault(language, {})
        out = memo.get(word)
        if out is None:
            if len(memo) >= CACHE_LIMIT:
                memo.clear()
            out = memo[word] = strip_accents(self._stemmer(language)(word))
        return out

    def stems(self, language: str, text: str) -> list[str]:
        """The stems of the words of ``text``."""
        return [self.stem(language, word) for word in tokens(text)]
