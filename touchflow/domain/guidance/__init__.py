"""Live call guidance: trackers, cards and the call checklist (pure).

One file in git, ``config/guidance.yaml`` (format: ``docs/guidance.md``), drives both the
live cards and the after-call summary. The modules, one job each:

- :mod:`.text`: normalising and stemming (Snowball, Persian included) what was said.
- :mod:`.matcher`: every phrase of every tracker in one Aho-Corasick automaton.
- :mod:`.config`: the file, validated with ``file:line:col`` findings; :class:`Guidance`,
  the compiled file every call shares.
- :mod:`.session`: :class:`CallSession`, one live call: segments in (deduplicated, in
  ``seq`` order), events out (transcript, cards, checklist).
- :mod:`.summary`: :class:`CallSummary`, what the call covered.

Nothing here reads a clock, a database or the network: ``now`` comes in.
"""

from touchflow.domain.guidance.config import (
    CardSpec,
    ChecklistItem,
    Guidance,
    GuidanceFile,
    LinkSpec,
    TrackerSpec,
    guidance_findings,
    guidance_from_yaml,
    load_guidance,
)
from touchflow.domain.guidance.matcher import Hit, PhraseMatcher, PhraseRule
from touchflow.domain.guidance.session import (
    CallEnded,
    CallSession,
    CardFired,
    ChecklistChanged,
    GuidanceEvent,
    TrackerHit,
    TranscriptUpdate,
)
from touchflow.domain.guidance.summary import (
    CallSummary,
    Monologue,
    Question,
    TalkRatio,
    TrackerMoment,
    TrackerSummary,
    is_question,
    summarise,
    summarise_session,
    summary_lines,
)
from touchflow.domain.guidance.text import LANGUAGES, Stemmers, normalise, tokens

__all__ = [
    "LANGUAGES",
    "CallEnded",
    "CallSession",
    "CallSummary",
    "CardFired",
    "CardSpec",
    "ChecklistChanged",
    "ChecklistItem",
    "Guidance",
    "GuidanceEvent",
    "GuidanceFile",
    "Hit",
    "LinkSpec",
    "Monologue",
    "PhraseMatcher",
    "PhraseRule",
    "Question",
    "Stemmers",
    "TalkRatio",
    "TrackerHit",
    "TrackerMoment",
    "TrackerSpec",
    "TrackerSummary",
    "TranscriptUpdate",
    "guidance_findings",
    "guidance_from_yaml",
    "is_question",
    "load_guidance",
    "normalise",
    "summarise",
    "summarise_session",
    "summary_lines",
    "tokens",
]
