"""config/pipeline.yaml: validation with file:line:col findings, stages, roles from titles."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from touchflow.domain.deals import CommitteeRole, Deal, DealOutcome, ForecastCategory
from touchflow.domain.pipeline import load_pipeline, period_bounds, pipeline_from_yaml
from touchflow.errors import ConfigFileError

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
stages:
  - {name: open, probability: 0.3, category: pipeline}
  - {name: won, probability: 1, category: closed}
  - {name: lost, probability: 0, category: omitted}
won_stage: won
lost_stage: lost
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        pipeline_from_yaml(text, "pipeline.yaml")
    return [str(f) for f in info.value.findings]


def test_the_shipped_file_loads() -> None:
    p = load_pipeline(ROOT / "config" / "pipeline.yaml")
    assert p.stage_names[0] == "discovery" and p.won_stage == "closed_won"
    assert p.open_stages[-2:] == ["negotiation", "commit"]
    assert p.map_stage("hubspot", "contractsent") == "negotiation"
    assert p.map_stage("salesforce", "Closed Won") == "closed_won"
    assert p.map_stage("fake", "Demo") == "demo"  # our own name, any case
    assert p.map_stage("hubspot", "nonsense") is None
    assert p.convert(100, "eur") == pytest.approx(108)
    with pytest.raises(KeyError, match="no rate for JPY"):
        p.convert(1, "JPY")


def test_categories_and_probabilities() -> None:
    p = pipeline_from_yaml(MINIMAL)
    assert p.category_for("open") is ForecastCategory.PIPELINE
    assert p.category_for("open", DealOutcome.WON) is ForecastCategory.CLOSED
    assert p.category_for("open", DealOutcome.LOST) is ForecastCategory.OMITTED
    deal = Deal("d", "csv", None, None, 1.0, "USD", "open", datetime(2027, 1, 1, tzinfo=UTC), None)
    assert p.probability(deal) == 0.3
    assert p.outcome_of_stage("won") is DealOutcome.WON
    with pytest.raises(KeyError, match="unknown stage 'opne' \\(did you mean 'open'\\?\\)"):
        p.stage("opne")


def test_unknown_key_is_reported_at_its_line_with_a_suggestion() -> None:
    found = errors(MINIMAL + "forecast: {perod: month}\n")
    assert len(found) == 1
    assert found[0].startswith("pipeline.yaml:7:")
    assert "period" in found[0]


def test_bad_values_are_each_reported_where_they_are() -> None:
    text = MINIMAL.replace("probability: 0.3", "probability: 1.3").replace(
        "won_stage: won", "won_stage: wun"
    )
    found = errors(text)
    assert any(f.startswith("pipeline.yaml:2:") and "probability" in f for f in found), found
    text = MINIMAL.replace("won_stage: won", "won_stage: wun")
    (only,) = errors(text)
    assert only.startswith("pipeline.yaml:5:12") and "did you mean 'won'" in only


def test_category_must_be_known() -> None:
    (only,) = errors(MINIMAL.replace("category: pipeline", "category: pipline"))
    assert only.startswith("pipeline.yaml:2:") and "pipeline" in only


def test_title_rules_check_seniority_and_department_names() -> None:
    rule = "{role: champion, seniority: [vp], department: [revop]}"
    text = MINIMAL + f"committee:\n  title_rules:\n    - {rule}\n"
    (only,) = errors(text)
    assert only.startswith("pipeline.yaml:9:") and "did you mean 'revops'" in only


def test_sources_must_map_to_known_stages() -> None:
    (only,) = errors(MINIMAL + "sources:\n  hubspot: {closedwon: wonn}\n")
    assert only.startswith("pipeline.yaml:8:") and "did you mean 'won'" in only


def test_roles_from_titles_use_the_title_rules() -> None:
    p = load_pipeline(ROOT / "config" / "pipeline.yaml")
    assert p.role_for_title("Chief Financial Officer") is CommitteeRole.ECONOMIC_BUYER
    assert p.role_for_title("VP Finance") is CommitteeRole.ECONOMIC_BUYER
    assert p.role_for_title("Senior Software Engineer") is CommitteeRole.TECHNICAL_EVALUATOR
    assert p.role_for_title("Director of Revenue Operations") is CommitteeRole.CHAMPION
    assert p.role_for_title("Account Executive") is CommitteeRole.END_USER
    assert p.role_for_title("") is None


def test_period_bounds() -> None:
    assert period_bounds(date(2027, 2, 14), "quarter") == (date(2027, 1, 1), date(2027, 4, 1))
    assert period_bounds(date(2027, 11, 30), "quarter") == (date(2027, 10, 1), date(2028, 1, 1))
    assert period_bounds(date(2027, 12, 3), "month") == (date(2027, 12, 1), date(2028, 1, 1))
