"""Benchmark: import + normalize + offline enrich + score of 100,000 rows, beside the raw floor.

Measured in the same run, on a SQLite file:

* ``rows_per_s``: the whole intake of a generated CSV with realistic mess (a
  few bad rows, mixed titles in five languages, phones in national format,
  companies from ``config/firmographics.csv``): ``run_import`` (stream,
  normalize, dedupe, match accounts, store), ``enrich_accounts`` (offline
  file) and ``rescore`` (``config/icp.yaml``), rows divided by the total time;
* ``floor_rows_per_s``: reading the same CSV with the stdlib ``csv`` module
  and nothing else;
* ``import_rows_per_s``, ``enrich_s``, ``score_s``: the stages on their own.

The last line of output is one JSON object with these keys.
Run: ``.venv/bin/python bench/intake.py [--rows 100000]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from touchflow.adapters.enrichment.offline import OfflineEnricher  # noqa: E402
from touchflow.domain.scoring import load_icp  # noqa: E402
from touchflow.services.enrichment import enrich_accounts  # noqa: E402
from touchflow.services.importer import load_aliases, run_import  # noqa: E402
from touchflow.store.db import make_engine, upgrade  # noqa: E402
from touchflow.store.scores import rescore  # noqa: E402

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
TITLES = [
    "VP Sales", "Head of Revenue Operations", "Director of Marketing", "CEO", "Sales Manager",
    "Account Executive", "Software Engineer", "Directora de Ventas", "Gerente de Marketing",
    "Leiter Vertrieb", "Geschäftsführer", "Directeur commercial", "Responsable marketing",
    "مدیر فروش", "CFO", "IT Manager", "",
]  # fmt: skip
COUNTRIES = ["US", "US", "US", "CA", "GB", "DE", "FR", "ES", "IR", "JP", ""]
FIRST = ["Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo"]
LAST = ["Lee", "Silva", "Weber", "Dubois", "Garcia", "Rahimi", "Tanaka", "Smith"]


def _domains() -> list[tuple[str, str]]:
    with open(ROOT / "config" / "firmographics.csv", newline="") as fh:
        return [(r["domain"], r["name"]) for r in csv.DictReader(fh)]


def write_rows(path: Path, n: int, seed: int = 7) -> None:
    """A messy prospect CSV: ~1 % bad rows, duplicates, national phone formats."""
    rng = random.Random(seed)
    companies = _domains()
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "first_name", "last_name", "title", "company", "website",
                    "phone", "country", "lead_source"])  # fmt: skip
        previous = ""
        for i in range(n):
            domain, name = companies[i % len(companies)]
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first}.{last}.{i}@{domain}".lower()
            if i % 100 == 7:
                email = "not-an-email"
            elif i % 100 == 13:
                email = previous.upper()  # the same person again, shouting
            previous = email
            phone = f"(415) 555-{i % 10000:04d}" if i % 3 else ""
            w.writerow([email, first, last, rng.choice(TITLES), name, f"https://www.{domain}/",
                        phone, rng.choice(COUNTRIES), "list"])  # fmt: skip


def floor(path: Path) -> float:
    t0 = time.perf_counter()
    n = 0
    with open(path, newline="", encoding="utf-8") as fh:
        for _row in csv.DictReader(fh):
            n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="touchflow-intake-"))
    path = tmp / "prospects.csv"
    write_rows(path, args.rows)
    engine = make_engine(f"sqlite:///{tmp / 'intake.db'}")
    upgrade(engine)
    aliases = load_aliases(ROOT / "config" / "domain_aliases.yaml")
    icp = load_icp(ROOT / "config" / "icp.yaml")
    enricher = OfflineEnricher(ROOT / "config" / "firmographics.csv")

    t0 = time.perf_counter()
    summary = run_import(engine, path, aliases=aliases, now=NOW)
    t1 = time.perf_counter()
    with engine.begin() as conn:
        enriched = enrich_accounts(conn, enricher, NOW)
    t2 = time.perf_counter()
    with engine.begin() as conn:
        scored = rescore(conn, icp, NOW)
    t3 = time.perf_counter()
    floor_rate = floor(path)

    total = t3 - t0
    out = {
        "rows_per_s": round(args.rows / total),
        "floor_rows_per_s": round(floor_rate),
        "import_rows_per_s": round(args.rows / (t1 - t0)),
        "enrich_s": round(t2 - t1, 2),
        "score_s": round(t3 - t2, 2),
        "rows": args.rows,
        "loaded": summary.new,
        "rejected": summary.rejected_total,
        "duplicates": summary.duplicates,
        "accounts_enriched": enriched.enriched,
        "scored": scored.scored,
    }
    print(f"{args.rows} rows: import {t1 - t0:.1f} s ({summary.new} new, "
          f"{summary.rejected_total} rejected, {summary.duplicates} duplicates), "
          f"enrich {t2 - t1:.2f} s ({enriched.enriched} accounts), "
          f"score {t3 - t2:.1f} s ({scored.scored} prospects)")  # fmt: skip
    print(f"intake: {out['rows_per_s']} rows/s; floor (csv.DictReader only): "
          f"{out['floor_rows_per_s']} rows/s")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
