"""Firmographics from a local CSV file (``config/firmographics.csv``), read once into a dict."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from touchflow.domain.enrich import CSV_COLUMNS, REVENUE_BANDS, Firmographics
from touchflow.domain.normalize import domain_key
from touchflow.errors import ConfigError

__all__ = ["OfflineEnricher"]


class OfflineEnricher:
    """Firmographics from a local CSV, loaded once into a dict.

    Columns: ``domain,name,industry,employees,revenue_band,country,technologies``
    with ``technologies`` separated by ``;``. Extra columns are ignored; a
    missing column, a bad number, an unknown revenue band or a duplicate domain
    is a :class:`~touchflow.errors.ConfigError` naming ``path:line``.
    """

    def __init__(self, path: str | Path, *, name: str = "offline") -> None:
        self.name = name
        self.path = Path(path)
        self._by_domain = _load_csv(self.path, name)

    def __repr__(self) -> str:
        return f"OfflineEnricher({str(self.path)!r}, {len(self._by_domain)} companies)"

    def __len__(self) -> int:
        return len(self._by_domain)

    @property
    def companies(self) -> Mapping[str, Firmographics]:
        """Every company in the file by normalized domain (read-only)."""
        return MappingProxyType(self._by_domain)

    def lookup(self, domains: Sequence[str]) -> dict[str, Firmographics]:
        table = self._by_domain
        found: dict[str, Firmographics] = {}
        for domain in domains:
            hit = table.get(domain)
            if hit is None:
                hit = table.get(domain_key(domain))
            if hit is not None:
                found[domain] = hit
        return found

    def close(self) -> None:
        """Nothing to release."""


def _load_csv(path: Path, source: str) -> dict[str, Firmographics]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the firmographics file ({exc})") from exc
    table: dict[str, Firmographics] = {}
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise ConfigError(f"{path}:1: firmographics CSV lacks column(s) {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            raw_domain = (row.get("domain") or "").strip()
            if not raw_domain:
                continue
            domain = domain_key(raw_domain)
            if domain in table:
                raise ConfigError(f"{path}:{line}: domain {domain!r} appears twice")
            table[domain] = _parse_row(row, domain, path, line, source)
    return table


def _parse_row(
    row: Mapping[str, str | None], domain: str, path: Path, line: int, source: str
) -> Firmographics:
    def text(column: str) -> str | None:
        return (row.get(column) or "").strip() or None

    employees_text = text("employees")
    employees: int | None = None
    if employees_text is not None:
        try:
            employees = int(employees_text.replace(",", "").replace("_", ""))
        except ValueError:
            raise ConfigError(
                f"{path}:{line}: employees must be a whole number, got {employees_text!r}"
            ) from None
    band = text("revenue_band")
    if band is not None and band not in REVENUE_BANDS:
        raise ConfigError(
            f"{path}:{line}: revenue_band {band!r} is not one of {', '.join(REVENUE_BANDS)}"
        )
    country = text("country")
    if country is not None:
        country = country.upper()
        if len(country) != 2 or not country.isalpha():
            raise ConfigError(f"{path}:{line}: country must be ISO 3166 alpha-2, got {country!r}")
    techs = tuple(t.strip().lower() for t in (row.get("technologies") or "").split(";"))
    return Firmographics(
        domain=domain,
        name=text("name"),
        industry=text("industry"),
        employees=employees,
        revenue_band=band,
        country=country,
        technologies=tuple(t for t in techs if t),
        source=source,
    )
