"""Enrichment core: the merge rule and provenance, the offline CSV enricher, the chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchflow.adapters.enrichment.chain import ChainEnricher
from touchflow.adapters.enrichment.offline import OfflineEnricher
from touchflow.domain.enrich import (
    ENRICHED_FIELDS,
    REVENUE_BANDS,
    Firmographics,
    may_fill,
    merge,
    revenue_band_of,
)
from touchflow.domain.normalize import domain_key
from touchflow.errors import ConfigError
from touchflow.ports import Enricher

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
AT = "2026-11-30T09:30:00+00:00"

ACME = Firmographics(
    domain="acme.com",
    name="Acme",
    industry="software",
    employees=250,
    revenue_band="10-50M",
    country="us",
    technologies=("salesforce", "aws"),
    source="offline",
)
EMPTY = dict.fromkeys(ENRICHED_FIELDS)


# -- merge -------------------------------------------------------------------


def test_merge_fills_empty_fields_and_records_provenance():
    changes, sources = merge(EMPTY, {}, ACME, "offline", NOW)
    assert changes == {
        "name": "Acme",
        "industry": "software",
        "employees": 250,
        "revenue_band": "10-50M",
        "country": "US",
        "technologies": ["salesforce", "aws"],
    }
    assert sources == {f: {"source": "enrich:offline", "at": AT} for f in ENRICHED_FIELDS}


@pytest.mark.parametrize("source", ["import:csv", "import:hubspot", "human", "crm"])
def test_merge_never_overwrites_imported_human_or_crm_values(source):
    current = EMPTY | {"industry": "Fintech", "employees": 80}
    recorded = {
        "industry": {"source": source, "at": "2026-01-01T00:00:00+00:00"},
        "employees": {"source": source, "at": "2026-01-01T00:00:00+00:00"},
    }
    changes, sources = merge(current, recorded, ACME, "offline", NOW)
    assert "industry" not in changes and "employees" not in changes
    assert sources["industry"] == recorded["industry"]
    assert sources["employees"] == recorded["employees"]
    # The empty fields are still filled.
    assert changes["name"] == "Acme"
    assert sources["name"]["source"] == "enrich:offline"


def test_a_value_without_a_recorded_source_is_kept():
    changes, sources = merge(EMPTY | {"industry": "Retail"}, None, ACME, "offline", NOW)
    assert "industry" not in changes
    assert "industry" not in sources


def test_an_enriched_value_may_be_refreshed_by_an_enricher():
    current = EMPTY | {"employees": 120, "country": "GB"}
    recorded = {
        "employees": {"source": "enrich:http", "at": "2026-01-01T00:00:00+00:00"},
        "country": {"source": "human", "at": "2026-01-01T00:00:00+00:00"},
    }
    changes, sources = merge(current, recorded, ACME, "offline", NOW)
    assert changes["employees"] == 250
    assert sources["employees"] == {"source": "enrich:offline", "at": AT}
    assert "country" not in changes  # the human's GB stays
    assert sources["country"]["source"] == "human"


def test_equal_values_change_nothing_not_even_provenance():
    first, sources = merge(EMPTY, {}, ACME, "offline", NOW)
    again, sources2 = merge(EMPTY | first, sources, ACME, "http", NOW + timedelta(days=1))
    assert again == {}
    assert sources2 == sources


def test_blank_strings_and_empty_lists_count_as_empty():
    current = EMPTY | {"name": "  ", "technologies": []}
    changes, _ = merge(current, {"name": {"source": "human"}}, ACME, "offline", NOW)
    assert changes["name"] == "Acme"
    assert changes["technologies"] == ["salesforce", "aws"]


def test_unknown_values_are_never_written_over_known_ones():
    sparse = Firmographics(domain="acme.com", industry="software", source="x")
    current = EMPTY | {"name": "Old", "employees": 10}
    recorded = {"name": {"source": "enrich:x"}, "employees": {"source": "enrich:x"}}
    changes, sources = merge(current, recorded, sparse, "x", NOW)
    assert changes == {"industry": "software"}
    assert sources["name"] == {"source": "enrich:x"}


def test_merge_does_not_modify_its_inputs_and_keeps_other_sources():
    current = EMPTY | {"industry": "Fintech"}
    recorded = {"industry": {"source": "import:csv", "at": "x"}, "title": {"source": "human"}}
    before = ({**current}, {k: dict(v) for k, v in recorded.items()})
    _, sources = merge(current, recorded, ACME, "enrich:offline", NOW)
    assert (current, recorded) == before
    assert sources["title"] == {"source": "human"}
    assert sources["name"]["source"] == "enrich:offline"  # no double prefix


def test_merge_wants_an_aware_now():
    with pytest.raises(ValueError, match="naive"):
        merge(EMPTY, {}, ACME, "offline", datetime(2026, 1, 1))


def test_provenance_time_is_utc():
    paris = NOW.astimezone(ZoneInfo("Europe/Paris"))
    _, sources = merge(EMPTY, {}, ACME, "offline", paris)
    assert sources["name"]["at"] == AT


_protected = st.sampled_from(["import:csv", "import:api", "human", "crm"])
_value = st.one_of(st.text(min_size=1).filter(str.strip), st.integers(0, 10**6))


@given(source=_protected, value=_value, field=st.sampled_from(ENRICHED_FIELDS))
def test_property_protected_non_empty_values_never_change(source, value, field):
    current = EMPTY | {field: [str(value)] if field == "technologies" else value}
    changes, sources = merge(current, {field: {"source": source}}, ACME, "offline", NOW)
    assert field not in changes
    assert sources[field] == {"source": source}


def test_may_fill():
    assert may_fill(None, {"source": "human"})
    assert may_fill("", None)
    assert may_fill("x", {"source": "enrich:offline"})
    assert not may_fill("x", {"source": "import:csv"})
    assert not may_fill("x", {"source": "enrichment"})  # prefix is "enrich:", exactly
    assert not may_fill(0, None)  # zero employees is a value


# -- revenue bands, domains ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "band"),
    [
        ("10-50M", "10-50M"),
        ("$0-$1M", "<1M"),
        ("$1M-$10M", "1-10M"),
        ("$100M-$250M", "50-250M"),
        ("$500M-$1B", "250M-1B"),
        ("$10B+", "1B+"),
        (3_000_000, "1-10M"),
        (2e9, "1B+"),
        ("unknown", None),
        (None, None),
        (True, None),
    ],
)
def test_revenue_band_of(value, band):
    assert revenue_band_of(value) == band


def test_enrichers_key_on_the_import_domain_rule():
    assert domain_key("  WWW.Acme.COM. ") == "acme.com"
    assert domain_key("wwwidget.io") == "wwwidget.io"
    assert domain_key("https://www.Bücher.de/shop") == "xn--bcher-kva.de"  # as import stores it
    assert domain_key("not a domain") == "not a domain"  # never raises: a lookup just misses


# -- offline enricher ------------------------------------------------------------


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "firmographics.csv"
    path.write_text(
        "domain,name,industry,employees,revenue_band,country,technologies\n" + body,
        encoding="utf-8",
    )
    return path


def test_offline_enricher_reads_the_csv(tmp_path):
    path = _csv(
        tmp_path,
        'Acme.com,Acme,software,"1,200",50-250M,us,Salesforce; AWS ;;\nblank.io,,,,,,\n',
    )
    enricher = OfflineEnricher(path)
    assert isinstance(enricher, Enricher)
    found = enricher.lookup(["www.acme.com", "blank.io", "missing.org"])
    assert set(found) == {"www.acme.com", "blank.io"}
    acme = found["www.acme.com"]
    assert acme == Firmographics(
        "acme.com", "Acme", "software", 1200, "50-250M", "US", ("salesforce", "aws")
    )
    assert acme.source == "offline"
    assert found["blank.io"].values() == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a.com,A,x,many,,,\n", r":2: employees must be a whole number"),
        ("a.com,A,x,5,huge,,\n", r":2: revenue_band 'huge'"),
        ("a.com,A,x,5,,USA,\n", r":2: country must be ISO 3166"),
        ("a.com,A,x,5,,,\nA.com,A,x,5,,,\n", r":3: domain 'a.com' appears twice"),
    ],
)
def test_offline_enricher_names_the_bad_line(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        OfflineEnricher(_csv(tmp_path, body))


def test_offline_enricher_names_missing_columns(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("domain,name\na.com,A\n")
    with pytest.raises(ConfigError, match=r"lacks column.*industry"):
        OfflineEnricher(path)
    with pytest.raises(ConfigError, match="cannot read"):
        OfflineEnricher(tmp_path / "nope.csv")


def test_the_shipped_sample_covers_the_demo_and_flags_competitors():
    from touchflow.demo.data import generate_rows

    enricher = OfflineEnricher(ROOT / "config" / "firmographics.csv")
    demo = {row["domain"] for row in generate_rows(500)}
    assert len(enricher.lookup(sorted(demo))) >= 0.8 * len(demo)
    competitors = [f for f in enricher.companies.values() if f.industry == "sales engagement"]
    assert {"outreach.io", "salesloft.com"} <= {f.domain for f in competitors}
    assert {f.revenue_band for f in enricher.companies.values()} - {None} <= set(REVENUE_BANDS)


def test_offline_lookups_collapse_duplicates_and_skip_unknown_domains():
    # Their speed is measured in bench/intake.py (enrich_s), not asserted here.
    enricher = OfflineEnricher(ROOT / "config" / "firmographics.csv")
    known = list(enricher.companies)
    domains = [known[i % len(known)] if i % 2 else f"unknown{i}.example" for i in range(10_000)]
    found = enricher.lookup(domains)
    assert set(found) == set(known)  # keyed by domain: duplicates collapse, unknowns absent


# -- chain ---------------------------------------------------------------------


class _Recording:
    def __init__(self, name: str, known: dict[str, Firmographics]) -> None:
        self.name = name
        self.known = known
        self.asked: list[list[str]] = []
        self.closed = False

    def lookup(self, domains):
        self.asked.append(list(domains))
        return {d: self.known[d] for d in domains if d in self.known}

    def close(self):
        self.closed = True


def test_chain_first_hit_wins_and_asks_later_ones_only_for_the_rest():
    first = _Recording("offline", {"a.com": Firmographics("a.com", name="A1", source="offline")})
    second = _Recording(
        "http",
        {"a.com": Firmographics("a.com", name="A2"), "b.com": Firmographics("b.com", name="B")},
    )
    chain = ChainEnricher([first, second])
    found = chain.lookup(["a.com", "b.com", "c.com", "a.com"])
    assert found["a.com"].name == "A1"
    assert found["b.com"].name == "B"
    assert found["b.com"].source == "http"  # filled in from the enricher's name
    assert "c.com" not in found
    assert second.asked == [["b.com", "c.com"]]
    chain.close()
    assert first.closed and second.closed


def test_chain_stops_when_everything_is_found():
    first = _Recording("offline", {"a.com": Firmographics("a.com", name="A")})
    second = _Recording("http", {})
    ChainEnricher([first, second]).lookup(["a.com"])
    assert second.asked == []
    with pytest.raises(ConfigError):
        ChainEnricher([])
