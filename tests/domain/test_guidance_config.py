"""config/guidance.yaml: the sample loads, and every mistake is reported at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from touchflow.domain.cadence import validate_paths
from touchflow.domain.guidance import guidance_findings, guidance_from_yaml, load_guidance
from touchflow.errors import ConfigFileError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "guidance.yaml"
PATH = "config/guidance.yaml"


def _messages(text: str) -> list[str]:
    return [str(f) for f in guidance_findings(text, PATH)]


def test_the_sample_file_is_valid_and_covers_five_languages() -> None:
    guidance = load_guidance(SAMPLE)
    file = guidance.file
    assert {"en", "de", "fr", "es", "fa"} <= guidance.matcher.languages
    for tracker in file.trackers.values():
        assert {"en", "de", "fr", "es", "fa"} <= set(tracker.phrases)
    assert [item.id for item in file.checklist] == [
        "budget", "authority", "need", "timeline", "next-step",
    ]  # fmt: skip
    assert file.trackers["timeline-asked"].not_said_within == 300
    assert any(tracker.exclude for tracker in file.trackers.values())


def test_validate_paths_checks_guidance_yaml_in_a_config_folder(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    bad = config / "guidance.yaml"
    bad.write_text("trackers:\n  pricing:\n    phrases: {en: [price]}\n    card: pricng\n")
    findings = validate_paths([config], tmp_path / "templates")
    assert [str(f) for f in findings] == [
        f"{bad}:4:11: error: trackers.pricing.card: no card 'pricng' in cards",
    ]
    assert validate_paths([SAMPLE], tmp_path / "templates") == []


def test_unknown_keys_point_at_the_key_with_a_suggestion() -> None:
    text = (
        "trackers:\n"
        "  pricing:\n"
        "    phrases: {en: [price]}\n"
        "    cooldwn_s: 30\n"
        "defualt_language: en\n"
    )
    assert _messages(text) == [
        f"{PATH}:4:5: error: unknown key 'cooldwn_s' (did you mean 'cooldown_s'?)",
        f"{PATH}:5:1: error: unknown key 'defualt_language' (did you mean 'default_language'?)",
    ]


def test_bad_values_are_reported_where_they_are() -> None:
    text = (
        "trackers:\n"
        "  Pricing:\n"
        "    phrases: {en: [price]}\n"
        "  timeline:\n"
        "    phrases:\n"
        "      eng: [timeline]\n"
        "      de: ['?!']\n"
        "    said_by: prospekt\n"
        "    not_said_within: -5\n"
        "partial_stability: 1.5\n"
    )
    messages = _messages(text)
    assert messages == [
        f"{PATH}:2:3: error: trackers.Pricing: 'Pricing' must be kebab-case "
        "(lowercase letters and digits joined by '-')",
        f"{PATH}:6:7: error: trackers.timeline.phrases.eng: 'eng' is not a language touchflow "
        "can stem (did you mean 'en'? use one of " + messages[1].split("use one of ")[1],
        f"{PATH}:7:12: error: trackers.timeline.phrases.de[0]: '?!' has no words "
        "(punctuation and symbols are ignored)",
        f"{PATH}:8:14: error: trackers.timeline.said_by: input should be 'prospect', 'rep' or "
        "'anyone', got 'prospekt'",
        f"{PATH}:9:22: error: trackers.timeline.not_said_within: input should be greater "
        "than 0, got -5",
        f"{PATH}:10:20: error: partial_stability: input should be less than or equal to 1, got 1.5",
    ]


def test_a_region_tag_is_not_a_language() -> None:
    text = "trackers:\n  pricing:\n    phrases: {en-US: [price]}\n"
    assert _messages(text) == [
        f"{PATH}:3:15: error: trackers.pricing.phrases.en-US: 'en-US': write the language "
        "alone (did you mean 'en'?)"
    ]


def test_names_must_point_at_cards_and_trackers() -> None:
    text = (
        "trackers:\n"
        "  pricing:\n"
        "    phrases: {en: [price]}\n"
        "    exclude: {de: [Aktienkurs]}\n"
        "    card: pricng\n"
        "  timeline:\n"
        "    phrases: {en: [timeline]}\n"
        "    not_said_within: 300\n"
        "cards:\n"
        "  pricing: {title: Pricing, links: [{label: Page, url: 'www.example.com'}]}\n"
        "checklist:\n"
        "  - {id: budget, label: Budget, tracker: pricin}\n"
        "  - {id: budget, label: Budget again, tracker: pricing}\n"
    )
    assert _messages(text) == [
        f"{PATH}:10:56: error: cards.pricing.links[0].url: 'www.example.com' is not a link: "
        "use an http(s) URL or a path starting with /",
    ]
    fixed = text.replace("'www.example.com'", "'https://example.com/pricing'")
    assert _messages(fixed) == [
        f"{PATH}:4:15: error: trackers.pricing.exclude.de: no phrases in 'de' to exclude from",
        f"{PATH}:5:11: error: trackers.pricing.card: no card 'pricng' in cards "
        "(did you mean 'pricing'?)",
        f"{PATH}:8:5: error: trackers.timeline: a not_said_within tracker needs a card "
        "(it has nothing else to show)",
        f"{PATH}:12:42: error: checklist[0].tracker: no tracker 'pricin' in trackers "
        "(did you mean 'pricing'?)",
        f"{PATH}:13:10: error: checklist[1].id: 'budget' is already an item (line 12)",
    ]


def test_yaml_syntax_errors_and_the_wrong_shape() -> None:
    assert _messages("trackers: [\n")[0].startswith(f"{PATH}:2:1: error: YAML syntax error")
    assert _messages("- a list\n") == [
        f"{PATH}:1:1: error: guidance.yaml must be a mapping: trackers:"
    ]
    with pytest.raises(ConfigFileError):
        guidance_from_yaml("trackers:\n  x:\n    phrases: {}\n", PATH)


def test_an_empty_file_is_no_guidance() -> None:
    assert guidance_from_yaml("", PATH).trackers == {}


def test_a_score_event_is_an_icp_event_name_and_is_kept() -> None:
    text = "trackers:\n  pricing:\n    phrases: {en: [price]}\n    score_event: Asked-For-Pricing\n"
    (message,) = _messages(text)
    assert message.startswith("config/guidance.yaml:4:18: error: ")
    assert "'Asked-For-Pricing' must be lowercase_with_underscores" in message
    good = guidance_from_yaml(text.replace("Asked-For-Pricing", "asked_for_pricing"))
    assert good.trackers["pricing"].score_event == "asked_for_pricing"
    sample = load_guidance(SAMPLE)
    assert {t.score_event for t in sample.file.trackers.values()} >= {
        "asked_for_pricing",
        "competitor_mentioned",
    }
