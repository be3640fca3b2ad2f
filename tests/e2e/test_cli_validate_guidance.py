"""`touchflow validate` checks config/guidance.yaml: the sample passes, a mistake is reported
at its file:line:col."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from touchflow.entrypoints.cli import app

runner = CliRunner()


def test_the_sample_guidance_file_validates(project: Path) -> None:
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.stdout


def test_validate_reports_guidance_yaml_mistakes(project: Path) -> None:
    path = project / "config" / "guidance.yaml"
    text = path.read_text()
    broken = text.replace("card: pricing\n", "card: pricng\n", 1)
    assert broken != text
    path.write_text(broken)
    line = broken[: broken.index("card: pricng")].count("\n") + 1
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    errors = [ln for ln in result.stdout.splitlines() if ": error: " in ln]
    assert errors == [
        f"config/guidance.yaml:{line}:11: error: trackers.pricing.card: no card 'pricng' in "
        "cards (did you mean 'pricing'?)"
    ]


def test_a_score_event_icp_yaml_gives_no_points_is_a_warning(project: Path) -> None:
    path = project / "config" / "guidance.yaml"
    text = path.read_text()
    broken = text.replace("score_event: asked_for_pricing", "score_event: asked_for_prices", 1)
    assert broken != text
    path.write_text(broken)
    line = broken[: broken.index("asked_for_prices")].count("\n") + 1
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.stdout  # valid: the event still counts once it has points
    assert (
        f"config/guidance.yaml:{line}:18: warning: trackers.pricing.score_event: "
        "'asked_for_prices' has no points in config/icp.yaml engagement.points "
        "(did you mean 'asked_for_pricing'?): it scores nothing"
    ) in result.stdout


def test_a_tracker_condition_naming_no_tracker_fails_validate(project: Path) -> None:
    path = project / "cadences" / "enterprise-outbound.yaml"
    text = path.read_text()
    cond = "when: \"outcome('call-1') in ['no_answer', 'voicemail']\""
    assert cond in text
    path.write_text(text.replace(cond, "when: \"tracker('call-1', 'pricng')\"", 1))
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 1
    assert (
        "when: unknown tracker 'pricng' (did you mean 'pricing'?) "
        "(the trackers are in config/guidance.yaml)"
    ) in result.stdout
    (project / "config" / "guidance.yaml").unlink()  # no trackers to check against
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.stdout
