"""Text folding shared by the rules that match what people type (titles, country names).

Pure functions of the stdlib. Folding makes spellings of one word compare
equal: ``Geschäftsführer`` and ``Geschaftsfuhrer``, the Arabic ``مدير`` and the
Persian ``مدیر``, ``SVP, Marketing`` and ``svp marketing``.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold_letters", "fold_words"]

# Arabic letter variants and their Persian forms fold to one; tatweel (elongation) goes.
# Hamza seats (أ إ آ ؤ ئ) and diacritics are combining marks after NFKD and go with accents.
_ARABIC_TO_PERSIAN = str.maketrans(
    {"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ە": "ه", "\u0640": None}
)
_NON_WORD = re.compile(r"[\W_]+")


def fold_letters(text: str) -> str:
    """Strip accents and fold Arabic letter variants to Persian (case untouched)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
        text = text.translate(_ARABIC_TO_PERSIAN)
    return text


def fold_words(text: str) -> str:
    """Case-folded, letter-folded, every run of punctuation or spaces as one space."""
    return _NON_WORD.sub(" ", fold_letters(text.casefold())).strip()
