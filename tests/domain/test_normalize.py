"""Prospect normalization: titles in six languages, email flags, phones, countries, domains."""

from __future__ import annotations

from pathlib import Path

import pytest

from touchflow.domain.normalize import (
    DEPARTMENTS,
    SENIORITIES,
    Normalized,
    Rejection,
    classify_title,
    fold_title,
    is_free_mail,
    is_role_address,
    normalize,
    normalize_domain,
    parse_title_rules,
    title_rules,
)
from touchflow.errors import ConfigFileError
from touchflow.services.importer import (
    load_aliases,
    load_mapping,
    resolve_aliases,
)

ROOT = Path(__file__).resolve().parents[2]


def ok(raw: dict[str, str], **kw: object) -> Normalized:
    result = normalize(raw, **kw)  # type: ignore[arg-type]
    assert isinstance(result, Normalized), result
    return result


def refused(raw: dict[str, str]) -> Rejection:
    result = normalize(raw)
    assert isinstance(result, Rejection), result
    return result


# -- titles ------------------------------------------------------------------

TITLES = [
    # English
    ("CEO", "c_level", "other"),
    ("Chief Revenue Officer", "c_level", "sales"),
    ("CFO", "c_level", "finance"),
    ("Co-Founder & CTO", "c_level", "engineering"),
    ("VP Sales", "vp", "sales"),
    ("SVP, Marketing", "vp", "marketing"),
    ("Vice President of Sales", "vp", "sales"),
    ("Head of RevOps", "director", "revops"),
    ("Director of IT", "director", "it"),
    ("Revenue Operations Manager", "manager", "revops"),
    ("Sales Ops", None, "revops"),
    ("Marketing Operations Specialist", "ic", "revops"),
    ("Account Executive", "ic", "sales"),
    ("Sr. Software Engineer", "ic", "engineering"),
    ("Sales Engineer", "ic", "sales"),
    ("Business Development Representative", "ic", "sales"),
    ("People Operations Manager", "manager", "hr"),
    ("Customer Success Manager", "manager", "operations"),
    ("Executive Assistant to the CEO", "ic", "other"),
    ("Managing Director", "c_level", "other"),
    ("Ninja", None, "other"),
    # Spanish
    ("Director de Ventas", "director", "sales"),
    ("Directora General", "c_level", "other"),
    ("Gerente de Marketing", "manager", "marketing"),
    ("Vicepresidente de Ventas", "vp", "sales"),
    ("Jefe de Recursos Humanos", "manager", "hr"),
    ("Analista Financiero", "ic", "finance"),
    ("Ingeniero de Software", "ic", "engineering"),
    # German
    ("Geschäftsführer", "c_level", "other"),
    ("Geschaeftsfuehrerin", "c_level", "other"),
    ("Leiter Vertrieb", "director", "sales"),
    ("Vertriebsleiterin", "director", "sales"),
    ("Teamleiter Vertrieb", "manager", "sales"),
    ("Vertriebsmitarbeiter", "ic", "sales"),
    ("Leiterin Personal", "director", "hr"),
    ("Softwareentwickler", "ic", "engineering"),
    ("Leiter Buchhaltung", "director", "finance"),
    # French
    ("Directeur commercial", "director", "sales"),
    ("Directeur Général", "c_level", "other"),
    ("PDG", "c_level", "other"),
    ("Vice-Président des ventes", "vp", "sales"),
    ("Responsable marketing", "manager", "marketing"),
    ("Ingénieur logiciel", "ic", "engineering"),
    ("Chargée de recrutement", "ic", "hr"),
    ("Responsable des systèmes d'information", "manager", "it"),
    # Persian
    ("مدیر عامل", "c_level", "other"),
    ("مدیرعامل", "c_level", "other"),
    ("معاون فروش", "vp", "sales"),
    ("مدیر فروش", "manager", "sales"),
    ("کارشناس", "ic", "other"),
    ("کارشناس بازاریابی", "ic", "marketing"),
    ("مدیر مالی", "manager", "finance"),
    ("مدیر فناوری اطلاعات", "manager", "it"),
    ("کارشناس منابع انسانی", "ic", "hr"),
    ("رئیس هیئت مدیره", "c_level", "other"),
    ("رييس هيئت مديره", "c_level", "other"),  # Arabic yeh: folded to Persian
    ("مهندس نرم افزار", "ic", "engineering"),
    # Arabic: the same rules as Persian, with the article (ال) and "for the" (لل)
    ("الرئيس التنفيذي", "c_level", "other"),
    ("الرئيس التنفيذي للتكنولوجيا", "c_level", "engineering"),
    ("رئيس مجلس الإدارة", "c_level", "other"),
    ("مؤسس ومدير عام", "c_level", "other"),
    ("نائب الرئيس للمبيعات", "vp", "sales"),
    ("المدير العام", "director", "other"),
    ("المدير التنفيذي", "director", "other"),  # executive director, as in English
    ("رئيس قسم الموارد البشرية", "director", "hr"),
    ("مدير المبيعات", "manager", "sales"),
    ("مدیر فروش", "manager", "sales"),
    ("مدير التسويق", "manager", "marketing"),
    ("مدير تقنية المعلومات", "manager", "it"),
    ("مدير العمليات", "manager", "operations"),
    ("مدير عمليات المبيعات", "manager", "revops"),
    ("مدير تطوير الأعمال", "manager", "sales"),
    ("مدير الحسابات الرئيسية", "manager", "sales"),  # key accounts, not accounting
    ("رئيس فريق المبيعات", "manager", "sales"),  # a team lead
    ("مشرف خدمة العملاء", "manager", "operations"),
    ("مهندس برمجيات", "ic", "engineering"),
    ("محاسب", "ic", "finance"),
    ("أخصائي تسويق", "ic", "marketing"),
    ("مندوب مبيعات", "ic", "sales"),
    ("مساعد المدير العام", "ic", "other"),
]


@pytest.mark.parametrize(("title", "seniority", "department"), TITLES, ids=[t[0] for t in TITLES])
def test_title_rules(title: str, seniority: str | None, department: str):
    assert classify_title(title) == (seniority, department)


def test_title_rules_cover_six_languages_and_every_value():
    rules = title_rules()
    assert {"en", "es", "de", "fr", "fa", "ar"} <= {r.language for r in rules}
    assert {r.value for r in rules if r.kind == "seniority"} == set(SENIORITIES)
    assert {r.value for r in rules if r.kind == "department"} == set(DEPARTMENTS)
    assert title_rules() is rules  # loaded once


def test_fold_title():
    assert fold_title("Geschäftsführer") == "geschaftsfuhrer"
    assert fold_title("SVP, Marketing") == "svp marketing"
    assert fold_title("Vice-Président") == "vice president"
    assert fold_title("مدير\u200cعامل") == "مدیر عامل"  # Arabic yeh, zero-width non-joiner


def test_title_rule_priority_and_errors():
    rules = parse_title_rules(
        "language,kind,value,pattern,priority\n"
        "# a comment, with a comma\n"
        "en,seniority,ic,engineer,50\n"
        "en,seniority,manager,manager,70\n"
    )
    assert [r.value for r in rules] == ["manager", "ic"]
    with pytest.raises(ValueError, match=r"rules.csv:2: department 'legal'"):
        parse_title_rules(
            "language,kind,value,pattern,priority\nen,department,legal,x,1\n", "rules.csv"
        )
    with pytest.raises(ValueError, match=r"rules.csv:2: bad pattern"):
        parse_title_rules(
            "language,kind,value,pattern,priority\nen,seniority,ic,(,1\n", "rules.csv"
        )


def test_title_sets_seniority_and_department_as_derived():
    n = ok({"email": "a@acme.com", "title": "VP Sales"}, source="import:x.csv")
    assert (n.seniority, n.department) == ("vp", "sales")
    assert n.field_sources["title"] == {"source": "import:x.csv"}
    assert n.field_sources["seniority"] == {"source": "derived"}


def test_explicit_seniority_column_wins_and_bad_one_warns():
    n = ok({"email": "a@acme.com", "title": "Ninja", "seniority": "C-Level"})
    assert n.seniority == "c_level"
    assert n.field_sources["seniority"] == {"source": "import"}
    bad = ok({"email": "a@acme.com", "department": "legal"})
    assert bad.department is None and bad.fields["department_raw"] == "legal"
    assert [w.code for w in bad.warnings] == ["invalid_department"]


# -- email -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "normalized", "free", "role"),
    [
        ("  Jane.Doe@ACME.com ", "jane.doe@acme.com", False, False),
        ("jane@gmail.com", "jane@gmail.com", True, False),
        ("jane@yahoo.co.uk", "jane@yahoo.co.uk", True, False),
        ("jane@gmx.de", "jane@gmx.de", True, False),
        ("jane@web.de", "jane@web.de", True, False),
        ("jane@orange.fr", "jane@orange.fr", True, False),
        ("jane@mail.ru", "jane@mail.ru", True, False),
        ("jane@qq.com", "jane@qq.com", True, False),
        ("jane@163.com", "jane@163.com", True, False),
        ("jane@protonmail.com", "jane@protonmail.com", True, False),
        ("jane@icloud.com", "jane@icloud.com", True, False),
        ("info@acme.com", "info@acme.com", False, True),
        ("Sales+eu@acme.com", "sales+eu@acme.com", False, True),
        ("no-reply@acme.com", "no-reply@acme.com", False, True),
        ("support@gmail.com", "support@gmail.com", True, True),
        ("josé@bücher.de", "josé@bücher.de", False, False),
    ],
)
def test_email_normalized_and_flagged(email: str, normalized: str, free: bool, role: bool):
    n = ok({"email": email})
    assert (n.email, n.email_free, n.email_role) == (normalized, free, role)
    assert n.field_sources["email_free"] == {"source": "derived"}


def test_free_mail_wildcards_need_a_public_suffix():
    assert is_free_mail("yahoo.com") and is_free_mail("yahoo.fr") and is_free_mail("outlook.de")
    assert not is_free_mail("yahoo.example.org.uk") and not is_free_mail("acme.com")
    assert is_role_address("No_Reply") and not is_role_address("jane")


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("", "missing_email"),
        ("   ", "missing_email"),
        ("not-an-address", "invalid_email"),
        ("a..b@acme.com", "invalid_email"),
        ("jane@localhost", "invalid_email"),
        ("jane@acme.test", "invalid_email"),  # special-use domain
        ("Jane <jane@acme.com>", "invalid_email"),
        ("x" * 321 + "@acme.com", "value_too_long"),
    ],
)
def test_bad_emails_are_refused(email: str, code: str):
    assert refused({"email": email}).code == code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ({"email": "a@acme.com", "first_name": "Jo\x00e"}, "nul_byte"),
        ({"email": "a@acme.com", "notes": "x\x00"}, "nul_byte"),
        ({"email": "a@acme.com", "last_name": "Caf\udce9"}, "invalid_utf8"),
        ({"email": "a@acme.com", "title": "VP\x1bSales"}, "control_character"),
        ({"email": "a@acme.com", "title": "x" * 301}, "value_too_long"),
        ({"email": "a@acme.com", "notes": "x" * 10_001}, "value_too_long"),
        ({"email": "a@acme.com", "timezone": "Mars/Olympus_Mons"}, "invalid_timezone"),
        ({"email": "a@acme.com", "timezone": "../etc/passwd"}, "invalid_timezone"),
    ],
)
def test_malformed_values_are_refused_with_a_reason(raw: dict[str, str], code: str):
    rejection = refused(raw)
    assert rejection.code == code
    assert str(rejection).startswith(f"{code}: ")


def test_invalid_utf8_names_the_byte():
    assert "byte 0xE9" in refused({"email": "a@acme.com", "last_name": "Caf\udce9"}).message


def test_control_characters_are_kept_in_extra_fields_and_whitespace_collapsed():
    n = ok({"email": "a@acme.com", "notes": "line\x0bbreak", "title": " VP \n Sales "})
    assert n.fields["notes"] == "line\x0bbreak"
    assert n.title == "VP Sales"


# -- phones, countries, time zones -------------------------------------------


def test_phone_with_country_as_default_region():
    n = ok({"email": "a@acme.de", "phone": "030 1234567", "country": "de"})
    assert (n.phone, n.country, n.timezone) == ("+49301234567", "DE", "Europe/Berlin")
    assert n.field_sources["phone"] == {"source": "import"}
    assert n.field_sources["timezone"] == {"source": "derived"}


def test_country_and_timezone_from_the_phone():
    n = ok({"email": "a@acme.com", "phone": "+1 (415) 555-2671"})
    assert (n.phone, n.country, n.timezone) == ("+14155552671", "US", "America/Los_Angeles")
    assert n.field_sources["country"] == {"source": "derived"}


def test_legacy_zone_names_from_phones_are_canonical():
    assert ok({"email": "a@acme.in", "phone": "+91 22 2345 6789"}).timezone == "Asia/Kolkata"


def test_mobile_with_many_zones_falls_back_to_the_country():
    # A US toll-free number has dozens of zones: the country's main zone is used.
    n = ok({"email": "a@acme.com", "phone": "+1 800 555 0199", "country": "US"})
    assert n.timezone == "America/New_York"


def test_explicit_timezone_is_kept():
    n = ok({"email": "a@acme.com", "phone": "+14155552671", "timezone": "America/Denver"})
    assert n.timezone == "America/Denver"
    assert n.field_sources["timezone"] == {"source": "import"}


def test_bad_phone_keeps_the_lead_with_a_warning():
    n = ok({"email": "a@acme.com", "phone": "12", "country": "FR"})
    assert n.phone is None
    assert n.fields["phone_raw"] == "12"
    assert [w.code for w in n.warnings] == ["invalid_phone"]
    assert n.timezone == "Europe/Paris"  # from the country


@pytest.mark.parametrize(
    ("raw", "phone", "country", "timezone"),
    [
        # The country column, in English, German or Persian, a code or an alias.
        ({"country": "Iran", "phone": "0912 123 4567"}, "+989121234567", "IR", "Asia/Tehran"),
        ({"country": "ایران", "phone": "۰۹۱۲ ۱۲۳ ۴۵۶۷"}, "+989121234567", "IR", "Asia/Tehran"),
        ({"country": "Deutschland", "phone": "030 1234567"}, "+49301234567", "DE", "Europe/Berlin"),
        ({"country": "UAE", "phone": "٠٥٠ ١٢٣ ٤٥٦٧"}, "+971501234567", "AE", "Asia/Dubai"),
        # No country: the time zone's, then the e-mail's ccTLD.
        ({"timezone": "Asia/Tehran", "phone": "021 8888 7777"}, "+982188887777", "IR", None),
        ({"timezone": "asia/dubai", "phone": "050 123 4567"}, "+971501234567", "AE", None),
        ({"email": "a@acme.ir", "phone": "021 8888 7777"}, "+982188887777", "IR", "Asia/Tehran"),
        ({"email": "a@acme.de", "phone": "030 1234567"}, "+49301234567", "DE", "Europe/Berlin"),
        # 00 needs no country at all.
        ({"phone": "0098 912 123 4567"}, "+989121234567", "IR", "Asia/Tehran"),
    ],
)
def test_local_numbers_read_in_the_country_the_row_implies(
    raw: dict[str, str], phone: str, country: str, timezone: str | None
):
    n = ok({"email": "a@acme.com"} | raw)
    assert (n.phone, n.country) == (phone, country)
    if timezone is not None:
        assert n.timezone == timezone
    assert "phone_raw" not in n.fields


def test_the_rows_country_wins_over_what_the_email_implies():
    # A German number of a person at an Iranian domain, with the country given: read as DE.
    n = ok({"email": "a@acme.ir", "country": "Germany", "phone": "030 1234567"})
    assert (n.phone, n.country) == ("+49301234567", "DE")


def test_a_generic_cctld_implies_no_country():
    n = ok({"email": "a@acme.io", "phone": "030 1234567"})
    assert n.phone is None and n.fields["phone_raw"] == "030 1234567"


def test_a_number_without_country_says_which_columns_to_fill():
    n = ok({"email": "a@acme.com", "phone": "0912 123 4567"})
    (warning,) = n.warnings
    assert warning.code == "invalid_phone"
    assert "fill the country or timezone column" in warning.message
    assert "default_region" not in warning.message and "region" not in warning.message


def test_timezone_in_the_wrong_case_is_read_with_a_warning():
    n = ok({"email": "a@acme.com", "timezone": "asia/tehran"})
    assert n.timezone == "Asia/Tehran"
    assert n.field_sources["timezone"] == {"source": "import"}
    assert [str(w) for w in n.warnings] == [
        "timezone_case: timezone 'asia/tehran' read as 'Asia/Tehran'"
    ]
    assert ok({"email": "a@acme.com", "timezone": "Asia/Tehran"}).warnings == ()


def test_a_near_miss_timezone_is_refused_with_a_suggestion():
    rejection = refused({"email": "a@acme.com", "timezone": "Asia/Tehrn"})
    assert rejection.code == "invalid_timezone"
    assert rejection.message == (
        "timezone 'Asia/Tehrn' is not an IANA time zone (did you mean 'Asia/Tehran'?)"
    )


def test_bad_country_keeps_the_lead_with_a_warning():
    n = ok({"email": "a@acme.com", "country": "Atlantis", "phone": "+49 30 1234567"})
    assert n.country == "DE" and n.fields["country_raw"] == "Atlantis"
    assert [w.code for w in n.warnings] == ["invalid_country"]
    assert "not a country name or ISO 3166 code" in n.warnings[0].message
    germny = ok({"email": "a@acme.com", "country": "Germny"})
    assert germny.warnings[0].message == (
        "country 'Germny' is not a country name or ISO 3166 code (did you mean 'Germany'?)"
    )
    assert ok({"email": "a@acme.com", "country": "uk"}).country == "GB"


# -- domains and aliases -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "domain"),
    [
        ("Acme.com", "acme.com"),
        ("https://www.Acme.com/about?x=1", "acme.com"),
        ("http://acme.com:8080", "acme.com"),
        ("www.acme.co.uk.", "acme.co.uk"),
        ("Bücher.de", "xn--bcher-kva.de"),
        ("www.com", "www.com"),
    ],
)
def test_normalize_domain(value: str, domain: str):
    assert normalize_domain(value) == domain


@pytest.mark.parametrize("value", ["localhost", "acme", "1.2.3.4", "-acme.com", "acme..com", ""])
def test_normalize_domain_refuses(value: str):
    with pytest.raises(ValueError, match="not a domain name"):
        normalize_domain(value)


@pytest.mark.parametrize(
    ("raw", "domain", "source"),
    [
        ({"email": "a@gmail.com", "domain": "Acme.com"}, "acme.com", "import"),
        ({"email": "a@gmail.com", "website": "https://www.acme.com/"}, "acme.com", "derived"),
        ({"email": "a@Acme.com"}, "acme.com", "derived"),
        ({"email": "a@gmail.com"}, None, None),
        ({"email": "a@bücher.de"}, "xn--bcher-kva.de", "derived"),
        ({"email": "a@acme.co.uk"}, "acme.com", "derived"),
        ({"email": "a@gmail.com", "domain": "www.acme-corp.com"}, "acme.com", "import"),
    ],
)
def test_company_domain(raw: dict[str, str], domain: str | None, source: str | None):
    aliases = {"acme.co.uk": "acme.com", "acme-corp.com": "acme.com"}
    n = ok(raw, aliases=aliases)
    assert n.domain == domain
    assert n.field_sources.get("domain") == ({"source": source} if source else None)


def test_free_mail_in_the_domain_column_is_not_a_company():
    n = ok({"email": "a@gmail.com", "domain": "gmail.com"})
    assert n.domain is None and [w.code for w in n.warnings] == ["free_mail_domain"]


def test_bad_domain_falls_back_to_the_email_with_a_warning():
    n = ok({"email": "a@acme.com", "domain": "not a domain"})
    assert n.domain == "acme.com" and n.fields["domain_raw"] == "not a domain"
    assert [w.code for w in n.warnings] == ["invalid_domain"]


def test_field_sources_cover_every_input_value():
    n = ok(
        {"email": "a@acme.com", "first_name": "Ann", "linkedin": "ann-x", "empty": " "},
        source="import:people.csv",
    )
    mine = {"source": "import:people.csv"}
    assert n.field_sources["first_name"] == mine and n.field_sources["linkedin"] == mine
    assert "empty" not in n.field_sources and "empty" not in n.fields


def test_load_aliases_from_the_config_file():
    aliases = load_aliases(ROOT / "config" / "domain_aliases.yaml")
    assert aliases["acme.co.uk"] == "acme.com"
    assert all(normalize_domain(k) == k for k in aliases)


def test_aliases_resolve_chains():
    assert resolve_aliases({"a.com": "b.com", "b.com": "c.com"}) == {
        "a.com": "c.com",
        "b.com": "c.com",
    }
    with pytest.raises(ValueError, match="loop"):
        resolve_aliases({"a.com": "b.com", "b.com": "a.com"})


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("acme.co.uk: acme.com\nnot a domain: acme.com\n", 2, 1, "not a domain name"),
        ("acme.co.uk: acme.com\ngooglemail.com: gmail.com\n", 2, 1, "free-mail"),
        ("a.com: b.com\nb.com: a.com\n", 1, 1, "loop"),
        ("a.com: b.com\na.com: c.com\n", 2, 1, "duplicate key"),
        ("a.com: [b.com]\n", 1, 8, "must be text"),
        ("a.com: b.com\n  c: [\n", 2, 4, "YAML syntax error"),
        ("- a.com\n", 1, 1, "alias.domain: primary.domain"),
    ],
)
def test_alias_file_errors_name_file_line_col(
    tmp_path: Path, text: str, line: int, col: int, message: str
):
    path = tmp_path / "domain_aliases.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as info:
        load_aliases(path)
    finding = info.value.findings[0]
    assert (finding.path, finding.line, finding.col) == (str(path), line, col)
    assert message in finding.message


def test_load_mapping(tmp_path: Path):
    path = tmp_path / "map.yaml"
    path.write_text("email: E-Mail Address\ncompany: Account Name\nlinkedin_url: LinkedIn\n")
    assert load_mapping(path) == {
        "E-Mail Address": "email",
        "Account Name": "company",
        "LinkedIn": "linkedin_url",
    }
    path.write_text("email: Email\nfirst_name: email\nBad Field: x\n")
    with pytest.raises(ConfigFileError) as info:
        load_mapping(path)
    assert [(f.line, f.col) for f in info.value.findings] == [(2, 13), (3, 1)]
    assert "already mapped" in info.value.findings[0].message
