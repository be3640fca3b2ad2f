"""Streaming prospect import: CSV, JSONL or Excel of any size -> normalize -> merge -> store.

::

    file --(reader: CSV dialect sniffed, BOM-safe, any encoding | JSONL one object
            a line | .xlsx first sheet)--> records
         --(column mapping)--> {touchflow field: text}
         --(touchflow.domain.normalize)--> Normalized | Rejection
         --(rows of one email merged: touchflow.domain.duplicates)--> batches of 2,000
         --(phones without a country code read in their account's country)
         --(store.intake.load_batch, one transaction per batch)--> accounts, prospects

The file is read twice: once for its email column alone, to learn which
emails repeat and on which line each appears last, then for the rows. A row
whose email is not repeated goes straight to the batch; the rows of a repeated
email are held until its last line, then merged into one (later non-empty
values fill earlier empty ones; a value that contradicts the kept one is a
conflict, reported with both line numbers, see
:mod:`touchflow.domain.duplicates`). So only the current batch, the held rows
and the repeated emails are kept in memory, never the file. Every row is
accounted for in :class:`ImportSummary`::

    rows_read == new + updated + unchanged + duplicates + sum(rejected.values())

(``duplicates``: rows merged into an earlier row of the same email.)

CSV files are read as UTF-8 (a BOM is skipped; a UTF-16 BOM means UTF-16)
unless ``encoding`` names another codec: a CSV that Excel saved on a Persian
or Arabic Windows is ``cp1256``. Excel workbooks (``.xlsx``, read by
``openpyxl``) are read from their first sheet, header first; numbers stored
as numbers come back without a trailing ``.0`` (a phone typed as a number),
dates in ISO 8601. Other formats (``.xls``, ``.ods``...) are refused with
:class:`~touchflow.errors.ImportFormatError` naming the ones touchflow reads.

A phone that could not be read for want of a country (``phone_raw``) is read
again in its account's country when the account has one, here and when
enrichment later fills the country (:mod:`touchflow.services.enrichment`).

A row that cannot be loaded goes to the rejects file (same format as the
input, with ``_line`` and ``_reason`` first; a CSV keeps the input's
delimiter, encoding and bytes, so undecodable rows come back as they were;
a workbook's rejects are a UTF-8 CSV) and the good rows still load. A fixed
rejects file can be imported as it is: ``_line`` and ``_reason`` columns are
ignored on input. Reason codes: those of
:class:`touchflow.domain.normalize.Rejection` plus ``ragged_row`` (a CSV row whose
cell count differs from the header's), ``csv_error`` (a row the csv module
cannot read, such as a field over 128 KiB), ``invalid_json``,
``not_an_object`` and ``line_too_long`` (JSONL).

Importing the same file again changes nothing (every row is ``unchanged``);
the store's merge rules are in :mod:`touchflow.store.intake`.

The column mapping (``--map FILE``) is YAML whose keys are touchflow fields
and whose values are the file's column names::

    email: E-Mail Address
    company: Account Name
    linkedin_url: LinkedIn      # not a standard field: kept in fields

Company domain aliases (``config/domain_aliases.yaml``) map an alias domain
to the primary one, so contacts at ``acme.co.uk`` and ``acme.com`` share one
account; see :func:`load_aliases`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import multiprocessing
import os
import re
import zipfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import IO, Any, Literal

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import Connection, Engine

from touchflow.domain.duplicates import email_key, merge_duplicates
from touchflow.domain.normalize import (
    DERIVED,
    Normalized,
    Rejection,
    is_free_mail,
    normalize,
    normalize_domain,
    reread_phone,
)
from touchflow.domain.yaml_source import YamlDocument, parse_yaml
from touchflow.errors import (
    ConfigError,
    ConfigFileError,
    Finding,
    FindingsError,
    ImportFileError,
    ImportFormatError,
)
from touchflow.store.intake import IntakeCounts, account_countries, load_batch

__all__ = [
    "ImportSummary",
    "load_aliases",
    "load_mapping",
    "read_prospects",
    "resolve_aliases",
    "run_import",
]

Format = Literal["csv", "jsonl", "xlsx"]

#: Columns of a rejects file, ignored when a file is imported.
RESERVED_COLUMNS = frozenset({"_line", "_reason"})
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
}
#: The formats, as an error message names them.
SUPPORTED_FORMATS = "CSV (.csv, .tsv, .txt), JSON Lines (.jsonl, .ndjson), Excel (.xlsx)"
_SNIFF_BYTES = 64 * 1024
_MAX_JSON_LINE = 1024 * 1024
_MAX_WARNING_LINES = 100
_DELIMITERS = ",;\t|"
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass
class ImportSummary:
    """What an import did. ``elapsed`` is wall-clock seconds."""

    path: Path
    format: Format
    source: str
    rows_read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Rows merged into an earlier row of the same email.
    duplicates: int = 0
    #: Fields on which rows of one email disagreed (the earlier value was kept).
    conflicts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    #: The first warnings, as ``"line 12: invalid_phone: ..."``.
    warning_lines: list[str] = field(default_factory=list)
    #: The first conflicts, as ``"ann@acme.com: title differs between line 3 (...) and ..."``.
    conflict_lines: list[str] = field(default_factory=list)
    accounts_created: int = 0
    bytes_read: int = 0
    elapsed: float = 0.0
    #: Where rejected rows were written; None when no row was rejected or no path given.
    rejects_path: Path | None = None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        text = (
            f"imported {self.path.name}: {self.new} new, {self.updated} updated, "
            f"{self.rejected_total} rejected"
        )
        if self.rejected:
            reasons = ", ".join(f"{k} {v}" for k, v in self.rejected.most_common())
            text += f" ({reasons})"
        text += f", {self.unchanged} unchanged, {self.duplicates} duplicates merged"
        if self.conflicts:
            text += f" ({self.conflicts} conflicts)"
        text += f" of {self.rows_read} rows"
        text += f"; {self.accounts_created} accounts created"
        if self.warnings:
            text += "; warnings: " + ", ".join(f"{k} {v}" for k, v in self.warnings.most_common())
        return text + f"; {self.elapsed:.1f}s ({self.rows_per_second:,.0f} rows/s)"


def run_import(
    engine: Engine,
    path: Path | str,
    *,
    fmt: Format | None = None,
    mapping: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
    rejects_path: Path | str | None = None,
    batch_size: int = 2000,
    now: datetime,
    source_label: str | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    encoding: str | None = None,
) -> ImportSummary:
    """Import prospects from a CSV, JSONL or .xlsx file; see the module docstring.

    ``fmt`` defaults from the suffix (``.csv``, ``.tsv``, ``.txt``: CSV;
    ``.jsonl``, ``.ndjson``: JSONL; ``.xlsx``: Excel). ``encoding`` is a CSV
    file's text encoding (a Python codec name such as ``cp1256``; default
    UTF-8). ``mapping`` maps a source column to a touchflow field
    (:func:`load_mapping` reads one from YAML); ``aliases`` maps alias company
    domains to primary ones (:func:`load_aliases`). Rejected rows go to
    ``rejects_path`` (created, or overwritten, at the first rejected row).
    Each batch of ``batch_size`` rows is one transaction. ``progress`` is
    called after each batch with the number of bytes of the file read so far
    (the file's size at the end).

    ``workers`` processes normalize rows while this one reads and stores
    them (normalization is most of the CPU); by default one for files over
    ``PARALLEL_FROM_BYTES`` on a machine with more than one core, none for
    small files (starting a process costs more than it saves).

    Raises :class:`ImportFormatError` for a format or encoding touchflow does
    not read, :class:`ImportFileError` when the file cannot be imported at all.
    """
    path = Path(path)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    fmt = _checked_format(path, fmt, encoding)
    label = source_label or f"import:{path.name}"
    table = resolve_aliases(aliases) if aliases else {}
    columns = {k.strip().lower(): v.strip().lower() for k, v in (mapping or {}).items()}
    summary = ImportSummary(path=path, format=fmt, source=label)
    started = perf_counter()
    # Pass one: which emails repeat, and the line each appears on last.
    with _open_source(path, fmt, columns, encoding) as first_pass:
        last_lines = _repeated_emails(first_pass)
    ends = {line: email for email, line in last_lines.items()}
    held: dict[str, list[tuple[int, dict[str, str], Normalized]]] = {}
    source = _open_source(path, fmt, columns, encoding)
    batch: list[tuple[int, Normalized]] = []
    totals = IntakeCounts()

    def flush() -> None:
        if batch:
            rows = [row for _, row in batch]
            with engine.begin() as conn:
                _read_phones_in_account_countries(conn, rows)
                totals.add(load_batch(conn, rows, now))
            for line, row in batch:
                for issue in row.warnings:
                    summary.warnings[issue.code] += 1
                    if len(summary.warning_lines) < _MAX_WARNING_LINES:
                        summary.warning_lines.append(f"line {line}: {issue}")
            batch.clear()
        summary.bytes_read = source.position()
        if progress is not None:
            progress(summary.bytes_read)

    def add(line: int, row: Normalized) -> None:
        batch.append((line, row))
        if len(batch) >= batch_size:
            flush()

    if workers is None:
        big = path.stat().st_size >= PARALLEL_FROM_BYTES
        workers = 1 if big and (os.cpu_count() or 1) > 1 else 0
    with source, _RejectsWriter(rejects_path, source) as rejects:
        for record, result in _normalized(source, table, label, workers):
            summary.rows_read += 1
            if isinstance(result, Rejection):
                summary.rejected[result.code] += 1
                rejects.write(record, str(result))
            elif result.email in last_lines:
                held.setdefault(result.email, []).append((record.line, record.values, result))
            else:
                add(record.line, result)
            # A repeated email's last line (even a rejected one) completes its rows.
            done = ends.pop(record.line, None)
            if done is not None and (rows := held.pop(done, None)):
                add(rows[0][0], _merged(rows, table, label, summary))
        flush()
        summary.rejects_path = rejects.path if rejects.written else None
    summary.new, summary.updated = totals.new, totals.updated
    summary.unchanged, summary.accounts_created = totals.unchanged, totals.accounts_created
    summary.elapsed = perf_counter() - started
    return summary


def _repeated_emails(source: Iterable[_Record]) -> dict[str, int]:
    """``{email: line of its last row}`` for every email on more than one readable row."""
    last: dict[str, int] = {}
    repeated: set[str] = set()
    for record in source:
        if record.rejection is None and (key := email_key(record.values.get("email"))):
            if key in last:
                repeated.add(key)
            last[key] = record.line
    return {key: last[key] for key in repeated}


def _merged(
    rows: list[tuple[int, dict[str, str], Normalized]],
    aliases: Mapping[str, str],
    label: str,
    summary: ImportSummary,
) -> Normalized:
    """The held rows of one email as one row; their conflicts counted in ``summary``."""
    if len(rows) == 1:
        return rows[0][2]
    values, conflicts = merge_duplicates(rows)
    summary.duplicates += len(rows) - 1
    summary.conflicts += len(conflicts)
    for conflict in conflicts:
        if len(summary.conflict_lines) < _MAX_WARNING_LINES:
            summary.conflict_lines.append(str(conflict))
    merged = normalize(values, aliases=aliases, source=label)
    # Every value came from a row that normalized; should the whole still be refused,
    # the first row stands for the person rather than losing them.
    return merged if isinstance(merged, Normalized) else rows[0][2]


def _read_phones_in_account_countries(conn: Connection, rows: list[Normalized]) -> None:
    """Read again, in their account's country, phones set aside for want of a country."""
    waiting = [
        row
        for row in rows
        if row.phone is None and row.country is None and row.domain and "phone_raw" in row.fields
    ]
    if not waiting:
        return
    countries = account_countries(conn, {row.domain for row in waiting if row.domain})
    for row in waiting:
        country = countries.get(row.domain or "")
        if country is None:
            continue
        found = reread_phone(row.fields["phone_raw"], country, row.timezone)
        if found is None:
            continue
        row.phone, zone = found
        row.field_sources["phone"] = row.field_sources.pop("phone_raw", {"source": DERIVED})
        del row.fields["phone_raw"]
        row.country = country
        row.field_sources["country"] = {"source": DERIVED}
        if zone is not None:
            row.timezone = zone
            row.field_sources["timezone"] = {"source": DERIVED}
        row.warnings = tuple(w for w in row.warnings if w.code != "invalid_phone")


#: Files at least this big are normalized in a worker process by default.
PARALLEL_FROM_BYTES = 8 * 1024 * 1024
_CHUNK_ROWS = 1000
_IN_FLIGHT = 4  # chunks queued per worker: bounded memory, however big the file

_worker_aliases: Mapping[str, str] = {}
_worker_label = ""


def _init_worker(aliases: Mapping[str, str], label: str) -> None:
    global _worker_aliases, _worker_label
    _worker_aliases, _worker_label = aliases, label


def _normalize_chunk(values: list[dict[str, str]]) -> list[Normalized | Rejection]:
    return [normalize(v, aliases=_worker_aliases, source=_worker_label) for v in values]


def read_prospects(
    path: Path | str,
    *,
    fmt: Format | None = None,
    mapping: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> Iterator[tuple[int, Normalized | Rejection]]:
    """Each row of a prospect file as ``import`` reads it: ``(line, prospect or rejection)``.

    The same readers (delimiter and encoding sniffing, ``encoding``, Excel,
    column map) and the same normalization as :func:`run_import`, without
    storing anything and without merging rows of one email: ``simulate`` and
    ``enroll --prospects`` read files through it, so a file either command
    accepts is a file ``import`` accepts. Raises :class:`ImportFormatError`
    or :class:`ImportFileError` when the file cannot be read at all.
    """
    path = Path(path)
    fmt = _checked_format(path, fmt, encoding)
    table = resolve_aliases(aliases) if aliases else {}
    columns = {k.strip().lower(): v.strip().lower() for k, v in (mapping or {}).items()}
    with _open_source(path, fmt, columns, encoding) as source:
        for record, result in _normalized(source, table, f"file:{path.name}", 0):
            yield record.line, result


def _normalized(
    source: Iterable[_Record], aliases: Mapping[str, str], label: str, workers: int
) -> Iterator[tuple[_Record, Normalized | Rejection]]:
    """Each record with its normalization (or the reader's rejection), in file order."""
    if workers < 1:
        for record in source:
            yield (
                record,
                record.rejection or normalize(record.values, aliases=aliases, source=label),
            )
        return
    # spawn, not fork: the caller may be a threaded process (a Prefect worker).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, ctx, initializer=_init_worker,
                             initargs=(dict(aliases), label)) as pool:  # fmt: skip
        pending: deque[tuple[list[_Record], Future[list[Normalized | Rejection]]]] = deque()
        chunk: list[_Record] = []

        def submit() -> None:
            todo = [r.values for r in chunk if r.rejection is None]
            pending.append((list(chunk), pool.submit(_normalize_chunk, todo)))
            chunk.clear()

        def emit() -> Iterator[tuple[_Record, Normalized | Rejection]]:
            records, future = pending.popleft()
            results = iter(future.result())
            for r in records:
                yield r, r.rejection or next(results)

        for record in source:
            chunk.append(record)
            if len(chunk) >= _CHUNK_ROWS:
                submit()
                while len(pending) > _IN_FLIGHT * workers:
                    yield from emit()
        if chunk:
            submit()
        while pending:
            yield from emit()


def _checked_format(path: Path, fmt: str | None, encoding: str | None) -> Format:
    """The file's format (given, else from its suffix) and a usable ``encoding``, or why not."""
    if fmt is None:
        found = _SUFFIXES.get(path.suffix.lower())
        if found is None:
            what = f"a {path.suffix} file" if path.suffix else "a file without a suffix"
            raise ImportFormatError(
                f"{path}: touchflow cannot read {what}; it reads {SUPPORTED_FORMATS}"
            )
        fmt = found
    if fmt not in ("csv", "jsonl", "xlsx"):
        raise ImportFormatError(f"{path}: unknown format {fmt!r} (csv, jsonl or xlsx)")
    if encoding is not None:
        if fmt != "csv":
            raise ImportFormatError(
                f"{path}: an encoding applies to CSV files only "
                "(JSON Lines are UTF-8, a workbook carries its own)"
            )
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ImportFormatError(
                f"unknown text encoding {encoding!r} (for example utf-8, cp1256, utf-16, latin-1)"
            ) from None
    return fmt  # type: ignore[return-value]  # checked against Format just above


def _open_source(
    path: Path, fmt: Format, mapping: Mapping[str, str], encoding: str | None
) -> _Source:
    if fmt == "csv":
        return _CsvSource(path, mapping, encoding)
    if fmt == "xlsx":
        return _XlsxSource(path, mapping)
    return _JsonlSource(path, mapping)


# -- readers -----------------------------------------------------------------


@dataclass(slots=True)
class _Record:
    line: int
    values: dict[str, str]
    raw: Any  # CSV: the cells; JSONL: the object, or the line's text
    rejection: Rejection | None = None


class _Source:
    """A file of records; a context manager that closes it."""

    path: Path
    _fh: IO[bytes]

    def __iter__(self) -> Iterator[_Record]:  # pragma: no cover - abstract
        raise NotImplementedError

    def position(self) -> int:
        return self._fh.tell() if not self._fh.closed else 0

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> _Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _target(name: str, mapping: Mapping[str, str]) -> str | None:
    key = name.strip().lower()
    if not key or key in RESERVED_COLUMNS:
        return None
    return mapping.get(key, key)


def _header_targets(path: Path, header: list[str], mapping: Mapping[str, str]) -> list[str | None]:
    """The touchflow field of each header column (None: ignored); ImportFileError if unusable."""
    targets: list[str | None] = []
    where: dict[str, str] = {}
    for name in header:
        target = _target(name, mapping)
        if target is not None and target in where:
            raise ImportFileError(
                f"{path}:1: columns {where[target]!r} and {name!r} both give {target!r}"
            )
        if target is not None:
            where[target] = name
        targets.append(target)
    if "email" not in where:
        mapped = [s for s, t in mapping.items() if t == "email"]
        hint = f" (the mapping names {mapped[0]!r})" if mapped else ""
        raise ImportFileError(f"{path}:1: no email column{hint}; the header is {', '.join(header)}")
    return targets


def _csv_encoding(path: Path, encoding: str | None) -> str:
    """The codec a CSV is read with: ``encoding``, else UTF-16 after its BOM, else UTF-8."""
    if encoding is None:
        with open(path, "rb") as fh:
            start = fh.read(2)
        return "utf-16" if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    # A BOM is not data whoever named the encoding.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


class _CsvSource(_Source):
    """A CSV file: header first, dialect sniffed, read with ``surrogateescape``.

    Undecodable bytes become lone surrogates, which normalize refuses as
    ``invalid_utf8`` and the rejects writer turns back into the same bytes.
    """

    def __init__(self, path: Path, mapping: Mapping[str, str], encoding: str | None) -> None:
        self.path = path
        self.encoding = _csv_encoding(path, encoding)
        with open(path, "rb") as fh:
            sample = fh.read(_SNIFF_BYTES).decode(self.encoding, errors="replace")
        self.delimiter = _sniff_delimiter(sample, mapping)
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        self._text = io.TextIOWrapper(
            self._fh, encoding=self.encoding, errors="surrogateescape", newline=""
        )
        self._reader = csv.reader(self._text, delimiter=self.delimiter)
        try:
            header = next(self._reader, None)
            if not header:
                raise ImportFileError(f"{path}: the file is empty (a header row is required)")
            self.header = header
            self.targets = _header_targets(path, header, mapping)
        except csv.Error as exc:
            self._fh.close()
            raise ImportFileError(f"{path}:1: cannot read the header: {exc}") from None
        except ImportFileError:
            self._fh.close()
            raise

    def __iter__(self) -> Iterator[_Record]:
        reader, targets = self._reader, self.targets
        width = len(targets)
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _Record(line, {}, [], Rejection("csv_error", f"unreadable row: {exc}"))
                continue
            if not any(cells):
                continue  # a blank line
            if len(cells) != width:
                why = f"the row has {len(cells)} cells, the header has {width}"
                yield _Record(line, {}, cells, Rejection("ragged_row", why))
                continue
            values = {t: c for t, c in zip(targets, cells, strict=True) if t is not None}
            yield _Record(line, values, cells)


class _XlsxSource(_Source):
    """The first sheet of an Excel workbook: header row first, cells as text.

    Rows are numbered as Excel numbers them. A row shorter than the header is
    padded (Excel leaves trailing empty cells out); one with values beyond the
    header is ``ragged_row``.
    """

    def __init__(self, path: Path, mapping: Mapping[str, str]) -> None:
        self.path = path
        self._size = path.stat().st_size
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        try:
            self._book = openpyxl.load_workbook(self._fh, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
            self._fh.close()
            raise ImportFileError(f"{path}: not a readable Excel .xlsx workbook ({exc})") from None
        sheet = self._book.worksheets[0]
        self._rows_total = sheet.max_row or 0
        self._row = 0
        self._rows = sheet.iter_rows(values_only=True)
        first = next(self._rows, None)
        header = [_cell_text(c) for c in first or ()]
        while header and not header[-1].strip():
            header.pop()
        try:
            if not header:
                raise ImportFileError(
                    f"{path}: the first sheet is empty (a header row is required)"
                )
            self.header = header
            self.targets = _header_targets(path, header, mapping)
        except ImportFileError:
            self.close()
            raise

    def __iter__(self) -> Iterator[_Record]:
        targets = self.targets
        width = len(targets)
        for line, row in enumerate(self._rows, start=2):
            self._row = line
            cells = [_cell_text(c) for c in row]
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > width:
                if any(c.strip() for c in cells[width:]):
                    why = f"the row has values in {len(cells)} columns, the header has {width}"
                    yield _Record(line, {}, cells, Rejection("ragged_row", why))
                    continue
                cells = cells[:width]
            cells += [""] * (width - len(cells))
            values = {t: c for t, c in zip(targets, cells, strict=True) if t is not None}
            yield _Record(line, values, cells)

    def position(self) -> int:
        # A workbook is a zip read out of order: progress by rows instead of bytes.
        if self._fh.closed or not self._rows_total:
            return 0
        return min(self._size, self._size * self._row // self._rows_total)

    def close(self) -> None:
        self._book.close()
        super().close()


def _cell_text(value: Any) -> str:
    """A workbook cell as the text a CSV would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone or an id typed as a number
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _sniff_delimiter(sample: str, mapping: Mapping[str, str]) -> str:
    """The delimiter under which the header has an email column (and the most columns)."""
    if (cut := sample.rfind("\n")) > 0:
        sample = sample[:cut]
    header_line = next((line for line in sample.splitlines() if line.strip()), "")
    try:
        sniffed: str | None = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    order = [d for d in (sniffed, *_DELIMITERS) if d is not None]
    best, best_width = sniffed or ",", 0
    for delimiter in dict.fromkeys(order):
        names = next(csv.reader([header_line], delimiter=delimiter), [])
        if "email" in {_target(n, mapping) for n in names} and len(names) > best_width:
            best, best_width = delimiter, len(names)
    return best


class _JsonlSource(_Source):
    """JSON Lines: one object per line, read as bytes so a bad line is only that line."""

    def __init__(self, path: Path, mapping: Mapping[str, str]) -> None:
        self.path = path
        self._mapping = mapping
        self._targets: dict[str, str | None] = {}
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by __exit__

    def __iter__(self) -> Iterator[_Record]:
        fh, number = self._fh, 0
        while raw := fh.readline(_MAX_JSON_LINE):
            number += 1
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if len(raw) == _MAX_JSON_LINE and not raw.endswith(b"\n"):
                while (rest := fh.readline(_MAX_JSON_LINE)) and not rest.endswith(b"\n"):
                    pass
                why = f"the line is longer than {_MAX_JSON_LINE} bytes"
                yield _Record(number, {}, _text(raw[:200]), Rejection("line_too_long", why))
                continue
            if not raw.strip():
                continue
            yield self._record(number, raw)

    def _record(self, number: int, raw: bytes) -> _Record:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            why = f"byte 0x{raw[exc.start]:02X} at column {exc.start + 1} is not UTF-8"
            return _Record(number, {}, _text(raw), Rejection("invalid_utf8", why))
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            why = f"{exc.msg} at column {exc.colno}"
            return _Record(number, {}, text.rstrip("\r\n"), Rejection("invalid_json", why))
        except RecursionError:
            why = "nested too deeply"
            return _Record(number, {}, text.rstrip("\r\n"), Rejection("invalid_json", why))
        if not isinstance(obj, dict):
            why = f"a JSON {_json_kind(obj)} where an object was expected"
            return _Record(number, {}, text.rstrip("\r\n"), Rejection("not_an_object", why))
        values: dict[str, str] = {}
        for key, value in obj.items():
            if key not in self._targets:
                self._targets[key] = _target(key, self._mapping)
            target = self._targets[key]
            if target is None or values.get(target):
                continue
            values[target] = _json_text(value)
        return _Record(number, values, obj)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- rejects -----------------------------------------------------------------


class _RejectsWriter:
    """Writes rejected rows in the input's format, opening the file at the first one."""

    def __init__(self, path: Path | str | None, source: _Source) -> None:
        self.path = Path(path) if path is not None else None
        self.source = source
        self.written = 0
        self._fh: IO[str] | None = None
        self._csv: Any = None

    def write(self, record: _Record, reason: str) -> None:
        if self.path is None:
            return
        if self._fh is None:
            # surrogateescape: undecodable input bytes are written back unchanged.
            source = self.source
            # A CSV's rejects are in its encoding, so they import again as the file did.
            encoding = source.encoding if isinstance(source, _CsvSource) else "utf-8"
            encoding = "utf-8" if encoding == "utf-8-sig" else encoding  # no BOM added
            self._fh = open(  # noqa: SIM115 - closed by __exit__
                self.path, "w", encoding=encoding, errors="surrogateescape", newline=""
            )
            if isinstance(source, _CsvSource | _XlsxSource):
                delimiter = source.delimiter if isinstance(source, _CsvSource) else ","
                self._csv = csv.writer(self._fh, delimiter=delimiter)
                self._csv.writerow(["_line", "_reason", *source.header])
        self.written += 1
        if self._csv is not None:
            self._csv.writerow([record.line, reason, *record.raw])
            return
        row: dict[str, Any] = {"_line": record.line, "_reason": reason}
        if isinstance(record.raw, dict):
            row.update((k, v) for k, v in record.raw.items() if k not in RESERVED_COLUMNS)
        else:
            row["_raw"] = record.raw
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def __enter__(self) -> _RejectsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.close()


# -- mapping and alias files -------------------------------------------------


def _read_mapping(path: Path | str, shape: str) -> YamlDocument | None:
    """The file parsed, if it holds a mapping; None when empty; ``shape`` says what it should be."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        doc = parse_yaml(text, str(path))
    except FindingsError as exc:  # parse_yaml reports syntax errors as findings
        raise ConfigFileError(exc.findings) from None
    if doc.findings:
        raise ConfigFileError(doc.findings)
    if doc.data is None:
        return None
    if not isinstance(doc.data, dict):
        raise ConfigFileError([doc.finding((), shape)])
    return doc


def load_mapping(path: Path | str) -> dict[str, str]:
    """Read a column mapping (YAML ``touchflow field: source column``) as ``{column: field}``.

    A field that is not a standard one is kept in ``fields`` under that name.
    Raises :class:`ConfigFileError` with ``file:line:col`` findings.
    """
    doc = _read_mapping(path, "a column mapping is YAML 'touchflow_field: source column' lines")
    if doc is None:
        return {}
    findings: list[Finding] = []
    columns: dict[str, str] = {}
    first: dict[str, str] = {}
    for target, column in doc.data.items():
        if not isinstance(target, str) or not _FIELD_NAME.match(target.strip().lower()):
            findings.append(
                doc.finding(
                    (target,),
                    f"{target!r} is not a field name (lower-case letters, digits, _)",
                    key=True,
                )
            )
            continue
        name = target.strip().lower()
        if name in RESERVED_COLUMNS:
            findings.append(doc.finding((target,), f"{name} is reserved for rejects", key=True))
            continue
        if not isinstance(column, str) or not column.strip():
            findings.append(doc.finding((target,), f"{name}: the source column must be text"))
            continue
        key = column.strip().lower()
        if key in first:
            findings.append(
                doc.finding((target,), f"column {column!r} is already mapped to {first[key]!r}")
            )
            continue
        first[key] = name
        columns[column.strip()] = name
    if findings:
        raise ConfigFileError(sorted(findings))
    return columns


def load_aliases(path: Path | str) -> dict[str, str]:
    """Read company domain aliases (YAML ``alias.domain: primary.domain``), chains resolved.

    Domains are normalized like prospect domains (lower-case ASCII, no
    ``www.``). Free-mail domains are refused: they are people, not companies.
    Raises :class:`ConfigFileError` with ``file:line:col`` findings.
    """
    doc = _read_mapping(path, "aliases are 'alias.domain: primary.domain' lines")
    if doc is None:
        return {}
    findings: list[Finding] = []
    table: dict[str, str] = {}
    resolved: dict[str, str] = {}
    where: dict[str, Any] = {}
    for key, value in doc.data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            findings.append(doc.finding((key,), "an alias and its primary domain must be text"))
            continue
        try:
            alias = normalize_domain(key)
        except ValueError as exc:
            findings.append(doc.finding((key,), str(exc), key=True))
            continue
        try:
            primary = normalize_domain(value)
        except ValueError as exc:
            findings.append(doc.finding((key,), str(exc)))
            continue
        problem = _alias_problem(alias, primary)
        if problem is None and alias in table:
            problem = f"{alias} is already an alias (line {doc.key_position((where[alias],))[0]})"
        if problem is not None:
            findings.append(doc.finding((key,), problem, key=True))
            continue
        table[alias] = primary
        where[alias] = key
    try:
        resolved = _resolve_chains(table)
    except _CycleError as exc:
        findings.append(doc.finding((where[exc.alias],), str(exc), key=True))
    if findings:
        raise ConfigFileError(sorted(findings))
    return resolved


def resolve_aliases(aliases: Mapping[str, str]) -> dict[str, str]:
    """Normalize an alias table given in code and resolve its chains; ``ValueError`` if bad."""
    table: dict[str, str] = {}
    for key, value in aliases.items():
        alias, primary = normalize_domain(key), normalize_domain(value)
        problem = _alias_problem(alias, primary)
        if problem is not None:
            raise ValueError(f"domain alias {key!r}: {problem}")
        table[alias] = primary
    try:
        return _resolve_chains(table)
    except _CycleError as exc:
        raise ValueError(str(exc)) from None


def _alias_problem(alias: str, primary: str) -> str | None:
    if alias == primary:
        return f"{alias} is an alias of itself"
    for domain in (alias, primary):
        if is_free_mail(domain):
            return f"{domain} is a free-mail provider, not a company"
    return None


class _CycleError(ValueError):
    def __init__(self, alias: str, chain: list[str]) -> None:
        self.alias = alias
        super().__init__(f"domain aliases loop: {' -> '.join(chain)}")


def _resolve_chains(table: dict[str, str]) -> dict[str, str]:
    """``a -> b, b -> c`` becomes ``a -> c, b -> c``."""
    resolved: dict[str, str] = {}
    for alias in table:
        chain = [alias]
        target = table[alias]
        while target in table:
            if target in chain:
                raise _CycleError(alias, [*chain, target])
            chain.append(target)
            target = table[target]
        resolved[alias] = target
    return resolved
