"""Deals in: ``touchflow deals import`` (CSV files) and the daily pipeline snapshot.

:func:`import_deals` reads ``stages.csv`` and ``close_dates.csv`` (both optional)
then ``deals.csv`` (columns
in :mod:`touchflow.domain.deal_rows`), checks every row against
``config/pipeline.yaml``, and loads the good rows, history in transactions of
5,000 rows and deals of 50,000 (:mod:`touchflow.store.deals`: a re-import
changes nothing). A bad row is
reported with its line and reason and written to a rejects file beside the
input (``_line,_reason`` then the row's own cells, as ``touchflow import``
does), so it can be fixed and imported again; the rest still load. A history
row for a deal that is in neither file nor the database is rejected too.

:func:`sync_deals` pulls a CRM's deals changed since the last sync (their stage
history and contact roles too), maps the CRM's stage ids to ours with
``sources`` in ``config/pipeline.yaml`` and writes them the same way.

:func:`take_snapshot` records every open deal under a date (idempotent per date).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from sqlalchemy import Connection, Engine, select

from touchflow.domain.batching import chunks
from touchflow.domain.crm import DealPage
from touchflow.domain.deal_rows import (
    CLOSE_DATE_COLUMNS,
    DEAL_COLUMNS,
    STAGE_COLUMNS,
    RowError,
    parse_close_date_row,
    parse_deal_row,
    parse_stage_row,
)
from touchflow.domain.deals import Deal, StageChange
from touchflow.domain.forecasting import CloseDateChange
from touchflow.domain.pipeline import Pipeline
from touchflow.errors import ConfigError, ImportFileError
from touchflow.ports import DealSource
from touchflow.store.deals import (
    DealCounts,
    add_close_date_changes,
    add_stage_changes,
    upsert_contacts,
    upsert_deals,
    write_snapshot,
)
from touchflow.store.prebuilt import dialect_insert
from touchflow.store.schema import crm_cursors
from touchflow.store.schema import deals as deals_table

__all__ = [
    "DealImportSummary",
    "DealSyncReport",
    "RejectedRow",
    "import_deals",
    "sync_deals",
    "take_snapshot",
]

SOURCE = "csv"
_Change = TypeVar("_Change", StageChange, CloseDateChange)
# Deals per transaction: each upsert reads the batch's recorded stages once (one scan
# of the source's rows past a few thousand deals), so fewer, larger batches are faster.
_DEAL_BATCH = 50_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
    close_dates_read: int = 0
    counts: DealCounts = field(default_factory=DealCounts)
    history_added: int = 0
    close_dates_added: int = 0
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
        )
        if self.close_dates_read:
            text += f"; close-date changes: {self.close_dates_added} new"
        text += f"; {len(self.rejected)} rejected"
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
    close_dates_path: Path | None = None,
    write_rejects: bool = True,
) -> DealImportSummary:
    """Load ``deals.csv`` (and ``stages.csv``, ``close_dates.csv``): good rows in, bad rows
    aside (see module doc)."""
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
    dates: list[CloseDateChange] = []
    has_history = history_path is not None or close_dates_path is not None
    known = _known_ids(engine, set(seen)) if has_history else set()
    if history_path is not None:
        history, summary.history_read = _read_changes(
            history_path, STAGE_COLUMNS, lambda v: parse_stage_row(v, pipeline), known, summary,
            write_rejects,
        )  # fmt: skip
    if close_dates_path is not None:
        dates, summary.close_dates_read = _read_changes(
            close_dates_path, CLOSE_DATE_COLUMNS, parse_close_date_row, known, summary,
            write_rejects,
        )  # fmt: skip

    for part in chunks(history, _BATCH):
        with engine.begin() as conn:
            summary.history_added += add_stage_changes(conn, SOURCE, part)
    for dpart in chunks(dates, _BATCH):
        with engine.begin() as conn:
            summary.close_dates_added += add_close_date_changes(conn, SOURCE, dpart)
    for batch in chunks(parsed, _DEAL_BATCH):
        with engine.begin() as conn:
            counts = upsert_deals(
                conn, batch, lambda d: pipeline.category_for(d.stage, d.outcome), now
            )
        summary.counts.add(counts)
    return summary


def _known_ids(engine: Engine, in_file: set[str]) -> set[str]:
    """The deal ids a history row may name: those of the file and those imported before."""
    with engine.connect() as conn:
        return in_file | set(
            conn.scalars(select(deals_table.c.deal_id).where(deals_table.c.source == SOURCE))
        )


def _read_changes(
    path: Path,
    columns: tuple[str, ...],
    parse: Callable[[dict[str, str]], _Change],
    known: set[str],
    summary: DealImportSummary,
    write_rejects: bool,
) -> tuple[list[_Change], int]:
    """A history file's (stage or close-date changes) rows of known deals, bad ones aside,
    and the number of rows read."""
    header, rows = _rows(path, columns)
    out: list[_Change] = []
    read = 0
    rejects = _Rejects(_rejects_path(path) if write_rejects else None, header)
    try:
        for line, cells in rows:
            read += 1
            values = _values(header, cells)
            try:
                if values is None:
                    raise RowError(
                        "ragged_row", f"{len(cells)} cells, the header has {len(header)}"
                    )
                change = parse(values)
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
    return out, read


def take_snapshot(engine: Engine, day: date) -> int:
    """Record every open deal under ``day`` (a rerun replaces the day's rows); the count."""
    with engine.begin() as conn:
        return write_snapshot(conn, day)


# -- deals from the CRM ---------------------------------------------------------------


@dataclass
class DealSyncReport:
    """What one ``deals sync`` did."""

    pages: int = 0
    deals: DealCounts = field(default_factory=DealCounts)
    stage_changes: int = 0
    contacts: int = 0

    def __str__(self) -> str:
        d = self.deals
        return (
            f"deals: {d.new} new, {d.updated} updated, {d.unchanged} unchanged; "
            f"stage changes: {self.stage_changes + d.stage_changes} new; "
            f"contacts: {self.contacts} written ({self.pages} page(s))"
        )


def _cursor_key(source: DealSource) -> str:
    return f"{source.name}:deals"


def _mapped(pipeline: Pipeline, source: str, page: DealPage) -> DealPage:
    """The page with the CRM's stage ids as our stage names; ConfigError naming the unmapped."""
    unknown: set[str] = set()

    def stage(vendor: str) -> str:
        ours = pipeline.map_stage(source, vendor)
        if ours is None:
            unknown.add(vendor)
            return vendor
        return ours

    deals = [replace(d, stage=stage(d.stage)) for d in page.deals]
    # Two CRM stages mapped to one of ours: moving between them is no change here.
    changes: list[StageChange] = []
    last: dict[str, str] = {}
    for c in sorted(page.stage_changes, key=lambda c: (c.deal_id, c.entered_at)):
        mapped = replace(c, stage=stage(c.stage))
        if last.get(c.deal_id) != mapped.stage:
            changes.append(mapped)
        last[c.deal_id] = mapped.stage
    if unknown:
        raise ConfigError(
            f"{source} stage(s) {', '.join(sorted(map(repr, unknown)))} are not mapped: add them "
            f"under sources.{source} in config/pipeline.yaml (stages: "
            f"{', '.join(pipeline.stage_names)})"
        )
    return replace(page, deals=deals, stage_changes=changes)


def sync_deals(
    engine: Engine,
    source: DealSource,
    pipeline: Pipeline,
    now: datetime,
    *,
    first_since: datetime | None = None,
    max_pages: int = 1000,
) -> DealSyncReport:
    """Pull deals changed since the last sync, a page per transaction (resumable).

    The high-water mark and the page cursor are kept in ``crm_cursors`` under
    ``<crm>:deals``; a page seen twice changes nothing (idempotent writes). The
    first sync reads from ``first_since`` (default: everything).
    """
    report = DealSyncReport()
    key = _cursor_key(source)
    with engine.connect() as conn:
        state = conn.execute(select(crm_cursors).where(crm_cursors.c.crm == key)).one_or_none()
    since = state.since if state else (first_since or EPOCH)
    cursor = state.cursor if state else None
    latest = since
    for _ in range(max_pages):
        page = _mapped(pipeline, source.name, source.deals_since(since, cursor))
        report.pages += 1
        with engine.begin() as conn:
            report.stage_changes += add_stage_changes(conn, source.name, page.stage_changes)
            report.deals.add(
                upsert_deals(
                    conn, page.deals, lambda d: pipeline.category_for(d.stage, d.outcome), now
                )
            )
            report.contacts += upsert_contacts(conn, source.name, page.contacts)
            if page.modified_at is not None:
                latest = max(latest, page.modified_at)
            cursor = page.cursor
            _save_cursor(conn, key, since if cursor else latest, cursor, now)
        if cursor is None:
            break
    return report


def _save_cursor(conn: Connection, key: str, since: datetime, cursor: str | None,
                 now: datetime) -> None:  # fmt: skip
    stmt = dialect_insert(conn, crm_cursors).values(
        crm=key, since=since, cursor=cursor, updated_at=now
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["crm"], set_={"since": since, "cursor": cursor, "updated_at": now}
        )
    )
