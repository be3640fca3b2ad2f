"""classify(), strip_quoted() and return dates, per language and kind (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchflow.domain.replies import (
    Classification,
    InboundMessage,
    classify,
    find_return_date,
    strip_quoted,
)

RECEIVED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday
AUTO = {"Auto-Submitted": "auto-replied"}


def msg(
    text: str,
    *,
    subject: str = "Re: Quick question",
    sender: str = "jane@acme.example",
    headers: dict[str, str] | None = None,
    received_at: datetime = RECEIVED,
) -> InboundMessage:
    return InboundMessage(
        message_id="<r@acme.example>",
        from_addr=sender,
        subject=subject,
        text=text,
        received_at=received_at,
        headers=headers or {},
    )


OUR_EMAIL = (
    "> Hi Jane,\n> would a 15 minute call next week make sense?\n> Best, Bob\n"
    "> --\n> Don't want these emails? Unsubscribe: https://tf.example/u/abc\n"
)

# --------------------------------------------------------------------------- out of office

OOO_CASES = [
    # (language, subject, text, return date)
    ("en", "Automatic reply: Quick question",
     "I am out of the office and back on Monday 7 December.", date(2026, 12, 7)),
    ("en", "Out of Office: Re: Quick question",
     "Thank you for your email. I'm on leave, returning 12/07/2026.", date(2026, 7, 12)),
    ("en", "Re: Quick question",
     "I am currently on vacation. I will be back on 2026-12-07.", date(2026, 12, 7)),
    ("en", "Automatic reply", "I'm out of the office until Friday, December 4th.",
     date(2026, 12, 5)),
    ("en", "Automatic reply",
     "I am on parental leave with limited access to email. Returning on 12/25.",
     date(2026, 12, 25)),
    ("en", "Automatic reply", "Out of office. Back in the office on December 7.",
     date(2026, 12, 7)),
    ("en", "Automatic reply", "I am on leave from 1 December to 6 December.",
     date(2026, 12, 7)),
    ("en", "Automatic reply", "I'm away from my desk and will return on Monday.",
     date(2026, 11, 23)),
    ("en", "Automatic reply", "I am travelling and will be back on 3 January.",
     date(2027, 1, 3)),
    ("en", "Automatic reply", "I'm out of the office with no access to email.", None),
    ("de", "Abwesend: Re: Kurze Frage",
     "Vielen Dank für Ihre Nachricht. Ich bin im Urlaub und zurück am 7. Dezember.",
     date(2026, 12, 7)),
    ("de", "Automatische Antwort: Kurze Frage",
     "Ich bin nicht im Büro und ab dem 07.12.2026 wieder erreichbar.", date(2026, 12, 7)),
    ("de", "Abwesenheitsnotiz", "Ich bin vom 1. bis 6. Dezember im Urlaub.", date(2026, 12, 7)),
    ("de", "Re: Kurze Frage",
     "Ich bin bis einschließlich 4. Dezember außer Haus. Am 7.12. bin ich wieder da.",
     date(2026, 12, 7)),
    ("de", "Automatische Antwort", "Ich bin in Elternzeit.", None),
    ("fr", "Réponse automatique : Question rapide",
     "Je suis absent et de retour le 7 décembre.", date(2026, 12, 7)),
    ("fr", "Absent", "Je suis en congés, je serai de retour le 07/12.", date(2026, 12, 7)),
    ("fr", "Réponse automatique",
     "Je suis en vacances du 1er au 6 décembre inclus.", date(2026, 12, 7)),
    ("fr", "Reponse automatique", "Je suis hors du bureau jusqu'au lundi 30 novembre.",
     date(2026, 12, 1)),
    ("es", "Respuesta automática: Pregunta rápida",
     "Estoy de vacaciones, regresaré el 7 de diciembre.", date(2026, 12, 7)),
    ("es", "Fuera de la oficina", "Estoy fuera de la oficina, vuelvo el 07/12/2026.",
     date(2026, 12, 7)),
    ("es", "Respuesta automatica", "Estoy de vacaciones del 1 al 6 de diciembre.",
     date(2026, 12, 7)),
    ("es", "Re: Pregunta", "Estare ausente hasta el 4 de diciembre de 2026.", date(2026, 12, 5)),
]  # fmt: skip


@pytest.mark.parametrize(("language", "subject", "text", "returns"), OOO_CASES)
def test_out_of_office(language: str, subject: str, text: str, returns: date | None) -> None:
    result = classify(msg(text, subject=subject, headers=AUTO))
    assert result.kind == "out_of_office", result
    assert result.return_date == returns
    assert result.language in (language, "en")  # the subject may be the English one
    assert result.evidence


def test_out_of_office_without_headers_when_the_wording_is_strong() -> None:
    result = classify(msg("Hi, I'm on vacation until December 4, let's talk after."))
    assert (result.kind, result.return_date) == ("out_of_office", date(2026, 12, 5))


def test_a_person_saying_when_they_are_back_is_a_reply() -> None:
    assert classify(msg("Thanks! I'll be back on Monday and will review it.")).kind == "reply"


# --------------------------------------------------------------------------- unsubscribe

UNSUBSCRIBE_CASES = [
    ("en", "Please remove me from your list.", "remove me"),
    ("en", "unsubscribe", "unsubscribe"),
    ("en", "Take me off your list, thanks.", "Take me off"),
    ("en", "Stop emailing me.", "Stop emailing me"),
    ("en", "Not interested, please remove.", "Not interested, please remove"),
    ("en", "Please don't contact me again.", "don't contact me"),
    ("en", "I already unsubscribed twice!", "unsubscribed"),
    ("en", "No more emails please", "No more emails"),
    ("de", "Bitte abmelden.", "abmelden"),
    ("de", "Bitte entfernen Sie mich aus Ihrem Verteiler.", "Bitte entfernen"),
    ("de", "Keine weiteren E-Mails, danke.", "Keine weiteren E-Mails"),
    ("de", "Bitte tragen Sie mich aus.", "tragen Sie mich aus"),
    ("de", "Bitte keine Mails mehr.", "keine Mails mehr"),
    ("fr", "Merci de me désabonner.", "désabonner"),
    ("fr", "Merci de me desabonner.", "desabonner"),
    ("fr", "Retirez-moi de votre liste.", "Retirez-moi"),
    ("fr", "Je souhaite ne plus recevoir vos e-mails.", "ne plus recevoir"),
    ("fr", "Je ne souhaite plus recevoir vos messages.", "souhaite plus recevoir"),
    ("es", "Por favor, darme de baja.", "darme de baja"),
    ("es", "Elimíname de su lista.", "Elimíname"),
    ("es", "eliminame de la lista", "eliminame"),
    ("es", "No me envíen más correos.", "No me envíen más"),
    ("es", "No me envien mas correos.", "No me envien mas"),
    ("es", "Quiero cancelar mi suscripción.", "cancelar mi suscripción"),
]


@pytest.mark.parametrize(("language", "text", "evidence"), UNSUBSCRIBE_CASES)
def test_unsubscribe(language: str, text: str, evidence: str) -> None:
    result = classify(msg(f"{text}\n\nOn Thu, Nov 19, 2026 at 10:00 AM Bob <b@x.example> wrote:\n"
                          f"{OUR_EMAIL}"))  # fmt: skip
    assert result == Classification("unsubscribe", evidence=evidence, language=language)


def test_unsubscribe_in_the_subject() -> None:
    assert classify(msg("", subject="Unsubscribe")).kind == "unsubscribe"


def test_a_person_away_who_asks_to_stop_is_an_unsubscribe() -> None:
    result = classify(msg("I'm on vacation, but please remove me from your list."))
    assert result.kind == "unsubscribe"


def test_an_automatic_out_of_office_with_an_unsubscribe_footer_is_out_of_office() -> None:
    text = "I am out of the office until 4 December.\nTo unsubscribe from our newsletter ..."
    result = classify(msg(text, subject="Automatic reply: Quick question"))
    assert (result.kind, result.return_date) == ("out_of_office", date(2026, 12, 5))


# --------------------------------------------------------------------------- quoted text

QUOTE_CASES = [
    "Sounds good, Tuesday works.\n\nOn Thu, Nov 19, 2026 at 10:00 AM Bob <b@x.example> wrote:\n"
    + OUR_EMAIL,
    # Gmail wraps a long attribution line
    "Sounds good, Tuesday works.\n\nOn Thu, Nov 19, 2026 at 10:00 AM Bob Smith <bob.smith@\n"
    "x.example> wrote:\n" + OUR_EMAIL,
    "Sounds good, Tuesday works.\n\nAm 19.11.2026 um 10:00 schrieb Bob <b@x.example>:\n"
    + OUR_EMAIL,
    "Sounds good, Tuesday works.\n\nLe jeu. 19 nov. 2026 à 10:00, Bob <b@x.example> a écrit :\n"
    + OUR_EMAIL,
    "Sounds good, Tuesday works.\n\nEl jue, 19 nov 2026 a las 10:00, Bob (<b@x.example>)"
    " escribió:\n" + OUR_EMAIL,
    "Sounds good, Tuesday works.\n\n-----Original Message-----\nFrom: Bob\nSent: Thursday\n\n"
    "Hi Jane\nUnsubscribe: https://tf.example/u/abc\n",
    "Sounds good, Tuesday works.\n\n-----Ursprüngliche Nachricht-----\nVon: Bob\n\nabmelden\n",
    "Sounds good, Tuesday works.\n\n________________________________\nFrom: Bob\n\nunsubscribe\n",
    "Sounds good, Tuesday works.\n\nFrom: Bob <b@x.example>\nSent: Thursday, November 19\n"
    "To: Jane\nSubject: Quick question\n\nUnsubscribe here\n",
    "Sounds good, Tuesday works.\n\nOn Thu, Nov 19, 2026, Bob wrote:\n\nHi Jane (not marked)\n"
    "Unsubscribe: https://tf.example/u/abc\n",
]


@pytest.mark.parametrize("text", QUOTE_CASES)
def test_quoted_original_is_stripped(text: str) -> None:
    assert strip_quoted(text) == "Sounds good, Tuesday works."
    assert classify(msg(text)).kind == "reply"


def test_inline_replies_between_quotes_are_kept() -> None:
    text = "On Thu, Bob wrote:\n> Does Tuesday work?\nYes.\n> And the budget?\nQ1.\n"
    assert strip_quoted(text) == "Yes.\nQ1."


def test_nothing_to_strip() -> None:
    assert strip_quoted("Hello\r\nthere  ") == "Hello\nthere"


def test_a_line_above_the_attribution_is_kept() -> None:
    text = "On second thought, call me.\nOn Thu, Nov 19, 2026 Bob <b@x.example> wrote:\n> hi\n"
    assert strip_quoted(text) == "On second thought, call me."


# --------------------------------------------------------------------------- auto replies, bounces


@pytest.mark.parametrize(
    ("text", "subject", "sender", "headers"),
    [
        ("Thanks for reaching out.", "Re: Quick question", "jane@acme.example", AUTO),
        ("Thanks.", "Re: hi", "jane@acme.example", {"Auto-Submitted": "auto-generated"}),
        ("Thanks.", "Re: hi", "jane@acme.example", {"X-Autoreply": "yes"}),
        ("Thanks.", "Re: hi", "jane@acme.example", {"Precedence": "auto_reply"}),
        ("This mailbox is not monitored. Please write to help@acme.example.", "Re: hi",
         "jane@acme.example", {}),
        ("We have received your request. Your ticket number is 48213.",
         "[Ticket #48213] Re: hi", "support@acme.example", {}),
        ("Your request (case #12345) has been received.", "Re: hi", "noreply@acme.example", {}),
        ("Jane is no longer with Acme. Please contact sales@acme.example.", "Re: hi",
         "jane@acme.example", {}),
        ("Dieses Postfach wird nicht überwacht.", "Re: hi", "info@firma.example", {}),
        ("Nous avons bien reçu votre message.", "Re: hi", "contact@societe.example", {}),
        ("Hemos recibido su mensaje.", "Re: hola", "info@empresa.example", {}),
        ("Thanks.", "Read: Quick question", "jane@acme.example",
         {"Content-Type": "multipart/report; report-type=disposition-notification"}),
    ],
)  # fmt: skip
def test_auto_reply(text: str, subject: str, sender: str, headers: dict[str, str]) -> None:
    assert classify(msg(text, subject=subject, sender=sender, headers=headers)).kind == "auto_reply"


def test_auto_submitted_no_is_a_person() -> None:
    assert classify(msg("Great, talk soon", headers={"Auto-Submitted": "no"})).kind == "reply"


def test_an_automatic_message_never_unsubscribes() -> None:
    text = "Thanks, your ticket #123 was created. To unsubscribe from updates click here."
    assert classify(msg(text, headers=AUTO)).kind == "auto_reply"


@pytest.mark.parametrize(
    ("subject", "sender", "headers"),
    [
        ("Undeliverable: Quick question", "postmaster@acme.example", {}),
        ("Delivery Status Notification (Failure)", "mailer-daemon@googlemail.com", {}),
        ("Mail delivery failed: returning message to sender", "MAILER-DAEMON@mx.example", {}),
        ("Undelivered Mail Returned to Sender", "someone@mx.example", {}),
        ("Returned mail", "x@mx.example",
         {"Content-Type": 'multipart/report; report-type="delivery-status"; boundary=b'}),
        ("Unzustellbar: Kurze Frage", "postmaster@firma.example", {}),
        ("Non remis : Question", "postmaster@societe.example", {}),
        ("failure notice", "x@mx.example", {"Content-Type": "multipart/report; boundary=b"}),
    ],
)  # fmt: skip
def test_bounce(subject: str, sender: str, headers: dict[str, str]) -> None:
    result = classify(msg("The message could not be delivered.", subject=subject,
                          sender=sender, headers=headers))  # fmt: skip
    assert result.kind == "bounce"
    assert result.evidence


def test_a_delay_notice_is_not_a_bounce() -> None:
    text = "THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE. Will retry for 5 days."
    result = classify(msg(text, subject="Delayed Mail (still being retried)",
                          sender="MAILER-DAEMON@mx.example"))  # fmt: skip
    assert result.kind == "auto_reply"


@pytest.mark.parametrize(
    "text",
    [
        "Sounds good, let's talk Tuesday at 10.",
        "Not interested right now, maybe next quarter.",
        "Who else is on your team? I got no emails from you before.",
        "Ich kenne mich damit aus, rufen Sie mich an.",
        "Ich habe keine E-Mails von Ihnen bekommen.",
        "Gracias, hablamos el martes.",
        "Merci, je regarde ça et je reviens vers vous.",
        "In case 2 of the proposal, what does the onboarding look like?",
        "",
    ],
)
def test_plain_replies(text: str) -> None:
    assert classify(msg(text)) == Classification("reply")


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("back on 07/12", date(2026, 12, 7)),  # day first
        ("back on 12/07", date(2027, 7, 12)),  # day first; July has passed
        ("back on 12/25", date(2026, 12, 25)),  # only month-first is a date
        ("back on 25/12", date(2026, 12, 25)),
        ("back on 13/13", None),
        ("back on 7.12.", date(2026, 12, 7)),
        ("back on 07.12.26", date(2026, 12, 7)),
        ("back on 2027-01-04", date(2027, 1, 4)),
        ("back on the 7th of December", date(2026, 12, 7)),
        ("back on Dec. 7th, 2026", date(2026, 12, 7)),
        ("back on 20 November", date(2026, 11, 20)),  # the same day still counts
        ("back on 19 November", date(2027, 11, 19)),  # the next one
        ("back on 29 February", date(2028, 2, 29)),
        ("back on 31 November", None),
        ("back on Monday", date(2026, 11, 23)),
        ("back on Friday", date(2026, 11, 27)),  # the next Friday, not today
        ("out until Monday", date(2026, 11, 24)),
        ("I'm out of office on 7 December.", None),  # no return phrase: not a return date
        ("zurück am Montag, den 7. Dezember 2026", date(2026, 12, 7)),
        ("je serai de retour à partir du 3 janvier", date(2027, 1, 3)),
        ("vuelvo a partir del 3 de enero", date(2027, 1, 3)),
        ("regresaré el miércoles", date(2026, 11, 25)),
    ],
)
def test_return_dates(text: str, expected: date | None) -> None:
    assert find_return_date(text, RECEIVED) == expected


def test_return_date_uses_the_received_time_zone() -> None:
    from zoneinfo import ZoneInfo

    late = datetime(2026, 12, 7, 23, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 22:30 UTC
    assert find_return_date("back on 7 December", late) == date(2026, 12, 7)


# --------------------------------------------------------------------------- never raises


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=400),
    subject=st.text(max_size=80),
    sender=st.text(max_size=40),
    headers=st.dictionaries(
        st.sampled_from(["Auto-Submitted", "Content-Type", "Precedence", "X-Autoreply", "x"]),
        st.text(max_size=40),
        max_size=4,
    ),
)
def test_classify_never_raises(
    text: str, subject: str, sender: str, headers: dict[str, str]
) -> None:
    result = classify(msg(text, subject=subject, sender=sender, headers=headers))
    assert result.kind in ("reply", "out_of_office", "unsubscribe", "auto_reply", "bounce")
    assert result.return_date is None or result.kind == "out_of_office"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["back on ", "until ", "bis ", "7", "12", "/", ".", "-", " ", "2026", "December ",
             "Montag ", "de ", "> ", "\n", "On Mon wrote:", "wieder ", "31", "02", "29"]
        ),
        max_size=30,
    ).map("".join)
)  # fmt: skip
def test_date_finding_never_raises(text: str) -> None:
    find_return_date(text, RECEIVED)
    strip_quoted(text)
