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
