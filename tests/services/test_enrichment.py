"""enrich_accounts against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from touchflow.adapters.enrichment.chain import ChainEnricher
from touchflow.adapters.enrichment.offline import OfflineEnricher
from touchflow.domain.enrich import Firmographics
from touchflow.services.enrichment import EnrichReport, enrich_accounts
from touchflow.store.schema import accounts, prospects

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)

KNOWN = {
    "acme.com": Firmographics(
        "acme.com", "Acme", "software", 250, "10-50M", "US", ("salesforce", "aws")
    ),
    "globex.io": Firmographics("globex.io", "Globex", "fintech", 5000, "1B+", "GB", ("sap",)),
    "initech.de": Firmographics("initech.de", "Initech", "manufacturing", 900, None, "DE"),
}


class DictEnricher:
    """An Enricher over a dict that records its calls."""

    def __init__(self, known: dict[str, Firmographics], name: str = "test") -> None:
        self.name = name
        self.known = known
        self.calls: list[list[str]] = []

    def lookup(self, domains):
        self.calls.append(list(domains))
        return {d: self.known[d] for d in domains if d in self.known}

    def close(self) -> None:
        pass


def add_account(conn, domain: str, **values) -> int:
    row = {"domain": domain, "created_at": T0, "updated_at": T0} | values
    return conn.execute(insert(accounts).values(row).returning(accounts.c.id)).scalar_one()


def add_prospect(conn, email: str, account_id: int | None, **values) -> int:
    row = {
        "email": email,
        "account_id": account_id,
        "fields": {},
        "created_at": T0,
        "updated_at": T0,
    } | values
    return conn.execute(insert(prospects).values(row).returning(prospects.c.id)).scalar_one()


def account(conn, domain: str):
    return conn.execute(select(accounts).where(accounts.c.domain == domain)).one()


def test_enriches_empty_fields_with_provenance_and_keeps_imported_ones(db):
    with db.begin() as conn:
        add_account(conn, "acme.com")
        add_account(
            conn,
            "globex.io",
            industry="Banking",
            field_sources={"industry": {"source": "import:csv", "at": "2026-11-01T08:00:00+00:00"}},
        )
        add_account(conn, "unknown.org")
        enricher = DictEnricher(KNOWN)
        report = enrich_accounts(conn, enricher, NOW, batch_size=2)

    assert report == EnrichReport(looked_up=3, enriched=2, unchanged=0, not_found=1)
    assert len(enricher.calls) == 2  # one lookup per batch
    with db.connect() as conn:
        acme = account(conn, "acme.com")
        globex = account(conn, "globex.io")
        unknown = account(conn, "unknown.org")
    assert (acme.name, acme.industry, acme.employees, acme.revenue_band, acme.country) == (
        "Acme",
        "software",
        250,
        "10-50M",
        "US",
    )
    assert acme.technologies == ["salesforce", "aws"]
    at = NOW.isoformat()
    assert acme.field_sources["industry"] == {"source": "enrich:test", "at": at}
    assert acme.updated_at == NOW
    # The imported industry stays, the rest is filled.
    assert globex.industry == "Banking"
    assert globex.field_sources["industry"]["source"] == "import:csv"
    assert globex.employees == 5000
    assert globex.field_sources["employees"]["source"] == "enrich:test"
    assert unknown.name is None and unknown.updated_at == T0


def test_human_and_crm_values_stay_and_enriched_ones_refresh(db):
    with db.begin() as conn:
        add_account(
            conn,
            "acme.com",
            name="ACME Corporation",
            employees=40,
            country="CA",
            field_sources={
                "name": {"source": "human", "at": "x"},
                "employees": {"source": "enrich:old", "at": "x"},
                "country": {"source": "crm", "at": "x"},
            },
        )
        enrich_accounts(conn, DictEnricher(KNOWN), NOW)
    with db.connect() as conn:
        acme = account(conn, "acme.com")
    assert acme.name == "ACME Corporation"
    assert acme.country == "CA"
    assert acme.employees == 250
    assert acme.field_sources["employees"]["source"] == "enrich:test"
    assert acme.field_sources["name"] == {"source": "human", "at": "x"}


def test_a_rerun_changes_nothing(db):
    with db.begin() as conn:
        add_account(conn, "acme.com")
        add_account(conn, "globex.io")
        enrich_accounts(conn, DictEnricher(KNOWN), NOW)
    later = NOW + timedelta(days=1)
    with db.begin() as conn:
        report = enrich_accounts(conn, DictEnricher(KNOWN), later)
    assert report == EnrichReport(looked_up=2, enriched=0, unchanged=2, not_found=0)
    with db.connect() as conn:
        assert account(conn, "acme.com").updated_at == NOW


def test_only_the_given_domains(db):
    with db.begin() as conn:
        add_account(conn, "acme.com")
        add_account(conn, "globex.io")
        enricher = DictEnricher(KNOWN)
        report = enrich_accounts(conn, enricher, NOW, domains=["WWW.Acme.com", "nowhere.net"])
    assert report.looked_up == 1 and report.enriched == 1
    assert enricher.calls == [["acme.com"]]
    with db.connect() as conn:
        assert account(conn, "globex.io").name is None


def test_copies_the_country_to_prospects_without_one(db):
    with db.begin() as conn:
        acme = add_account(conn, "acme.com")
        kept = add_account(
            conn, "initech.de", country="AT", field_sources={"country": {"source": "human"}}
        )
        empty = add_prospect(conn, "a@acme.com", acme)
        own = add_prospect(
            conn,
            "b@acme.com",
            acme,
            country="FR",
            field_sources={"country": {"source": "import:csv"}},
        )
        initech = add_prospect(conn, "c@initech.de", kept)
        loose = add_prospect(conn, "d@acme.com", None)
        report = enrich_accounts(conn, DictEnricher(KNOWN), NOW)
    assert report.prospects_updated == 2
    with db.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(prospects))}
    assert rows[empty].country == "US"
    assert rows[empty].field_sources["country"] == {
        "source": "enrich:account",
        "at": NOW.isoformat(),
        "via": "acme.com",
        "origin": "enrich:test",
    }
    assert rows[empty].updated_at == NOW
    assert rows[own].country == "FR"  # the prospect's own imported country stays
    assert rows[initech].country == "AT"  # the account's human country is copied
    assert rows[initech].field_sources["country"]["origin"] == "human"
    assert rows[loose].country is None


def test_a_phone_kept_raw_is_read_in_the_country_enrichment_gives(db):
    """Imported without a country, a local number waits in phone_raw for its account's."""
    known = {"parsian.ir": Firmographics("parsian.ir", "Parsian", country="IR")}
    imported = {"source": "import:leads.csv"}
    with db.begin() as conn:
        parsian = add_account(conn, "parsian.ir")
        waiting = add_prospect(
            conn,
            "ali@parsian.ir",
            parsian,
            fields={"phone_raw": "۰۹۱۲ ۱۲۳ ۴۵۶۷", "notes": "x"},
            field_sources={"phone_raw": imported, "notes": imported},
        )
        unreadable = add_prospect(
            conn,
            "sara@parsian.ir",
            parsian,
            timezone="Asia/Dubai",
            fields={"phone_raw": "12"},
            field_sources={"phone_raw": imported},
        )
        enrich_accounts(conn, DictEnricher(known), NOW)
    with db.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(prospects))}
    ali = rows[waiting]
    assert (ali.country, ali.phone, ali.timezone) == ("IR", "+989121234567", "Asia/Tehran")
    assert ali.fields == {"notes": "x"}
    assert ali.field_sources["phone"] == imported  # the number is still the file's word
    assert ali.field_sources["timezone"] == {"source": "derived"}
    sara = rows[unreadable]
    assert (sara.country, sara.phone, sara.timezone) == ("IR", None, "Asia/Dubai")
    assert sara.fields == {"phone_raw": "12"}


def test_a_row_changed_since_it_was_read_is_not_overwritten(db):
    class Racing(DictEnricher):
        """A human edits the account while the lookup is in flight."""

        def lookup(self, domains):
            conn.execute(
                update(accounts)
                .where(accounts.c.domain == "acme.com")
                .values(
                    industry="Robotics",
                    field_sources={"industry": {"source": "human"}},
                    updated_at=NOW - timedelta(minutes=1),
                )
            )
            return super().lookup(domains)

    with db.begin() as conn:
        add_account(conn, "acme.com")
        enrich_accounts(conn, Racing(KNOWN), NOW)
    with db.connect() as conn:
        acme = account(conn, "acme.com")
    assert acme.industry == "Robotics"
    assert acme.name is None  # picked up by the next run


def test_offline_then_fallback_chain_records_who_found_it(db):
    offline = OfflineEnricher(ROOT / "config" / "firmographics.csv")
    fallback = DictEnricher(KNOWN, name="http")
    with db.begin() as conn:
        add_account(conn, "outreach.io")
        add_account(conn, "acme.com")
        report = enrich_accounts(conn, ChainEnricher([offline, fallback]), NOW)
    assert report.enriched == 2
    assert fallback.calls == [["acme.com"]]
    with db.connect() as conn:
        outreach = account(conn, "outreach.io")
        acme = account(conn, "acme.com")
    assert outreach.industry == "sales engagement"
    assert outreach.field_sources["industry"]["source"] == "enrich:offline"
    assert acme.field_sources["industry"]["source"] == "enrich:http"


def test_many_accounts_in_batches(db):
    offline = OfflineEnricher(ROOT / "config" / "firmographics.csv")
    domains = sorted(offline.companies)[:300] + [f"missing{i}.example" for i in range(50)]
    with db.begin() as conn:
        conn.execute(
            insert(accounts),
            [{"domain": d, "created_at": T0, "updated_at": T0} for d in domains],
        )
        report = enrich_accounts(conn, offline, NOW, batch_size=64)
    assert report.looked_up == 350
    assert report.not_found == 50
    assert report.enriched + report.unchanged == 300
    with db.connect() as conn:
        named = conn.execute(select(accounts.c.id).where(accounts.c.name.is_not(None))).all()
    assert len(named) == 300


def test_rejects_a_naive_now(db):
    with db.begin() as conn, pytest.raises(ValueError, match="naive"):
        enrich_accounts(conn, DictEnricher({}), datetime(2026, 1, 1))
