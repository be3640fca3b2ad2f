"""Rows of one person in one file become one row: the merge rule for in-file duplicates.

Pure. A prospect file often holds the same person twice (two lists pasted
together, a colleague's extra row with the phone filled in). The importer
gathers the rows whose normalized email is the same and hands them here, in
file order, each as ``(line, raw values, normalized row)``:

* the first row's values are kept;
* a later row's non-empty value fills a value the earlier rows left empty, or
  one normalization could not use (an unreadable phone, an unknown country:
  what it set aside as ``<field>_raw``);
* a later value that means something else than the one kept is a
  :class:`Conflict`: the kept value stays and both lines are named. Values are
  compared as normalization reads them, so ``+98 912 123 4567`` and
  ``00989121234567``, ``Iran`` and ``IR``, ``asia/tehran`` and ``Asia/Tehran``
  are the same value.

The merged raw values are then normalized once more, as one row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from touchflow.domain.normalize import DERIVED, Normalized, checked_email
from touchflow.domain.prospects import STANDARD_FIELDS, normalize_email

__all__ = ["Conflict", "email_key", "merge_duplicates"]

# Standard fields a Normalized holds as attributes (email is the key, not merged).
_ATTRIBUTES = frozenset(STANDARD_FIELDS) - {"email"} | {"seniority", "department"}


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two rows of one person disagree on a field: the kept value and the one not taken."""

    email: str
    field: str
    kept: str
    kept_line: int
    other: str
    other_line: int

    def __str__(self) -> str:
        return (
            f"{self.email}: {self.field} differs between line {self.kept_line} "
            f"({self.kept!r}, kept) and line {self.other_line} ({self.other!r})"
        )


def email_key(text: str | None) -> str | None:
    """The email :func:`~touchflow.domain.normalize.normalize` would key a row on, or None.

    Cheap for plain ASCII text (trimmed, lower case: what normalization gives
    a valid address; an invalid one gets a key too, and its rows are refused
    later, never merged); other text goes through the full check. None when
    ``text`` is empty or a non-ASCII text that is not an address.
    """
    if text is None or not (stripped := text.strip()):
        return None
    if stripped.isascii() and '"' not in stripped:
        return normalize_email(stripped)
    try:
        return checked_email(stripped).normalized.lower()
    except ValueError:
        return None


def merge_duplicates(
    rows: Sequence[tuple[int, Mapping[str, str], Normalized]],
) -> tuple[dict[str, str], list[Conflict]]:
    """The raw values of one row standing for ``rows`` (one person, in file order), and
    the conflicts between them; see the module docstring."""
    first_line, first_values, first = rows[0]
    merged = {k: v for k, v in first_values.items() if v is not None and v.strip()}
    # For each kept value: the line it came from and what it means.
    origin: dict[str, tuple[int, str | None]] = {
        key: (first_line, _meaning(first, key, text)) for key, text in merged.items()
    }
    conflicts: list[Conflict] = []
    for line, values, row in rows[1:]:
        for key, text in values.items():
            if key == "email" or text is None or not text.strip():
                continue
            meaning = _meaning(row, key, text)
            if key not in merged:
                merged[key], origin[key] = text, (line, meaning)
                continue
            kept_line, kept_meaning = origin[key]
            if kept_meaning == meaning or meaning is None:
                continue  # the same value, or one that is no better than the kept one
            if kept_meaning is None:  # the kept value was unusable: this one fills it
                merged[key], origin[key] = text, (line, meaning)
                continue
            conflicts.append(
                Conflict(first.email, key, merged[key].strip(), kept_line, text.strip(), line)
            )
    return merged, conflicts


def _meaning(row: Normalized, key: str, text: str) -> str | None:
    """What ``text`` (the row's raw ``key``) came to mean, to compare; None if unusable."""
    if f"{key}_raw" in row.fields:
        return None  # set aside by normalization: no better than an empty value
    if key in _ATTRIBUTES:
        value = getattr(row, key)
        source = row.field_sources.get(key, {}).get("source")
        if value is not None and source != DERIVED:
            return str(value).casefold()
    elif key in row.fields:
        return " ".join(row.fields[key].split()).casefold()
    return " ".join(text.split()).casefold()
