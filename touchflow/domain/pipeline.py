"""``config/pipeline.yaml``: deal stages, forecast settings and the buying committee (pure).

The file (see the commented copy in ``config/pipeline.yaml``)::

    stages:                          # in order, first to last
      - {name: discovery, probability: 0.1, category: pipeline}
      - {name: negotiation, probability: 0.8, category: commit}
      - {name: closed_won, probability: 1.0, category: closed}
      - {name: closed_lost, probability: 0.0, category: omitted}
    won_stage: closed_won
    lost_stage: closed_lost
    forecast: {period: quarter, reporting_currency: USD, rates: {EUR: 1.08}}
    committee:
      roles: {economic_buyer: 3, champion: 3, technical_evaluator: 2, end_user: 1}
      single_threaded_below: 2     # fewer distinct contacts than this: single-threaded
      title_rules:                   # first match wins; uses the seniority and department
        - {role: economic_buyer, seniority: [c_level, vp], department: [finance]}
    sources:                         # a CRM's stage ids -> the stage names above
      hubspot: {appointmentscheduled: discovery, closedwon: closed_won}

:func:`pipeline_from_yaml` validates the text and reports every problem as a
``file:line:col`` finding with a "did you mean"; :func:`load_pipeline` reads the
file. Titles are classified by the packaged title rules
(:func:`touchflow.domain.normalize.classify_title`, the same seniority and
department the ICP scores on); ``committee.title_rules`` map those to roles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, PrivateAttr, field_validator, model_validator

from touchflow.domain.deals import (
    CommitteeRole,
    Deal,
    DealOutcome,
    ForecastCategory,
    StageChange,
)
from touchflow.domain.model_findings import (
    at,
    hint,
    model_from_yaml,
    read_text,
    reported_as,
)
from touchflow.domain.normalize import DEPARTMENTS, SENIORITIES, classify_title
from touchflow.domain.routing.fields import ConfigModel
from touchflow.domain.yaml_source import YamlDocument
from touchflow.errors import ConfigFileError, Finding, FindingsError

__all__ = [
    "CommitteeConfig",
    "DealHistory",
    "ForecastConfig",
    "Pipeline",
    "Stage",
    "TitleRoleRule",
    "load_pipeline",
    "period_bounds",
    "pipeline_findings",
    "pipeline_from_yaml",
]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_STAGE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_ROLES = tuple(r.value for r in CommitteeRole)


class Stage(ConfigModel):
    """One deal stage: its win probability (0..1) and forecast category."""

    name: str
    probability: float = Field(ge=0, le=1)
    category: ForecastCategory

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _STAGE.match(value):
            raise ValueError(f"{value!r} must be lowercase letters and digits joined by '-' or '_'")
        return value


class ForecastConfig(ConfigModel):
    """The forecast's period and the exchange rates to the reporting currency."""

    period: Literal["month", "quarter"] = "quarter"
    reporting_currency: str = "USD"
    # 1 unit of the key currency = rate units of the reporting currency.
    rates: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _currencies(self) -> Self:
        if not _CURRENCY.match(self.reporting_currency):
            raise at(
                f"{self.reporting_currency!r} is not an ISO currency code (e.g. USD)",
                "reporting_currency",
            )
        for code, rate in self.rates.items():
            if not _CURRENCY.match(str(code)):
                raise at(f"{code!r} is not an ISO currency code (e.g. EUR)", "rates", code,
                         key=True)  # fmt: skip
            if not rate > 0:
                raise at(f"the rate of {code} must be above 0, not {rate}", "rates", code)
        return self


class TitleRoleRule(ConfigModel):
    """A title -> role rule: every listed condition must hold (an empty list: any)."""

    role: CommitteeRole
    seniority: list[str] = Field(default_factory=list)
    department: list[str] = Field(default_factory=list)
    # A regular expression searched case-insensitively in the title itself.
    title: str | None = None

    @model_validator(mode="after")
    def _known(self) -> Self:
        for i, s in enumerate(self.seniority):
            if s not in SENIORITIES:
                raise at(f"unknown seniority {s!r}{hint(s, SENIORITIES)}", "seniority", i)
        for i, d in enumerate(self.department):
            if d not in DEPARTMENTS:
                raise at(f"unknown department {d!r}{hint(d, DEPARTMENTS)}", "department", i)
        if self.title is not None:
            try:
                re.compile(self.title)
            except re.error as exc:
                raise at(f"bad regular expression: {exc}", "title") from None
        if not (self.seniority or self.department or self.title):
            raise at("a rule needs seniority, department or title", "role", key=True)
        return self

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.title, re.IGNORECASE) if self.title else None

    def matches(self, title: str, seniority: str | None, department: str | None) -> bool:
        if self.seniority and seniority not in self.seniority:
            return False
        if self.department and department not in self.department:
            return False
        pattern = self._pattern
        return pattern is None or bool(pattern.search(title))


class CommitteeConfig(ConfigModel):
    """The roles a deal's buying committee needs, with their weights."""

    roles: dict[CommitteeRole, float] = Field(default_factory=dict)
    single_threaded_below: int = Field(default=2, ge=1)
    title_rules: list[TitleRoleRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _weights(self) -> Self:
        for role, weight in self.roles.items():
            if not weight > 0:
                raise at(f"the weight of {role} must be above 0, not {weight}", "roles", role)
        return self


class Pipeline(ConfigModel):
    """``config/pipeline.yaml``, validated."""

    stages: list[Stage]
    won_stage: str
    lost_stage: str
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    committee: CommitteeConfig = Field(default_factory=CommitteeConfig)
    # Per CRM (hubspot, salesforce, pipedrive, fake): its stage id or label -> a stage name.
    sources: dict[str, dict[str, str]] = Field(default_factory=dict)

    _doc: YamlDocument | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.stages:
            raise at("at least one stage is needed", "stages")
        seen: dict[str, int] = {}
        for i, stage in enumerate(self.stages):
            if stage.name in seen:
                again = f"stage {stage.name!r} is listed twice (also stage #{seen[stage.name] + 1})"
                raise at(again, "stages", i, "name")
            seen[stage.name] = i
        names = list(seen)
        for field in ("won_stage", "lost_stage"):
            value = getattr(self, field)
            if value not in seen:
                raise at(f"unknown stage {value!r}{hint(value, names)}", field)
        if self.won_stage == self.lost_stage:
            raise at("won_stage and lost_stage must differ", "lost_stage")
        if self.stage(self.won_stage).category != ForecastCategory.CLOSED:
            raise at(f"the won stage {self.won_stage!r} must have category closed", "won_stage")
        for source, mapping in self.sources.items():
            for vendor_id, ours in mapping.items():
                if ours not in seen:
                    raise at(f"unknown stage {ours!r}{hint(ours, names)}",
                             "sources", source, vendor_id)  # fmt: skip
        return self

    # -- stages ---------------------------------------------------------------

    @cached_property
    def _by_name(self) -> dict[str, Stage]:
        return {s.name: s for s in self.stages}

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    @property
    def open_stages(self) -> list[str]:
        """The stages a deal can be in while open (all but won and lost), in order."""
        return [s.name for s in self.stages if s.name not in (self.won_stage, self.lost_stage)]

    def has_stage(self, name: str) -> bool:
        return name in self._by_name

    def stage(self, name: str) -> Stage:
        """The stage called ``name``; KeyError with the known stages otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(self.unknown_stage(name)) from None

    def unknown_stage(self, name: str) -> str:
        """The message for a stage name that is not in the file."""
        return f"unknown stage {name!r}{hint(name, self.stage_names)}; pipeline.yaml stages: " + (
            ", ".join(self.stage_names)
        )

    def order(self, name: str) -> int:
        """The stage's index in the file (0 = first)."""
        return self.stage_names.index(self.stage(name).name)

    def outcome_of_stage(self, name: str) -> DealOutcome | None:
        if name == self.won_stage:
            return DealOutcome.WON
        if name == self.lost_stage:
            return DealOutcome.LOST
        return None

    def category_for(self, stage: str, outcome: DealOutcome | None = None) -> ForecastCategory:
        """A deal's forecast category: closed when won, omitted when lost, else its stage's."""
        if outcome is DealOutcome.WON:
            return ForecastCategory.CLOSED
        if outcome is DealOutcome.LOST:
            return ForecastCategory.OMITTED
        return self.stage(stage).category

    def probability(self, deal: Deal) -> float:
        """The stage probability of an open deal; 1 when won, 0 when lost."""
        if deal.outcome is DealOutcome.WON:
            return 1.0
        if deal.outcome is DealOutcome.LOST:
            return 0.0
        return self.stage(deal.stage).probability

    def map_stage(self, source: str, vendor_stage: str) -> str | None:
        """A CRM's stage id (or label) as our stage name: the ``sources`` map, else the
        same name when it is one of ours (case and spaces folded), else None."""
        mapping = self.sources.get(source, {})
        if vendor_stage in mapping:
            return mapping[vendor_stage]
        folded = re.sub(r"[\s-]+", "_", vendor_stage.strip().lower())
        return folded if folded in self._by_name else None

    # -- money ----------------------------------------------------------------

    def convert(self, amount: float, currency: str) -> float:
        """``amount`` in the reporting currency; KeyError when no rate is configured."""
        code = currency.upper()
        if code == self.forecast.reporting_currency:
            return amount
        if code not in self.forecast.rates:
            raise KeyError(
                f"no rate for {code} in pipeline.yaml forecast.rates "
                f"(reporting currency {self.forecast.reporting_currency})"
            )
        return amount * self.forecast.rates[code]

    # -- committee ------------------------------------------------------------

    def role_for_title(self, title: str | None) -> CommitteeRole | None:
        """The committee role a job title implies (first matching rule), or None."""
        if not title:
            return None
        seniority, department = classify_title(title)
        for rule in self.committee.title_rules:
            if rule.matches(title, seniority, department):
                return rule.role
        return None


@dataclass(frozen=True)
class DealHistory:
    """A deal as known at some time, with its stage changes up to then (oldest first)."""

    deal: Deal
    stages: tuple[StageChange, ...]

    def stage_at(self, when: datetime) -> str | None:
        """The stage the deal was in at ``when`` by its changes (None before the first)."""
        current = None
        for change in self.stages:
            if change.entered_at > when:
                break
            current = change.stage
        return current


def period_bounds(day: date, period: Literal["month", "quarter"]) -> tuple[date, date]:
    """The first day of ``day``'s period and the first day of the next one."""
    months = 3 if period == "quarter" else 1
    first_month = (day.month - 1) // months * months + 1
    start = date(day.year, first_month, 1)
    nxt = first_month + months
    end = date(day.year + (nxt - 1) // 12, (nxt - 1) % 12 + 1, 1)
    return start, end


@reported_as(ConfigFileError)
def pipeline_from_yaml(text: str, path: str = "config/pipeline.yaml") -> Pipeline:
    """Validate pipeline.yaml text; raises ConfigFileError with every ``file:line:col`` finding."""
    pipeline, doc = model_from_yaml(Pipeline, text, path, not_a_mapping=f"{path} must be a mapping")
    pipeline._doc = doc
    return pipeline


@reported_as(ConfigFileError)
def load_pipeline(path: Path | str) -> Pipeline:
    """Read and validate a pipeline.yaml file (ConfigFileError with every finding)."""
    return pipeline_from_yaml(read_text(Path(path)), str(path))


def pipeline_findings(path: Path | str) -> list[Finding]:
    """Every problem in a pipeline.yaml file (none when valid), for ``touchflow validate``."""
    try:
        load_pipeline(path)
    except FindingsError as exc:
        return list(exc.findings)
    return []


def rates_mapping(pipeline: Pipeline) -> Mapping[str, float]:
    """Every currency's rate to the reporting currency, the reporting one included (1.0)."""
    return {pipeline.forecast.reporting_currency: 1.0, **pipeline.forecast.rates}
