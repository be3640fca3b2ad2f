"""Rows of ``deals.csv`` and ``stages.csv`` as deals and stage changes (pure).

``deals.csv``: ``deal_id,account_domain,owner_email,amount,currency,created_at,
close_date,stage,closed_at,outcome`` (an optional ``name`` column too).
``stages.csv``: ``deal_id,stage,entered_at``.
``close_dates.csv``: ``deal_id,close_date,changed_at`` (the expected close date
became ``close_date`` at ``changed_at``).

Times are ISO 8601 (``2027-01-04T09:30:00Z``; a bare date is midnight UTC; a
time without offset is UTC). ``outcome`` is ``won``, ``lost`` or empty (open);
an empty outcome on the won or lost stage takes that stage's outcome, and a
closed deal needs its ``closed_at``. Every problem raises :class:`RowError`
with a reason code and a message; the importer writes the row aside with both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time

from touchflow.domain.deals import Deal, DealOutcome, StageChange
from touchflow.domain.forecasting import CloseDateChange
from touchflow.domain.normalize import checked_email, normalize_domain
from touchflow.domain.pipeline import Pipeline

__all__ = [
    "CLOSE_DATE_COLUMNS",
    "DEAL_COLUMNS",
    "STAGE_COLUMNS",
    "RowError",
    "parse_close_date_row",
    "parse_date",
    "parse_deal_row",
    "parse_stage_row",
    "parse_time",
]

DEAL_COLUMNS = (
    "deal_id",
    "account_domain",
    "owner_email",
    "amount",
    "currency",
    "created_at",
    "close_date",
    "stage",
    "closed_at",
    "outcome",
)
STAGE_COLUMNS = ("deal_id", "stage", "entered_at")
CLOSE_DATE_COLUMNS = ("deal_id", "close_date", "changed_at")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


class RowError(ValueError):
    """A row that cannot be loaded: ``code`` for counting, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_time(text: str, column: str) -> datetime:
    """An ISO 8601 time (or date: midnight UTC) as an aware UTC datetime."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowError("bad_time", f"{column} {text!r} is not an ISO 8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_date(text: str, column: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise RowError("bad_date", f"{column} {text!r} is not a date (YYYY-MM-DD)") from None


def _stage(pipeline: Pipeline, text: str) -> str:
    stage = text.strip()
    if not stage:
        raise RowError("missing_stage", "stage is empty")
    if not pipeline.has_stage(stage):
        raise RowError("unknown_stage", pipeline.unknown_stage(stage))
    return stage


def parse_deal_row(values: Mapping[str, str], pipeline: Pipeline, source: str = "csv") -> Deal:
    """One ``deals.csv`` row (column -> text) as a :class:`Deal`; :class:`RowError` if bad."""

    def cell(name: str) -> str:
        return (values.get(name) or "").strip()

    deal_id = cell("deal_id")
    if not deal_id:
        raise RowError("missing_deal_id", "deal_id is empty")
    if len(deal_id) > 100:
        raise RowError("bad_deal_id", "deal_id is longer than 100 characters")
    domain = None
    if cell("account_domain"):
        try:
            domain = normalize_domain(cell("account_domain"))
        except ValueError as exc:
            raise RowError("bad_domain", f"account_domain: {exc}") from None
    owner = None
    if cell("owner_email"):
        try:
            owner = checked_email(cell("owner_email")).normalized.lower()
        except ValueError as exc:
            raise RowError("bad_email", f"owner_email: {exc}") from None
    try:
        amount = float(cell("amount").replace(",", "").replace("_", "") or "0")
    except ValueError:
        raise RowError("bad_amount", f"amount {cell('amount')!r} is not a number") from None
    if amount < 0 or amount != amount or amount in (float("inf"), float("-inf")):
        raise RowError("bad_amount", f"amount {cell('amount')!r} must be a number >= 0")
    currency = cell("currency") or pipeline.forecast.reporting_currency
    if not _CURRENCY.match(currency):
        raise RowError("bad_currency", f"currency {currency!r} is not an ISO code (e.g. USD)")
    stage = _stage(pipeline, cell("stage"))
    if not cell("created_at"):
        raise RowError("missing_created_at", "created_at is empty")
    created_at = parse_time(cell("created_at"), "created_at")
    close_date = parse_date(cell("close_date"), "close_date") if cell("close_date") else None
    closed_at = parse_time(cell("closed_at"), "closed_at") if cell("closed_at") else None
    text = cell("outcome").lower()
    if text and text not in ("won", "lost"):
        raise RowError("bad_outcome", f"outcome {cell('outcome')!r} must be won, lost or empty")
    outcome = DealOutcome(text) if text else pipeline.outcome_of_stage(stage)
    if outcome is None and closed_at is not None:
        raise RowError("bad_outcome", "closed_at is set but the deal has no outcome (won/lost)")
    if outcome is not None and closed_at is None:
        raise RowError("missing_closed_at", f"a {outcome.value} deal needs its closed_at")
    if closed_at is not None and closed_at < created_at:
        raise RowError("bad_time", "closed_at is before created_at")
    return Deal(
        deal_id=deal_id,
        source=source,
        account_domain=domain,
        owner_email=owner,
        amount=amount,
        currency=currency.upper(),
        stage=stage,
        created_at=created_at,
        close_date=close_date,
        closed_at=closed_at,
        outcome=outcome,
        name=cell("name") or None,
    )


def parse_stage_row(values: Mapping[str, str], pipeline: Pipeline) -> StageChange:
    """One ``stages.csv`` row as a :class:`StageChange`; :class:`RowError` if bad."""
    deal_id = (values.get("deal_id") or "").strip()
    if not deal_id:
        raise RowError("missing_deal_id", "deal_id is empty")
    stage = _stage(pipeline, values.get("stage") or "")
    entered = (values.get("entered_at") or "").strip()
    if not entered:
        raise RowError("missing_entered_at", "entered_at is empty")
    return StageChange(deal_id, stage, parse_time(entered, "entered_at"))


def parse_close_date_row(values: Mapping[str, str]) -> CloseDateChange:
    """One ``close_dates.csv`` row as a :class:`CloseDateChange`; :class:`RowError` if bad."""
    deal_id = (values.get("deal_id") or "").strip()
    if not deal_id:
        raise RowError("missing_deal_id", "deal_id is empty")
    day = (values.get("close_date") or "").strip()
    if not day:
        raise RowError("missing_close_date", "close_date is empty")
    changed = (values.get("changed_at") or "").strip()
    if not changed:
        raise RowError("missing_changed_at", "changed_at is empty")
    return CloseDateChange(
        deal_id, parse_date(day, "close_date"), parse_time(changed, "changed_at")
    )
