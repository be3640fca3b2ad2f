"""``config/calls.yaml``: where calls may be transcribed, what the prospect hears first,
and how long transcripts are kept.

Consent to record or transcribe a call is set per country (ISO 3166 alpha-2):

* ``transcribe``: one-party consent (the rep consents): transcribe without an announcement;
* ``announce``: two-party (all-party) consent: the prospect hears the announcement
  line, in their language, before the call is bridged, then it is transcribed;
* ``off``: never transcribed.

``default`` covers every country not listed (and prospects without a country).
Note that some countries' rules differ by state or province (in the USA,
California, Florida, Illinois, Pennsylvania, Washington and others require
every party's consent): the default sample announces everywhere it is not sure.

Example::

    retention_days: 30
    default: announce
    countries:
      US: {consent: announce, language: en-US}
      DE: {consent: announce, language: de-DE}
      GB: {consent: transcribe, language: en-GB}
    announcement:
      en: This call is transcribed to help us follow up accurately.
      de: Dieses Gespräch wird transkribiert, damit wir genau nachfassen können.

``language`` (BCP 47) is what the transcription engine listens for and the
announcement's language (its first subtag picks the ``announcement`` line,
English when there is none for it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from touchflow.domain.calendar import country_timezone
from touchflow.domain.model_findings import (
    findings_of,
    model_from_yaml,
    reported_as,
)
from touchflow.errors import ConfigFileError, Finding

__all__ = [
    "CallConsent",
    "CallsConfig",
    "ConsentMode",
    "calls_config_from_yaml",
    "calls_findings",
]

ConsentMode = Literal["transcribe", "announce", "off"]
_BCP47 = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
DEFAULT_ANNOUNCEMENT = (
    "This call is transcribed so we can follow up accurately. "
    "Tell us if you would rather it was not."
)


def _check_country(value: str) -> str:
    if re.fullmatch(r"[A-Z]{2}", value) and country_timezone(value) is not None:
        return value
    raise ValueError(f"{value!r} is not an ISO 3166 country code (two capital letters, e.g. 'DE')")


def _check_language(value: str) -> str:
    if _BCP47.match(value):
        return value
    raise ValueError(f"{value!r} is not a BCP 47 language tag (e.g. 'en-US', 'de-DE', 'fa-IR')")


Country = Annotated[str, AfterValidator(_check_country)]
Language = Annotated[str, AfterValidator(_check_language)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CountryRule(_Model):
    consent: ConsentMode
    language: Language | None = None


class CallsConfig(_Model):
    """The validated ``calls.yaml``."""

    retention_days: int = Field(default=30, ge=0, le=3650)
    default: ConsentMode = "announce"
    default_language: Language = "en-US"
    countries: dict[Country, CountryRule | ConsentMode] = Field(default_factory=dict)
    announcement: dict[Language, str] = Field(default_factory=dict)

    def for_country(self, country: str | None) -> CallConsent:
        """What a call to a prospect in ``country`` may do, and in which language."""
        rule = self.countries.get((country or "").upper())
        mode: ConsentMode
        language = self.default_language
        if isinstance(rule, CountryRule):
            mode, language = rule.consent, rule.language or language
        else:
            mode = rule or self.default
        if mode == "off":
            return CallConsent(mode, language, None)
        announce = None
        if mode == "announce":
            primary = language.split("-")[0]
            announce = (
                self.announcement.get(language)
                or self.announcement.get(primary)
                or self.announcement.get("en")
                or DEFAULT_ANNOUNCEMENT
            )
        return CallConsent(mode, language, announce)


@dataclass(frozen=True)
class CallConsent:
    """One call's consent: the mode, the prospect's language, the line to say first (or None)."""

    mode: ConsentMode
    language: str
    announcement: str | None

    @property
    def transcribe(self) -> bool:
        return self.mode != "off"


@reported_as(ConfigFileError)
def calls_config_from_yaml(text: str, path: str = "config/calls.yaml") -> CallsConfig:
    """Validate ``calls.yaml`` text; raises ConfigFileError with every ``file:line:col``."""
    return model_from_yaml(
        CallsConfig, text, path, not_a_mapping="calls.yaml must be a mapping", empty_is_default=True
    )[0]


def calls_findings(text: str, path: str) -> list[Finding]:
    """Every problem of a ``calls.yaml`` text (empty when it is valid)."""
    return findings_of(calls_config_from_yaml, text, path)
