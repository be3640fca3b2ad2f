"""Benchmark: tracker matching per transcript segment, the automaton beside a regex loop.

1,000 trackers, each with phrases in English, German, French, Spanish and Persian (3-6
per language: the tracker's own product or competitor names alone or after a sales-call
word, or two or three sales-call words that several trackers share; 15 % with an exclusion
that contains the phrase), and segments of 12-30 words of conversational filler in those
languages, a third of them mentioning a tracker phrase (half in another word form).
Measured in the same run, per segment, caches warm (as they are a few seconds into a call):

* ``automaton_us``: :class:`touchflow.domain.guidance.PhraseMatcher` (normalise, stems,
  one Aho-Corasick pass, exclusions);
* ``regex_us``: the same normalisation and stems, then one compiled regular expression per
  tracker (its phrases as an alternation on word boundaries, plus one for its exclusions),
  looped over every tracker that has phrases in the segment's language;
* ``*_match_us``: the same two without the shared normalisation (matching alone);
* ``ratio``: regex / automaton, target >= 20.

Both must find the same trackers in every segment; ``mismatches`` counts the segments
where they do not (expected 0). The last line is one JSON object with these keys.
Run: ``.venv/bin/python bench/guidance_matching.py [--trackers N] [--segments N]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from touchflow.domain.guidance import PhraseMatcher, PhraseRule, Stemmers  # noqa: E402

LANGUAGES = ("en", "de", "fr", "es", "fa")
# Words a tracker phrase is built from (nouns and verbs of sales calls), and filler speech.
TOPIC = {
    "en": "price pricing cost budget contract renewal discount license seat vendor tool "
    "integration security compliance timeline quarter deadline approval manager board "
    "procurement legal trial pilot demo onboarding migration support churn pipeline quota "
    "forecast meeting invite proposal competitor dialer sequence cadence report dashboard "
    "analytics coaching recording transcript crm hubspot salesforce export import",
    "de": "Preis Kosten Budget Vertrag Verlängerung Rabatt Lizenz Anbieter Werkzeug "
    "Integration Sicherheit Datenschutz Zeitplan Quartal Frist Freigabe Geschäftsführung "
    "Einkauf Rechtsabteilung Testphase Pilot Demo Einführung Migration Support Pipeline "
    "Prognose Termin Einladung Angebot Wettbewerber Bericht Auswertung Schulung Aufzeichnung",
    "fr": "prix tarif coût budget contrat renouvellement remise licence fournisseur outil "
    "intégration sécurité conformité calendrier trimestre échéance validation direction "
    "achats juridique essai pilote démonstration déploiement migration support prévision "
    "rendez-vous invitation proposition concurrent rapport tableau formation enregistrement",
    "es": "precio tarifa costo presupuesto contrato renovación descuento licencia proveedor "
    "herramienta integración seguridad cumplimiento plazo trimestre fecha aprobación "
    "dirección compras legal prueba piloto demostración implementación migración soporte "
    "previsión reunión invitación propuesta competidor informe panel formación grabación",
    "fa": "قیمت هزینه بودجه قرارداد تمدید تخفیف مجوز تامین‌کننده ابزار یکپارچگی امنیت "
    "زمان‌بندی فصل مهلت تایید مدیر مدیرعامل خرید حقوقی آزمایشی دمو راه‌اندازی انتقال "
    "پشتیبانی پیش‌بینی جلسه دعوت پیشنهاد رقیب گزارش داشبورد آموزش ضبط مشتری فروش",
}
FILLER = {
    "en": "so we are really just looking at what the team does every day and I think that "
    "it would be good if you could tell me a bit more about how this works for us right now",
    "de": "also wir schauen uns gerade an was das Team jeden Tag macht und ich denke es wäre "
    "gut wenn Sie mir etwas mehr darüber erzählen wie das bei uns im Moment funktioniert",
    "fr": "alors nous regardons surtout ce que l'équipe fait chaque jour et je pense que ce "
    "serait bien si vous pouviez me dire un peu plus comment cela marche pour nous",
    "es": "entonces estamos mirando lo que el equipo hace cada día y creo que sería bueno si "
    "usted pudiera contarme un poco más sobre cómo funciona esto para nosotros ahora",
    "fa": "خب ما الان داریم بررسی می‌کنیم که تیم هر روز چه کاری انجام می‌دهد و فکر می‌کنم "
    "خوب باشد که کمی بیشتر توضیح بدهید این برای ما الان چطور کار می‌کند",
}
MODIFIERS = {
    "en": "new annual current monthly enterprise team first next our their",
    "de": "neuer jährlicher aktueller monatlicher nächster unser erster",
    "fr": "nouveau annuel actuel mensuel prochain notre premier",
    "es": "nuevo anual actual mensual próximo nuestro primer",
    "fa": "جدید سالانه فعلی ماهانه بعدی ما اول",
}
# Inflections a speaker uses that the phrase does not: the stems must still meet.
INFLECT = {"en": ("s", "ing"), "de": ("e", "en"), "fr": ("s",), "es": ("s",), "fa": ("ها",)}


def pseudo_name(rnd: random.Random, script: str) -> str:
    """A product or company name (``Corvanex``), or its Persian spelling."""
    if script == "fa":
        return "".join(rnd.choice("بپتسشکگلمنوریزد") for _ in range(rnd.randint(4, 6)))
    syllables = [c + v for c in "bcdfgklmnprstvz" for v in "aeiou"]
    return "".join(rnd.choice(syllables) for _ in range(rnd.randint(2, 3))) + rnd.choice("xnlr")


def make_rules(n: int, rnd: random.Random) -> list[PhraseRule]:
    """Each tracker: its own names (products, competitors, features) alone or with a topic
    word, and some phrases of topic words only (which trackers share, as real ones do)."""
    rules = []
    for i in range(n):
        tracker = f"tracker-{i:04d}"
        names = {lang: [pseudo_name(rnd, lang) for _ in range(2)] for lang in ("en", "fa")}
        for lang in LANGUAGES:
            topic = TOPIC[lang].split()
            mods = MODIFIERS[lang].split()
            own = names["fa" if lang == "fa" else "en"]
            for _ in range(rnd.randint(3, 6)):
                kind = rnd.random()
                if kind < 0.4:
                    words = [rnd.choice(own)]
                elif kind < 0.8:
                    words = [rnd.choice(topic), rnd.choice(own)]
                else:
                    words = rnd.sample(topic, rnd.choice((2, 3)))
                phrase = " ".join(words)
                rules.append(PhraseRule(tracker, lang, phrase))
                if rnd.random() < 0.15:  # an exclusion that contains the phrase
                    extra = rnd.choice(mods)
                    rules.append(PhraseRule(tracker, lang, f"{extra} {phrase}", exclude=True))
    return rules


def make_segments(n: int, rules: list[PhraseRule], rnd: random.Random) -> list[tuple[str, str]]:
    by_lang: dict[str, list[PhraseRule]] = {lang: [] for lang in LANGUAGES}
    for rule in rules:
        by_lang[rule.language].append(rule)
    out = []
    for i in range(n):
        lang = LANGUAGES[i % len(LANGUAGES)]
        filler = FILLER[lang].split()
        start = rnd.randrange(len(filler) - 12)
        words = filler[start : start + rnd.randint(12, 30)]
        if rnd.random() < 0.33:
            phrase = rnd.choice(by_lang[lang]).phrase.split()
            if rnd.random() < 0.5:
                phrase[-1] += rnd.choice(INFLECT[lang])
            at = rnd.randrange(len(words))
            words[at:at] = phrase
        out.append((lang, " ".join(words)))
    return out


class RegexLoop:
    """The baseline: one compiled regex per tracker and language, over the same stems."""

    def __init__(self, rules: list[PhraseRule], stemmers: Stemmers) -> None:
        self.stemmers = stemmers
        table: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        for rule in rules:
            inc, exc = table.setdefault((rule.language, rule.tracker), ([], []))
            (exc if rule.exclude else inc).append(
                " ".join(stemmers.stems(rule.language, rule.phrase))
            )
        self.patterns: dict[str, list[tuple[str, re.Pattern[str], re.Pattern[str] | None]]] = {}
        for (lang, tracker), (inc, exc) in sorted(table.items()):
            self.patterns.setdefault(lang, []).append(
                (tracker, self._compile(inc), self._compile(exc) if exc else None)
            )

    @staticmethod
    def _compile(phrases: list[str]) -> re.Pattern[str]:
        alternation = "|".join(re.escape(p) for p in sorted(set(phrases), key=len, reverse=True))
        # A lookahead finds overlapping matches too, like the automaton does.
        return re.compile(rf"(?=(?<!\S)({alternation})(?!\S))")

    def stems(self, text: str, lang: str) -> str:
        return " ".join(self.stemmers.stems(lang, text))

    def match_stems(self, stemmed: str, lang: str) -> set[str]:
        hits = set()
        for tracker, inc, exc in self.patterns.get(lang, ()):
            spans = [m.span(1) for m in inc.finditer(stemmed)]
            if not spans:
                continue
            if exc is not None:
                blocked = [m.span(1) for m in exc.finditer(stemmed)]
                spans = [s for s in spans if not any(s[0] < b[1] and b[0] < s[1] for b in blocked)]
            if spans:
                hits.add(tracker)
        return hits

    def match(self, text: str, lang: str) -> set[str]:
        return self.match_stems(self.stems(text, lang), lang)


def per_segment_us(fn: Callable[..., object], items: list[tuple[Any, ...]], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(*item)
        best = min(best, time.perf_counter() - start)
    return best / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trackers", type=int, default=1000)
    parser.add_argument("--segments", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rnd = random.Random(args.seed)

    rules = make_rules(args.trackers, rnd)
    segments = make_segments(args.segments, rules, rnd)
    start = time.perf_counter()
    matcher = PhraseMatcher(rules)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    regex = RegexLoop(rules, Stemmers())
    regex_build_s = time.perf_counter() - start

    # Same hits, every segment (this also warms both memos).
    mismatches = 0
    segments_with_hits = 0
    for lang, text in segments:
        ours = {hit.tracker for hit in matcher.match(text, [lang])}
        theirs = regex.match(text, lang)
        segments_with_hits += bool(ours)
        if ours != theirs:
            mismatches += 1
            if mismatches <= 3:
                print(
                    f"MISMATCH [{lang}] {text!r}: automaton {sorted(ours)} regex {sorted(theirs)}"
                )

    automaton_us = per_segment_us(lambda lang, text: matcher.match(text, [lang]), segments, 3)
    regex_us = per_segment_us(lambda lang, text: regex.match(text, lang), segments, 1)
    from touchflow.domain.guidance import tokens

    encoded = [(matcher.encode(tokens(text), lang),) for lang, text in segments]
    automaton = matcher._automaton  # the pass alone
    automaton_match_us = per_segment_us(lambda s: list(automaton.iter(s)), encoded, 3)
    stemmed = [(regex.stems(text, lang), lang) for lang, text in segments]
    regex_match_us = per_segment_us(regex.match_stems, stemmed, 1)

    words = sum(len(text.split()) for _, text in segments) / len(segments)
    phrases = sum(not r.exclude for r in rules)
    result = {
        "trackers": args.trackers,
        "languages": len(LANGUAGES),
        "phrases": phrases,
        "exclusions": len(rules) - phrases,
        "segments": len(segments),
        "words_per_segment": round(words, 1),
        "segments_with_hits": segments_with_hits,
        "automaton_build_s": round(build_s, 2),
        "regex_build_s": round(regex_build_s, 2),
        "automaton_us": round(automaton_us, 1),
        "regex_us": round(regex_us, 1),
        "ratio": round(regex_us / automaton_us, 1),
        "automaton_match_us": round(automaton_match_us, 2),
        "regex_match_us": round(regex_match_us, 1),
        "match_ratio": round(regex_match_us / automaton_match_us, 1),
        "mismatches": mismatches,
    }
    print(
        f"{args.trackers} trackers x {len(LANGUAGES)} languages ({phrases} phrases, "
        f"{result['exclusions']} exclusions), {len(segments)} segments of ~{words:.0f} words"
    )
    print(
        f"automaton: {automaton_us:8.1f} us/segment  (matching alone {automaton_match_us:.2f} us)"
    )
    print(f"regex loop:{regex_us:8.1f} us/segment  (matching alone {regex_match_us:.1f} us)")
    print(f"ratio: {result['ratio']}x (matching alone {result['match_ratio']}x)")
    print(f"mismatches: {mismatches} of {len(segments)} segments")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
