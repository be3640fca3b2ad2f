"""A generated, deterministic history of B2B deals for the demo, the forecast and its backtest.

About three years of deals owned by the AEs of ``config/team.yaml`` on the
demo prospects' accounts: 4-7 month cycles through six open stages, stage
regressions, losses at every stage, reps who win more or less often than the
team, log-normal amounts in USD and EUR, fewer new deals in August and
December, close dates that slip when they pass, and the quarter-end push
(deals about to close early next quarter are pulled into the last days of
this one). Everything after ``as_of`` is cut: deals open then stay open.

``write_csvs`` writes the files ``touchflow deals import`` reads
(``deals.csv``, ``stages.csv``) and the close-date history (``close_dates.csv``,
``deal_id,close_date,changed_at``) that an honest backtest of close-date
based methods needs.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from touchflow.demo.data import generate_rows
from touchflow.domain.deals import Deal, DealOutcome, ForecastCategory, StageChange
from touchflow.domain.forecasting import CloseDateChange, ForecastPipeline

STAGES = ("discovery", "qualification", "demo", "proposal", "negotiation", "commit")
WON_STAGE, LOST_STAGE = "closed_won", "closed_lost"
# The open stages, book probabilities and categories of config/pipeline.yaml (a test
# checks they agree): probabilities as a CRM ships them, spread over six stages.
PROBABILITIES = {
    "discovery": 0.10,
    "qualification": 0.20,
    "demo": 0.40,
    "proposal": 0.60,
    "negotiation": 0.80,
    "commit": 0.90,
}
CATEGORIES = {
    "discovery": ForecastCategory.PIPELINE,
    "qualification": ForecastCategory.PIPELINE,
    "demo": ForecastCategory.BEST_CASE,
    "proposal": ForecastCategory.BEST_CASE,
    "negotiation": ForecastCategory.COMMIT,
    "commit": ForecastCategory.COMMIT,
}
RATES = {"EUR": 1.08}  # USD per EUR
START = date(2024, 1, 1)
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)

# (email, win skill as odds multiplier, share of deals in EUR): the AEs of config/team.yaml.
REPS = (
    ("ana.souza@yourco.com", 1.35, 0.0),
    ("ben.carter@yourco.com", 0.75, 0.0),
    ("carla.diaz@yourco.com", 1.0, 0.0),
    ("dieter.braun@yourco.com", 1.2, 0.8),
    ("emma.wright@yourco.com", 0.9, 0.6),
    ("farid.haddad@yourco.com", 0.7, 0.3),
    ("grace.tan@yourco.com", 1.1, 0.0),
    ("hiro.sato@yourco.com", 0.95, 0.0),
)
# Per open stage: median days in it, chance to move on, chance to fall back a stage.
FLOW = {
    "discovery": (12, 0.62, 0.0),
    "qualification": (20, 0.70, 0.04),
    "demo": (22, 0.74, 0.06),
    "proposal": (25, 0.76, 0.08),
    "negotiation": (20, 0.80, 0.07),
    "commit": (12, 0.86, 0.03),
}
SEASON = {
    1: 1.1,
    2: 1.0,
    3: 1.05,
    4: 1.0,
    5: 1.0,
    6: 0.95,
    7: 0.9,
    8: 0.7,
    9: 1.05,
    10: 1.1,
    11: 1.0,
    12: 0.7,
}


def pipeline(period: str = "quarter") -> ForecastPipeline:
    """The pipeline facts the demo history is made for (config/pipeline.yaml says the same)."""
    return ForecastPipeline(
        stages=STAGES,
        probabilities=PROBABILITIES,
        categories=CATEGORIES,
        period="month" if period == "month" else "quarter",
        currency="USD",
        rates=RATES,
    )


@dataclass(frozen=True)
class DealHistory:
    deals: list[Deal]
    changes: list[StageChange]
    close_dates: list[CloseDateChange]
    as_of: datetime


def _at(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randint(8, 17), rng.choice((0, 15, 30, 45))), UTC)


def _quarter_end(day: date) -> date:
    q = (day.month - 1) // 3
    nxt = date(day.year + (q == 3), (3 * q + 3) % 12 + 1, 1)
    return nxt - timedelta(days=1)


def generate(
    *, seed: int = 11, start: date = START, as_of: datetime = AS_OF, per_month: float = 34.0
) -> DealHistory:
    """Deals created from ``start`` up to ``as_of``, as known then; same seed, same history."""
    rng = random.Random(seed)
    domains = sorted({row["domain"] for row in generate_rows(600, seed=7, missing_title_every=0)})
    deals: list[Deal] = []
    changes: list[StageChange] = []
    close_dates: list[CloseDateChange] = []
    day = start
    n = 0
    while True:
        created_day = day
        if datetime.combine(created_day, time(), UTC) > as_of:
            break
        day += timedelta(days=1)
        if created_day.weekday() >= 5:
            continue
        months = (created_day.year - start.year) * 12 + created_day.month - start.month
        lam = per_month / 21.7 * SEASON[created_day.month] * (1.012**months)
        for _ in range(_poisson(lam, rng)):
            n += 1
            deal, path, dates = _one_deal(f"D-{n:05d}", created_day, rng, domains)
            _append_known(deal, path, dates, as_of, deals, changes, close_dates)
    return DealHistory(deals=deals, changes=changes, close_dates=close_dates, as_of=as_of)


def _one_deal(
    deal_id: str, created_day: date, rng: random.Random, domains: list[str]
) -> tuple[Deal, list[tuple[str, datetime]], list[tuple[date, datetime]]]:
    owner, skill, eur_share = rng.choice(REPS)
    created = _at(created_day, rng)
    usd = round(math.exp(rng.gauss(math.log(26_000), 0.85)), -2) or 100.0
    currency = "EUR" if rng.random() < eur_share else "USD"
    amount = round(usd / RATES["EUR"], -2) if currency == "EUR" else usd
    path: list[tuple[str, datetime]] = [(STAGES[0], created)]
    i, t = 0, created
    outcome: DealOutcome
    while True:
        median_days, advance, back = FLOW[STAGES[i]]
        t = t + timedelta(days=max(1.0, rng.lognormvariate(math.log(median_days), 0.55)))
        t = t.replace(second=0, microsecond=0)  # a CRM keeps minutes
        odds = advance / (1 - advance) * skill
        p_adv = odds / (1 + odds)
        u = rng.random()
        if u < back and i > 0:
            i -= 1
            path.append((STAGES[i], t))
        elif u < back + p_adv * (1 - back):
            if i == len(STAGES) - 1:
                outcome = DealOutcome.WON
                break
            i += 1
            path.append((STAGES[i], t))
        else:
            outcome = DealOutcome.LOST
            break
    closed = t
    if outcome is DealOutcome.WON:
        # The quarter-end push: a deal due early next quarter is often signed before it ends.
        qend = _quarter_end(closed.date() - timedelta(days=21))
        entered_commit = path[-1][1]
        if qend < closed.date() and rng.random() < 0.45:
            pulled = _at(qend - timedelta(days=rng.randint(0, 4)), rng)
            if pulled > entered_commit:
                closed = pulled
    # The rep's close date: optimistic at first, pushed when it passes, set late in the deal.
    dates: list[tuple[date, datetime]] = []
    guess = created_day + timedelta(days=int(rng.uniform(75, 140)))
    dates.append((guess, created))
    while datetime.combine(guess, time(23, 59), UTC) < closed:
        changed = _at(guess + timedelta(days=rng.randint(1, 6)), rng)
        if changed >= closed:
            break
        guess = guess + timedelta(days=rng.randint(21, 50))
        dates.append((guess, changed))
    for stage, at in path:
        if stage in ("negotiation", "commit") and at < closed:
            estimate = closed.date() + timedelta(days=rng.randint(-7, 25))
            estimate = max(estimate, at.date() + timedelta(days=3))
            dates.append((estimate, at))
    dates.append((closed.date(), closed))
    dates.sort(key=lambda x: x[1])
    path.append((WON_STAGE if outcome is DealOutcome.WON else LOST_STAGE, closed))
    deal = Deal(
        deal_id=deal_id,
        source="csv",
        account_domain=rng.choice(domains),
        owner_email=owner,
        amount=amount,
        currency=currency,
        stage=path[-1][0],
        created_at=created,
        close_date=closed.date(),
        closed_at=closed,
        outcome=outcome,
    )
    return deal, path, dates


def _append_known(
    deal: Deal,
    path: list[tuple[str, datetime]],
    dates: list[tuple[date, datetime]],
    as_of: datetime,
    deals: list[Deal],
    changes: list[StageChange],
    close_dates: list[CloseDateChange],
) -> None:
    if deal.created_at > as_of:
        return
    seen = [(s, at) for s, at in path if at <= as_of]
    known_dates = [(d, at) for d, at in dates if at <= as_of]
    closed = deal.closed_at is not None and deal.closed_at <= as_of
    deals.append(
        Deal(
            deal_id=deal.deal_id,
            source=deal.source,
            account_domain=deal.account_domain,
            owner_email=deal.owner_email,
            amount=deal.amount,
            currency=deal.currency,
            stage=seen[-1][0],
            created_at=deal.created_at,
            close_date=known_dates[-1][0],
            closed_at=deal.closed_at if closed else None,
            outcome=deal.outcome if closed else None,
        )
    )
    changes.extend(StageChange(deal.deal_id, s, at) for s, at in seen)
    close_dates.extend(CloseDateChange(deal.deal_id, d, at) for d, at in known_dates)


def _poisson(lam: float, rng: random.Random) -> int:
    n, t = 0, rng.expovariate(lam)
    while t < 1.0:
        n += 1
        t += rng.expovariate(lam)
    return n


DEALS_COLUMNS = (
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
STAGES_COLUMNS = ("deal_id", "stage", "entered_at")
CLOSE_DATES_COLUMNS = ("deal_id", "close_date", "changed_at")


def write_csvs(directory: Path, history: DealHistory | None = None) -> tuple[Path, Path, Path]:
    """``deals.csv``, ``stages.csv`` and ``close_dates.csv`` of ``history`` (``generate()``)."""
    history = history or generate()
    directory.mkdir(parents=True, exist_ok=True)
    deals_path = directory / "deals.csv"
    stages_path = directory / "stages.csv"
    dates_path = directory / "close_dates.csv"
    with open(deals_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(DEALS_COLUMNS)
        for d in history.deals:
            w.writerow(
                (
                    d.deal_id,
                    d.account_domain or "",
                    d.owner_email or "",
                    f"{d.amount:.2f}",
                    d.currency,
                    d.created_at.isoformat(),
                    d.close_date.isoformat() if d.close_date else "",
                    d.stage,
                    d.closed_at.isoformat() if d.closed_at else "",
                    d.outcome.value if d.outcome else "",
                )
            )
    with open(stages_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(STAGES_COLUMNS)
        for c in history.changes:
            w.writerow((c.deal_id, c.stage, c.entered_at.isoformat()))
    with open(dates_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CLOSE_DATES_COLUMNS)
        for cd in history.close_dates:
            w.writerow((cd.deal_id, cd.close_date.isoformat(), cd.changed_at.isoformat()))
    return deals_path, stages_path, dates_path


def main(argv: list[str] | None = None) -> None:
    """``python -m touchflow.demo.deal_history DIR``: write the demo's deal CSVs into DIR."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    paths = write_csvs(args.directory, generate(seed=args.seed))
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
