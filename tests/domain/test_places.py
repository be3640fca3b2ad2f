"""touchflow.domain.places: country names, e-mail ccTLDs and zone names as people type them."""

from __future__ import annotations

import pycountry
import pytest

from touchflow.domain.calendar import zone_country
from touchflow.domain.places import (
    closest_country,
    closest_zone,
    country_code,
    email_country,
    zone_named,
)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("IR", "IR"),
        (" ir ", "IR"),
        ("IRN", "IR"),  # alpha-3
        ("Iran", "IR"),  # CLDR's English name
        ("Iran, Islamic Republic of", "IR"),  # ISO's name
        ("Islamic Republic of Iran", "IR"),  # ISO's official name
        ("iran (islamic republic of)", "IR"),
        ("UAE", "AE"),  # the initials of "United Arab Emirates"
        ("U.A.E.", "AE"),
        ("United Arab Emirates", "AE"),
        ("uk", "GB"),
        ("USA", "US"),
        ("U.S.", "US"),
        ("KSA", "SA"),  # Kingdom of Saudi Arabia
        ("Germany", "DE"),
        ("Deutschland", "DE"),  # German, from CLDR
        ("Allemagne", "DE"),  # French
        ("آلمان", "DE"),  # Persian
        ("ایران", "IR"),  # Persian
        ("إيران", "IR"),  # Arabic: hamza and yeh fold to the Persian spelling
        ("الإمارات العربية المتحدة", "AE"),  # Arabic
        ("امارات متحدهٔ عربی", "AE"),  # Persian, with the hamza above heh
        ("Korea, Republic of", "KR"),
        ("Republic of Korea", "KR"),  # the inverted ISO name read the other way round
        ("the Netherlands", "NL"),
        ("Türkiye", "TR"),
        ("XK", "XK"),  # Kosovo: not ISO, but a dialling region
        ("Atlantis", None),
        ("ZZ", None),
        ("", None),
        ("-", None),
    ],
)
def test_country_code(text: str, code: str | None):
    assert country_code(text) == code


def test_a_near_miss_country_gets_a_suggestion():
    assert closest_country("Germny") == "Germany"
    assert closest_country("Untied Arab Emirates") == "United Arab Emirates"
    assert closest_country("Atlantis") is None


def test_every_iso_name_is_read_as_its_code():
    """Built from the library's tables, not a hand list: each ISO name finds its country."""
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            name = getattr(country, attr, None)
            if name is not None:
                assert country_code(name) == country.alpha_2, name


@pytest.mark.parametrize(
    ("domain", "code"),
    [
        ("acme.ir", "IR"),
        ("mail.acme.de", "DE"),
        ("acme.co.uk", "GB"),  # .uk is GB in ISO 3166
        ("ACME.AE.", "AE"),
        ("acme.com", None),
        ("acme.io", None),  # sold worldwide as a generic domain
        ("acme.co", None),
        ("acme.ai", None),
        ("acme.eu", None),  # not a country
    ],
)
def test_email_country(domain: str, code: str | None):
    assert email_country(domain) == code


def test_zone_names_in_any_case_and_near_misses():
    assert zone_named("asia/tehran") == "Asia/Tehran"
    assert zone_named(" AMERICA/NEW_YORK ") == "America/New_York"
    assert zone_named("Asia/Tehran") == "Asia/Tehran"
    assert zone_named("Asia/Tehrn") is None
    assert closest_zone("Asia/Tehrn") == "Asia/Tehran"
    assert closest_zone("europe/berln") == "Europe/Berlin"
    assert closest_zone("Tehran") == "Asia/Tehran"  # a city alone
    assert closest_zone("new york") == "America/New_York"
    assert closest_zone("Mars/Olympus_Mons") is None


@pytest.mark.parametrize(
    ("zone", "code"),
    [
        ("Asia/Tehran", "IR"),
        ("Asia/Dubai", "AE"),
        ("Asia/Muscat", "OM"),  # a link to Asia/Dubai in tzdata, but Oman's zone
        ("Asia/Calcutta", "IN"),  # a legacy name
        ("Europe/Berlin", "DE"),
        ("UTC", None),
        ("Etc/GMT+3", None),
        ("Not/AZone", None),
    ],
)
def test_zone_country(zone: str, code: str | None):
    assert zone_country(zone) == code
