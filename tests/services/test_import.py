"""Streaming prospect import on SQLite and PostgreSQL: bad rows aside, good rows in, once."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine, func, select

from touchflow.errors import ImportFileError, ImportFormatError
from touchflow.services.importer import load_mapping, run_import
from touchflow.store.schema import accounts, prospects

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HEADER = "email,first_name,last_name,title,company,phone,country,timezone,notes"


def good_line(i: int) -> str:
    phone = f"+1 415 {200 + i % 700:03d} {i % 10000:04d}" if i % 2 else ""
    return (
        f"person{i}@company{i % 7}.com,First{i},Last{i},VP Sales,Company {i % 7},"
        f"{phone},US,,note {i}"
    )


# One of every malformed row kind, as raw bytes, with the reason code it must get.
BAD_ROWS: list[tuple[bytes, str]] = [
    (b"not-an-email,Bad,Email,,,,,,", "invalid_email"),
    (b",Empty,Email,,,,,,", "missing_email"),
    (b"latin1@acme.com,Jos\xe9,Garc\xeda,,,,,,", "invalid_utf8"),
    (b"ragged@acme.com,Too,Many,,,,,,,extra", "ragged_row"),
    (b"short@acme.com,Too,Few", "ragged_row"),
    (b"tz@acme.com,Bad,Zone,,,,,Mars/Base,", "invalid_timezone"),
    (b"long@acme.com," + b"x" * 250 + b",Long,,,,,,", "value_too_long"),
    (b"nul@acme.com,N\x00ul,Byte,,,,,,", "nul_byte"),
    (b"ctl@acme.com,Ctl,Char,VP\x1bSales,,,,,", "control_character"),
    (b'quoted@acme.com,"' + b"y" * 140_000 + b'",Huge,,,,,,', "csv_error"),
]


def write_malformed_csv(path: Path, good: int = 90) -> dict[int, str]:
    """90 good rows and one bad row of each kind every 10 lines; returns {line: reason}."""
    lines = [HEADER.encode()]
    bad_at: dict[int, str] = {}
    bad = iter(BAD_ROWS)
    for i in range(good):
        lines.append(good_line(i).encode())
        if i % 9 == 8:
            raw, reason = next(bad)
            lines.append(raw)
            bad_at[len(lines)] = reason
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    return bad_at


def rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.email: r for r in conn.execute(select(prospects))}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_malformed_rows_go_aside_and_good_rows_load(db: Engine, tmp_path: Path):
    path = tmp_path / "people.csv"
    bad_at = write_malformed_csv(path)
    assert len(bad_at) == len(BAD_ROWS) == 10
    rejects = tmp_path / "people.rejects.csv"

    summary = run_import(db, path, now=NOW, rejects_path=rejects, batch_size=16)

    assert summary.rows_read == 100
    assert (summary.new, summary.updated, summary.unchanged) == (90, 0, 0)
    assert summary.rejected_total == 10
    assert summary.rejected == {
        "invalid_email": 1,
        "missing_email": 1,
        "invalid_utf8": 1,
        "ragged_row": 2,
        "invalid_timezone": 1,
        "value_too_long": 1,
        "nul_byte": 1,
        "control_character": 1,
        "csv_error": 1,
    }
    assert summary.accounts_created == 7
    assert summary.rejects_path == rejects
    stored = rows(db)
    assert len(stored) == 90 and count(db, accounts) == 7
    p = stored["person1@company1.com"]
    assert (p.phone, p.country, p.timezone) == ("+14152010001", "US", "America/Los_Angeles")
    assert (p.seniority, p.department, p.email_free, p.email_role) == ("vp", "sales", False, False)
    assert p.field_sources["first_name"] == {"source": "import:people.csv"}
    assert p.field_sources["timezone"] == {"source": "derived"}

    # The rejects file: same delimiter, _line and _reason first, the original cells.
    with open(rejects, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["_line", "_reason", *HEADER.split(",")]
        written = list(reader)
    assert {int(r[0]): r[1].split(":")[0] for r in written} == bad_at
    latin = next(r for r in written if r[1].startswith("invalid_utf8"))
    # Undecodable bytes come back as they were, so the row can be fixed and re-imported.
    assert latin[3].encode("utf-8", "surrogateescape") == b"Jos\xe9"
    assert "byte 0xE9" in latin[1]


def test_reimport_changes_nothing(db: Engine, tmp_path: Path):
    path = tmp_path / "people.csv"
    write_malformed_csv(path)
    run_import(db, path, now=NOW)
    before = {e: r.updated_at for e, r in rows(db).items()}

    again = run_import(db, path, now=NOW + timedelta(days=1), batch_size=7)

    assert (again.new, again.updated, again.unchanged) == (0, 0, 90)
    assert again.accounts_created == 0 and again.rejected_total == 10
    assert {e: r.updated_at for e, r in rows(db).items()} == before


def test_same_data_from_another_file_is_unchanged(db: Engine, tmp_path: Path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    text = HEADER + "\n" + "\n".join(good_line(i) for i in range(5)) + "\n"
    first.write_text(text)
    second.write_text(text)
    run_import(db, first, now=NOW)
    summary = run_import(db, second, now=NOW)
    assert (summary.new, summary.updated, summary.unchanged) == (0, 0, 5)
    # Provenance stays with the file the values first came from.
    assert rows(db)["person0@company0.com"].field_sources["title"] == {"source": "import:a.csv"}


def test_dedupe_within_and_across_files(db: Engine, tmp_path: Path):
    first = tmp_path / "first.csv"
    first.write_text(
        "email,first_name,title,sms_consent\n"
        "ann@acme.com,Ann,CEO,yes\n"
        "ANN@Acme.com,Annie,CTO,no\n"  # the same person: her first row's values are kept
        "bob@acme.com,Bob,,\n"
        "ann@acme.com,Ann,CEO,yes\n"
    )
    summary = run_import(db, first, now=NOW)
    assert (summary.rows_read, summary.new, summary.duplicates) == (4, 2, 2)
    assert summary.conflicts == 3  # first_name, title, sms_consent: line 2 against line 3
    ann = rows(db)["ann@acme.com"]
    assert (ann.first_name, ann.title, ann.sms_consent_at) == ("Ann", "CEO", NOW)

    second = tmp_path / "second.csv"
    second.write_text(
        "email,first_name,title,linkedin\n"
        "ann@acme.com,Ann,Chief Executive Officer,\n"  # changed title
        "bob@acme.com,Bob,,\n"  # nothing new
        "cy@acme.com,Cy,,\n"
    )
    later = NOW + timedelta(hours=1)
    summary = run_import(db, second, now=later)
    assert (summary.new, summary.updated, summary.unchanged, summary.duplicates) == (1, 1, 1, 0)
    stored = rows(db)
    ann = stored["ann@acme.com"]
    assert (ann.title, ann.seniority, ann.updated_at) == (
        "Chief Executive Officer",
        "c_level",
        later,
    )
    assert ann.field_sources["title"] == {"source": "import:second.csv"}
    assert ann.fields["sms_consent"] == "yes"  # fields merge: not in this file, kept
    assert ann.sms_consent_at == NOW
    assert stored["bob@acme.com"].updated_at == NOW


def test_derived_values_never_replace_imported_ones(db: Engine, tmp_path: Path):
    first = tmp_path / "crm.csv"
    first.write_text("email,timezone,phone\nann@acme.com,America/Chicago,bad phone\n")
    summary = run_import(db, first, now=NOW)
    assert summary.warnings == {"invalid_phone": 1}
    assert rows(db)["ann@acme.com"].fields == {"phone_raw": "bad phone"}

    second = tmp_path / "enriched.csv"
    second.write_text("email,phone,title\nann@acme.com,+1 415 555 2671,\n")
    run_import(db, second, now=NOW)
    ann = rows(db)["ann@acme.com"]
    assert ann.phone == "+14155552671"
    assert ann.timezone == "America/Chicago"  # the phone's zone is only a guess
    assert ann.country == "US"  # empty before: filled from the phone
    assert "phone_raw" not in ann.fields  # a good phone retires the bad one


def test_one_account_per_company_and_alias(db: Engine, tmp_path: Path):
    path = tmp_path / "acme.csv"
    path.write_text(
        "email,company,website,domain\n"
        "ann@acme.com,,,\n"
        "bob@acme.co.uk,Acme Ltd,,\n"
        "cy@gmail.com,Acme Inc,https://www.acme.com/contact,\n"
        "dee@acme-corp.com,ACME,,\n"
        "eve@hotmail.com,Freelance,,\n"
        "fay@other.io,Other,,OTHER.io\n"
    )
    summary = run_import(
        db, path, now=NOW, aliases={"acme.co.uk": "acme.com", "acme-corp.com": "acme.com"}
    )
    assert (summary.new, summary.accounts_created) == (6, 2)
    stored = rows(db)
    ids = {e: r.account_id for e, r in stored.items()}
    acme = ids["ann@acme.com"]
    assert acme is not None
    assert ids["bob@acme.co.uk"] == ids["cy@gmail.com"] == ids["dee@acme-corp.com"] == acme
    assert ids["eve@hotmail.com"] is None and stored["eve@hotmail.com"].email_free
    assert ids["fay@other.io"] not in (None, acme)
    with db.connect() as conn:
        names = dict(conn.execute(select(accounts.c.domain, accounts.c.name)).all())
    assert names == {"acme.com": "Acme Ltd", "other.io": "Other"}

    # A later file names the company; accounts are not renamed, and nothing else changes.
    more = tmp_path / "more.csv"
    more.write_text("email,company\ngus@acme.com,Acme Corporation\n")
    summary = run_import(db, more, now=NOW, aliases={"acme.co.uk": "acme.com"})
    assert (summary.new, summary.accounts_created) == (1, 0)
    assert rows(db)["gus@acme.com"].account_id == acme


def test_jsonl_with_mapping(db: Engine, tmp_path: Path):
    mapping_file = tmp_path / "map.yaml"
    mapping_file.write_text(
        "email: E-Mail\nfirst_name: Given Name\ntitle: Job Title\ncompany: Account\n"
        "linkedin_url: LinkedIn\n"
    )
    path = tmp_path / "leads.jsonl"
    good = [
        {"E-Mail": "ann@acme.com", "Given Name": "Ann", "Job Title": "Directeur commercial",
         "Account": "Acme", "LinkedIn": "in/ann", "score": 12, "tags": ["a", "b"]},
        {"E-Mail": "bob@acme.com", "Given Name": "Bob", "Job Title": "مدیر فروش", "vip": True},
    ]  # fmt: skip
    lines = [json.dumps(good[0]).encode(), json.dumps(good[1], ensure_ascii=False).encode()]
    lines += [
        b"",
        b'{"E-Mail": "broken@acme.com", ',
        b'["not", "an", "object"]',
        b'{"E-Mail": "latin@acme.com", "Given Name": "Jos\xe9"}',
        b'{"E-Mail": "nul@acme.com", "Given Name": "N\\u0000ul"}',
        b'{"E-Mail": "tz@acme.com", "timezone": "Nowhere/Land"}',
        b'{"Given Name": "No Email"}',
        b"[" * 100_000 + b"]" * 100_000,
    ]
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    rejects = tmp_path / "leads.rejects.jsonl"

    summary = run_import(
        db, path, now=NOW, mapping=load_mapping(mapping_file), rejects_path=rejects
    )

    assert summary.format == "jsonl"
    assert (summary.rows_read, summary.new) == (9, 2)  # the blank line is no row
    assert summary.rejected == {
        "invalid_json": 2,
        "not_an_object": 1,
        "invalid_utf8": 1,
        "nul_byte": 1,
        "invalid_timezone": 1,
        "missing_email": 1,
    }
    ann = rows(db)["ann@acme.com"]
    assert (ann.first_name, ann.seniority, ann.department) == ("Ann", "director", "sales")
    assert ann.fields == {"linkedin_url": "in/ann", "score": "12", "tags": '["a","b"]'}
    bob = rows(db)["bob@acme.com"]
    assert (bob.seniority, bob.department, bob.fields) == ("manager", "sales", {"vip": "true"})

    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(w["_line"], w["_reason"].split(":")[0]) for w in written] == [
        (4, "invalid_json"),
        (5, "not_an_object"),
        (6, "invalid_utf8"),
        (7, "nul_byte"),
        (8, "invalid_timezone"),
        (9, "missing_email"),
        (10, "invalid_json"),
    ]
    assert written[1]["_raw"] == '["not", "an", "object"]'
    assert written[3]["E-Mail"] == "nul@acme.com"  # an object comes back as an object


def test_semicolon_csv_with_bom_and_quoted_newlines(db: Engine, tmp_path: Path):
    path = tmp_path / "export.csv"
    path.write_bytes(
        "\ufeffE-Mail;Vorname;Position\r\n"
        'ann@acme.de;Ann;"Leiterin\r\nVertrieb"\r\n'
        "bob@acme.de;Bob;Geschäftsführer\r\n".encode()
    )
    summary = run_import(
        db, path, now=NOW, mapping={"E-Mail": "email", "Vorname": "first_name", "Position": "title"}
    )
    assert (summary.new, summary.rejected_total) == (2, 0)
    stored = rows(db)
    assert (stored["ann@acme.de"].title, stored["ann@acme.de"].seniority) == (
        "Leiterin Vertrieb",
        "director",
    )
    assert stored["bob@acme.de"].seniority == "c_level"


def test_a_fixed_rejects_file_imports_as_is(db: Engine, tmp_path: Path):
    path = tmp_path / "people.csv"
    path.write_text("email,first_name\nann@acme.com,Ann\nbob@,Bob\n")
    rejects = tmp_path / "people.rejects.csv"
    run_import(db, path, now=NOW, rejects_path=rejects)
    rejects.write_text(rejects.read_text().replace("bob@,", "bob@acme.com,"))
    summary = run_import(db, rejects, now=NOW)
    assert (summary.new, summary.rejected_total) == (1, 0)
    assert rows(db)["bob@acme.com"].fields == {}  # _line and _reason are not data


def test_files_that_cannot_be_imported(db: Engine, tmp_path: Path):
    no_email = tmp_path / "x.csv"
    no_email.write_text("name,company\nAnn,Acme\n")
    with pytest.raises(ImportFileError, match=r"x.csv:1: no email column"):
        run_import(db, no_email, now=NOW)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ImportFileError, match="empty"):
        run_import(db, empty, now=NOW)
    twice = tmp_path / "twice.csv"
    twice.write_text("Email,e-mail\na@b.com,c@d.com\n")
    with pytest.raises(ImportFileError, match="both give 'email'"):
        run_import(db, twice, now=NOW, mapping={"e-mail": "email"})
    old_excel = tmp_path / "x.xls"
    old_excel.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(ImportFormatError, match=r"cannot read a \.xls file; it reads CSV"):
        run_import(db, old_excel, now=NOW)


@pytest.mark.slow
def test_50k_rows_stream_with_flat_memory(db: Engine, tmp_path: Path):
    path = tmp_path / "big.csv"
    notes = "n" * 400  # fat rows: the file is far larger than the memory an import may grow
    with open(path, "w", newline="") as fh:
        fh.write(HEADER + "\n")
        for i in range(50_000):
            fh.write(good_line(i).replace(f"note {i}", notes) + "\n")
    size = path.stat().st_size
    assert size > 20_000_000
    process = psutil.Process()
    seen: list[tuple[int, int]] = []

    def progress(done: int) -> None:
        seen.append((done, process.memory_info().rss))

    summary = run_import(db, path, now=NOW, progress=progress)

    assert (summary.new, summary.rejected_total) == (50_000, 0)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == size == summary.bytes_read
    assert len(seen) == 26  # 25 batches of 2,000 and the end
    # After the first batches have warmed every cache, memory stays flat: what
    # grows is the set of emails seen (~100 bytes a row, ~5 MB here), not the
    # file (~480 bytes a row).
    warm = seen[2][1]
    growth = max(rss for _, rss in seen) - warm
    assert growth < size // 2, f"RSS grew {growth / 1e6:.1f} MB on a {size / 1e6:.0f} MB file"
    assert count(db, prospects) == 50_000


def test_a_worker_process_normalizes_to_the_same_result(db: Engine, tmp_path: Path):
    """The parallel path (big files) loads and rejects exactly what the inline one does."""
    path = tmp_path / "people.csv"
    bad_at = write_malformed_csv(path)
    summary = run_import(db, path, now=NOW, rejects_path=tmp_path / "r.csv", workers=1)
    assert (summary.new, summary.rejected_total) == (90, len(bad_at))
    inline = run_import(db, path, now=NOW, rejects_path=tmp_path / "r2.csv", workers=0)
    assert (inline.new, inline.updated) == (0, 0)  # the same rows, already there
    assert (tmp_path / "r.csv").read_bytes() == (tmp_path / "r2.csv").read_bytes()


# -- messy international files (issue 10) -------------------------------------------

MESSY_MAP = {
    "E-Mail": "email",
    "Vorname / نام": "first_name",
    "Nachname / نام خانوادگی": "last_name",
    "Position": "title",
    "Firma": "company",
    "Telefon": "phone",
    "Land": "country",
    "Zeitzone": "timezone",
    "Notiz": "notes",
}
# What a RevOps team pasted together from three lists: a BOM, ";", Persian and
# Arabic-Indic digits, 00 prefixes, country names in English, German and Persian, a
# time zone in lower case, one misspelt, and two people listed twice.
MESSY_ROWS = [
    "E-Mail;Vorname / نام;Nachname / نام خانوادگی;Position;Firma;Telefon;Land;Zeitzone;Notiz",
    "ali.rezaei@parsian.ir;علی;رضایی;مدیر فروش;Parsian;۰۹۱۲ ۱۲۳ ۴۵۶۷;ایران;;",  # line 2
    "sara@gulf-trading.ae;سارة;الحربي;الرئيس التنفيذي;Gulf Trading;٠٥٠ ١٢٣ ٤٥٦٧;UAE;asia/dubai;",
    "jonas@fabrik.de;Jonas;Weber;Leiter Vertrieb;Fabrik;030 1234567;Deutschland;;",  # line 4
    "omid@tehransoft.com;Omid;Karimi;مهندس نرم افزار;Tehran Soft;0098 912 765 4321;;;",
    "maryam@tehransoft.com;Maryam;;مدير التسويق;Tehran Soft;021 8888 7777;;Asia/Tehran;",
    "x@fabrik.de;X;;;Fabrik;;Germany;Europe/Berln;",  # line 7: refused, with a suggestion
    "ALI.REZAEI@parsian.ir;;;;;;Iran;Asia/Tehran;met at GITEX",  # line 8: fills line 2
    "sara@gulf-trading.ae;;;CEO;;;;;",  # line 9: contradicts line 3
    "hans@fabrik.de;Hans;Schmidt;Geschäftsführer;Fabrik;+49 30 7654321;Germany;;",
]


def write_messy_csv(path: Path, encoding: str = "utf-8") -> None:
    text = "\r\n".join(MESSY_ROWS) + "\r\n"
    bom = "\ufeff" if encoding == "utf-8" else ""
    path.write_bytes((bom + text).encode(encoding))


def test_a_messy_international_file_loads(db: Engine, tmp_path: Path):
    path = tmp_path / "messe.csv"
    write_messy_csv(path)
    rejects = tmp_path / "messe.rejects.csv"

    # Batches of two: the repeated rows are merged across batch boundaries.
    summary = run_import(db, path, now=NOW, mapping=MESSY_MAP, rejects_path=rejects, batch_size=2)

    assert (summary.rows_read, summary.new, summary.duplicates) == (9, 6, 2)
    assert summary.rejected == {"invalid_timezone": 1}
    assert summary.warnings == {"timezone_case": 1}
    assert summary.warning_lines == [
        "line 3: timezone_case: timezone 'asia/dubai' read as 'Asia/Dubai'"
    ]
    assert summary.conflicts == 1
    assert summary.conflict_lines == [
        "sara@gulf-trading.ae: title differs between line 3 ('الرئيس التنفيذي', kept) "
        "and line 9 ('CEO')"
    ]
    stored = rows(db)
    facts = {
        email: (p.phone, p.country, p.timezone, p.seniority, p.department)
        for email, p in stored.items()
    }
    assert facts == {
        "ali.rezaei@parsian.ir": ("+989121234567", "IR", "Asia/Tehran", "manager", "sales"),
        "sara@gulf-trading.ae": ("+971501234567", "AE", "Asia/Dubai", "c_level", "other"),
        "jonas@fabrik.de": ("+49301234567", "DE", "Europe/Berlin", "director", "sales"),
        "omid@tehransoft.com": ("+989127654321", "IR", "Asia/Tehran", "ic", "engineering"),
        "maryam@tehransoft.com": ("+982188887777", "IR", "Asia/Tehran", "manager", "marketing"),
        "hans@fabrik.de": ("+49307654321", "DE", "Europe/Berlin", "c_level", "other"),
    }
    ali = stored["ali.rezaei@parsian.ir"]
    # Line 8 filled what line 2 left empty; "Iran" and "ایران" are the same country.
    assert (ali.first_name, ali.fields) == ("علی", {"notes": "met at GITEX"})
    assert ali.field_sources["timezone"] == {"source": "import:messe.csv"}
    with open(rejects, encoding="utf-8", newline="") as fh:
        (header, refused) = list(csv.reader(fh, delimiter=";"))
    assert header[:3] == ["_line", "_reason", "E-Mail"]
    assert refused[:2] == [
        "7",
        "invalid_timezone: timezone 'Europe/Berln' is not an IANA time zone "
        "(did you mean 'Europe/Berlin'?)",
    ]

    again = run_import(db, path, now=NOW, mapping=MESSY_MAP, batch_size=2)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 6)


def test_a_windows_1256_csv_needs_its_encoding(db: Engine, tmp_path: Path):
    """Excel on a Persian Windows saves CSV as cp1256 (Arabic yeh and kaf for Persian ones)."""
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "email,first_name,last_name,title,phone,country\r\n"
        "ali@parsian.ir,علي,رضايي,مدير فروش,0912 123 4567,ايران\r\n"
        "not-an-email,بد,,,,\r\n".encode("cp1256")
    )
    as_utf8 = run_import(db, path, now=NOW)
    assert as_utf8.rejected == {"invalid_utf8": 2}
    assert as_utf8.new == 0

    rejects = tmp_path / "excel.rejects.csv"
    summary = run_import(db, path, now=NOW, encoding="cp1256", rejects_path=rejects)
    assert (summary.new, summary.rejected) == (1, {"invalid_email": 1})
    ali = rows(db)["ali@parsian.ir"]
    assert (ali.first_name, ali.phone, ali.country) == ("علي", "+989121234567", "IR")
    assert (ali.seniority, ali.department) == ("manager", "sales")
    # The rejects are written in the file's own encoding, so they import as it did.
    assert "not-an-email,بد" in rejects.read_bytes().decode("cp1256")


def test_an_excel_workbook_loads_from_its_first_sheet(db: Engine, tmp_path: Path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email", "First Name", "Title", "Phone", "Country", "Met On", None])
    sheet.append(["ali@parsian.ir", "علی", "مدیر فروش", 989121234567, "Iran", date(2026, 3, 1)])
    sheet.append(["jonas@fabrik.de", "Jonas", "Leiter Vertrieb", "030 1234567", "Deutschland"])
    sheet.append(["bad@", "Bad"])
    sheet.append(["wide@fabrik.de", "W", None, None, None, None, None, "stray"])
    sheet.cell(row=7, column=1, value="late@fabrik.de")  # after an empty row 6
    sheet.cell(row=7, column=4, value="12")
    book.create_sheet("Notes").append(["not", "read"])
    path = tmp_path / "leads.xlsx"
    book.save(path)
    rejects = tmp_path / "leads.rejects.csv"

    summary = run_import(
        db,
        path,
        now=NOW,
        mapping={"First Name": "first_name", "Met On": "met_on"},
        rejects_path=rejects,
    )

    assert summary.format == "xlsx"
    assert (summary.rows_read, summary.new) == (5, 3)
    assert summary.rejected == {"invalid_email": 1, "ragged_row": 1}
    # Lines are the sheet's row numbers.
    assert [w.split(": ")[:2] for w in summary.warning_lines] == [["line 7", "invalid_phone"]]
    stored = rows(db)
    ali = stored["ali@parsian.ir"]
    # A phone typed as a number comes back as its digits; a date as ISO 8601.
    assert (ali.phone, ali.country, ali.fields) == (
        "+989121234567",
        "IR",
        {"met_on": "2026-03-01T00:00:00"},
    )
    assert stored["jonas@fabrik.de"].phone == "+49301234567"
    with open(rejects, encoding="utf-8", newline="") as fh:
        written = list(csv.reader(fh))
    assert written[0] == ["_line", "_reason", "Email", "First Name", "Title", "Phone",
                          "Country", "Met On"]  # fmt: skip
    assert [(r[0], r[1].split(":")[0]) for r in written[1:]] == [
        ("4", "invalid_email"),
        ("5", "ragged_row"),
    ]


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("old.xls", {}, r"cannot read a \.xls file; it reads CSV \(.csv, .tsv, .txt\)"),
        ("sheet.ods", {}, r"cannot read a \.ods file; it reads .*Excel \(.xlsx\)"),
        ("people", {}, "cannot read a file without a suffix"),
        ("people.jsonl", {"encoding": "cp1256"}, "an encoding applies to CSV files only"),
        ("people.csv", {"encoding": "klingon"}, "unknown text encoding 'klingon'"),
    ],
)
def test_formats_and_encodings_touchflow_does_not_read(
    db: Engine, tmp_path: Path, name: str, kwargs: dict[str, str], message: str
):
    path = tmp_path / name
    path.write_bytes(b"email\nann@acme.com\n")
    with pytest.raises(ImportFormatError, match=message):
        run_import(db, path, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_a_broken_workbook_is_one_error(db: Engine, tmp_path: Path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a zip")
    with pytest.raises(ImportFileError, match=r"not a readable Excel \.xlsx workbook"):
        run_import(db, path, now=NOW)


def test_a_local_phone_is_read_in_its_accounts_country(db: Engine, tmp_path: Path):
    with db.begin() as conn:
        conn.execute(
            accounts.insert().values(
                domain="kaisha.example", country="JP", created_at=NOW, updated_at=NOW
            )
        )
    path = tmp_path / "jp.csv"
    path.write_text(
        "email,phone\nyuki@kaisha.example,03-1234-5678\nken@other.example,03-1234-5678\n"
    )

    summary = run_import(db, path, now=NOW)

    assert summary.warnings == {"invalid_phone": 1}  # ken's company has no country
    assert summary.warning_lines[0].startswith("line 3: invalid_phone:")
    stored = rows(db)
    yuki = stored["yuki@kaisha.example"]
    assert (yuki.phone, yuki.country, yuki.timezone) == ("+81312345678", "JP", "Asia/Tokyo")
    assert yuki.field_sources["phone"] == {"source": "import:jp.csv"}
    assert yuki.field_sources["country"] == {"source": "derived"}
    assert "phone_raw" not in yuki.fields
    assert stored["ken@other.example"].fields == {"phone_raw": "03-1234-5678"}
