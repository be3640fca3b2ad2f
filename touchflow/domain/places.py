"""Where a prospect is, from what people type: country names, e-mail ccTLDs, time zone names.

Pure lookups over well-kept tables, read once per process and cached:

* **countries** (:func:`country_code`): ISO 3166-1 codes and English names
  from ``pycountry`` (the Debian iso-codes tables: ``IR``, ``IRN``,
  ``Iran, Islamic Republic of``, its official and common names), and every
  territory name of the Unicode CLDR as ``babel`` ships it (``Deutschland``,
  ``ایران``, ``إيران``, ``Allemagne``...). Names are matched folded: case,
  accents, Arabic letter variants (``ي``/``ی``), punctuation and a leading
  "the" do not matter, and an inverted name reads both ways (``Korea,
  Republic of`` is also ``Republic of Korea``). Initialisms of the English
  names count when they are unambiguous and not an ISO code themselves:
  ``UAE``, ``UK``, ``KSA``, ``DRC``. The English tables load on first use
  (~40 ms); the languages touchflow's title rules read (German, Spanish,
  French, Persian, Arabic) when a name is not English (~20 ms), and the other
  languages of CLDR only when a name is in none of those (~0.6 s). Each table
  loads once per process; a name found in an earlier table is not looked for
  in a later one.
* **e-mail domains** (:func:`email_country`): a country-code top-level domain
  names its country (``.ir`` -> ``IR``, ``.uk`` -> ``GB``), except the ccTLDs
  sold worldwide as generic ones (``.io``, ``.co``, ``.ai``...), which say
  nothing about where the company is.
* **time zones** (:func:`zone_named`, :func:`closest_zone`): an IANA name in
  the wrong case is the zone it names (``asia/tehran`` -> ``Asia/Tehran``);
  a near miss or a city alone has a suggestion (``Asia/Tehrn``, ``Tehran`` ->
  ``Asia/Tehran``). The country of a zone is
  :func:`touchflow.domain.calendar.zone_country`.
"""

from __future__ import annotations

import difflib
from functools import cache, lru_cache
from zoneinfo import available_timezones

import babel
import phonenumbers
import pycountry
from babel import localedata

from touchflow.domain.text import fold_words

__all__ = [
    "FIRST_LANGUAGES",
    "GENERIC_CCTLDS",
    "closest_country",
    "closest_zone",
    "country_code",
    "email_country",
    "zone_named",
]

# Words an initialism skips: "United States of America" is USA, not USOA.
_MINOR_WORDS = frozenset({"of", "the", "and", "da", "de", "du", "des", "la", "le"})

#: ccTLDs sold as generic domains, so they tell nothing of the company's country:
#: Google's list of "generic country code top-level domains" (Search Central,
#: "Managing multi-regional and multilingual sites"), plus .ai (Anguilla), which
#: since 2023 mostly hosts AI companies from anywhere.
GENERIC_CCTLDS = frozenset(
    {"ad", "ai", "as", "bz", "cc", "cd", "co", "dj", "fm", "io", "la", "me", "ms", "nu",
     "sc", "sr", "su", "tk", "tv", "ws"}
)  # fmt: skip
# The one ccTLD that is not its country's ISO code.
_CCTLD_TO_ISO = {"uk": "GB"}


def _fold_name(text: str) -> str:
    """The form names are compared in: :func:`~touchflow.domain.text.fold_words`, no "the"."""
    text = fold_words(text)
    return text[4:] if text.startswith("the ") else text


# -- countries ---------------------------------------------------------------------------


@cache
def _codes() -> frozenset[str]:
    """Every alpha-2 code a prospect may have: ISO 3166-1 and libphonenumber's regions
    (which add Kosovo ``XK`` and the Ascension and Tristan da Cunha dialling areas)."""
    iso = {c.alpha_2 for c in pycountry.countries}
    return frozenset(iso | (set(phonenumbers.SUPPORTED_REGIONS) - {"001"}))


def _variants(name: str) -> list[str]:
    """``name`` folded, and read the other way round when it is ``Korea, Republic of``."""
    out = [_fold_name(name)]
    head, sep, tail = name.partition(", ")
    if sep and tail:
        out.append(_fold_name(f"{tail} {head}"))
    return out


def _add(table: dict[str, str | None], name: str, code: str) -> None:
    for key in _variants(name):
        if key and table.setdefault(key, code) != code:
            table[key] = None  # one name, two countries: neither


@cache
def _english_names() -> dict[str, str | None]:
    """Folded English name, official name, common name, CLDR name and alpha-3 -> alpha-2."""
    codes = _codes()
    table: dict[str, str | None] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        table[country.alpha_3.casefold()] = code
        for attr in ("name", "official_name", "common_name"):
            if (name := getattr(country, attr, None)) is not None:
                _add(table, name, code)
    for code, name in babel.Locale("en").territories.items():
        if code in codes:
            _add(table, name, code)
    initials: dict[str, str | None] = {}
    for key, named in list(table.items()):
        words = [w for w in key.split() if w not in _MINOR_WORDS]
        if named is None or len(words) < 2:
            continue
        short = "".join(w[0] for w in words)
        if short.upper() in codes or short in table:
            continue  # an ISO code or a name already means something
        if initials.setdefault(short, named) != named:
            initials[short] = None
    for short, named in initials.items():
        table.setdefault(short, named)
    return table


#: Languages whose country names are looked up before the rest of CLDR's.
FIRST_LANGUAGES = ("de", "es", "fr", "fa", "ar")


@cache
def _local_names(everyone: bool) -> dict[str, str | None]:
    """Folded territory name -> alpha-2 (``deutschland``, ``ایران``) in the first languages,
    or (``everyone``) in every other language CLDR has."""
    codes = _codes()
    if everyone:
        # Regional variants (de_AT) repeat their language's names.
        languages = [i for i in localedata.locale_identifiers() if "_" not in i]
        languages = [i for i in languages if i not in FIRST_LANGUAGES and i != "en"]
    else:
        languages = list(FIRST_LANGUAGES)
    table: dict[str, str | None] = {}
    for language in languages:
        for code, name in babel.Locale.parse(language).territories.items():
            if code in codes:
                _add(table, name, code)
    return table


@lru_cache(maxsize=4096)
def country_code(text: str) -> str | None:
    """The ISO 3166-1 alpha-2 code ``text`` names (``"ir"``, ``"IRN"``, ``"Iran"``,
    ``"UAE"``, ``"U.A.E."``, ``"Deutschland"``, ``"ایران"``), or None when it names no
    one country.

    See the module docstring for the tables; the answer for each text is cached.
    """
    stripped = text.strip()
    code = stripped.upper()
    if len(code) == 2 and code.isascii() and code.isalpha():
        return code if code in _codes() else _english_names().get(code.casefold())
    key = _fold_name(stripped)
    if not key:
        return None
    words = key.split()
    if len(words) > 1 and all(len(w) == 1 for w in words):
        return country_code("".join(words))  # "U.S.", "U.A.E."
    english = _english_names()
    if key in english:
        return english[key]
    for everyone in (False, True):
        local = _local_names(everyone)
        if key in local:
            return local[key]
    return None


@lru_cache(maxsize=1024)
def closest_country(text: str) -> str | None:
    """The English name of the country ``text`` most likely meant (``Germny`` ->
    ``Germany``), or None; for a text :func:`country_code` does not read."""
    english = _english_names()
    close = difflib.get_close_matches(_fold_name(text), list(english), n=1, cutoff=0.8)
    code = english[close[0]] if close else None
    return babel.Locale("en").territories.get(code) if code is not None else None


def email_country(domain: str) -> str | None:
    """The country an e-mail domain's ccTLD names (``acme.ir`` -> ``IR``), or None.

    None for generic TLDs (``.com``) and for ccTLDs sold as generic ones
    (:data:`GENERIC_CCTLDS`).
    """
    tld = domain.rstrip(".").rpartition(".")[2].lower()
    if len(tld) != 2 or tld in GENERIC_CCTLDS:
        return None
    code = _CCTLD_TO_ISO.get(tld, tld.upper())
    return code if code in _codes() else None


# -- time zone names ---------------------------------------------------------------------


@cache
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def zone_named(text: str) -> str | None:
    """The IANA zone ``text`` names in any case (``asia/tehran`` -> ``Asia/Tehran``), or None."""
    return _zones_by_folded_name().get(text.strip().casefold())


@cache
def _zones_by_city() -> dict[str, str]:
    """Folded last part of a zone name (``tehran``) -> the zone, for cities only one zone has."""
    cities: dict[str, str | None] = {}
    for name in available_timezones():
        city = name.rpartition("/")[2].replace("_", " ").casefold()
        cities[city] = None if city in cities else name
    return {city: zone for city, zone in cities.items() if zone is not None}


@lru_cache(maxsize=1024)
def closest_zone(text: str) -> str | None:
    """The IANA zone ``text`` most likely meant, or None: a near miss (``Asia/Tehrn``) or a
    city alone (``Tehran``, ``new york``) -> ``Asia/Tehran``, ``America/New_York``."""
    folded = text.strip().casefold()
    by_city = _zones_by_city().get(folded.replace("_", " "))
    if by_city is not None:
        return by_city
    zones = _zones_by_folded_name()
    close = difflib.get_close_matches(folded, list(zones), n=1, cutoff=0.8)
    return zones[close[0]] if close else None
