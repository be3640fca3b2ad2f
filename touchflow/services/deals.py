"""Deals in: ``touchflow deals import`` (CSV files) and the daily pipeline snapshot.

:func:`import_deals` reads ``stages.csv`` (optional) then ``deals.csv`` (columns
in :mod:`touchflow.domain.deal_rows`), checks every row against
``config/pipeline.yaml``, and loads the good rows in one transaction per 5,000
(:mod:`touchflow.store.deals`: a re-import changes nothing). A bad row is
reported with its line and reason and written to a rejects file beside the
input (``_line,_reason`` then the row's own cells, as ``touchflow import``
does), so it can be fixed and imported again; the rest still load. A history
row for a deal that is in neither file nor the database is rejected too.

:func:`take_snapshot` records every open deal under a date (idempotent per date).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, select

from touchflow.domain.batching import chunks
from touchflow.domain.deal_rows import (
    DEAL_COLUMNS,
    STAGE_COLUMNS,
    RowError,
    parse_deal_row,
    parse_stage_row,
)
from touchflow.domain.deals import Deal, StageChange
from touchflow.domain.pipeline import Pipeline
from touchflow.errors import ImportFileError
from touchflow.store.deals import DealCounts, add_stage_changes, upsert_deals, write_snapshot
from touchflow.store.schema import deals as deals_table

__all__ = ["DealImportSummary", "RejectedRow", "import_deals", "take_snapshot"]

SOURCE = "csv"
_BATCH = 5000


@dataclass(frozen=True)
class RejectedRow:
    """A row kept aside: which file, which line, why."""

    file: str
    line: int
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class DealImportSummary:
    """What an import did; ``rejected`` lists every row kept aside."""

    deals_read: int = 0
    history_read: int = 0
    counts: DealCounts = field(default_factory=DealCounts)
    history_added: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    rejects_paths: list[Path] = field(default_factory=list)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(r.code for r in self.rejected)

    def __str__(self) -> str:
        c = self.counts
        text = (
            f"deals: {self.deals_read} read, {c.new} new, {c.updated} updated, "
            f"{c.unchanged} unchanged; stage changes: {self.history_added + c.stage_changes} new"
            f"; {len(self.rejected)} rejected"
        )
        if self.rejected:
            text += " (" + ", ".join(f"{k} {v}" for k, v in self.reasons.most_common()) + ")"
        return text


class _Rejects:
    """A rejects CSV beside its input, opened at the first rejected row."""

    def __init__(self, path: Path | None, header: list[str]) -> None:
        self.path = path
        self.header = header
        self._fh: IO[str] | None = None
        self._csv: Any = None

    def write(self, line: int, reason: str, cells: list[str]) -> None:
        if self.path is None:
            return
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._csv = csv.writer(self._fh)
            self._csv.writerow(["_line", "_reason", *self.header])
        self._csv.writerow([line, reason, *cells])

    @property
    def written(self) -> bool:
        return self._fh is not None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _rows(
    path: Path, required: tuple[str, ...]
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header and ``(line, cells)`` of a CSV; ImportFileError without a needed column."""
    fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed by the generator
    reader = csv.reader(fh)
    header = [h.strip() for h in next(reader, [])]
    columns = [h for h in header if h not in ("_line", "_reason")]
    missing = [c for c in required if c not in columns]
    if missing:
        fh.close()
        raise ImportFileError(
            f"{path}: missing column(s) {', '.join(missing)}; the columns are {','.join(required)}"
        )

    def rows() -> Iterator[tuple[int, list[str]]]:
        with fh:
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue
                yield reader.line_num, cells

    return header, rows()


def _values(header: list[str], cells: list[str]) -> dict[str, str] | None:
    if len(cells) != len(header):
        return None
    return dict(zip(header, cells, strict=True))


def _rejects_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejects{path.suffix or '.csv'}")


def import_deals(
    engine: Engine,
    deals_path: Path,
    pipeline: Pipeline,
    now: datetime,
    *,
    history_path: Path | None = None,
    write_rejects: bool = True,
) -> DealImportSummary:
    """Load ``deals.csv`` (and ``stages.csv``): good rows in, bad rows aside (see module doc)."""
    summary = DealImportSummary()
    deal_header, deal_rows = _rows(deals_path, DEAL_COLUMNS)
    parsed: list[Deal] = []
    seen: dict[str, int] = {}
    rejects = _Rejects(_rejects_path(deals_path) if write_rejects else None, deal_header)
    try:
        for line, cells in deal_rows:
            summary.deals_read += 1
            values = _values(deal_header, cells)
            try:
                if values is None:
                    raise RowError(
                        "ragged_row", f"{len(cells)} cells, the header has {len(deal_header)}"
                    )
                deal = parse_deal_row(values, pipeline, SOURCE)
                if deal.deal_id in seen:
                    raise RowError(
                        "duplicate_deal_id",
                        f"deal_id {deal.deal_id!r} is already on line {seen[deal.deal_id]}",
                    )
            except RowError as exc:
                summary.rejected.append(RejectedRow(deals_path.name, line, exc.code, str(exc)))
                rejects.write(line, str(exc), cells)
                continue
            seen[deal.deal_id] = line
            parsed.append(deal)
    finally:
        rejects.close()
    if rejects.written and rejects.path is not None:
        summary.rejects_paths.append(rejects.path)

    history: list[StageChange] = []
    if history_path is not None:
        history = _read_history(engine, history_path, pipeline, set(seen), summary, write_rejects)

    for part in chunks(history, _BATCH):
        with engine.begin() as conn:
            summary.history_added += add_stage_changes(conn, SOURCE, part)
    for batch in chunks(parsed, _BATCH):
        with engine.begin() as conn:
            counts = upsert_deals(
                conn, batch, lambda d: pipeline.category_for(d.stage, d.outcome), now
            )
        summary.counts.add(counts)
    return summary


def _read_history(
    engine: Engine,
    path: Path,
    pipeline: Pipeline,
    in_file: set[str],
    summary: DealImportSummary,
    write_rejects: bool,
) -> list[StageChange]:
    header, rows = _rows(path, STAGE_COLUMNS)
    with engine.connect() as conn:
        known = in_file | set(
            conn.scalars(select(deals_table.c.deal_id).where(deals_table.c.source == SOURCE))
        )
    out: list[StageChange] = []
    rejects = _Rejects(_rejects_path(path) if write_rejects else None, header)
    try:
        for line, cells in rows:
            summary.history_read += 1
            values = _values(header, cells)
            try:
                if values is None:
                    raise RowError(
                        "ragged_row", f"{len(cells)} cells, the header has {len(header)}"
                    )
                change = parse_stage_row(values, pipeline)
                if change.deal_id not in known:
                    raise RowError(
                        "unknown_deal",
                        f"deal_id {change.deal_id!r} is in neither the deals file nor "
                        "the deals imported before",
                    )
            except RowError as exc:
                summary.rejected.append(RejectedRow(path.name, line, exc.code, str(exc)))
                rejects.write(line, str(exc), cells)
                continue
            out.append(change)
    finally:
        rejects.close()
    if rejects.written and rejects.path is not None:
        summary.rejects_paths.append(rejects.path)
    return out


def take_snapshot(engine: Engine, day: date) -> int:
    """Record every open deal under ``day`` (a rerun replaces the day's rows); the count."""
    with engine.begin() as conn:
        return write_snapshot(conn, day)
