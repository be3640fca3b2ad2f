"""Loading team.yaml and routing.yaml: every problem as a ``file:line:col`` finding (pure).

:func:`team_from_yaml` and :func:`routing_from_yaml` validate one file's text;
:func:`load_router` reads both from a config directory and cross-checks them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from touchflow.domain.model_findings import model_from_yaml, read_text, reported_as
from touchflow.domain.routing.router import Router
from touchflow.domain.routing.rules import RoutingConfig
from touchflow.domain.routing.team import TeamConfig
from touchflow.errors import ConfigFileError, Finding, FindingsError

__all__ = ["load_router", "routing_from_yaml", "team_from_yaml"]

M = TypeVar("M", TeamConfig, RoutingConfig)


def _load_model(model: type[M], text: str, path: str) -> M:
    obj, doc = model_from_yaml(model, text, path, not_a_mapping=f"{path} must be a mapping")
    obj._doc = doc
    return obj


@reported_as(ConfigFileError)
def team_from_yaml(text: str, path: str = "config/team.yaml") -> TeamConfig:
    """Validate team.yaml text; raises ConfigFileError with every ``file:line:col`` finding."""
    return _load_model(TeamConfig, text, path)


@reported_as(ConfigFileError)
def routing_from_yaml(text: str, path: str = "config/routing.yaml") -> RoutingConfig:
    """Validate routing.yaml text (alone); raises ConfigFileError with every finding."""
    return _load_model(RoutingConfig, text, path)


def load_router(config_dir: Path) -> Router:
    """Load ``team.yaml`` and ``routing.yaml`` from ``config_dir`` and cross-check them.

    Raises ConfigFileError with the findings of both files together.
    """
    findings: list[Finding] = []

    def load(model: type[M], name: str) -> M | None:
        path = config_dir / name
        try:
            return _load_model(model, read_text(path), str(path))
        except FindingsError as exc:
            findings.extend(exc.findings)
            return None

    team, routing = load(TeamConfig, "team.yaml"), load(RoutingConfig, "routing.yaml")
    if findings or team is None or routing is None:
        raise ConfigFileError(sorted(set(findings)))
    return Router(team, routing)
