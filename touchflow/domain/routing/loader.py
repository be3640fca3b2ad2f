"""Loading team.yaml and routing.yaml: every problem as a ``file:line:col`` finding (pure).

:func:`team_from_yaml` and :func:`routing_from_yaml` validate one file's text;
:func:`load_router` reads both from a config directory and cross-checks them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from touchflow.domain.model_findings import model_findings, read_text, reported_as
from touchflow.domain.routing.router import Router
from touchflow.domain.routing.rules import RoutingConfig
from touchflow.domain.routing.team import TeamConfig
from touchflow.domain.yaml_source import parse_yaml
from touchflow.errors import ConfigFileError, Finding, FindingsError

__all__ = ["load_router", "routing_from_yaml", "team_from_yaml"]


def _load_model(
    model: type[TeamConfig] | type[RoutingConfig], text: str, path: str
) -> tuple[Any, list[Finding]]:
    doc = parse_yaml(text, path)
    findings = list(doc.findings)
    if not isinstance(doc.data, dict):
        findings.append(Finding(path, *doc.position_for(()), f"{path} must be a mapping"))
        return None, findings
    try:
        obj = model.model_validate(doc.data)
    except ValidationError as exc:
        findings.extend(model_findings(doc, exc, model, name=PurePosixPath(path).stem))
        return None, findings
    obj._doc = doc
    return obj, findings


@reported_as(ConfigFileError)
def team_from_yaml(text: str, path: str = "config/team.yaml") -> TeamConfig:
    """Validate team.yaml text; raises ConfigFileError with every ``file:line:col`` finding."""
    team, findings = _load_model(TeamConfig, text, path)
    if findings or team is None:
        raise ConfigFileError(sorted(set(findings)))
    return team


@reported_as(ConfigFileError)
def routing_from_yaml(text: str, path: str = "config/routing.yaml") -> RoutingConfig:
    """Validate routing.yaml text (alone); raises ConfigFileError with every finding."""
    routing, findings = _load_model(RoutingConfig, text, path)
    if findings or routing is None:
        raise ConfigFileError(sorted(set(findings)))
    return routing


def load_router(config_dir: Path) -> Router:
    """Load ``team.yaml`` and ``routing.yaml`` from ``config_dir`` and cross-check them.

    Raises ConfigFileError with the findings of both files together.
    """
    findings: list[Finding] = []
    loaded = []
    for name, model in (("team.yaml", TeamConfig), ("routing.yaml", RoutingConfig)):
        path = config_dir / name
        try:
            obj, found = _load_model(model, read_text(path), str(path))
        except FindingsError as exc:
            obj, found = None, exc.findings
        loaded.append(obj)
        findings.extend(found)
    if findings:
        raise ConfigFileError(sorted(set(findings)))
    return Router(loaded[0], loaded[1])
