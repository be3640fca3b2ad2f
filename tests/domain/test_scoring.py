"""ICP scoring: operators, disqualifiers, decay, grades, thresholds, reasons, bad YAML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchflow.domain.scoring import IcpConfig, ScoreInput, icp_findings, load_icp, load_icp_source
from touchflow.errors import ConfigFileError

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

BASE = """\
engagement:
  half_life_days: 14
  cap: 60
  points: {replied: 30, meeting_booked: 50, opened: 1, clicked: 5}
grades: {A: 70, B: 50, C: 30, D: 0}
thresholds: {mql: 60, sql: 90}
"""


def icp(fit: str = "", disqualify: str = "", base: str = BASE) -> IcpConfig:
    text = base
    if fit:
        text += "fit:\n" + fit
    if disqualify:
        text += "disqualify:\n" + disqualify
    return load_icp_source(text, "config/icp.yaml")


def rule(field: str, op: str, value: str | None = None, points: int = 10) -> str:
    val = "" if value is None else f", value: {value}"
    return (
        f"  - id: r\n    when: {{field: {field}, op: {op}{val}}}\n"
        f"    points: {points}\n    reason: 'hit {{value}}'\n"
    )


def fit_of(config: IcpConfig, **kw: object) -> int:
    return config.score(ScoreInput(**kw), [], NOW).fit  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("field", "op", "value", "hit", "miss"),
    [
        ("account_industry", "equals", "software", "Software", "Retail"),
        ("account_industry", "in", "[software, fintech]", "FinTech", "Retail"),
        ("account_employees", "equals", "500", 500, 501),
        ("account_employees", "in", "[10, 20]", 20, 30),
        ("account_employees", "gte", "200", 200, 199),
        ("account_employees", "lte", "5000", 5000, 5001),
        ("account_employees", "between", "[200, 5000]", 200, 5001),
        ("account_technologies", "contains", "salesforce", ("Slack", "Salesforce"), ("Slack",)),
        ("account_technologies", "contains", "[salesforce, hubspot]", ("HubSpot",), ()),
        ("title", "contains", "sales", "VP of Sales", "CFO"),
        ("title", "matches", "'^(vp|head)\\b'", "Head of RevOps", "Sales VP hopeful"),
        ("title", "present", None, "CTO", None),
        ("title", "absent", None, None, "CTO"),
        ("email_free", "equals", "true", True, False),
        ("email_role", "equals", "false", False, None),
        ("country", "equals", "'NO'", "NO", "SE"),
    ],
)
def test_each_operator_matches_and_misses(field, op, value, hit, miss):
    yaml_field = field.replace("account_", "account.")
    config = icp(rule(yaml_field, op, value))
    assert fit_of(config, **{field: hit}) == 10
    assert fit_of(config, **{field: miss}) == 0


def test_unknown_values_never_match_comparisons():
    config = icp(
        rule("account.employees", "gte", "0")
        + rule("title", "matches", "x").replace("id: r", "id: t")
    )
    assert fit_of(config) == 0


def test_strict_yaml_keeps_no_a_string_and_matching_ignores_case():
    config = icp(rule("country", "in", "[no, se]"))
    assert fit_of(config, country="NO") == 10


def test_all_conditions_of_a_list_must_match():
    config = icp(
        "  - id: both\n    when:\n"
        "      - {field: seniority, op: equals, value: vp}\n"
        "      - {field: department, op: equals, value: sales}\n"
        "    points: 7\n"
    )
    assert fit_of(config, seniority="vp", department="sales") == 7
    assert fit_of(config, seniority="vp", department="finance") == 0


# ---------------------------------------------------------------------------- reasons


def test_reason_texts_use_the_prospects_value_and_a_signed_number():
    config = icp(
        "  - id: industry\n    when: {field: account.industry, op: in, value: [software]}\n"
        "    points: 25\n    reason: 'industry {value}'\n"
        "  - id: size\n    when: {field: account.employees, op: gte, value: 200}\n"
        "    points: 20\n    reason: '{value:,} employees'\n"
        "  - id: crm\n    when: {field: account.technologies, op: contains, value: [hubspot]}\n"
        "    points: 5\n"
        "  - id: free_mail\n    when: {field: email_free, op: equals, value: true}\n"
        "    points: -15\n    reason: free-mail address\n"
    )
    result = config.score(
        ScoreInput(
            account_industry="Software",
            account_employees=1200,
            account_technologies=("HubSpot",),
            email_free=True,
        ),
        [],
        NOW,
    )
    assert [str(r) for r in result.reasons] == [
        "+25 industry Software",
        "+20 1,200 employees",
        "+5 crm",  # no reason given: the rule id
        "-15 free-mail address",
    ]
    assert result.reasons[0].rule == "industry"
    assert result.reasons_json()[0] == {
        "points": 25,
        "rule": "industry",
        "why": "industry Software",
    }


# ---------------------------------------------------------------------------- disqualify


def test_a_disqualifier_overrides_any_score():
    config = icp(
        rule("seniority", "equals", "vp", points=200),
        "  - id: competitor\n    when: {field: domain, op: in, value: [outreach.io]}\n"
        "    points: -100\n    reason: 'competitor ({value})'\n",
    )
    result = config.score(ScoreInput(seniority="vp", domain="outreach.io"), [], NOW)
    assert result.lifecycle == "disqualified"
    assert result.disqualified
    assert result.fit == 100
    assert str(result.reasons[-1]) == "-100 competitor (outreach.io)"
    assert config.score(ScoreInput(seniority="vp", domain="acme.com"), [], NOW).lifecycle == "sql"


def test_disqualifier_points_default_to_zero():
    config = icp(
        disqualify="  - id: student\n    when: {field: title, op: matches, value: student}\n"
    )
    result = config.score(ScoreInput(title="Student"), [], NOW)
    assert (result.score, result.lifecycle, str(result.reasons[0])) == (
        0,
        "disqualified",
        "+0 student",
    )


# ---------------------------------------------------------------------------- engagement


def test_decay_halves_points_every_half_life():
    config = icp()
    for days, expected in [(0, 30), (14, 15), (28, 8), (7, 21), (140, 0)]:
        result = config.score(ScoreInput(), [("replied", NOW - timedelta(days=days))], NOW)
        assert result.engagement == expected, days
    # 30 * 0.5 ** (3 / 14) = 25.8
    result = config.score(ScoreInput(), [("replied", NOW - timedelta(days=3))], NOW)
    assert [str(r) for r in result.reasons] == [
        "+26 engagement: replied 3 days ago (30, half-life 14 d)"
    ]


def test_events_of_a_type_are_summed_before_rounding():
    config = icp()
    opens = [("opened", NOW - timedelta(days=d, hours=1)) for d in range(10)]
    result = config.score(ScoreInput(), opens, NOW)
    expected = round(sum(0.5 ** ((d + 1 / 24) / 14) for d in range(10)))
    assert result.engagement == expected == 8
    assert str(result.reasons[0]) == (
        "+8 engagement: opened 10 times, latest today (1 each, half-life 14 d)"
    )


def test_engagement_cap_is_a_reason_of_its_own():
    config = icp()
    evs = [("meeting_booked", NOW), ("replied", NOW)]
    result = config.score(ScoreInput(), evs, NOW)
    assert result.engagement == 60
    assert [str(r) for r in result.reasons] == [
        "+50 engagement: meeting booked today (50, half-life 14 d)",
        "+30 engagement: replied today (30, half-life 14 d)",
        "-20 engagement capped at 60",
    ]


def test_unknown_future_and_too_old_events_do_not_count():
    config = icp(base=BASE.replace("cap: 60", "cap: 60\n  max_age_days: 30"))
    evs = [
        ("bounce", NOW),  # not in the points table
        ("replied", NOW + timedelta(minutes=1)),  # after now: not yet happened
        ("replied", NOW - timedelta(days=31)),  # older than max_age_days
    ]
    result = config.score(ScoreInput(), evs, NOW)
    assert (result.engagement, result.reasons) == (0, [])


# ---------------------------------------------------------------------------- grades, stages


@pytest.mark.parametrize(
    ("fit", "grade"),
    [(100, "A"), (70, "A"), (69, "B"), (50, "B"), (30, "C"), (29, "D"), (-50, "D")],
)
def test_grades_are_bands_on_fit(fit, grade):
    config = icp(rule("seniority", "present", points=fit))
    assert config.score(ScoreInput(seniority="vp"), [], NOW).grade == grade


@pytest.mark.parametrize(("fit", "stage"), [(59, "lead"), (60, "mql"), (89, "mql"), (90, "sql")])
def test_thresholds_on_the_total_score(fit, stage):
    config = icp(rule("seniority", "present", points=fit))
    assert config.score(ScoreInput(seniority="vp"), [], NOW).lifecycle == stage


def test_engagement_counts_toward_the_stage_but_not_the_grade():
    config = icp(rule("seniority", "present", points=40))
    result = config.score(ScoreInput(seniority="vp"), [("meeting_booked", NOW)], NOW)
    assert (result.fit, result.engagement, result.score) == (40, 50, 90)
    assert (result.grade, result.lifecycle) == ("C", "sql")


# ---------------------------------------------------------------------------- bad YAML


def findings_of(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        load_icp_source(text, "config/icp.yaml")
    return [str(f) for f in info.value.findings]


def test_unknown_field_names_line_column_and_a_hint():
    text = (
        BASE
        + "fit:\n  - id: industry\n"
        + "    when: {field: account.industri, op: equals, value: x}\n    points: 5\n"
    )
    assert findings_of(text) == [
        "config/icp.yaml:9:19: error: fit[0].when.field: unknown field 'account.industri'"
        " (did you mean 'account.industry'?)"
    ]


def test_unknown_op_and_an_op_that_does_not_fit_the_field():
    text = BASE + (
        "fit:\n"
        "  - id: a\n    when: {field: title, op: equal, value: x}\n    points: 5\n"
        "  - id: b\n    when: {field: title, op: gte, value: 3}\n    points: 5\n"
    )
    assert findings_of(text) == [
        "config/icp.yaml:9:30: error: fit[0].when.op: unknown op 'equal' (did you mean 'equals'?)",
        "config/icp.yaml:12:30: error: fit[1].when.op: op 'gte' does not apply to title (text);"
        " use equals, in, contains, matches, present, absent",
    ]


def test_bad_values_are_reported_at_the_value():
    text = BASE + (
        "fit:\n"
        "  - id: a\n    when: {field: account.employees, op: between, value: [5000, 200]}\n"
        "    points: 5\n"
        "  - id: b\n    when: {field: title, op: matches, value: '(vp'}\n    points: 5\n"
        "  - id: c\n    when: {field: title, op: present, value: x}\n    points: 5\n"
        "  - id: d\n    when: {field: title, op: equals}\n    points: 5\n"
        "  - id: e\n    when: {field: title, op: present}\n    points: lots\n"
        "  - id: f\n    when: {field: title, op: present}\n    points: 1\n"
        "    reason: 'title {title}'\n"
    )
    found = findings_of(text)
    assert found[0] == (
        "config/icp.yaml:9:58: error: fit[0].when.value: between [5000, 200]: low is above high"
    )
    assert found[1].startswith(
        "config/icp.yaml:12:46: error: fit[1].when.value: bad regular expression '(vp'"
    )
    assert (
        found[2] == "config/icp.yaml:15:46: error: fit[2].when.value: op 'present' takes no value"
    )
    assert found[3] == "config/icp.yaml:18:11: error: fit[3].when.value: op 'equals' needs a value"
    assert found[4] == (
        "config/icp.yaml:22:13: error: fit[4].points: input should be a valid integer, got 'lots'"
    )
    assert found[5] == (
        "config/icp.yaml:26:13: error: fit[5].reason: reason may only use {value}, not {title}"
    )
    assert len(found) == 6


def test_unknown_keys_grades_thresholds_and_event_typos():
    text = """\
fit:
  - id: a
    when: {field: title, op: present}
    points: 5
    weight: 2
engagement:
  half_life_days: 14
  cap: 60
  points: {replyed: 30}
grades: {A: 50, B: 70}
thresholds: {mql: 90, sql: 60}
"""
    assert findings_of(text) == [
        "config/icp.yaml:5:5: error: unknown key 'weight' (allowed: id, when, points, reason)",
        "config/icp.yaml:9:12: error: engagement.points.replyed: unknown event type 'replyed'"
        " (did you mean 'replied'?)",
        "config/icp.yaml:10:20: error: grades.B: grade B (70) must be below grade A (50):"
        " list bands best first",
        "config/icp.yaml:11:28: error: thresholds.sql: sql (60) must be above mql (90)",
    ]


def test_yaml_syntax_errors_and_missing_sections():
    assert findings_of("fit: [\n")[0].startswith("config/icp.yaml:2:1: error: YAML syntax error")
    assert findings_of("fit: []\n") == [
        "config/icp.yaml:1:1: error: missing required key 'engagement'",
        "config/icp.yaml:1:1: error: missing required key 'grades'",
        "config/icp.yaml:1:1: error: missing required key 'thresholds'",
    ]
    assert findings_of("- 1\n") == [
        "config/icp.yaml:1:1: error: icp.yaml must be a mapping with fit, engagement, grades"
    ]


def test_duplicate_rule_ids_are_a_finding():
    text = BASE + "fit:\n" + rule("title", "present") + "disqualify:\n" + rule("title", "absent")
    assert findings_of(text) == [
        "config/icp.yaml:13:9: error: disqualify[0].id: rule id 'r' is used twice"
    ]


def test_version_is_the_content_hash():
    a = load_icp_source(BASE, "a.yaml")
    b = load_icp_source(BASE + "# a comment\n", "a.yaml")
    assert len(a.version) == 16
    assert a.version == load_icp_source(BASE, "b.yaml").version
    assert a.version != b.version


# ---------------------------------------------------------------------------- the bundled ICP


@pytest.fixture(scope="module")
def bundled() -> IcpConfig:
    return load_icp(ROOT / "config" / "icp.yaml")


IDEAL_ACCOUNT = dict(
    account_domain="northwind.example",
    account_industry="Software",
    account_employees=850,
    account_country="US",
    account_technologies=("Salesforce", "Slack"),
)


def test_bundled_icp_is_valid(bundled):
    assert icp_findings(ROOT / "config" / "icp.yaml") == []
    assert bundled.thresholds.mql == 60 and bundled.thresholds.sql == 90


def test_bundled_icp_vp_revops_at_an_ideal_account(bundled):
    vp = ScoreInput(
        title="VP Revenue Operations",
        seniority="vp",
        department="revops",
        country="US",
        domain="northwind.example",
        email_free=False,
        email_role=False,
        **IDEAL_ACCOUNT,
    )
    cold = bundled.score(vp, [], NOW)
    assert (cold.grade, cold.lifecycle) == ("A", "mql")  # great fit: an SDR should call
    assert "+20 VP title" not in [str(r) for r in cold.reasons]
    assert "+15 VP title" in [str(r) for r in cold.reasons]
    assert "+20 industry Software" in [str(r) for r in cold.reasons]
    warm = bundled.score(vp, [("replied", NOW - timedelta(days=3))], NOW)
    assert warm.lifecycle == "sql"  # ... and once they reply, an AE takes over
    assert str(warm.reasons[-1]) == "+26 engagement: replied 3 days ago (30, half-life 14 d)"


def test_bundled_icp_personas(bundled):
    def stage(events=(), **kw):
        r = bundled.score(ScoreInput(**kw), list(events), NOW)
        return r.grade, r.lifecycle

    # A director of sales at a mid-size fintech in Germany on HubSpot: good fit.
    assert stage(
        seniority="director",
        department="sales",
        account_industry="fintech",
        account_employees=300,
        account_country="DE",
        account_technologies=("hubspot",),
    ) == ("A", "mql")
    # An engineer at a retailer in Brazil: a lead, grade D.
    assert stage(
        seniority="ic", department="engineering", account_industry="Retail", account_country="BR"
    ) == ("D", "lead")
    # ... who books a meeting is still not sales-ready on engagement alone.
    assert stage([("meeting_booked", NOW)], seniority="ic", account_industry="Retail")[1] == "lead"
    # Competitors, the sales-engagement industry, students and info@gmail.com are out.
    assert stage(domain="outreach.io", seniority="vp", **IDEAL_ACCOUNT)[1] == "disqualified"
    assert stage(account_domain="salesloft.com")[1] == "disqualified"
    assert stage(account_industry="Sales Engagement")[1] == "disqualified"
    assert stage(title="MBA Student")[1] == "disqualified"
    assert stage(email_free=True, email_role=True)[1] == "disqualified"
    # A free-mail VP is not disqualified, just worth less.
    assert stage(email_free=True, seniority="vp")[1] == "lead"


# ---------------------------------------------------------------------------- properties, speed

_text = st.one_of(st.none(), st.sampled_from(["Software", "Retail", "saas", "", "VP Sales"]))
inputs = st.builds(
    ScoreInput,
    title=st.one_of(st.none(), st.sampled_from(["VP Sales", "Student", "RevOps Manager", ""])),
    seniority=st.one_of(st.none(), st.sampled_from(["vp", "director", "ic", "c_level"])),
    department=st.one_of(st.none(), st.sampled_from(["sales", "revops", "it"])),
    country=st.one_of(st.none(), st.sampled_from(["US", "FR", "JP"])),
    domain=st.one_of(st.none(), st.sampled_from(["acme.com", "outreach.io", "gmail.com"])),
    email_free=st.one_of(st.none(), st.booleans()),
    email_role=st.one_of(st.none(), st.booleans()),
    account_industry=_text,
    account_employees=st.one_of(st.none(), st.integers(0, 100_000)),
    account_country=st.one_of(st.none(), st.sampled_from(["US", "GB", "BR"])),
    account_technologies=st.lists(st.sampled_from(["Salesforce", "hubspot", "Slack"])).map(tuple),
)
event_lists = st.lists(
    st.tuples(
        st.sampled_from(
            ["replied", "opened", "clicked", "meeting_booked", "form_fill", "unsubscribe", "bounce"]
        ),
        st.integers(-3600, 400 * 86400).map(lambda s: NOW - timedelta(seconds=s)),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(p=inputs, evs=event_lists)
def test_score_is_the_sum_of_its_reasons(bundled, p, evs):
    result = bundled.score(p, evs, NOW)
    assert result.score == sum(r.points for r in result.reasons)
    assert result.score == result.fit + result.engagement
    assert result.engagement <= bundled.engagement.cap
    assert result.fit == sum(
        r.points for r in result.reasons if not r.rule.startswith("engagement")
    )
    assert bundled.score(p, list(reversed(evs)), NOW) == result  # order does not matter
