"""Phrase matching: normalisation, stems across languages (Persian too), word boundaries,
exclusions and the segment's language."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchflow.domain.guidance import (
    LANGUAGES,
    Guidance,
    PhraseMatcher,
    PhraseRule,
    Stemmers,
    guidance_from_yaml,
    normalise,
)


def _trackers(matcher: PhraseMatcher, text: str, language: str) -> list[str]:
    return [hit.tracker for hit in matcher.match(text, [language])]


def test_normalise_folds_case_width_punctuation_and_persian_letters() -> None:
    assert normalise("  What's the PRICE?!  ") == "what s the price"
    assert normalise("Ｐｒｅｉｓ") == "preis"  # full-width letters (NFKC)
    assert normalise("Straße") == "strasse"  # casefold
    assert normalise("¿Cuánto cuesta?") == "cuánto cuesta"
    assert normalise("envoyez-moi") == "envoyez moi"
    # Arabic yeh and kaf become Persian; ZWNJ, tatweel and harakat go; digits become ASCII.
    assert normalise("يك") == "یک"
    assert normalise("قیمت‌ها") == "قیمتها"
    assert normalise("قيـــمت") == "قیمت"
    assert normalise("بُودجه") == "بودجه"
    assert normalise("۵ دقیقه، لطفاً؟") == "5 دقیقه لطفا"


@pytest.mark.parametrize(
    ("language", "phrase", "said"),
    [
        ("en", "pricing", "what are your prices"),
        ("en", "pricing", "it is priced per seat"),
        ("en", "price", "Pricing?"),
        ("de", "Preis", "Die Preise sind zu hoch"),
        ("de", "Preise", "Was ist der Preis?"),
        ("fr", "pas intéressé", "nous ne sommes pas intéressés"),
        ("fr", "tarif", "vos tarifs ?"),
        ("es", "precio", "¿y los precios?"),
        ("es", "no me interesa", "No, no me interesa."),
        # Persian: plural ها with or without ZWNJ, Arabic letters from a recogniser,
        # and the heh that Snowball drops only before a suffix.
        ("fa", "قیمت", "قیمت‌ها چطور است؟"),
        ("fa", "قیمت", "قيمتهاي شما"),
        ("fa", "بودجه نداریم", "ما بودجه‌ای نداریم"),
        ("fa", "جلسه", "جلسات هفته بعد"),
        ("fa", "یک ایمیل بفرستید", "لطفا يك ايميل بفرستيد"),
    ],
)
def test_related_word_forms_match(language: str, phrase: str, said: str) -> None:
    matcher = PhraseMatcher([PhraseRule("t", language, phrase)])
    assert _trackers(matcher, said, language) == ["t"]


def test_matches_fall_on_word_boundaries_only() -> None:
    matcher = PhraseMatcher(
        [PhraseRule("gong", "en", "gong"), PhraseRule("next", "en", "next step")]
    )
    assert _trackers(matcher, "we use Gong today", "en") == ["gong"]
    assert _trackers(matcher, "gongs and gongfu", "en") == ["gong"]  # "gongs" stems to gong
    assert _trackers(matcher, "the gongfu school", "en") == []
    assert _trackers(matcher, "the next big step", "en") == []
    assert _trackers(matcher, "so, next steps?", "en") == ["next"]


def test_a_language_is_its_own_vocabulary() -> None:
    matcher = PhraseMatcher([PhraseRule("pricing", "de", "Preis")])
    assert _trackers(matcher, "Preise", "de") == ["pricing"]
    assert _trackers(matcher, "Preise", "en") == []


def test_an_exclusion_suppresses_the_hits_it_overlaps_only() -> None:
    matcher = PhraseMatcher(
        [
            PhraseRule("no-budget", "en", "no budget"),
            PhraseRule("no-budget", "en", "no budget problem", exclude=True),
            PhraseRule("pricing", "en", "price"),
            PhraseRule("pricing", "en", "share price", exclude=True),
        ]
    )
    assert _trackers(matcher, "we have no budget", "en") == ["no-budget"]
    assert _trackers(matcher, "there is no budget problem", "en") == []
    assert _trackers(matcher, "our share price dropped", "en") == []
    # Another mention, outside the excluded words, still counts.
    assert _trackers(matcher, "share price aside, what is the price?", "en") == ["pricing"]
    assert _trackers(matcher, "no budget problem, but no budget for this", "en") == ["no-budget"]
    # An exclusion only speaks for its own tracker.
    hits = matcher.match("no budget problem, what's the price", ["en"])
    assert [(h.tracker, h.phrase, h.start, h.end) for h in hits] == [("pricing", "price", 6, 7)]


def test_persian_exclusion() -> None:
    matcher = PhraseMatcher(
        [
            PhraseRule("no-budget", "fa", "بودجه نداریم"),
            PhraseRule("no-budget", "fa", "مشکل بودجه نداریم", exclude=True),
        ]
    )
    assert _trackers(matcher, "ما بودجه نداریم", "fa") == ["no-budget"]
    assert _trackers(matcher, "ما مشکل بودجه نداریم", "fa") == []


def test_one_hit_per_tracker_in_order_of_mention() -> None:
    matcher = PhraseMatcher(
        [
            PhraseRule("pricing", "en", "price"),
            PhraseRule("pricing", "en", "cost"),
            PhraseRule("competitor", "en", "gong"),
        ]
    )
    hits = matcher.match("Gong's costs and prices, and the price again", ["en"])
    assert [(h.tracker, h.phrase) for h in hits] == [("competitor", "gong"), ("pricing", "cost")]


def test_the_segment_language_decides_with_a_fallback_and_an_all_languages_option() -> None:
    text = (
        "default_language: en\n"
        "trackers:\n"
        "  pricing:\n"
        "    phrases: {en: [price], de: [Preis], fa: [قیمت]}\n"
    )
    guidance = Guidance.compile(guidance_from_yaml(text))
    assert guidance.languages_for("de-DE") == ("de",)
    assert guidance.languages_for("fa-IR") == ("fa",)
    assert guidance.languages_for("ja-JP") == ("en",)  # no tracker speaks Japanese
    assert guidance.languages_for(None) == ("en",)
    every = Guidance.compile(guidance_from_yaml(text + "match_all_languages: true\n"))
    assert every.languages_for("en-US") == ("de", "en", "fa")
    # A German word in an English segment is found only when every language is read.
    said = "the Preise are high"
    assert guidance.matcher.match(said, guidance.languages_for("en")) == []
    assert [h.language for h in every.matcher.match(said, every.languages_for("en"))] == ["de"]


def test_stemmers_memoise_and_leave_unknown_languages_alone() -> None:
    stemmers = Stemmers()
    assert stemmers.stem("en", "pricing") == stemmers.stem("en", "prices") == "price"
    assert stemmers.stem("fr", "intéressés") == "interess"  # accents stripped after stemming
    assert stemmers.stem("xx", "running") == "running"


WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta"]


@settings(max_examples=200, deadline=None)
@given(
    phrases=st.lists(
        st.tuples(st.integers(0, 5), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)),
        min_size=1,
        max_size=30,
    ),
    extra_vocabulary=st.integers(0, 3000),
    said=st.lists(st.sampled_from([*WORDS, "noise", "more"]), max_size=25),
)
def test_the_automaton_finds_what_a_word_by_word_search_finds(
    phrases: list[tuple[int, list[str]]], extra_vocabulary: int, said: list[str]
) -> None:
    """Whatever the vocabulary size (it sets the code width), hits start and end on words."""
    rules = [PhraseRule(f"t{n}", "xx", " ".join(words)) for n, words in phrases]
    rules += [PhraseRule("filler", "xx", f"w{i}") for i in range(extra_vocabulary)]
    matcher = PhraseMatcher(rules)
    expected: dict[str, tuple[int, int]] = {}
    for rule in rules:
        words = rule.phrase.split()
        for start in range(len(said) - len(words) + 1):
            if said[start : start + len(words)] == words:
                span = (start, start + len(words))
                expected[rule.tracker] = min(expected.get(rule.tracker, span), span)
    got = {hit.tracker: (hit.start, hit.end) for hit in matcher.match(" ".join(said), ["xx"])}
    assert {t: s[0] for t, s in got.items()} == {t: s[0] for t, s in expected.items()}


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_language_a_tracker_may_use_has_a_stemmer(language: str) -> None:
    Stemmers().stem(language, "test")  # raises KeyError for an algorithm snowball lacks
