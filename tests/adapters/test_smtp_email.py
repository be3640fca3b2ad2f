"""SmtpEmailSender against a real aiosmtpd server on 127.0.0.1 (LocalSmtpSink)."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from touchflow.adapters.fakes import FakeEmailSender, FakeSmsSender
from touchflow.adapters.outbox.email_sender import OutboxEmailSender
from touchflow.adapters.smtp.email_sender import SmtpEmailSender, map_smtp_error
from touchflow.adapters.smtp.sink import LocalSmtpSink
from touchflow.errors import (
    ConfigError,
    DeliveryUnknown,
    FatalError,
    RecipientRejected,
    RetryableError,
)
from touchflow.ports import OutboundEmail, OutboundSms

MakeEmail = Callable[..., OutboundEmail]

UNSUB_URL = "https://links.acme.test/u/" + "t0k3n" * 24 + "?c=enr-1"
UNSUB_MAILTO = "mailto:unsubscribe@acme.test?subject=unsubscribe-enr-1"


def sender_for(sink: LocalSmtpSink, **kwargs: Any) -> SmtpEmailSender:
    kwargs.setdefault("local_hostname", "client.acme.test")
    kwargs.setdefault("timeout", 5.0)
    return SmtpEmailSender(sink.host, sink.port, **kwargs)


# -- plain delivery ----------------------------------------------------------


def test_batch_goes_over_one_connection_with_all_headers(
    sink: LocalSmtpSink, make_email: MakeEmail
) -> None:
    first = make_email(
        1,
        subject="Ünïcode 👋 — quick question about your Q3 pipeline review and next steps",
        text="Hé there,\n.a line starting with a dot\n..and two\n\nBest",
        in_reply_to="<prev-1@mail.acme.test>",
        references=("<root-1@mail.acme.test>", "<prev-1@mail.acme.test>"),
        list_unsubscribe_url=UNSUB_URL,
        list_unsubscribe_mailto=UNSUB_MAILTO,
        headers={"Reply-To": "rita@acme.test"},
    )
    batch = [first, make_email(2), make_email(3)]
    with sender_for(sink) as sender:
        results = sender.send_batch(batch)

    assert [r.touch_key for r in results] == [m.touch_key for m in batch]
    assert all(r.ok for r in results)
    assert [r.provider_id for r in results] == [m.message_id for m in batch]
    assert sink.count == 3
    assert sink.connection_count == 1
    assert sink.ehlo_count == 1

    received = sink.messages[0]
    assert received.envelope_from == "rep@acme.test"
    assert received.rcpt_tos == ("prospect1@example.test",)
    parsed = received.parse()
    assert parsed["Message-ID"] == "<touch-1.abc@mail.acme.test>"
    assert parsed["In-Reply-To"] == "<prev-1@mail.acme.test>"
    assert parsed["References"] == "<root-1@mail.acme.test> <prev-1@mail.acme.test>"
    assert parsed["List-Unsubscribe"] == f"<{UNSUB_URL}>, <{UNSUB_MAILTO}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["X-Touchflow-Touch"] == "enr-1:step-1:0"
    assert parsed["Subject"] == first.subject
    assert parsed["From"].addresses[0].display_name == "Rita Rep"
    assert parsed["From"].addresses[0].addr_spec == "rep@acme.test"
    assert parsed["To"] == "prospect1@example.test"
    assert parsed["Reply-To"] == "rita@acme.test"
    assert parsed["Date"].datetime is not None
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert parsed.get_content().replace("\r\n", "\n").rstrip("\n") == first.text
    # Mail clients do not decode encoded words in List-Unsubscribe: it must be plain ASCII.
    raw_header = received.raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?" not in raw_header.split(b"List-Unsubscribe:", 1)[1].split(b"\r\nList-", 1)[0]
    assert all(len(line) <= 998 for line in received.raw.split(b"\r\n"))
    assert b"\r\n" in received.raw and b"\n" not in received.raw.replace(b"\r\n", b"")


def test_headers_absent_when_not_set(sink: LocalSmtpSink, make_email: MakeEmail) -> None:
    with sender_for(sink) as sender:
        assert sender.send_batch([make_email(1, list_unsubscribe_mailto="unsub@acme.test")])[0].ok
    parsed = sink.messages[0].parse()
    assert parsed["List-Unsubscribe"] == "<mailto:unsub@acme.test>"
    for name in ("List-Unsubscribe-Post", "In-Reply-To", "References"):
        assert name not in parsed


def test_connection_is_reused_across_calls(sink: LocalSmtpSink, make_email: MakeEmail) -> None:
    with sender_for(sink) as sender:
        assert sender.send_batch([make_email(1)])[0].ok
        assert sender.send_batch([make_email(2)])[0].ok
    assert sink.count == 2
    assert sink.connection_count == 1


def test_a_large_batch_is_shared_by_a_bounded_pool_of_reused_connections(
    sink: LocalSmtpSink, make_email: MakeEmail
) -> None:
    batch = [make_email(i) for i in range(60)]
    with sender_for(sink, pool_size=3) as sender:
        results = sender.send_batch(batch)
        assert [r.touch_key for r in results] == [m.touch_key for m in batch]
        assert all(r.ok for r in results)
        assert sink.connection_count == 3  # bounded by pool_size, not one per message
        assert sender.send_batch(batch[:25])  # a later call reuses the pool's connections
        assert sink.connection_count == 3
    assert sink.count == 85
    assert sorted(m.rcpt_tos[0] for m in sink.messages[:60]) == sorted(m.to_addr for m in batch)


def test_small_batches_use_one_connection_and_pool_size_one_never_more(
    sink: LocalSmtpSink, make_email: MakeEmail
) -> None:
    with sender_for(sink) as sender:
        assert all(r.ok for r in sender.send_batch([make_email(i) for i in range(5)]))
    assert sink.connection_count == 1
    with sender_for(sink, pool_size=1) as sender:
        assert all(r.ok for r in sender.send_batch([make_email(i) for i in range(40)]))
    assert sink.connection_count == 2
    with pytest.raises(ConfigError, match="pool_size"):
        SmtpEmailSender("smtp.acme.test", 587, pool_size=0)


def test_failures_in_a_pooled_batch_stay_with_their_message(make_email: MakeEmail) -> None:
    bad = {f"gone{i}@example.test" for i in range(0, 40, 7)}
    with (
        LocalSmtpSink(reject_rcpt=bad, drop_after_data={"crash@example.test"}) as sink,
        sender_for(sink, pool_size=4) as sender,
    ):
        batch = [
            make_email(i, to_addr=f"gone{i}@example.test")
            if i % 7 == 0
            else make_email(i, to_addr="crash@example.test")
            if i == 20
            else make_email(i)
            for i in range(40)
        ]
        results = sender.send_batch(batch)
        kinds = {m.to_addr: type(r.error) for m, r in zip(batch, results, strict=True)}
        assert {a for a, k in kinds.items() if k is RecipientRejected} == bad
        assert kinds["crash@example.test"] is DeliveryUnknown
        assert sum(r.ok for r in results) == 40 - len(bad) - 1
        assert sink.count == 40 - len(bad) - 1


def test_reconnects_once_when_the_server_closed_an_idle_connection(
    make_email: MakeEmail,
) -> None:
    with LocalSmtpSink(idle_timeout=0.2) as sink, sender_for(sink) as sender:
        assert sender.send_batch([make_email(1)])[0].ok
        time.sleep(0.5)  # the server closes the idle session
        result = sender.send_batch([make_email(2)])[0]
        assert result.ok, result.error
        assert sink.count == 2
        assert sink.connection_count == 2


def test_smtp_factory_is_the_transport_seam(sink: LocalSmtpSink, make_email: MakeEmail) -> None:
    made: list[dict[str, Any]] = []

    def factory(**kwargs: Any) -> smtplib.SMTP:
        made.append(kwargs)
        return smtplib.SMTP(**kwargs)

    with sender_for(sink, smtp_factory=factory) as sender:
        assert all(r.ok for r in sender.send_batch([make_email(1), make_email(2)]))
    assert made == [
        {
            "host": sink.host,
            "port": sink.port,
            "local_hostname": "client.acme.test",
            "timeout": 5.0,
        }
    ]


# -- TLS and authentication --------------------------------------------------


@pytest.mark.parametrize(("exclude", "mechanism"), [((), "PLAIN"), (("PLAIN",), "LOGIN")])
def test_starttls_and_auth(
    tls_files: Any, make_email: MakeEmail, exclude: tuple[str, ...], mechanism: str
) -> None:
    with LocalSmtpSink(
        tls_context=tls_files.server_context(),
        require_starttls=True,
        auth=("rita", "s3cret"),
        auth_exclude=exclude,
    ) as sink:
        sender = sender_for(
            sink,
            starttls=True,
            ssl_context=tls_files.client_context(),
            username="rita",
            password="s3cret",
        )
        with sender:
            results = sender.send_batch([make_email(1), make_email(2)])
        assert all(r.ok for r in results), results
        assert sink.count == 2
        assert sink.logins == [(mechanism, "rita")]
        assert sink.connection_count == 1
        assert sink.ehlo_count == 2  # before and after STARTTLS


def test_wrong_password_is_fatal_for_every_message_and_tried_once(
    tls_files: Any, make_email: MakeEmail
) -> None:
    with LocalSmtpSink(
        tls_context=tls_files.server_context(), require_starttls=True, auth=("rita", "s3cret")
    ) as sink:
        sender = sender_for(
            sink,
            starttls=True,
            ssl_context=tls_files.client_context(),
            username="rita",
            password="wrong",
        )
        with sender:
            results = sender.send_batch([make_email(1), make_email(2), make_email(3)])
        assert [type(r.error) for r in results] == [FatalError] * 3
        error = results[0].error
        assert error is not None
        assert error.operation == "login"
        assert error.status == 535
        assert isinstance(error.__cause__, smtplib.SMTPAuthenticationError)
        # One session for the batch, not one per message (no account lock-out); smtplib
        # tries each mechanism the server offers (PLAIN, then LOGIN) within it.
        assert sink.connection_count == 1
        assert sink.auth_failures == 2
        assert sink.count == 0


def test_untrusted_certificate_is_fatal(tls_files: Any, make_email: MakeEmail) -> None:
    with LocalSmtpSink(tls_context=tls_files.server_context(), require_starttls=True) as sink:
        # No ssl_context: the default one verifies, and this certificate is self-signed.
        with sender_for(sink, starttls=True) as sender:
            result = sender.send_batch([make_email(1)])[0]
        assert isinstance(result.error, FatalError)
        assert result.error.operation == "starttls"
        assert sink.count == 0


def test_mail_without_required_starttls_is_fatal(tls_files: Any, make_email: MakeEmail) -> None:
    with LocalSmtpSink(tls_context=tls_files.server_context(), require_starttls=True) as sink:
        with sender_for(sink) as sender:
            result = sender.send_batch([make_email(1)])[0]
        assert isinstance(result.error, FatalError)
        assert result.error.status == 530


def test_implicit_tls(tls_files: Any, make_email: MakeEmail) -> None:
    with LocalSmtpSink(tls_context=tls_files.server_context(), implicit_tls=True) as sink:
        with sender_for(sink, ssl=True, ssl_context=tls_files.client_context()) as sender:
            assert sender.send_batch([make_email(1)])[0].ok
        assert sink.count == 1


def test_tls_and_starttls_together_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        SmtpEmailSender("smtp.acme.test", 587, ssl=True, starttls=True)
    with pytest.raises(ConfigError, match="password"):
        SmtpEmailSender("smtp.acme.test", 587, username="rita")


# -- failures ----------------------------------------------------------------


def test_rejected_and_deferred_recipients_do_not_stop_the_batch(make_email: MakeEmail) -> None:
    with LocalSmtpSink(
        reject_rcpt={"gone@example.test"}, tempfail_rcpt={"busy@example.test"}
    ) as sink:
        batch = [
            make_email(1),
            make_email(2, to_addr="gone@example.test"),
            make_email(3, to_addr="busy@example.test"),
            make_email(4),
        ]
        with sender_for(sink) as sender:
            results = sender.send_batch(batch)

        assert results[0].ok and results[3].ok
        rejected, deferred = results[1].error, results[2].error
        assert isinstance(rejected, RecipientRejected)
        assert rejected.kind == "bounce"
        assert (rejected.status, rejected.vendor_code, rejected.operation) == (550, "5.1.1", "rcpt")
        assert isinstance(rejected.__cause__, smtplib.SMTPRecipientsRefused)
        assert isinstance(deferred, RetryableError)
        assert deferred.status == 451
        assert [m.rcpt_tos for m in sink.messages] == [
            ("prospect1@example.test",),
            ("prospect4@example.test",),
        ]
        assert sink.connection_count == 1  # RSET, not a new connection


def test_connection_refused_is_retryable_for_every_message(
    closed_port: int, make_email: MakeEmail
) -> None:
    sender = SmtpEmailSender("127.0.0.1", closed_port, local_hostname="c.test", timeout=2)
    results = sender.send_batch([make_email(1), make_email(2), make_email(3)])
    assert [type(r.error) for r in results] == [RetryableError] * 3
    assert all(r.error is not None and r.error.operation == "connect" for r in results)
    assert isinstance(results[0].error.__cause__, ConnectionRefusedError)  # type: ignore[union-attr]
    assert results[0].error is not results[1].error  # one error object per message
    sender.close()


def test_drop_after_data_is_delivery_unknown_and_the_batch_goes_on(
    make_email: MakeEmail,
) -> None:
    with LocalSmtpSink(drop_after_data={"crash@example.test"}) as sink:
        batch = [make_email(1, to_addr="crash@example.test"), make_email(2)]
        with sender_for(sink) as sender:
            results = sender.send_batch(batch)
        error = results[0].error
        assert isinstance(error, DeliveryUnknown)
        assert error.operation == "data"
        assert results[1].ok
        assert len(sink.dropped) == 1  # the data did reach the server
        assert sink.count == 1
        assert sink.connection_count == 2  # the lost connection was replaced


def test_the_sink_is_idle_only_once_every_session_has_ended() -> None:
    """wait_idle() is how a crash test knows the sink will record nothing more."""
    with LocalSmtpSink() as sink:
        sink.wait_idle(timeout=5)  # the controller's own startup probe has ended
        client = smtplib.SMTP(sink.host, sink.port)
        client.ehlo("client")
        with pytest.raises(TimeoutError, match="1 SMTP session"):
            sink.wait_idle(timeout=0.2)
        client.sendmail("a@example.test", ["b@example.test"], b"Subject: hi\r\n\r\nbody\r\n")
        client.close()  # no QUIT: the server sees the stream end, as after kill -9
        sink.wait_idle(timeout=10)
        assert sink.count == 1


def test_a_message_that_cannot_be_built_fails_alone(
    sink: LocalSmtpSink, make_email: MakeEmail
) -> None:
    batch = [
        make_email(1, headers={"X-Campaign": "q3\r\nBcc: everyone@example.test"}),
        make_email(2, headers={"Message-ID": "<other@x>"}),
        make_email(3),
    ]
    with sender_for(sink) as sender:
        results = sender.send_batch(batch)
    assert [type(r.error) for r in results[:2]] == [FatalError, FatalError]
    assert all(r.error is not None and r.error.operation == "build" for r in results[:2])
    assert results[2].ok
    assert sink.count == 1


def test_non_ascii_address_uses_smtputf8(sink: LocalSmtpSink, make_email: MakeEmail) -> None:
    with sender_for(sink) as sender:
        result = sender.send_batch([make_email(1, to_addr="jürgen@例え.test")])[0]
    assert result.ok, result.error
    assert sink.messages[0].rcpt_tos == ("jürgen@例え.test",)


@pytest.mark.parametrize(
    ("exc", "phase", "expected"),
    [
        (smtplib.SMTPConnectError(421, b"busy"), "connect", RetryableError),
        (TimeoutError("timed out"), "connect", RetryableError),
        (socket.gaierror(-2, "Name or service not known"), "connect", RetryableError),
        (smtplib.SMTPServerDisconnected("closed"), "mail", RetryableError),
        (smtplib.SMTPServerDisconnected("closed"), "data_cmd", RetryableError),
        (smtplib.SMTPServerDisconnected("closed"), "data", DeliveryUnknown),
        (TimeoutError("timed out"), "data", DeliveryUnknown),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad"), "login", FatalError),
        (smtplib.SMTPNotSupportedError("no STARTTLS"), "starttls", FatalError),
        (smtplib.SMTPException("No suitable authentication method"), "login", FatalError),
        (smtplib.SMTPSenderRefused(553, b"5.7.1 not yours", "a@b"), "mail", FatalError),
        (smtplib.SMTPSenderRefused(451, b"4.3.0 later", "a@b"), "mail", RetryableError),
        (smtplib.SMTPResponseException(452, b"4.2.2 mailbox full"), "rcpt", RetryableError),
        (smtplib.SMTPResponseException(550, b"5.1.1 unknown"), "rcpt", RecipientRejected),
        (smtplib.SMTPDataError(554, b"5.7.1 spam"), "data", FatalError),
        (smtplib.SMTPDataError(550, b"5.1.1 no such user"), "data", RecipientRejected),
        (smtplib.SMTPDataError(451, b"4.3.0 try later"), "data", RetryableError),
        (smtplib.SMTPDataError(554, b"no valid recipients"), "data_cmd", FatalError),
    ],
)
def test_error_mapping(exc: Exception, phase: Any, expected: type) -> None:
    error = map_smtp_error(exc, phase)
    assert type(error) is expected
    assert error.connector == "smtp"
    assert error.operation == phase
    assert error.__cause__ is exc


# -- the EmailSender contract, shared by every email sender ---------------------


@pytest.fixture(params=["smtp", "outbox", "fake"])
def any_sender(request: pytest.FixtureRequest, sink: LocalSmtpSink, tmp_path: Path) -> Any:
    sender: Any
    if request.param == "smtp":
        sender = sender_for(sink)
    elif request.param == "outbox":
        sender = OutboxEmailSender(tmp_path / "outbox")
    else:
        sender = FakeEmailSender()
    yield sender
    sender.close()


def test_email_sender_contract(any_sender: Any, make_email: MakeEmail) -> None:
    batch = [make_email(n) for n in range(1, 6)]
    results = any_sender.send_batch(batch)
    assert [r.touch_key for r in results] == [m.touch_key for m in batch]
    assert all(r.ok and r.provider_id for r in results)
    assert len({r.provider_id for r in results}) == len(batch)
    assert any_sender.send_batch([]) == []


def test_fakes_record_and_fail_on_request(make_email: MakeEmail) -> None:
    bounce = RecipientRejected("no such user", connector="fake", operation="send")
    email_sender = FakeEmailSender(fail={"prospect2@example.test": bounce})
    results = email_sender.send_batch([make_email(1), make_email(2), make_email(3)])
    assert [r.provider_id for r in results] == ["fake-1", None, "fake-2"]
    assert results[1].error is bounce
    assert [m.to_addr for m in email_sender.sent] == [
        "prospect1@example.test",
        "prospect3@example.test",
    ]
    assert len(email_sender.attempts) == 3

    sms = FakeSmsSender(fail={"+15550002": bounce})
    texts = [OutboundSms(f"k{n}", "+15550000", f"+1555000{n}", "hi") for n in (1, 2)]
    assert [r.ok for r in sms.send_batch(texts)] == [True, False]
    assert sms.sent == texts[:1]


# -- the CLI -------------------------------------------------------------------


def test_sink_cli_receives_and_writes_files(tmp_path: Path, make_email: MakeEmail) -> None:
    root = Path(__file__).resolve().parents[2]
    pythonpath = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "touchflow.adapters.smtp.sink"),
            *("--port", "0", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in banner, banner
        port = int(banner.split("127.0.0.1:", 1)[1].split(",")[0])
        sender = SmtpEmailSender("127.0.0.1", port, local_hostname="c.test", timeout=5)
        with sender:
            assert sender.send_batch([make_email(1)])[0].ok
        assert "prospect1@example.test" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert len(list(tmp_path.glob("*.eml"))) == 1
