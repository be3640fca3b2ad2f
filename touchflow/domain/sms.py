"""Text-message keywords (CTIA): STOP, START and HELP, and what we answer to each.

Carrier rules, not a vendor's: a text whose whole body is one of these words
opts the number out of (or back into) texts from us, or asks for help.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "HELP_WORDS",
    "START_WORDS",
    "STOP_WORDS",
    "sms_help_text",
    "sms_keyword",
    "sms_start_text",
    "sms_stop_text",
]

#: Texts that opt a number out (the whole message, any case, any whitespace).
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
#: Texts that opt a number back in.
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

Keyword = Literal["stop", "start", "help"]


def sms_keyword(body: str | None) -> Keyword | None:
    """``stop``, ``start`` or ``help`` when the whole text is such a keyword, else None.

    Case and whitespace do not matter (``" Stop "``, ``"stop all"``); trailing
    ``.`` or ``!`` neither. A keyword inside a sentence is a normal reply.
    """
    word = "".join((body or "").split()).upper().rstrip(".!")
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def sms_help_text(company: str | None = None) -> str:
    """The answer to HELP/INFO."""
    who = f"{company}: " if company else ""
    return f"{who}Reply STOP to stop receiving texts, START to receive them again."


def sms_stop_text(company: str | None = None) -> str:
    """The answer to STOP and its synonyms."""
    who = f"{company}: " if company else ""
    return f"{who}You are unsubscribed and will receive no more texts. Reply START to resubscribe."


def sms_start_text(company: str | None = None) -> str:
    """The answer to START and its synonyms."""
    who = f"{company}: " if company else ""
    return f"{who}You are subscribed to texts again. Reply STOP to unsubscribe."
