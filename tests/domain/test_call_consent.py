"""config/calls.yaml: consent per country, the announcement's language, file:line:col errors."""

from __future__ import annotations

import pytest

from touchflow.domain.call_consent import calls_config_from_yaml, calls_findings
from touchflow.errors import ConfigFileError

YAML = """\
retention_days: 14
default: transcribe
countries:
  DE: {consent: announce, language: de-DE}
  AT: {consent: announce, language: de-AT}
  BR: {consent: announce, language: pt-BR}
  IR: 'off'
announcement:
  en: This call is transcribed.
  de: Dieses Gespräch wird transkribiert.
"""


def test_consent_per_country_and_the_announcement_in_the_prospect_s_language():
    cfg = calls_config_from_yaml(YAML)
    assert cfg.retention_days == 14
    de = cfg.for_country("DE")
    assert (de.mode, de.language, de.announcement) == (
        "announce", "de-DE", "Dieses Gespräch wird transkribiert."
    )  # fmt: skip
    assert cfg.for_country("AT").announcement == "Dieses Gespräch wird transkribiert."
    assert cfg.for_country("BR").announcement == "This call is transcribed."  # no pt line
    off = cfg.for_country("IR")
    assert not off.transcribe and off.announcement is None
    us = cfg.for_country("us")  # not listed: the default, no announcement
    assert us.transcribe and us.announcement is None and us.language == "en-US"
    assert cfg.for_country(None).mode == "transcribe"


def test_the_bundled_calls_yaml_is_valid_and_announces_where_unsure():
    from tests.conftest import ROOT

    cfg = calls_config_from_yaml((ROOT / "config" / "calls.yaml").read_text())
    assert cfg.default == "announce" and cfg.for_country("US").announcement


def test_mistakes_are_reported_at_file_line_col():
    text = "retention_days: -1\ndefault: maybe\ncountries:\n  de: announce\n"
    with pytest.raises(ConfigFileError) as exc:
        calls_config_from_yaml(text, "config/calls.yaml")
    where = {(f.line, f.col) for f in exc.value.findings}
    assert {(1, 17), (2, 10), (4, 3)} <= where, exc.value
    assert calls_findings("countries: [", "calls.yaml")  # YAML syntax too
    assert calls_findings(YAML, "calls.yaml") == []
