"""A generated, deterministic sample of B2B prospects for the demo and benchmarks.

Spread over American, European and Asian time zones; some rows leave the
time zone out (inferred from phone or country), a few have no title (their
enrollments are held as missing_data, as in production) and a few are
malformed on purpose (the import reports them and writes them aside).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from touchflow.domain.prospects import STANDARD_FIELDS

FIRST = [
    "Ava",
    "Noah",
    "Mia",
    "Liam",
    "Zoe",
    "Ethan",
    "Lena",
    "Jonas",
    "Chloé",
    "Hugo",
    "Sofia",
    "Mateo",
    "Yuki",
    "Haruto",
    "Priya",
    "Arjun",
    "Wei",
    "Mei",
    "Olivia",
    "Lucas",
    "Emma",
    "Leon",
    "Aisha",
    "Omar",
    "Sara",
    "Dario",
    "Nina",
    "Felix",
    "Ines",
    "Kenji",
]
LAST = [
    "Carter",
    "Nguyen",
    "Schmidt",
    "Dubois",
    "Rossi",
    "Tanaka",
    "Sharma",
    "Chen",
    "Müller",
    "Martin",
    "Garcia",
    "Kim",
    "Johnson",
    "Bernard",
    "Patel",
    "Silva",
    "Novak",
    "Jansen",
    "Yamamoto",
    "Kumar",
    "Fischer",
    "Lambert",
    "Moreau",
    "Lopez",
    "Walker",
]
COMPANY_A = [
    "North",
    "Blue",
    "Bright",
    "Iron",
    "Clear",
    "Swift",
    "Summit",
    "Harbor",
    "Quantum",
    "Cedar",
    "Atlas",
    "Nimbus",
    "Vertex",
    "Lumen",
    "Orbit",
]
COMPANY_B = [
    "wind",
    "peak",
    "stack",
    "field",
    "path",
    "forge",
    "scale",
    "signal",
    "loop",
    "grid",
    "works",
    "labs",
    "metrics",
    "ledger",
]
TITLES = [
    "VP Sales",
    "Head of Revenue Operations",
    "Director of Sales Development",
    "Chief Revenue Officer",
    "Sales Operations Manager",
    "VP Marketing",
    "Director of Demand Generation",
    "RevOps Lead",
    "Head of Growth",
    "Director of Business Development",
]

# (country, IANA zone or "" to infer, phone prefix, digits after it, share);
# North American and British numbers are in the ranges reserved for fiction.
REGIONS = [
    ("US", "America/New_York", "+121255501", 2, 18),
    ("US", "America/Chicago", "+131255501", 2, 10),
    ("US", "America/Los_Angeles", "+141555501", 2, 14),
    ("US", "", "+161755501", 2, 6),  # zone inferred from the Boston area code
    ("CA", "America/Toronto", "+141655501", 2, 4),
    ("GB", "Europe/London", "+442079460", 3, 9),
    ("DE", "", "+493012", 6, 8),  # zone inferred from the phone's country
    ("FR", "Europe/Paris", "+3314", 7, 6),
    ("NL", "Europe/Amsterdam", "+3120", 7, 4),
    ("JP", "Asia/Tokyo", "+8135", 7, 7),
    ("SG", "Asia/Singapore", "+656", 7, 5),
    ("IN", "Asia/Kolkata", "+9180", 8, 5),
    ("AU", "Australia/Sydney", "+612", 8, 4),
]

COLUMNS = [*STANDARD_FIELDS, "industry", "employees"]


def generate_rows(n: int, *, seed: int = 7, missing_title_every: int = 40) -> list[dict[str, str]]:
    """``n`` valid prospect rows, deterministic for a seed."""
    rng = random.Random(seed)
    weights = [r[4] for r in REGIONS]
    rows: list[dict[str, str]] = []
    for i in range(n):
        country, tz, prefix, n_digits, _ = rng.choices(REGIONS, weights)[0]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.choice(COMPANY_A) + rng.choice(COMPANY_B)
        domain = f"{company.lower()}{i % 97}.example"
        digits = "".join(rng.choice("0123456789") for _ in range(n_digits))
        rows.append(
            {
                "email": f"{first.lower()}.{last.lower()}.{i}@{domain}".replace("é", "e").replace(
                    "ü", "u"
                ),
                "first_name": first,
                "last_name": last,
                "title": ""
                if missing_title_every and i % missing_title_every == 13
                else rng.choice(TITLES),
                "company": company,
                "domain": domain,
                "phone": prefix + digits,
                "country": country,
                "timezone": tz,
                "industry": rng.choice(["Software", "Fintech", "Logistics", "Healthcare IT"]),
                "employees": str(rng.choice([80, 250, 600, 1200, 5000])),
            }
        )
    return rows


MALFORMED = [
    {"email": "not-an-email", "first_name": "Bad", "country": "US"},
    {"email": "", "first_name": "NoEmail"},
    {"email": "zone@bad.example", "first_name": "Zed", "timezone": "Mars/Olympus"},
    {"email": "country@bad.example", "first_name": "Cy", "country": "USA"},
    {"email": "phone@bad.example", "first_name": "Pat", "phone": "12", "country": "US"},
]


def write_csv(path: Path, rows: list[dict[str, str]], *, malformed: bool = True) -> Path:
    """Write rows (plus the malformed examples, spread through the file) as a CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = list(MALFORMED) if malformed else []
    step = max(1, len(rows) // (len(bad) + 1))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for i, row in enumerate(rows):
            if bad and i and i % step == 0:
                broken = bad.pop(0)
                writer.writerow({c: broken.get(c, "") for c in COLUMNS})
            writer.writerow(row)
        for extra in bad:
            writer.writerow({c: extra.get(c, "") for c in COLUMNS})
    return path
