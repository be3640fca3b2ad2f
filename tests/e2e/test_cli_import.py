"""`touchflow import` with the files a real team brings: other encodings, workbooks, repeats."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from typer.testing import CliRunner

from touchflow.entrypoints.cli import app

runner = CliRunner()
NOW = ["--now", "2026-11-28T12:00:00Z"]


def _upgraded() -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0


def test_a_cp1256_csv_needs_encoding_and_the_cli_says_so(project: Path):
    _upgraded()
    path = project / "excel.csv"
    path.write_bytes(
        "email,first_name,title,phone,country\r\n"
        "ali@parsian.ir,علي,مدير فروش,0912 123 4567,ايران\r\n".encode("cp1256")
    )
    plain = runner.invoke(app, ["import", str(path), *NOW])
    assert plain.exit_code == 1
    assert "invalid_utf8 1" in plain.stdout
    assert "--encoding cp1256" in plain.output

    result = runner.invoke(app, ["import", str(path), "--encoding", "cp1256", *NOW])
    assert result.exit_code == 0, result.output
    assert "1 new, 0 updated, 0 rejected" in result.stdout
    assert "hint" not in result.output


def test_an_unknown_encoding_is_a_usage_error(project: Path):
    path = project / "people.csv"
    path.write_text("email\nann@acme.com\n")
    result = runner.invoke(app, ["import", str(path), "--encoding", "klingon"])
    assert result.exit_code == 2
    assert "unknown encoding 'klingon'" in result.output
    assert "Traceback" not in result.output


def test_a_format_touchflow_cannot_read_is_a_usage_error_naming_the_formats(project: Path):
    _upgraded()
    path = project / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    result = runner.invoke(app, ["import", str(path)])
    assert result.exit_code == 2
    assert "cannot read a .xls file" in result.output
    assert "CSV (.csv, .tsv, .txt), JSON Lines (.jsonl, .ndjson), Excel (.xlsx)" in result.output
    assert "Traceback" not in result.output


def test_a_workbook_imports_and_its_rejects_are_a_csv(project: Path):
    _upgraded()
    book = openpyxl.Workbook()
    book.active.append(["email", "first_name", "title", "phone", "country"])
    book.active.append(["sara@gulf.ae", "سارة", "الرئيس التنفيذي", "050 123 4567", "UAE"])
    book.active.append(["not-an-email", "X"])
    path = project / "leads.xlsx"
    book.save(path)
    result = runner.invoke(app, ["import", str(path), *NOW])
    assert result.exit_code == 1  # one row rejected
    assert "1 new, 0 updated, 1 rejected" in result.stdout
    rejects = project / "leads.rejects.csv"
    assert rejects.read_text(encoding="utf-8").splitlines()[1].startswith("3,invalid_email:")


def test_rows_of_one_email_are_merged_and_conflicts_printed_with_both_lines(project: Path):
    _upgraded()
    path = project / "twice.csv"
    path.write_text(
        "email,first_name,title,phone\n"
        "ann@acme.com,Ann,VP Sales,\n"
        "bob@acme.com,Bob,,\n"
        "Ann@acme.com,,CEO,+1 415 555 2671\n"
    )
    result = runner.invoke(app, ["import", str(path), *NOW])
    assert result.exit_code == 0, result.output
    assert "2 new" in result.stdout
    assert "1 duplicates merged (1 conflicts) of 3 rows" in result.stdout
    assert (
        "conflict: ann@acme.com: title differs between line 2 ('VP Sales', kept) and line 4 ('CEO')"
    ) in result.output
