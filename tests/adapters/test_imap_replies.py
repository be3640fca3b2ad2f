"""ImapMailbox against a real Dovecot on 127.0.0.1 (see tests/support/imap_server.py).

Skips when dovecot is not installed (``apt-get install -y dovecot-imapd``), and
fails instead when ``CI=true``.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from tests.support.imap_server import DovecotServer, dovecot_server
from touchflow.adapters.imap.replies import ImapMailbox
from touchflow.adapters.mime import html_to_text, parse_message
from touchflow.domain.replies import classify
from touchflow.errors import ConfigError, FatalError, RetryableError

REP = "rep@example.com"
PASSWORD = "s3cret-pw"
_users = itertools.count()

# Hides MOVE from clients, so mark_processed takes the COPY + \Deleted + EXPUNGE path.
NO_MOVE = "imap_capability = IMAP4rev1 SASL-IR LITERAL+ UIDPLUS"
NO_MOVE_NO_UIDPLUS = "imap_capability = IMAP4rev1 SASL-IR LITERAL+"


POOL = [f"rep{i}@example.com" for i in range(1, 41)]  # one fresh mailbox per test


def _start(extra_config: str = "", users: list[str] | None = None) -> DovecotServer:
    server = dovecot_server({u: PASSWORD for u in users or [REP]}, extra_config=extra_config)
    server.start()
    return server


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    server = _start(users=POOL)
    yield server
    server.stop()


@pytest.fixture
def user(dovecot: DovecotServer) -> str:
    """A user whose mailbox no other test touches."""
    return POOL[next(_users) % len(POOL)]


def mailbox(server: DovecotServer, user: str, **kw: object) -> ImapMailbox:
    return ImapMailbox(server.host, server.port, user, PASSWORD, timeout_s=10, **kw)  # type: ignore[arg-type]


def _msg(
    *,
    subject: str = "Re: Quick question",
    body: str = "Sounds good, let's talk Tuesday.",
    message_id: str = "<reply-1@acme.example>",
    in_reply_to: str | None = "<touch-1@touchflow.example>",
    references: str | None = "<touch-0@touchflow.example> <touch-1@touchflow.example>",
    sender: str = '"Jane Doe" <Jane.Doe@Acme.example>',
    date_header: str | None = "Mon, 30 Nov 2026 10:15:00 +0100",
    headers: dict[str, str] | None = None,
) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "Rep <rep@example.com>"
    m["Subject"] = subject
    m["Message-ID"] = message_id
    if date_header:
        m["Date"] = date_header
    if in_reply_to:
        m["In-Reply-To"] = in_reply_to
    if references:
        m["References"] = references
    for k, v in (headers or {}).items():
        m[k] = v
    m.set_content(body)
    return bytes(m)


# --------------------------------------------------------------------------- parsing


def test_fetch_plain_reply_with_threading_headers(dovecot: DovecotServer, user: str) -> None:
    dovecot.append(user, _msg())
    with mailbox(dovecot, user) as mb:
        [got] = mb.fetch_new()
    m = got.message
    assert got.uid > 0
    assert m.message_id == "<reply-1@acme.example>"
    assert m.in_reply_to == "<touch-1@touchflow.example>"
    assert m.references == ("<touch-0@touchflow.example>", "<touch-1@touchflow.example>")
    assert m.from_addr == "jane.doe@acme.example"
    assert m.to_addrs == ("rep@example.com",)
    assert m.subject == "Re: Quick question"
    assert m.text == "Sounds good, let's talk Tuesday."
    assert m.received_at == datetime(2026, 11, 30, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    assert classify(m).kind == "reply"


def test_multipart_alternative_prefers_plain_text(dovecot: DovecotServer, user: str) -> None:
    m = EmailMessage()
    m["From"] = "jane@acme.example"
    m["Subject"] = "Re: hi"
    m["Message-ID"] = "<alt@acme.example>"
    m.set_content("Plain version")
    m.add_alternative("<p>HTML <b>version</b></p>", subtype="html")
    m.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="deck.pdf")
    dovecot.append(user, bytes(m))
    with mailbox(dovecot, user) as mb:
        [got] = mb.fetch_new()
    assert got.message.text == "Plain version"


def test_html_only_body_becomes_text_with_quotes_marked(dovecot: DovecotServer, user: str) -> None:
    html = (
        "<html><head><style>p{color:red}</style></head><body>"
        "<div>Hi Bob,</div><div>please <b>remove me</b> from your list.</div>"
        "<div class='gmail_quote'>On Mon, Nov 30, 2026 at 9:00 AM Bob &lt;bob@us.example&gt; "
        "wrote:<br><blockquote><p>Hi Jane</p><p>Unsubscribe: https://x/u</p></blockquote></div>"
        "</body></html>"
    )
    m = EmailMessage()
    m["From"] = "jane@acme.example"
    m["Subject"] = "Re: hi"
    m["Message-ID"] = "<html@acme.example>"
    m.set_content(html, subtype="html")
    dovecot.append(user, bytes(m))
    with mailbox(dovecot, user) as mb:
        [got] = mb.fetch_new()
    text = got.message.text
    assert "please remove me from your list." in text
    assert "> Unsubscribe: https://x/u" in text
    assert "color:red" not in text
    verdict = classify(got.message)
    assert (verdict.kind, verdict.evidence) == ("unsubscribe", "remove me")


def test_encoded_word_subject_and_8bit_charsets(dovecot: DovecotServer, user: str) -> None:
    raw = (
        "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <J.Mueller@Firma.example>\r\n"
        "To: rep@example.com\r\n"
        "Subject: =?iso-8859-1?q?Re=3A_Gr=FC=DFe_aus_M=FCnchen?=\r\n"
        "Message-ID: <latin1@firma.example>\r\n"
        "Date: Tue, 01 Dec 2026 08:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    ).encode("ascii") + "Schöne Grüße, gerne nächste Woche.\r\n".encode("latin-1")
    dovecot.append(user, raw)
    m = EmailMessage()
    m["From"] = "pilar@empresa.example"
    m["Subject"] = "Re: Año nuevo, señor"  # encoded as UTF-8 encoded-words by the policy
    m["Message-ID"] = "<utf8@empresa.example>"
    m.set_content("¿Hablamos mañana?", charset="utf-8", cte="8bit")
    dovecot.append(user, bytes(m))
    with mailbox(dovecot, user) as mb:
        first, second = mb.fetch_new()
    assert first.message.subject == "Re: Grüße aus München"
    assert first.message.text == "Schöne Grüße, gerne nächste Woche."
    assert first.message.from_addr == "j.mueller@firma.example"
    assert second.message.subject == "Re: Año nuevo, señor"
    assert second.message.text == "¿Hablamos mañana?"


def test_missing_date_falls_back_to_internaldate(dovecot: DovecotServer, user: str) -> None:
    dovecot.append(user, _msg(date_header=None))
    with mailbox(dovecot, user) as mb:
        [got] = mb.fetch_new()
    received = got.message.received_at
    assert received.tzinfo is not None
    assert abs(received - datetime.now(UTC)) < timedelta(minutes=5)


def test_parse_message_keeps_classification_headers() -> None:
    raw = _msg(
        headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes", "Precedence": "bulk"}
    )
    m = parse_message(raw, fallback_date=datetime(2026, 1, 1, tzinfo=UTC))
    assert m.headers["Auto-Submitted"] == "auto-replied"
    assert m.headers["X-Autoreply"] == "yes"
    assert m.headers["Precedence"] == "bulk"
    assert m.headers["Content-Type"].startswith("text/plain")


def test_parse_message_of_a_bounce_report() -> None:
    raw = (
        b"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example>\r\n"
        b"To: rep@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn-1@mx.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        b"\r\n--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your"
        b" message could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n"
        b"\r\nFinal-Recipient: rfc822; gone@acme.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"--B--\r\n"
    )
    m = parse_message(raw, fallback_date=datetime(2026, 1, 1, tzinfo=UTC))
    assert m.from_addr == "mailer-daemon@mx.example"
    assert m.received_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert "could not be delivered" in m.text
    assert classify(m).kind == "bounce"


def test_parse_message_survives_garbage() -> None:
    m = parse_message(b"\x00\xff not a message", fallback_date=datetime(2026, 1, 1, tzinfo=UTC))
    assert m.message_id is None
    assert m.received_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_html_to_text_blocks_lists_and_entities() -> None:
    html = "<h1>Hi&nbsp;there</h1><ul><li>one</li><li>two</li></ul><p>a &amp; b<br>c</p>"
    assert html_to_text(html) == "Hi there\n\n- one\n- two\n\na & b\nc"


# --------------------------------------------------------------------------- marking


@pytest.mark.parametrize(
    "extra", ["", NO_MOVE, NO_MOVE_NO_UIDPLUS], ids=["move", "uidplus", "expunge"]
)
def test_each_message_is_returned_once_across_polls(extra: str) -> None:
    server = _start(extra)
    try:
        for i in range(3):
            server.append(REP, _msg(message_id=f"<r{i}@acme.example>"))
        with mailbox(server, REP) as mb:
            first = mb.fetch_new()
            assert [f.message.message_id for f in first] == [
                f"<r{i}@acme.example>" for i in range(3)
            ]
            mb.mark_processed(f.uid for f in first)
            assert mb.fetch_new() == []
            mb.mark_processed([first[0].uid])  # already gone: harmless
        server.append(REP, _msg(message_id="<late@acme.example>"))
        with mailbox(server, REP) as mb:  # a new connection, as in the next poll
            [late] = mb.fetch_new()
        assert late.message.message_id == "<late@acme.example>"
        assert server.uids(REP, "INBOX") == [late.uid]
        assert len(server.uids(REP, "touchflow-processed")) == 3
    finally:
        server.stop()


def test_crash_between_fetch_and_mark_returns_the_messages_again(
    dovecot: DovecotServer, user: str
) -> None:
    dovecot.append(user, _msg())
    with mailbox(dovecot, user) as mb:
        [first] = mb.fetch_new()
    # no mark_processed: the process "crashed"; fetching did not mark anything read
    with mailbox(dovecot, user) as mb:
        [again] = mb.fetch_new()
        assert again.message.message_id == first.message.message_id
        mb.mark_processed([again.uid])
    assert dovecot.uids(user, "INBOX") == []


def test_seen_flag_mode_leaves_messages_in_place(dovecot: DovecotServer, user: str) -> None:
    dovecot.append(user, _msg(message_id="<a@acme.example>"))
    dovecot.append(user, _msg(message_id="<b@acme.example>"), flags="\\Seen")  # read by the rep
    with mailbox(dovecot, user, processed_folder=None) as mb:
        [got] = mb.fetch_new()
        assert got.message.message_id == "<a@acme.example>"
        mb.mark_processed([got.uid])
        assert mb.fetch_new() == []
    assert len(dovecot.uids(user, "INBOX")) == 2
    assert dovecot.uids(user, "INBOX", "UNSEEN") == []


def test_limit_returns_the_oldest_first(dovecot: DovecotServer, user: str) -> None:
    for i in range(5):
        dovecot.append(user, _msg(message_id=f"<m{i}@acme.example>"))
    with mailbox(dovecot, user) as mb:
        got = mb.fetch_new(limit=2)
        assert [g.message.message_id for g in got] == ["<m0@acme.example>", "<m1@acme.example>"]
        mb.mark_processed(g.uid for g in got)
        assert len(mb.fetch_new(limit=500)) == 3


def test_other_folder_and_existing_processed_folder(dovecot: DovecotServer, user: str) -> None:
    conn = dovecot.connect(user)
    conn.create('"Replies"')
    conn.create('"Done Here"')
    conn.logout()
    dovecot.append(user, _msg(), folder="Replies")
    with mailbox(dovecot, user, folder="Replies", processed_folder="Done Here") as mb:
        [got] = mb.fetch_new()
        mb.mark_processed([got.uid])
    assert dovecot.uids(user, "Replies") == []
    assert len(dovecot.uids(user, "Done Here")) == 1


# --------------------------------------------------------------------------- errors


def test_wrong_password_is_fatal(dovecot: DovecotServer, user: str) -> None:
    mb = ImapMailbox(dovecot.host, dovecot.port, user, "wrong", timeout_s=10)
    with pytest.raises(FatalError) as info:
        mb.fetch_new()
    assert info.value.connector == "imap"
    assert info.value.operation == "login"
    assert "password" not in repr(mb)


def test_server_down_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    mb = ImapMailbox("127.0.0.1", port, REP, PASSWORD, timeout_s=2)
    with pytest.raises(RetryableError) as info:
        mb.fetch_new()
    assert (info.value.connector, info.value.operation) == ("imap", "connect")
    assert isinstance(info.value.__cause__, OSError)


def test_silent_server_times_out_as_retryable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP connection, never sends a greeting
        port = listener.getsockname()[1]
        mb = ImapMailbox("127.0.0.1", port, REP, PASSWORD, timeout_s=0.3)
        with pytest.raises(RetryableError):
            mb.fetch_new()


def test_server_stopping_mid_session_is_retryable() -> None:
    server = _start()
    server.append(REP, _msg())
    mb = mailbox(server, REP)
    try:
        assert len(mb.fetch_new()) == 1
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopper.join()
        with pytest.raises(RetryableError):
            mb.fetch_new()
    finally:
        mb.close()
        server.stop()


def test_unknown_folder_is_fatal(dovecot: DovecotServer, user: str) -> None:
    with mailbox(dovecot, user, folder="Nope") as mb, pytest.raises(FatalError) as info:
        mb.fetch_new()
    assert info.value.operation == "select"


def test_non_ascii_folder_and_both_tls_modes_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        ImapMailbox("h", 1, "u", "p", folder="Antworten/Erledigt ✓")
    with pytest.raises(ConfigError):
        ImapMailbox("h", 1, "u", "p", ssl=True, starttls=True)


# --------------------------------------------------------------------------- end to end


def test_german_out_of_office_and_spanish_unsubscribe_end_to_end(
    dovecot: DovecotServer, user: str
) -> None:
    ooo = EmailMessage()
    ooo["From"] = "Klaus Weber <k.weber@firma.example>"
    ooo["To"] = user
    ooo["Subject"] = "Abwesend: Re: Kurze Frage"
    ooo["Message-ID"] = "<ooo-de@firma.example>"
    ooo["In-Reply-To"] = "<touch-7@touchflow.example>"
    ooo["Date"] = "Wed, 25 Nov 2026 09:00:00 +0100"
    ooo["Auto-Submitted"] = "auto-replied"
    ooo.set_content(
        "Vielen Dank für Ihre Nachricht.\n\n"
        "Ich bin bis einschließlich 4. Dezember nicht im Büro und ab dem 07.12.2026 "
        "wieder erreichbar. In dringenden Fällen wenden Sie sich bitte an "
        "vertrieb@firma.example.\n\nMit freundlichen Grüßen\nKlaus Weber",
        cte="quoted-printable",
    )
    unsub = EmailMessage()
    unsub["From"] = "María García <maria@empresa.example>"
    unsub["To"] = user
    unsub["Subject"] = "RE: Una pregunta rápida"
    unsub["Message-ID"] = "<unsub-es@empresa.example>"
    unsub["In-Reply-To"] = "<touch-8@touchflow.example>"
    unsub["Date"] = "Wed, 25 Nov 2026 11:30:00 +0100"
    unsub.set_content(
        "Hola,\n\nNo me interesa, por favor elimínenme de su lista y no me envíen más "
        "correos.\n\nEl mar, 24 nov 2026 a las 10:00, Rep <rep@example.com> escribió:\n"
        "> Hola María,\n> ...\n> Para darse de baja haga clic aquí.\n",
        charset="utf-8",
    )
    dovecot.append(user, bytes(ooo))
    dovecot.append(user, bytes(unsub))
    with mailbox(dovecot, user) as mb:
        fetched = mb.fetch_new()
        verdicts = {f.message.message_id: classify(f.message) for f in fetched}
        mb.mark_processed(f.uid for f in fetched)
    de = verdicts["<ooo-de@firma.example>"]
    assert de.kind == "out_of_office"
    assert de.return_date == date(2026, 12, 7)
    assert de.language == "de"
    es = verdicts["<unsub-es@empresa.example>"]
    assert es.kind == "unsubscribe"
    assert es.language == "es"
    assert es.evidence == "elimínenme"


# -- the Sent folder ------------------------------------------------------------------------


def _create(server: DovecotServer, user: str, folder: str) -> None:
    conn = server.connect(user)
    try:
        conn.create(f'"{folder}"')
    finally:
        conn.logout()


def test_find_sent_looks_message_ids_up_in_the_sent_folder(dovecot: DovecotServer, user: str):
    _create(dovecot, user, "Sent")
    for i in (1, 2):
        dovecot.append(user, _msg(message_id=f"<tf.{i}.abc@touchflow.example>"), folder="Sent")
    # A reply in the INBOX with a matching id is not proof of sending.
    dovecot.append(user, _msg(message_id="<tf.3.abc@touchflow.example>"))
    wanted = [f"<tf.{i}.abc@touchflow.example>" for i in (1, 2, 3)] + ['<bad" id@x>', "plain"]
    with mailbox(dovecot, user) as box:
        assert box.find_sent(wanted) == {
            "<tf.1.abc@touchflow.example>",
            "<tf.2.abc@touchflow.example>",
        }
        # The connection goes back to the reply folder afterwards, read-write.
        assert [m.message.message_id for m in box.fetch_new()] == ["<tf.3.abc@touchflow.example>"]
        assert box.find_sent([]) == set()
    assert dovecot.uids(user, "Sent", "UNSEEN") == dovecot.uids(user, "Sent")  # left unread


def test_find_sent_uses_the_configured_folder_and_fails_without_it(
    dovecot: DovecotServer, user: str
):
    _create(dovecot, user, "Sent Items")
    dovecot.append(user, _msg(message_id="<tf.9@touchflow.example>"), folder="Sent Items")
    with mailbox(dovecot, user, sent_folder="Sent Items") as box:
        assert box.find_sent(["<tf.9@touchflow.example>"]) == {"<tf.9@touchflow.example>"}
    with mailbox(dovecot, user, sent_folder="No Such") as box, pytest.raises(FatalError):
        box.find_sent(["<tf.9@touchflow.example>"])
