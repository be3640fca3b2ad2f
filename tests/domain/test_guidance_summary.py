"""The after-call summary: trackers with their moments, checklist, talk ratio, the longest
monologue and questions, from a scripted call."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.domain.test_guidance_session import CALL, T0, seg, session
from touchflow.domain.guidance import CallSummary, is_question, summarise_session
from touchflow.domain.transcripts import Speaker

REP, PROSPECT = Speaker.REP, Speaker.PROSPECT


def scripted_call() -> CallSummary:
    s = session()
    script = [
        # (track seq, speaker, seconds from start, text)
        (1, REP, 0, "Hi Jordan, this is Sam from touchflow. Do you have a minute?"),
        (1, PROSPECT, 6, "Sure. We use Gong for call recording today."),
        (2, REP, 12, "Got it. What is your biggest challenge with outbound right now?"),
        (2, PROSPECT, 20, "Honestly reps lose two hours a day on manual follow up and logging."),
        (3, PROSPECT, 26, "And the budget is set for next year already. What's the price?"),
        (3, REP, 40, "It depends on seats. Would a calendar invite for a demo work?"),
        (4, PROSPECT, 48, "Yes, send the calendar invite."),
    ]
    for seq, by, at, text in script:
        s.receive(seg(seq, text, by=by, at=at), T0 + timedelta(seconds=at))
    s.end(T0 + timedelta(seconds=60))
    return summarise_session(s)


def test_trackers_with_the_moments_they_were_said() -> None:
    summary = scripted_call()
    heard = {
        t.tracker: [(m.offset_s, m.said_by, m.phrase) for m in t.moments] for t in summary.trackers
    }
    assert heard == {
        "competitor": [(6.0, "prospect", "gong")],
        "budget": [(26.0, "prospect", "budget")],
        "pricing": [(26.0, "prospect", "price")],
        "next-step": [(40.0, "rep", "calendar invite"), (48.0, "prospect", "calendar invite")],
        "discovery-asked": [(12.0, "rep", "biggest challenge")],
    }
    assert summary.heard("pricing") and not summary.heard("timeline-asked")
    assert summary.cards == ("competitor", "pricing", "next-step", "next-step")
    assert summary.checklist == {"budget": True, "timeline": False, "next-step": True}
    assert summary.duration_s == 60.0


def test_talk_ratio_by_words() -> None:
    talk = scripted_call().talk
    # rep: 12 + 11 + 12 words; prospect: 8 + 13 + 12 + 5 words ("What's" is one)
    assert (talk.rep_words, talk.prospect_words) == (35, 38)
    assert talk.rep_share == pytest.approx(35 / 73, abs=1e-4)
    assert talk.prospect_share == pytest.approx(38 / 73, abs=1e-4)


def test_longest_monologue() -> None:
    mono = scripted_call().longest_monologue
    assert mono is not None
    # The prospect from 20 s to the rep's turn at 40 s (26 s + 12 words / 2.5 = 30.8 s end).
    assert (mono.said_by, mono.segments, mono.words) == ("prospect", 2, 25)
    assert mono.start == T0 + timedelta(seconds=20)
    assert mono.seconds == pytest.approx(10.8)


def test_questions_by_speaker() -> None:
    summary = scripted_call()
    assert [(q.said_by, q.text) for q in summary.questions] == [
        ("rep", "Do you have a minute?"),
        ("rep", "What is your biggest challenge with outbound right now?"),
        ("prospect", "What's the price?"),
        ("rep", "Would a calendar invite for a demo work?"),
    ]
    assert (summary.questions_by_rep, summary.questions_by_prospect) == (3, 1)


@pytest.mark.parametrize(
    ("language", "sentence", "question"),
    [
        ("en", "what is the timeline", True),  # no punctuation from the recogniser
        ("en", "do you use a dialer", True),
        ("en", "do it now", False),
        ("en", "we use gong", False),
        ("de", "Wann wollen Sie starten", True),
        ("de", "haben Sie ein Budget", True),
        ("de", "Wir haben ein Budget", False),
        ("fr", "Avez-vous un budget", True),
        ("fr", "Est-ce que vous utilisez Gong", True),
        ("fr", "Combien ça coûte", True),
        ("fr", "Nous avons un budget", False),
        ("es", "¿Cuánto cuesta", True),
        ("es", "Cuándo quieren empezar", True),
        ("es", "Como te dije, no", False),
        ("fa", "شما کی شروع می کنید", True),
        ("fa", "آیا بودجه دارید", True),
        ("fa", "بودجه داریم", False),
        ("fa", "قیمت چقدر است؟", True),
    ],
)
def test_questions_per_language(language: str, sentence: str, question: bool) -> None:
    assert is_question(sentence, language) is question


def test_the_summary_round_trips_through_json() -> None:
    summary = scripted_call()
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["call_sid"] == CALL
    assert data["talk"]["rep_words"] == 35
    assert CallSummary.from_dict(data) == summary


def test_an_empty_call() -> None:
    s = session()
    s.end(T0 + timedelta(seconds=5))
    summary = summarise_session(s)
    assert summary.trackers == () and summary.longest_monologue is None
    assert (summary.talk.rep_share, summary.talk.prospect_share) == (0.0, 0.0)


def test_a_live_call_needs_now() -> None:
    with pytest.raises(ValueError, match="needs now"):
        summarise_session(session())
    assert summarise_session(session(), T0 + timedelta(seconds=1)).duration_s == 1.0
