"""Inbound messages (replies to touches) and what they mean for a cadence.

An :class:`InboundMessage` comes from a rep's mailbox (IMAP) or SendGrid's
Inbound Parse webhook; :func:`classify` decides whether it is a real reply, an
out-of-office with an optional return date, an unsubscribe request or an
automatic message to ignore. Pure: no I/O, no clock.

How :func:`classify` decides, first rule that applies wins:

1. ``bounce``: a delivery status notification (sender ``MAILER-DAEMON`` or
   ``postmaster``, ``Content-Type: multipart/report; report-type=delivery-status``,
   or a subject such as "Undeliverable" / "Mail delivery failed"). A *delay*
   notice ("will retry") is only ``auto_reply``: the address may still work, and
   a read receipt (``report-type=disposition-notification``) is ``auto_reply`` too.
2. The quoted part of the message (our own email below the reply, which carries
   our unsubscribe footer) is removed with :func:`strip_quoted`; the phrase
   tables below are matched against the subject and what is left, lower-cased
   and with accents removed, so ``elimíname`` and ``eliminame`` both match.
3. A message that is *clearly automatic* (``Auto-Submitted`` other than ``no``,
   ``X-Autoreply``, ``X-Autorespond``, ``Precedence: bulk/junk/auto_reply``, or an
   auto-reply subject such as "Automatic reply:" / "Abwesend:") is never an
   unsubscribe request, whatever its text says: it is ``out_of_office`` when it
   has out-of-office wording, else ``auto_reply``.
4. A message written by a person is ``unsubscribe`` when it asks to stop, even
   if it also says the person is away; else ``out_of_office`` when it has
   strong out-of-office wording ("out of the office", "im Urlaub", ...); else
   ``auto_reply`` when it reads like a machine ("this mailbox is not
   monitored", "ticket #123"); else ``reply``.

Return dates (``out_of_office`` only) are dates written right after a return
phrase ("back on", "zurück am", "de retour le", "regresaré el", "ab dem ...",
or before "wieder" in German); a date after an "until" phrase ("until",
"bis", "jusqu'au", "hasta") means the person is away that day too, so the
return date is the day after it. A bare weekday ("back on Monday") is the next
such weekday after the message was received. Numbers are read as follows:

* ``2026-12-07`` is ISO, year first.
* ``a/b``, ``a.b`` and ``a-b`` (with or without a year) are day first
  (``07/12`` is 7 December), except when ``b`` is above 12 and ``a`` is not:
  then only the US month-first reading is a date (``12/25`` is 25 December).
  So ``12/07/2026`` is 12 July 2026: day first, as nearly everywhere but the US.
* A date without a year is the next such date on or after the day the message
  was received (in ``received_at``'s own time zone); two-digit years are 20xx.

To add a language, add its phrases to each table below under a new key (write
patterns in lower case; they are regular expressions, matched on word
boundaries, and accents in them are optional), its month and weekday names to
``MONTHS`` and ``WEEKDAYS``, and its reply-header line to ``QUOTE_HEADERS``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

__all__ = [
    "AUTO_REPLY",
    "AUTO_SUBJECTS",
    "BOUNCE_SUBJECTS",
    "MONTHS",
    "OUT_OF_OFFICE",
    "QUOTE_HEADERS",
    "RETURNING",
    "RETURN_ANCHORS",
    "RETURN_CONNECTIVES",
    "UNSUBSCRIBE",
    "UNTIL_ANCHORS",
    "WEEKDAYS",
    "Classification",
    "InboundMessage",
    "ReplyKind",
    "classify",
    "find_return_date",
    "strip_quoted",
]

ReplyKind = Literal["reply", "out_of_office", "unsubscribe", "auto_reply", "bounce"]


@dataclass(frozen=True)
class InboundMessage:
    """One received email, reduced to what matching and classification need."""

    message_id: str | None  # with angle brackets, as in the header
    from_addr: str  # bare address, lower-case
    subject: str
    text: str  # plain-text body (HTML converted to text when that is all there is)
    received_at: datetime  # aware
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    to_addrs: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Auto-Submitted


@dataclass(frozen=True)
class Classification:
    """What an inbound message means; ``evidence`` is the phrase that decided it."""

    kind: ReplyKind
    return_date: date | None = None  # out_of_office only, when found in the text
    evidence: str = ""
    language: str = ""  # key of the phrase table that matched ("en", "de", ...), if any


# --------------------------------------------------------------------------- phrase tables
# Patterns are lower-case regular expressions without accents (accents are stripped from
# the text before matching; accented patterns work too). They match on word boundaries.

UNSUBSCRIBE: dict[str, tuple[str, ...]] = {
    "en": (
        r"unsubscrib\w*",
        r"remove me",
        r"remove (?:my (?:email|e-mail|address|name|details|data)|us|this address) from",
        r"take (?:me|us|my (?:email|address|name)) off",
        r"stop (?:emailing|e-mailing|mailing|contacting|messaging|writing to|spamming) (?:me|us)",
        r"stop sending (?:me|us)",
        r"(?:do not|don't|dont|never) (?:email|e-mail|contact|write to|message) (?:me|us)",
        r"no (?:more|further) (?:emails|e-mails|messages)",
        r"opt (?:me )?out",
        r"not interested[ ,.!-]*(?:please |pls )?remove",
        r"(?:delete|erase) my (?:email|e-mail|address|data|details)",
    ),
    "de": (
        r"abmelden",
        r"abbestellen",
        r"melden sie mich (?:bitte )?ab",
        r"bitte (?:\w+ )?entfernen",
        r"entfernen sie (?:mich|meine)",
        r"tragen sie mich (?:bitte )?aus",
        r"austragen",
        r"keine (?:weiteren?|mehr) (?:e-?mails|mails|nachrichten|werbung)",
        r"keine (?:e-?mails|mails|nachrichten) mehr",
        r"nicht mehr (?:kontaktieren|anschreiben|schreiben|zu kontaktieren|anzuschreiben)",
        r"(?:loschen|losche) sie meine (?:daten|adresse|e-?mail)",
    ),
    "fr": (
        r"desabonn\w*",
        r"desinscri\w*",
        r"(?:retirez|enlevez|supprimez|rayez)[- ]moi",
        r"(?:retirer|enlever|supprimer) (?:mon adresse|mon e-?mail|mon nom)",
        r"ne plus (?:recevoir|etre contacte)",
        r"(?:souhaite|veux|voudrais|desire) plus (?:recevoir|etre contacte)",
        r"ne (?:me )?(?:contactez|ecrivez|envoyez) plus",
        r"arretez de m'(?:envoyer|ecrire|contacter)",
        r"plus d'(?:e-?mails|emails|messages)",
    ),
    "es": (
        r"dar(?:me)? de baja",
        r"(?:denme|deme|den) de baja",
        r"(?:eliminame|eliminenme|borrame|borrenme|quitame|quitenme|sacame|saquenme)",
        r"(?:quitar|sacar|eliminar|borrar)me de",
        r"no me (?:envien|envies|manden|mandes|escriban|escribas|contacten|contactes) mas",
        r"no (?:quiero|deseo) recibir mas",
        r"(?:cancelar|anular) (?:la |mi )?suscripcion",
        r"desuscribir\w*",
    ),
}

# Strong out-of-office wording: enough on its own, even in a message typed by a person.
OUT_OF_OFFICE: dict[str, tuple[str, ...]] = {
    "en": (
        r"out of (?:the )?office",
        r"out-of-office",
        r"away from (?:the |my )?(?:office|desk)",
        r"(?:i am|i'm|im|currently) (?:currently )?(?:away|out|travell?ing)"
        r" (?:on|until|till|through|from|and)",
        r"on (?:annual |parental |maternity |paternity |sick |medical )?leave",
        r"on (?:vacation|holiday|holidays|pto|sabbatical)",
        r"(?:limited|no) access to (?:my )?(?:email|e-mail)",
        r"(?:i am|i'm) (?:currently )?(?:out|away) (?:of|from) (?:the )?country",
    ),
    "de": (
        r"abwesenheitsnotiz",
        r"nicht im (?:buro|haus)",
        r"ausser haus",
        r"im urlaub",
        r"(?:in |im )?(?:elternzeit|mutterschutz)",
        r"abwesend",
        r"keinen zugriff auf (?:meine )?e-?mails",
    ),
    "fr": (
        r"absente?",
        r"en (?:conges?|vacances)",
        r"hors du bureau",
        r"en deplacement",
        r"en (?:conge )?(?:maternite|paternite)",
        r"message d'absence",
    ),
    "es": (
        r"fuera de (?:la )?oficina",
        r"de vacaciones",
        r"ausente",
        r"de (?:baja|permiso) (?:por )?(?:maternidad|paternidad|medica)",
        r"mensaje de ausencia",
    ),
}

# Weaker wording that says when someone is back: out-of-office only in a clearly automatic
# message ("I'll be back on Monday, let's talk then" typed by a person is a reply).
RETURNING: dict[str, tuple[str, ...]] = {
    "en": (
        r"(?:i will|i'll|ill|i shall) be back",
        r"back in (?:the )?office",
        r"(?:i will|i'll) return",
        r"returning (?:on|to the office|to work)",
    ),
    "de": (
        r"(?:bin ich|ich bin|sind wir|wir sind)(?: \S+){0,4} wieder",
        r"zuruck am",
        r"wieder (?:im buro|erreichbar|da|zuruck)",
    ),
    "fr": (r"de retour", r"je reviendrai", r"je serai disponible"),
    "es": (r"regresare", r"vuelvo el", r"estare de vuelta", r"volvere", r"me reincorporo"),
}

# Machine-written messages that are neither out-of-office nor bounces.
AUTO_REPLY: dict[str, tuple[str, ...]] = {
    "en": (
        r"(?:this|the) (?:mailbox|inbox|email address|e-mail address|address|email account)"
        r" is (?:not|no longer|unmonitored)(?: being)?(?: monitored| in use| active| read)?",
        r"(?:mailbox|inbox) is not monitored",
        r"(?:do not|please do not|don't) reply to this (?:email|e-mail|message)",
        r"this is an automated (?:message|response|reply|email|notification)",
        r"this (?:message|email|reply) (?:was|is) (?:sent |generated )?automatically",
        r"ticket ?(?:#|no\.?|number|id)? ?[#:]? ?\d+",
        r"(?:case|request|reference) (?:#|no\.?|number|id) ?[#:]? ?\d+",
        r"we (?:have|'ve) received your (?:email|e-mail|message|request|inquiry|enquiry)",
        r"is no longer (?:with|employed|working)",
        r"automatic reply",
        r"auto-?reply",
    ),
    "de": (
        r"automatische antwort",
        r"(?:dieses|das) postfach wird nicht",
        r"(?:diese|die) (?:e-?mail-?)?adresse wird nicht",
        r"wir haben ihre (?:nachricht|anfrage|e-?mail) erhalten",
        r"ticket-?(?:nummer|nr)",
        r"nicht mehr (?:im unternehmen|bei uns|fur \w+ tatig)",
    ),
    "fr": (
        r"reponse automatique",
        r"(?:cette|la) (?:adresse|boite(?: aux lettres)?|boite mail) n'est pas"
        r" (?:surveillee|consultee|lue)",
        r"nous avons (?:bien )?recu votre (?:message|demande|e-?mail|courriel)",
        r"ne (?:pas )?repondez pas a ce (?:message|courriel|e-?mail)",
        r"ne fait plus partie",
    ),
    "es": (
        r"respuesta automatica",
        r"(?:este|el) buzon no (?:es|esta) (?:supervisado|monitoreado|monitorizado|atendido)",
        r"hemos recibido su (?:mensaje|solicitud|correo|consulta)",
        r"no responda a este (?:mensaje|correo)",
        r"ya no (?:trabaja|forma parte)",
    ),
}

# Subjects that only machines write: a clear auto-reply signal, like an Auto-Submitted header.
AUTO_SUBJECTS: dict[str, tuple[str, ...]] = {
    "en": (r"automatic reply", r"auto(?:matic)?[- ]?(?:reply|response)", r"out of (?:the )?office"),
    "de": (r"automatische antwort", r"abwesend", r"abwesenheitsnotiz"),
    "fr": (r"reponse automatique", r"absent(?:e)?", r"message d'absence"),
    "es": (r"respuesta automatica", r"fuera de (?:la )?oficina", r"ausente"),
    "nordic": (r"autosvar",),
}

BOUNCE_SUBJECTS: dict[str, tuple[str, ...]] = {
    "en": (
        r"undeliverable",
        r"undelivered mail",
        r"delivery status notification \(failure\)",
        r"mail delivery (?:failed|failure|subsystem)",
        r"delivery (?:has )?failed",
        r"failure notice",
        r"returned mail",
        r"message not delivered",
        r"delivery failure",
    ),
    "de": (r"unzustellbar", r"nicht zustellbar", r"zustellung fehlgeschlagen"),
    "fr": (r"non remis", r"non distribuable", r"echec de (?:la )?(?:remise|livraison)"),
    "es": (r"no (?:se pudo|se puede) entregar", r"no entregado", r"error de entrega"),
}

# A delivery notice that is only a delay: the address may still work.
DELAY: dict[str, tuple[str, ...]] = {
    "en": (
        r"delivery status notification \(delay\)",
        r"delivery delayed",
        r"(?:will|still) (?:retry|be retried|trying)",
        r"has not yet been delivered",
        r"warning only",
        r"(?:continue|keep) trying",
    ),
    "de": (r"verzogert", r"noch nicht zugestellt"),
}

# Phrases right before a date that say "back on": the return date is that date.
RETURN_ANCHORS: dict[str, tuple[str, ...]] = {
    "en": (
        r"back(?: in(?: the)? office| at (?:work|my desk)| to (?:work|the office)| online)?",
        r"return(?:ing|s)?(?: to (?:the )?office| to work)?",
        r"(?:available|reachable) again",
    ),
    "de": (r"zuruck", r"wieder(?: im buro| erreichbar| da)?"),
    "fr": (r"(?:de )?retour", r"reviendrai", r"rentre"),
    "es": (r"regresare", r"regreso", r"vuelvo", r"volvere", r"de vuelta", r"reincorporo"),
}

# Words that may join a return phrase to its date ("back from", "de retour à partir du").
# On their own they do not anchor a date: "on leave from 1 December" is when leave starts.
RETURN_CONNECTIVES: tuple[str, ...] = (
    r"from",
    r"starting(?: from)?",
    r"as of",
    r"ab(?: dem| den)?",
    r"(?:a partir|a compter)(?: du| de| del)?",  # articles may already be cut as filler
    r"des(?: le)?",
    r"desde(?: el)?",
)

# Phrases right before a date that say "away until": the return date is the day after.
UNTIL_ANCHORS: dict[str, tuple[str, ...]] = {
    "en": (r"until", r"till", r"til", r"through", r"thru", r"to"),
    "de": (r"bis(?: zum| einschliesslich)?",),
    "fr": (r"jusqu'(?:au|a)?", r"au"),
    "es": (r"hasta", r"al"),
}

# After a date: German puts "wieder" after the date ("am 7. Dezember bin ich wieder da").
AFTER_ANCHORS: dict[str, tuple[str, ...]] = {
    "de": (r"(?:bin ich|ich bin|sind wir)?\s?(?:\w+ )?wieder",),
}

# Month names, January first; several spellings of one month are separated by spaces.
MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "january jan", "february feb", "march mar", "april apr", "may", "june jun",
        "july jul", "august aug", "september sept sep", "october oct", "november nov",
        "december dec",
    ),
    "de": (
        "januar janner jan", "februar feb", "marz maerz", "april apr", "mai", "juni",
        "juli", "august aug", "september sept sep", "oktober okt", "november nov",
        "dezember dez",
    ),
    "fr": (
        "janvier janv", "fevrier fevr", "mars", "avril", "mai", "juin", "juillet",
        "aout", "septembre sept", "octobre oct", "novembre nov", "decembre dec",
    ),
    "es": (
        "enero ene", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
        "septiembre setiembre", "octubre", "noviembre", "diciembre dic",
    ),
}  # fmt: skip

# Weekday names, Monday first.
WEEKDAYS: dict[str, tuple[str, ...]] = {
    "en": ("monday mon", "tuesday tue tues", "wednesday wed", "thursday thu thurs",
           "friday fri", "saturday sat", "sunday sun"),
    "de": ("montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag sonnabend",
           "sonntag"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "es": ("lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo"),
}  # fmt: skip

# Words that may stand between a return phrase and its date ("back on Monday, the 7th").
_FILLER_WORDS = (
    "on", "the", "of", "at", "le", "la", "el", "am", "an", "den", "dem", "der", "zum",
    "de", "du",
)  # fmt: skip

# The line a mail client writes above the text it quotes. Matched on the original text
# (accents kept optional by character classes), one or two lines joined.
QUOTE_HEADERS: dict[str, str] = {
    "en": r"on\s.{4,200}?\s(?:wrote|writes)\s?:",
    "de": r"am\s.{4,200}?\s(?:schrieb|hat)\s.{0,120}?:",
    "fr": r"le\s.{4,200}?\sa\s[ée]crit\s?:",
    "es": r"el\s.{4,200}?\sescribi[óo]\s?:",
    "nl": r"op\s.{4,200}?\sschreef\s.{0,120}?:",
}

# Lines that start a quoted original in Outlook style: everything below is quoted.
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*(?:-{2,}\s*(?:original message|urspr[üu]ngliche nachricht|message d'origine"
    r"|mensaje original|forwarded message|weitergeleitete nachricht)\s*-{2,}"
    r"|_{10,}\s*$)",
    re.IGNORECASE,
)
# Outlook's header block ("From: ... / Sent: ...") without a separator line.
_OUTLOOK_FROM = re.compile(r"^\s*\**(?:from|von|de|de\s?)\s?:\**\s", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(
    r"^\s*\**(?:sent|date|gesendet|datum|envoy[ée]|date|enviado|fecha)\s?:\**\s", re.IGNORECASE
)


# --------------------------------------------------------------------------- normalization


class _Folded:
    """Text lower-cased, without accents, whitespace collapsed; maps back to the original."""

    __slots__ = ("index", "original", "text")

    def __init__(self, original: str) -> None:
        chars: list[str] = []
        index: list[int] = []
        space = True  # drop leading whitespace
        for i, ch in enumerate(original):
            if ch.isspace():
                if not space:
                    chars.append(" ")
                    index.append(i)
                    space = True
                continue
            space = False
            if ch in "’‘`´ʼ":
                ch = "'"
            elif ch in "ßẞ":
                ch = "ss"
            for part in unicodedata.normalize("NFKD", ch):
                if unicodedata.combining(part):
                    continue
                for low in part.lower():
                    chars.append(low)
                    index.append(i)
        self.original = original
        self.text = "".join(chars)
        self.index = index

    def source(self, start: int, end: int) -> str:
        """The original text behind ``text[start:end]``, whitespace collapsed."""
        if start >= end:
            return ""
        return " ".join(self.original[self.index[start] : self.index[end - 1] + 1].split())


def _fold(text: str) -> str:
    return _Folded(text).text


def _compile(patterns: Iterable[str]) -> re.Pattern[str]:
    body = "|".join(f"(?:{_fold_pattern(p)})" for p in patterns)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)")


def _fold_pattern(pattern: str) -> str:
    # Only accents and apostrophes: lower-casing a pattern would turn \S into \s.
    out: list[str] = []
    for ch in pattern:
        if ch in "’‘`´ʼ":
            ch = "'"
        elif ch == "ß":
            ch = "ss"
        out.extend(p for p in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(p))
    return "".join(out)


def _compile_table(table: Mapping[str, Iterable[str]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(lang, _compile(patterns)) for lang, patterns in table.items()]


_UNSUBSCRIBE = _compile_table(UNSUBSCRIBE)
_OUT_OF_OFFICE = _compile_table(OUT_OF_OFFICE)
_RETURNING = _compile_table(RETURNING)
_AUTO_REPLY = _compile_table(AUTO_REPLY)
_AUTO_SUBJECTS = _compile_table(AUTO_SUBJECTS)
_BOUNCE_SUBJECTS = _compile_table(BOUNCE_SUBJECTS)
_DELAY = _compile_table(DELAY)


@dataclass(frozen=True)
class _Hit:
    language: str
    evidence: str
    start: int


def _first_hit(folded: _Folded, table: list[tuple[str, re.Pattern[str]]]) -> _Hit | None:
    best: _Hit | None = None
    for lang, pattern in table:
        m = pattern.search(folded.text)
        if m and (best is None or m.start() < best.start):
            best = _Hit(lang, folded.source(m.start(), m.end()), m.start())
    return best


# --------------------------------------------------------------------------- quoted text


_QUOTE_HEADER = re.compile(
    "|".join(f"(?:{p})" for p in QUOTE_HEADERS.values()), re.IGNORECASE | re.DOTALL
)


def _is_quote_header(line: str, next_line: str) -> bool:
    """True when ``line`` (maybe continued on ``next_line``) is an "On ... wrote:" line."""
    line = line.strip()
    if not line or len(line) > 400:
        return False
    if _QUOTE_HEADER.fullmatch(line):
        return True
    if _QUOTE_HEADER.fullmatch(next_line.strip()):
        return False  # the next line is the attribution, this one is the sender's
    # Gmail wraps long attribution lines: "On Mon, 7 Dec 2026 at 10:00, Jane <j@x.com>\nwrote:"
    joined = f"{line} {next_line.strip()}"
    return bool(next_line.strip()) and bool(_QUOTE_HEADER.fullmatch(joined)) and len(joined) < 400


def strip_quoted(text: str) -> str:
    """Remove quoted text from a reply: the sender's own words, without what they quote.

    Removed: lines starting with ``>``; an attribution line ("On ... wrote:",
    "Am ... schrieb ...:", "Le ... a écrit :", "El ... escribió:") and the
    ``>`` lines under it, or everything below it when the quote under it is not
    marked with ``>``; everything from an Outlook separator ("-----Original
    Message-----", its translations, a line of underscores, or a "From:" line
    followed by a "Sent:" line) to the end. Text written between or below
    ``>``-quoted blocks (inline replies) is kept.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.lstrip().startswith(">"):
            i += 1
            continue
        if _ORIGINAL_MESSAGE.match(line):
            break
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_SENT.match(x) for x in lines[i + 1 : i + 4]):
            break
        if _is_quote_header(line, nxt):
            wrapped = not _QUOTE_HEADER.fullmatch(line.strip())
            j = i + (2 if wrapped else 1)
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and not lines[j].lstrip().startswith(">"):
                break  # an unmarked quote: all of it is quoted
            i = j
            continue
        kept.append(line)
        i += 1
    return "\n".join(kept).strip()


# --------------------------------------------------------------------------- dates


def _alternation(names: Iterable[str]) -> str:
    return "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))


def _numbered(table: Mapping[str, tuple[str, ...]], first: int) -> dict[str, int]:
    return {
        _fold(name): number
        for names in table.values()
        for number, spellings in enumerate(names, start=first)
        for name in spellings.split()
    }


_MONTH_NUMBER = _numbered(MONTHS, 1)
_WEEKDAY_NUMBER = _numbered(WEEKDAYS, 0)
_MONTH = rf"(?P<month>{_alternation(_MONTH_NUMBER)})\.?(?![a-z])"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th|er|o|\.)?"
_YEAR = r"(?P<year>\d{4})"

_DATE_PATTERNS: tuple[re.Pattern[str], ...] = (
    # 2026-12-07, 2026/12/07
    re.compile(
        r"(?<![\d.])(?P<year>\d{4})(?P<sep>[-/.])(?P<a>\d{1,2})(?P=sep)(?P<b>\d{1,2})(?!\d)"
    ),
    # 7 December 2026, 7. Dezember, 7 de diciembre de 2026, 7th of December
    re.compile(rf"(?<!\d){_DAY} ?(?:of |de )?{_MONTH}(?:,? (?:de )?{_YEAR})?(?!\d)"),
    # December 7, 2026; Dec 7th
    re.compile(rf"(?<![a-z]){_MONTH} (?:the )?{_DAY}(?!\d)(?:,? {_YEAR}(?!\d))?"),
    # 07/12/2026, 07.12.26, 07/12, 7.12.
    re.compile(
        r"(?<![\d./-])(?P<a>\d{1,2})(?P<sep>[./-])(?P<b>\d{1,2})"
        r"(?:(?P=sep)(?P<year>\d{4}|\d{2})(?![\d]))?(?![\d/-])"
    ),
)
_WEEKDAY_PATTERN = re.compile(rf"(?<![a-z])(?P<weekday>{_alternation(_WEEKDAY_NUMBER)})(?![a-z])")

_FILLER = re.compile(
    rf"(?:[\s,:;.(]|(?<![a-z])(?:{_alternation([*_FILLER_WORDS, *_WEEKDAY_NUMBER])})(?![a-z]))*$"
)
_RETURN_ANCHOR = re.compile(
    rf"(?<!\w)(?:{'|'.join(_fold_pattern(p) for ps in RETURN_ANCHORS.values() for p in ps)})"
    rf"(?: (?:{'|'.join(_fold_pattern(p) for p in RETURN_CONNECTIVES)}))?$"
)
_UNTIL_ANCHOR = re.compile(
    rf"(?<!\w)(?:{'|'.join(_fold_pattern(p) for ps in UNTIL_ANCHORS.values() for p in ps)})$"
)
_AFTER_ANCHOR = re.compile(
    rf"^[\s,.]*(?:{'|'.join(_fold_pattern(p) for ps in AFTER_ANCHORS.values() for p in ps)})(?!\w)"
)


def _resolve(day: int, month: int, year: int | None, today: date) -> date | None:
    if year is not None:
        if year < 100:
            year += 2000
        try:
            return date(year, month, day)
        except ValueError:
            return None
    for y in range(today.year, today.year + 9):  # 29 February waits for a leap year
        try:
            candidate = date(y, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def _date_of(m: re.Match[str], today: date) -> date | None:
    groups = m.groupdict()
    year = int(groups["year"]) if groups.get("year") else None
    if groups.get("month"):
        return _resolve(int(groups["day"]), _MONTH_NUMBER[groups["month"]], year, today)
    a, b = int(groups["a"]), int(groups["b"])
    if m.re is _DATE_PATTERNS[0]:  # ISO: year-month-day
        return _resolve(b, a, year, today)
    if a <= 12 and b > 12:  # only the US month-first reading is a date
        return _resolve(b, a, year, today)
    return _resolve(a, b, year, today)  # day first


def _anchor_offset(text: str, start: int, end: int) -> int | None:
    """Days from the date at ``text[start:end]`` to the return date, or None if unanchored."""
    before = text[max(0, start - 60) : start]
    filler = _FILLER.search(before)
    stem = before[: filler.start()] if filler else before
    if _RETURN_ANCHOR.search(stem):
        return 0
    if _UNTIL_ANCHOR.search(stem):
        return 1
    if _AFTER_ANCHOR.match(text[end : end + 40]):
        return 0
    return None


def find_return_date(text: str, received_at: datetime) -> date | None:
    """The first return date written in ``text`` (see the module docstring), or None.

    ``text`` should be the reply without its quoted part.
    """
    folded = _fold(text)
    today = received_at.date()
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, int, date]] = []
    for pattern in _DATE_PATTERNS:  # most specific first; later ones skip what is taken
        for m in pattern.finditer(folded):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            offset = _anchor_offset(folded, m.start(), m.end())
            if offset is None:
                continue
            day = _date_of(m, today)
            if day is not None:
                found.append((offset, m.start(), day + timedelta(days=offset)))
    if found:  # "back on" beats "until": ("until the 4th, back on the 7th")
        return min(found)[2]
    for m in _WEEKDAY_PATTERN.finditer(folded):
        if any(m.start() < e and s < m.end() for s, e in taken):
            continue
        before = folded[max(0, m.start() - 60) : m.start()]
        filler = _FILLER.search(before)
        stem = before[: filler.start()] if filler else before
        offset = 0 if _RETURN_ANCHOR.search(stem) else 1 if _UNTIL_ANCHOR.search(stem) else None
        if offset is None:
            continue
        ahead = (_WEEKDAY_NUMBER[m.group("weekday")] - today.weekday() - 1) % 7 + 1
        return today + timedelta(days=ahead + offset)
    return None


# --------------------------------------------------------------------------- classify

_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply", "auto-reply"})
_NOREPLY = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply|notifications?)(?:[+.-]|$)")


def _header(headers: Mapping[str, str], name: str) -> str:
    name = name.lower()
    for key, value in headers.items():
        if key.lower() == name:
            return str(value).strip()
    return ""


def _auto_header(headers: Mapping[str, str]) -> str:
    """The header that marks a message as automatic, as ``Name: value``, or ''."""
    auto = _header(headers, "Auto-Submitted")
    if auto and auto.split(";")[0].strip().lower() != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond"):
        value = _header(headers, name)
        if value and value.lower() not in ("no", "false", "0"):
            return f"{name}: {value}"
    precedence = _header(headers, "Precedence")
    if precedence.lower() in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    return ""


def _bounce(message: InboundMessage, subject: _Folded) -> Classification | None:
    content_type = _header(message.headers, "Content-Type").lower()
    local = message.from_addr.strip().lower().partition("@")[0]
    report = content_type.startswith("multipart/report")
    report_type = re.search(r"report-type\s*=\s*\"?([\w-]+)", content_type)
    if report and report_type and report_type.group(1) != "delivery-status":
        return Classification("auto_reply", evidence=f"Content-Type: {content_type}")

    evidence = ""
    language = ""
    if report:
        evidence = "Content-Type: multipart/report"
    elif local in _BOUNCE_SENDERS:
        evidence = f"From: {message.from_addr}"
    elif hit := _first_hit(subject, _BOUNCE_SUBJECTS):
        evidence, language = hit.evidence, hit.language
    elif "delivery status notification" in subject.text:
        evidence = message.subject.strip()
    if not evidence:
        return None
    delay = _first_hit(subject, _DELAY) or _first_hit(_Folded(message.text[:4000]), _DELAY)
    if delay and not _first_hit(subject, _BOUNCE_SUBJECTS):
        return Classification("auto_reply", evidence=delay.evidence, language=delay.language)
    return Classification("bounce", evidence=evidence, language=language)


def classify(message: InboundMessage) -> Classification:
    """Classify ``message``; see the module docstring for the rules and their order."""
    subject = _Folded(message.subject or "")
    bounce = _bounce(message, subject)
    if bounce is not None:
        return bounce

    own = strip_quoted(message.text or "")
    content = _Folded(f"{message.subject or ''}\n{own}")
    body = _Folded(own)

    automatic = _auto_header(message.headers)
    auto_subject = _first_hit(subject, _AUTO_SUBJECTS)
    local = message.from_addr.strip().lower().partition("@")[0]
    if not automatic and auto_subject:
        automatic = auto_subject.evidence
    if not automatic and _NOREPLY.match(local):
        automatic = f"From: {message.from_addr}"

    ooo = _first_hit(content, _OUT_OF_OFFICE)
    if ooo is None and automatic:
        ooo = _first_hit(content, _RETURNING)

    def out_of_office(hit: _Hit) -> Classification:
        return Classification(
            "out_of_office",
            return_date=find_return_date(own, message.received_at),
            evidence=hit.evidence,
            language=hit.language,
        )

    if automatic:
        if ooo is not None:
            return out_of_office(ooo)
        auto = _first_hit(body, _AUTO_REPLY)
        if auto is not None:
            return Classification("auto_reply", evidence=auto.evidence, language=auto.language)
        return Classification("auto_reply", evidence=automatic)

    unsubscribe = _first_hit(content, _UNSUBSCRIBE)
    if unsubscribe is not None:
        return Classification(
            "unsubscribe", evidence=unsubscribe.evidence, language=unsubscribe.language
        )
    if ooo is not None:
        return out_of_office(ooo)
    auto = _first_hit(body, _AUTO_REPLY)
    if auto is not None:
        return Classification("auto_reply", evidence=auto.evidence, language=auto.language)
    return Classification("reply")
