"""Cadence loading: the bundled cadences, YAML quirks, versions, variants and delays."""

from __future__ import annotations

from collections import Counter
from datetime import time
from pathlib import Path

import pytest

from touchflow.domain.cadence import (
    EXIT_EVENTS,
    Cadence,
    Delay,
    Step,
    Variant,
    choose_variant,
    load_cadence,
    load_cadence_source,
    load_cadences,
    validate_paths,
)
from touchflow.domain.compliance import footer_findings
from touchflow.domain.yaml_source import load_yaml, parse_yaml
from touchflow.errors import CadenceError

ROOT = Path(__file__).resolve().parents[2]

SIMPLE = """\
id: simple
name: Simple
schedule:
  window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
steps:
  - id: intro
    channel: email
    subject: "Hello {{ prospect.first_name }}"
    template: email/intro.txt.j2
    variants:
      - {id: a}
      - {id: b, subject: "Question for {{ prospect.company }}"}
  - id: bump
    after: 2 business days
    channel: email
    thread: intro
    template: email/bump.txt.j2
"""

TEMPLATES = {
    "email/intro.txt.j2": "Hi {{ prospect.first_name }}\n{% include 'email/sig.txt.j2' %}",
    "email/bump.txt.j2": "Bumping this.\n{% include 'email/sig.txt.j2' %}",
    "email/sig.txt.j2": "{{ sender.name }}\n{{ unsubscribe_url }}\n",
    "email/unused.txt.j2": "Not used by any cadence.\n",
}


def _write(root: Path, yaml_text: str = SIMPLE, name: str = "simple") -> Path:
    for tname, src in TEMPLATES.items():
        path = root / "templates" / tname
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(src)
    (root / "cadences").mkdir(exist_ok=True)
    path = root / "cadences" / f"{name}.yaml"
    path.write_text(yaml_text)
    return path


# --------------------------------------------------------------------------- bundled


def test_bundled_cadences_load() -> None:
    cadences = load_cadences(ROOT / "cadences", ROOT / "templates")
    assert set(cadences) == {"enterprise-outbound", "inbound-fast-follow"}

    outbound = cadences["enterprise-outbound"]
    assert [(s.id, s.channel) for s in outbound.steps] == [
        ("intro", "email"),
        ("call-1", "call"),
        ("linkedin-connect", "linkedin"),
        ("bump", "email"),
        ("sms-nudge", "sms"),
        ("breakup", "email"),
    ]
    assert [v.id for v in outbound.step("intro").variants] == ["a", "b"]
    assert outbound.step("bump").thread == "intro"
    assert any(s.when for s in outbound.steps)
    assert outbound.schedule.jitter_minutes == 20
    assert outbound.schedule.holidays == "prospect"
    window = outbound.schedule.window.to_send_window()
    assert window.days == frozenset(range(5))
    assert (window.start, window.end) == (time(8, 0), time(17, 30))
    assert "email/_signature.txt.j2" in outbound.templates  # included templates are pinned too

    inbound = cadences["inbound-fast-follow"]
    assert [str(s.after) if s.after else None for s in inbound.steps] == [
        None,
        "15 minutes",
        "2 hours",
        "1 business day",
    ]
    assert inbound.schedule.window.to_send_window().days == frozenset(range(6))
    assert inbound.schedule.holidays == "none"


def test_bundled_files_validate_clean() -> None:
    paths = [ROOT / "cadences", ROOT / "templates"]
    assert validate_paths(paths, ROOT / "templates") == []


def test_every_bundled_email_has_an_opt_out_and_a_postal_address() -> None:
    for cadence in load_cadences(ROOT / "cadences", ROOT / "templates").values():
        assert footer_findings(cadence, "templates") == []


# --------------------------------------------------------------------------- YAML quirks


def test_yes_no_on_off_stay_strings(tmp_path: Path) -> None:
    yaml_text = """\
id: quirks
name: no
description: on
schedule:
  window: {days: [mon], start: 08:00, end: 17:30}
  holidays: [NO, SE]
steps:
  - id: no
    channel: task
    variants:
      - {id: on}
      - {id: off}
      - {id: y}
      - {id: n}
"""
    cadence = load_cadence(_write(tmp_path, yaml_text, "quirks"), tmp_path / "templates")
    assert cadence.name == "no"
    assert cadence.description == "on"
    assert cadence.schedule.holidays == ["NO", "SE"]  # Norway, not False
    assert cadence.steps[0].id == "no"
    assert [v.id for v in cadence.steps[0].variants] == ["on", "off", "y", "n"]


def test_unquoted_times_are_not_sexagesimal_numbers(tmp_path: Path) -> None:
    assert load_yaml("a: 08:00\nb: 17:30\nc: 1:30\n") == {"a": "08:00", "b": "17:30", "c": "1:30"}
    cadence = load_cadence(
        _write(tmp_path, SIMPLE.replace('"09:00"', "08:00").replace('"17:00"', "17:30")),
        tmp_path / "templates",
    )
    assert cadence.schedule.window.start == time(8, 0)
    assert cadence.schedule.window.end == time(17, 30)


def test_true_false_and_numbers_still_resolve() -> None:
    assert load_yaml("a: true\nb: False\nc: 12\nd: 1.5\ne: 0x1f\nf: ~\n") == {
        "a": True,
        "b": False,
        "c": 12,
        "d": 1.5,
        "e": 31,
        "f": None,
    }


def test_positions_cover_keys_and_values() -> None:
    doc = parse_yaml("a:\n  b: [1, 2]\n  c: {d: x}\n", "f.yaml")
    assert doc.positions[("a", "b", 1)] == (2, 10)
    assert doc.key_positions[("a", "c")] == (3, 3)
    assert doc.positions[("a", "c", "d")] == (3, 10)
    # pydantic locs: unknown components (union tags, missing keys) fall back to the parent.
    assert doc.position_for(("a", "c", "function-after[x]", "d")) == (3, 10)
    assert doc.position_for(("a", "zzz")) == (2, 3)
    assert doc.key_position(("a", "zzz")) == (2, 3)


# --------------------------------------------------------------------------- versions


def test_version_changes_with_a_used_template_only(tmp_path: Path) -> None:
    path = _write(tmp_path)
    tdir = tmp_path / "templates"
    first = load_cadence(path, tdir)
    assert len(first.version) == 16
    int(first.version, 16)
    assert load_cadence(path, tdir).version == first.version

    (tdir / "email/unused.txt.j2").write_text("Changed, but no cadence uses it.\n")
    assert load_cadence(path, tdir).version == first.version

    (tdir / "email/sig.txt.j2").write_text("{{ sender.name }}, VP\n{{ unsubscribe_url }}\n")
    changed = load_cadence(path, tdir)
    assert changed.version != first.version  # an included template counts
    assert changed.templates["email/sig.txt.j2"].startswith("{{ sender.name }}, VP")

    (tdir / "email/intro.txt.j2").write_text("Hello {{ prospect.first_name }}\n")
    assert load_cadence(path, tdir).version not in {first.version, changed.version}


def test_version_changes_with_the_yaml_text(tmp_path: Path) -> None:
    first = load_cadence(_write(tmp_path), tmp_path / "templates")
    second = load_cadence(_write(tmp_path, SIMPLE + "# a comment\n"), tmp_path / "templates")
    assert first.version != second.version


def test_snapshot_holds_exactly_the_used_templates(tmp_path: Path) -> None:
    cadence = load_cadence(_write(tmp_path), tmp_path / "templates")
    assert sorted(cadence.templates) == [
        "email/bump.txt.j2",
        "email/intro.txt.j2",
        "email/sig.txt.j2",
    ]
    assert cadence.yaml_text == SIMPLE
    assert cadence.source_path == str(tmp_path / "cadences" / "simple.yaml")


def test_load_cadence_source_round_trip(tmp_path: Path) -> None:
    cadence = load_cadence(_write(tmp_path), tmp_path / "templates")
    again = load_cadence_source(cadence.yaml_text, cadence.source_path, cadence.templates)
    assert again.version == cadence.version
    assert again.templates == cadence.templates
    assert again.model_dump() == cadence.model_dump()


def test_load_cadence_source_reports_missing_templates() -> None:
    with pytest.raises(CadenceError) as info:
        load_cadence_source(SIMPLE, "cadences/simple.yaml", {"email/intro.txt.j2": "Hi\n"})
    assert [str(f) for f in info.value.findings] == [
        "cadences/simple.yaml:17:15: error: template 'email/bump.txt.j2' not found "
        "(templates/email/bump.txt.j2)"
    ]


def test_private_snapshot_fields_are_not_yaml_keys(tmp_path: Path) -> None:
    with pytest.raises(CadenceError, match="unknown key 'version'"):
        load_cadence(_write(tmp_path, SIMPLE + "version: abc\n"), tmp_path / "templates")


# --------------------------------------------------------------------------- model API


def test_step_lookup_and_manual_channels(tmp_path: Path) -> None:
    cadence = load_cadence(_write(tmp_path), tmp_path / "templates")
    assert cadence.step_index("bump") == 1
    assert cadence.step("bump").after == Delay(amount=2, unit="business_days")
    assert cadence.exit_on == list(EXIT_EVENTS)
    with pytest.raises(KeyError):
        cadence.step("nope")
    assert Step(id="c", channel="call").manual
    assert not Step(id="e", channel="email").manual


def test_resolve_threads_the_subject_of_the_same_variant(tmp_path: Path) -> None:
    cadence = load_cadence(_write(tmp_path), tmp_path / "templates")
    keys = [f"enrollment-{i}" for i in range(50)]
    for key in keys:
        intro = cadence.resolve("intro", key)
        bump = cadence.resolve("bump", key)
        assert intro.variant is not None
        assert bump.variant is None
        assert bump.subject == f"Re: {intro.subject}"
        assert bump.template == "email/bump.txt.j2"
    subjects = {cadence.resolve("intro", k).subject for k in keys}
    assert subjects == {"Hello {{ prospect.first_name }}", "Question for {{ prospect.company }}"}


def _step_with(weights: list[int]) -> Step:
    return Step(
        id="intro",
        channel="email",
        variants=[Variant(id=f"v{i}", weight=w) for i, w in enumerate(weights)],
    )


def test_choose_variant_is_deterministic() -> None:
    step = _step_with([1, 1])
    picks = [choose_variant(step, f"k{i}") for i in range(100)]
    assert picks == [choose_variant(step, f"k{i}") for i in range(100)]
    assert choose_variant(Step(id="x", channel="email"), "k") is None
    # The step id is part of the seed: two steps do not always pick the same slot.
    other = Step(id="bump", channel="email", variants=step.variants)
    slots = [(choose_variant(step, f"k{i}"), choose_variant(other, f"k{i}")) for i in range(100)]
    assert any(a != b for a, b in slots)


def test_choose_variant_follows_weights() -> None:
    step = _step_with([1, 3])
    counts = Counter(choose_variant(step, f"enrollment:{i}").id for i in range(10_000))  # type: ignore[union-attr]
    assert 2300 < counts["v0"] < 2700
    assert 7300 < counts["v1"] < 7700


# --------------------------------------------------------------------------- Delay


@pytest.mark.parametrize(
    ("text", "amount", "unit", "shown"),
    [
        ("1 business day", 1, "business_days", "1 business day"),
        ("3 business days", 3, "business_days", "3 business days"),
        ("1 day", 1, "days", "1 day"),
        ("10 days", 10, "days", "10 days"),
        ("1 hour", 1, "hours", "1 hour"),
        ("2 hours", 2, "hours", "2 hours"),
        ("1 minute", 1, "minutes", "1 minute"),
        ("15 minutes", 15, "minutes", "15 minutes"),
        ("0 minutes", 0, "minutes", "0 minutes"),
        ("  2   Business   Days ", 2, "business_days", "2 business days"),
        ("2 day", 2, "days", "2 days"),  # singular/plural is not checked against the number
    ],
)
def test_delay_parse(text: str, amount: int, unit: str, shown: str) -> None:
    delay = Delay.parse(text)
    assert (delay.amount, delay.unit) == (amount, unit)
    assert str(delay) == shown
    assert Delay.parse(str(delay)) == delay


@pytest.mark.parametrize(
    "text", ["", "2", "days", "2 weeks", "two days", "-1 days", "2days", "1.5 hours", "2 biz days"]
)
def test_delay_parse_errors(text: str) -> None:
    with pytest.raises(ValueError, match="is not a delay"):
        Delay.parse(text)


def test_delay_is_frozen() -> None:
    delay = Delay(amount=1, unit="days")
    with pytest.raises(ValueError, match="frozen"):
        delay.amount = 2  # type: ignore[misc]
    assert hash(delay) == hash(Delay(amount=1, unit="days"))


def test_cadence_model_is_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        Cadence.model_validate({"id": "x", "name": "x", "schedule": {}, "steps": [], "zzz": 1})
