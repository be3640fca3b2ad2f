"""touchflow.domain.duplicates: rows of one person in one file merged, conflicts named by line."""

from __future__ import annotations

from touchflow.domain.duplicates import Conflict, email_key, merge_duplicates
from touchflow.domain.normalize import Normalized, normalize


def rows(*lines: tuple[int, dict[str, str]]) -> list[tuple[int, dict[str, str], Normalized]]:
    out = []
    for line, values in lines:
        result = normalize(values)
        assert isinstance(result, Normalized), result
        out.append((line, values, result))
    return out


def test_later_values_fill_empty_ones_and_conflicts_name_both_lines():
    values, conflicts = merge_duplicates(
        rows(
            (3, {"email": "ann@acme.com", "first_name": "Ann", "title": "VP Sales", "phone": ""}),
            (9, {"email": "ANN@acme.com", "title": "CEO", "phone": "+1 415 555 2671"}),
            (12, {"email": "ann@acme.com", "title": "CFO", "linkedin": "ann-x"}),
        )
    )
    assert values == {
        "email": "ann@acme.com",
        "first_name": "Ann",
        "title": "VP Sales",
        "phone": "+1 415 555 2671",
        "linkedin": "ann-x",
    }
    assert conflicts == [
        Conflict("ann@acme.com", "title", "VP Sales", 3, "CEO", 9),
        Conflict("ann@acme.com", "title", "VP Sales", 3, "CFO", 12),
    ]
    assert str(conflicts[0]) == (
        "ann@acme.com: title differs between line 3 ('VP Sales', kept) and line 9 ('CEO')"
    )


def test_values_that_mean_the_same_are_not_conflicts():
    values, conflicts = merge_duplicates(
        rows(
            (2, {"email": "a@acme.ir", "phone": "+98 912 123 4567", "country": "Iran",
                 "timezone": "Asia/Tehran", "first_name": "Ali"}),
            (5, {"email": "a@acme.ir", "phone": "0098 912 123 4567", "country": "ایران",
                 "timezone": "asia/tehran", "first_name": " ali "}),
        )
    )  # fmt: skip
    assert conflicts == []
    assert values["phone"] == "+98 912 123 4567" and values["country"] == "Iran"


def test_an_unusable_earlier_value_is_replaced_by_a_usable_one():
    values, conflicts = merge_duplicates(
        rows(
            (2, {"email": "a@acme.com", "phone": "12", "country": "Atlantis"}),
            (4, {"email": "a@acme.com", "phone": "+49 30 1234567", "country": "DE"}),
            (6, {"email": "a@acme.com", "phone": "nonsense"}),  # no better than the kept one
        )
    )
    assert (values["phone"], values["country"]) == ("+49 30 1234567", "DE")
    assert conflicts == []


def test_email_key_is_the_normalized_email():
    for text in ("  Ann@ACME.com ", "josé@Bücher.de", "ann+x@acme.com"):
        result = normalize({"email": text})
        assert isinstance(result, Normalized)
        assert email_key(text) == result.email
    assert email_key("") is None and email_key(None) is None and email_key("josé@") is None
