"""The field types and validators team.yaml and routing.yaml share (pure).

``NAME`` is the pattern of a region, rule or queue name (lowercase); a territory is a region name
or an ISO country code (uppercase): "na" is a region, "NA" would be Namibia.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from touchflow.domain.normalize import checked_email

__all__ = [
    "NAME",
    "ConfigModel",
    "Country",
    "Email",
    "Fallback",
    "Grade",
    "Name",
    "Role",
    "RuleKind",
    "Segment",
    "Territory",
]

Role = Literal["ae", "sdr"]
Segment = Literal["smb", "mid", "enterprise"]
RuleKind = Literal["account_owner", "territory", "pool"]

_COUNTRY = re.compile(r"^[A-Z]{2}$")
NAME = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_GRADES = ("A", "B", "C", "D")


def _check_email(value: str) -> str:
    return checked_email(value.strip()).normalized.lower()


def _check_name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"{value!r} must be lowercase letters and digits joined by '-' or '_'")
    return value


def _check_country(value: str) -> str:
    if not _COUNTRY.match(value):
        raise ValueError(f"{value!r} is not an ISO country code (two capital letters, e.g. 'DE')")
    return value


def _check_territory(value: str) -> str:
    if not (_COUNTRY.match(value) or NAME.match(value)):
        raise ValueError(
            f"{value!r} is neither a region name (lowercase, e.g. 'emea') "
            "nor an ISO country code (uppercase, e.g. 'DE')"
        )
    return value


def _check_grade(value: str) -> str:
    if value not in _GRADES:
        raise ValueError(f"{value!r} is not a grade: use {', '.join(_GRADES)}")
    return value


def _check_fallback(value: str) -> str:
    if "@" in value:
        return _check_email(value)
    if not NAME.match(value):
        raise ValueError(
            f"{value!r} is neither an email (a person) nor a queue name "
            "(lowercase letters and digits joined by '-' or '_')"
        )
    return value


Email = Annotated[str, AfterValidator(_check_email)]
Name = Annotated[str, AfterValidator(_check_name)]
Country = Annotated[str, AfterValidator(_check_country)]
Territory = Annotated[str, AfterValidator(_check_territory)]
Grade = Annotated[str, AfterValidator(_check_grade)]
Fallback = Annotated[str, AfterValidator(_check_fallback)]


class ConfigModel(BaseModel):
    """The base of every team.yaml and routing.yaml model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
