"""Send email through an SMTP server: a rep's mailbox (Google Workspace, Microsoft 365) or a relay.

Talks to: any SMTP server (RFC 5321) through :mod:`smtplib`, in plain text,
with STARTTLS (RFC 3207, usually port 587) or with implicit TLS (RFC 8314,
usually port 465), optionally with AUTH (smtplib picks CRAM-MD5, PLAIN or
LOGIN, whichever the server offers first in that order).

Limits: mailbox providers cap what one user may send (Google Workspace about
2,000 messages a day, Microsoft 365 10,000 recipients a day and 30 messages a
minute). This connector does not throttle: daily caps belong to routing and
the cadence engine, which know the sender. One recipient per message.

Quirks:

* A small pool of connections (``pool_size``, 4 by default) is reused for
  batches and across calls; a batch opens one more connection per
  ``_PER_CONNECTION`` messages, up to the pool size, and the connections send
  in parallel threads (SMTP is latency-bound: one connection waits for the
  server's reply to every command). Keep the pool small: Microsoft 365
  allows 3 concurrent connections per mailbox, Google about 10. Servers
  drop idle connections (often after one to five minutes); when MAIL FROM
  meets such a dropped connection (or a ``421``) nothing of that message has
  been sent yet, so the sender reconnects once and carries on. After a failed
  transaction the connection is reset with ``RSET`` (or dropped when its
  state is unknown).
* The only ambiguous moment is after the message data went out and before the
  server's final reply. A failure there is :class:`~touchflow.errors.DeliveryUnknown`:
  the server may have queued the message, so the ledger marks the touch
  ``unknown`` and nothing resends it blindly. This is why the sender drives
  MAIL / RCPT / DATA itself instead of calling ``send_message``.
* smtplib's own TLS default does not verify certificates; this sender uses
  :func:`ssl.create_default_context` unless a context is passed in.
* The provider id is the Message-ID we generated: the queue id in the server's
  ``250`` reply means nothing to anybody else (it is logged at debug level).
* Headers that carry identifiers or URLs (Message-ID, References,
  List-Unsubscribe, ...) are folded at spaces only and never RFC 2047 encoded:
  Python's default folding encodes a long URL, and mail clients do not decode
  encoded words in List-Unsubscribe.
* Bodies are text/plain UTF-8, quoted-printable when not ASCII, so servers
  without 8BITMIME take them. Non-ASCII addresses need SMTPUTF8 on the server.

Every smtplib, socket and ssl exception becomes a :mod:`touchflow.errors`
error in :func:`map_smtp_error` and nowhere else.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr
from ssl import SSLContext
from typing import Any, Literal

from touchflow.adapters.closing import ClosesOnExit
from touchflow.adapters.mail_headers import standard_headers
from touchflow.errors import (
    ConfigError,
    ConnectorError,
    DeliveryUnknown,
    FatalError,
    RecipientRejected,
    RetryableError,
)
from touchflow.ports import OutboundEmail, SendResult

__all__ = ["MESSAGE_POLICY", "Phase", "SmtpEmailSender", "build_message", "map_smtp_error"]

_log = logging.getLogger(__name__)

CONNECTOR = "smtp"

DEFAULT_POOL_SIZE = 4
# Opening a connection costs a handshake (and TLS and AUTH): a batch uses one
# more connection per this many messages, up to the pool size.
_PER_CONNECTION = 10

Phase = Literal["build", "connect", "ehlo", "starttls", "login", "mail", "rcpt", "data_cmd", "data"]
"""Where an SMTP exchange failed.

``data_cmd`` is the DATA command up to the server's ``354``: no message content
has been sent yet. ``data`` is everything after it, up to the final reply.
"""

# A failure in one of these phases means there is no session at all: every
# other message of the batch would fail the same way, so it is not retried.
_SESSION_PHASES: frozenset[str] = frozenset({"connect", "ehlo", "starttls", "login"})

# Headers whose value is an identifier or a URL: folded at spaces only, never encoded.
_VERBATIM_HEADERS = frozenset(
    {
        "message-id",
        "in-reply-to",
        "references",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "x-touchflow-touch",
    }
)

# Headers that OutboundEmail fields or the body own; msg.headers may not set them.
_PROTECTED_HEADERS = frozenset(
    {
        "message-id",
        "x-touchflow-touch",
        "from",
        "to",
        "subject",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ":"
_ENHANCED_CODE = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class _TouchflowPolicy(EmailPolicy):
    """``email.policy.SMTP`` (CRLF line endings) that leaves identifier and URL headers alone."""

    def fold(self, name: str, value: Any) -> str:
        """Fold a header; see :func:`_fold_verbatim` for the headers handled here."""
        folded = _fold_verbatim(name, value, self.max_line_length, self.linesep)
        return folded if folded is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        """Fold a header to bytes; see :func:`_fold_verbatim`."""
        folded = _fold_verbatim(name, value, self.max_line_length, self.linesep)
        if folded is None:
            return super().fold_binary(name, value)
        return folded.encode("ascii")


def _fold_verbatim(name: str, value: Any, max_len: int | None, linesep: str) -> str | None:
    """Fold an ASCII identifier/URL header at spaces only; ``None`` for any other header.

    A single token longer than the line limit stays whole on its own line:
    RFC 5322 only requires lines under 998 characters, and a URL split by an
    encoded word no longer works.
    """
    text = str(value)
    if name.lower() not in _VERBATIM_HEADERS or not text.isascii():
        return None
    limit = max_len or 998
    lines: list[str] = []
    line = f"{name}:"
    for token in text.split():
        if len(line) + 1 + len(token) > limit and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return linesep.join(lines) + linesep


MESSAGE_POLICY: EmailPolicy = _TouchflowPolicy(linesep="\r\n")
"""The policy every built message carries: ``email.policy.SMTP`` plus verbatim ID/URL headers."""

_UTF8_POLICY: EmailPolicy = MESSAGE_POLICY.clone(utf8=True)


def build_message(msg: OutboundEmail) -> EmailMessage:
    """Build the RFC 5322 message for ``msg`` (see :meth:`SmtpEmailSender.build_message`)."""
    em = EmailMessage(policy=MESSAGE_POLICY)
    em["From"] = formataddr((msg.from_name or "", msg.from_addr))
    em["To"] = msg.to_addr
    em["Subject"] = msg.subject
    em["Date"] = format_datetime(datetime.now(UTC))
    for name, value in standard_headers(msg).items():
        em[name] = value
    for name, value in msg.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _PROTECTED_HEADERS:
            raise ValueError(f"header {name!r} is set by touchflow and cannot be overridden")
        del em[name]  # an extra header replaces ours (Date, for instance)
        em[name] = value
    # Quoted-printable for non-ASCII text: no dependency on the server's 8BITMIME.
    cte = None if msg.text.isascii() else "quoted-printable"
    em.set_content(msg.text, charset="utf-8", cte=cte)
    return em


def _reply(exc: BaseException) -> tuple[int | None, str]:
    """The SMTP reply code and text carried by an smtplib exception, if any."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code, text = next(iter(exc.recipients.values()))
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, text = exc.smtp_code, exc.smtp_error
    else:
        return None, str(exc) or type(exc).__name__
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return code, " ".join(str(text).split())


def map_smtp_error(exc: BaseException, phase: Phase) -> ConnectorError:
    """Turn an smtplib, socket or ssl exception into a touchflow error; the one place that does.

    ``phase`` says how far the exchange got, which decides what a lost
    connection means: before the message data went out it is retryable, after
    it the delivery is unknown. The returned error has ``exc`` as its
    ``__cause__``, as if raised ``from`` it.
    """
    code, text = _reply(exc)
    match = _ENHANCED_CODE.match(text)
    enhanced = match.group(1) if match else None
    kw: dict[str, Any] = {
        "connector": CONNECTOR,
        "operation": phase,
        "status": code if code is not None and code > 0 else None,
        "vendor_code": enhanced,
    }
    detail = f"{code} {text}" if code is not None else f"{type(exc).__name__}: {text}"
    error: ConnectorError
    if phase == "data" and (code is None or not 400 <= code < 600):
        # The data went out and no clear verdict came back: the server may have queued it.
        error = DeliveryUnknown(f"no final reply after the message data was sent ({detail})", **kw)
    elif isinstance(exc, ssl.SSLCertVerificationError):
        error = FatalError(f"server TLS certificate rejected ({detail})", **kw)
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        error = FatalError(f"server does not support what is configured ({detail})", **kw)
    elif isinstance(exc, smtplib.SMTPConnectError):
        error = RetryableError(f"server refused the session ({detail})", **kw)
    elif code is not None and 400 <= code < 500:
        error = RetryableError(f"temporary failure ({detail})", **kw)
    elif code is not None and 500 <= code < 600:
        # 5.1.x (bad mailbox) and 5.2.x (mailbox status) mean this recipient, even after DATA.
        recipient = phase == "rcpt" or (
            phase == "data" and enhanced is not None and enhanced.startswith(("5.1.", "5.2."))
        )
        if recipient:
            error = RecipientRejected(f"recipient rejected ({detail})", kind="bounce", **kw)
        else:
            error = FatalError(f"rejected ({detail})", **kw)
    elif code is not None or _transport_error(exc):
        # Refused, reset, timed out, DNS failure, TLS handshake, garbled reply:
        # nothing of the message was accepted, the same call may work later.
        error = RetryableError(f"connection failed ({detail})", **kw)
    else:
        # smtplib's "no suitable authentication method", an unencodable address, a bug.
        error = FatalError(f"cannot send ({detail})", **kw)
    error.__cause__ = exc
    return error


class _SmtpFailure(Exception):
    """Internal: an exception and the phase it happened in."""

    def __init__(self, exc: Exception, phase: Phase) -> None:
        super().__init__(f"{phase}: {exc!r}")
        self.exc = exc
        self.phase = phase


def _transport_error(exc: BaseException) -> bool:
    """A lost, refused or timed-out connection (smtplib's own errors also subclass OSError)."""
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)


def _connection_survives(exc: Exception) -> bool:
    """Whether the session is still in a known state after ``exc`` (the server answered)."""
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return True
    code, _ = _reply(exc)
    return code is not None and 400 <= code < 600 and code != 421


def _dropped(exc: Exception) -> bool:
    """Whether ``exc`` means the server closed the connection (or is closing it: 421)."""
    if _transport_error(exc):
        return True
    code, _ = _reply(exc)
    return code == 421


def _close_quietly(conn: smtplib.SMTP) -> None:
    try:
        conn.close()
    except Exception:  # closing a broken socket may fail; there is nothing left to do
        _log.debug("closing SMTP connection failed", exc_info=True)


class _Session:
    """One pooled connection (``None`` until opened, or after it was dropped)."""

    __slots__ = ("conn",)

    def __init__(self) -> None:
        self.conn: smtplib.SMTP | None = None

    def drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            _close_quietly(conn)


class _Run:
    """One ``send_batch`` call shared by the pool's threads: the next message, the results."""

    def __init__(self, messages: Sequence[OutboundEmail]) -> None:
        self.messages = messages
        self.results: list[SendResult | None] = [None] * len(messages)
        self.no_session: _SmtpFailure | None = None
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            i = self._next
            if i >= len(self.messages):
                return None
            self._next = i + 1
            return i


class SmtpEmailSender(ClosesOnExit):
    """:class:`~touchflow.ports.EmailSender` over SMTP, one connection reused across messages.

    ``smtp_factory`` opens the connection: it is called like the default,
    ``smtplib.SMTP`` (``smtplib.SMTP_SSL`` when ``ssl`` is true), with the
    keyword arguments ``host``, ``port``, ``local_hostname`` and ``timeout``,
    plus ``context`` when ``ssl`` is true, and returns a connected
    :class:`smtplib.SMTP` that has read the server's greeting.

    Calls are serialised by a lock; within a call up to ``pool_size``
    connections send in parallel, each one message at a time.
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        ssl_context: SSLContext | None = None,
        smtp_factory: Callable[..., smtplib.SMTP] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if pool_size < 1:
            raise ConfigError(f"SMTP: pool_size must be at least 1, got {pool_size}")
        if ssl and starttls:
            raise ConfigError(
                "SMTP: choose implicit TLS (ssl, usually port 465) or STARTTLS "
                "(starttls, usually port 587), not both"
            )
        if username is not None and password is None:
            raise ConfigError(f"SMTP: a password is required for username {username!r}")
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._implicit_tls = ssl
        self._timeout = timeout
        self._local_hostname = local_hostname
        self._ssl_context = ssl_context
        self._smtp_factory = smtp_factory
        self._pool_size = pool_size
        self._sessions: list[_Session] = []  # idle between calls, reused
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        tls = "ssl" if self._implicit_tls else "starttls" if self._starttls else "plain"
        return f"SmtpEmailSender({self._host}:{self._port}, {tls}, user={self._username!r})"

    @staticmethod
    def build_message(msg: OutboundEmail) -> EmailMessage:
        """Build the RFC 5322 message: threading, RFC 8058 unsubscribe and touch-key headers.

        Raises ``ValueError`` for a header that cannot be written (CR/LF in a
        value, an invalid name, or an attempt to override a header touchflow
        owns such as Message-ID).
        """
        return build_message(msg)

    def send_batch(self, messages: Sequence[OutboundEmail]) -> list[SendResult]:
        """Send each message; return one result per message, in order. Never raises for a message.

        The messages are shared out to up to ``pool_size`` connections, which
        take the next unsent message as they finish one. If no session can be
        established (refused, TLS, authentication), the remaining messages get
        the same error without another attempt.
        """
        if not messages:
            return []
        with self._lock:
            wanted = min(self._pool_size, -(-len(messages) // _PER_CONNECTION))
            while len(self._sessions) < wanted:
                self._sessions.append(_Session())
            run = _Run(messages)
            sessions = self._sessions[:wanted]
            if wanted == 1:
                self._work(sessions[0], run)
            else:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._pool_size - 1, thread_name_prefix="smtp-pool"
                    )
                futures = [self._executor.submit(self._work, s, run) for s in sessions[1:]]
                self._work(sessions[0], run)
                for f in futures:
                    f.result()
            return [r for r in run.results if r is not None]

    def _work(self, session: _Session, run: _Run) -> None:
        """Send messages of ``run`` through ``session`` until none is left."""
        while (i := run.take()) is not None:
            msg = run.messages[i]
            if run.no_session is not None:
                error = map_smtp_error(run.no_session.exc, run.no_session.phase)
                run.results[i] = SendResult(msg.touch_key, error=error)
                continue
            try:
                provider_id = self._send_one(session, msg)
            except _SmtpFailure as failure:
                if failure.phase in _SESSION_PHASES:
                    run.no_session = failure
                error = map_smtp_error(failure.exc, failure.phase)
                _log.info("smtp send of touch %s failed: %s", msg.touch_key, error)
                run.results[i] = SendResult(msg.touch_key, error=error)
            except Exception as exc:  # a bug must not lose the other results
                _log.exception("smtp send of touch %s crashed", msg.touch_key)
                run.results[i] = SendResult(msg.touch_key, error=map_smtp_error(exc, "build"))
            else:
                run.results[i] = SendResult(msg.touch_key, provider_id=provider_id)

    def close(self) -> None:
        """Say QUIT and close the connections that are open. The sender stays usable."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        for session in sessions:
            conn, session.conn = session.conn, None
            if conn is None:
                continue
            try:
                conn.quit()
            except Exception:  # the server may be gone already; closing is all that matters
                _log.debug("SMTP QUIT failed", exc_info=True)
            finally:
                _close_quietly(conn)

    # -- one message -------------------------------------------------------

    def _send_one(self, session: _Session, msg: OutboundEmail) -> str:
        smtputf8 = not (msg.from_addr.isascii() and msg.to_addr.isascii())
        try:
            policy = _UTF8_POLICY if smtputf8 else MESSAGE_POLICY
            payload = _dot_stuff(build_message(msg).as_bytes(policy=policy))
        except Exception as exc:
            raise _SmtpFailure(exc, "build") from exc

        reused = session.conn is not None
        try:
            self._transaction(self._connection(session), msg, payload, smtputf8)
        except _SmtpFailure as failure:
            if not (reused and failure.phase == "mail" and _dropped(failure.exc)):
                self._recover(session, failure)
                raise
            # An idle connection the server closed: nothing of this message went out.
            _log.debug("SMTP connection was closed while idle; reconnecting")
            session.drop()
            try:
                self._transaction(self._connection(session), msg, payload, smtputf8)
            except _SmtpFailure as second:
                self._recover(session, second)
                raise
        return msg.message_id

    def _transaction(
        self, conn: smtplib.SMTP, msg: OutboundEmail, payload: bytes, smtputf8: bool
    ) -> None:
        phase: Phase = "mail"
        try:
            options: list[str] = []
            if smtputf8:
                if not conn.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError(
                        "an address is not ASCII and the server does not support SMTPUTF8"
                    )
                options.append("SMTPUTF8")
                if conn.has_extn("8bitmime"):
                    options.append("BODY=8BITMIME")
            code, reply = conn.mail(msg.from_addr, options)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, msg.from_addr)
            phase = "rcpt"
            code, reply = conn.rcpt(msg.to_addr)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({msg.to_addr: (code, reply)})
            phase = "data_cmd"
            conn.putcmd("data")
            code, reply = conn.getreply()
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            phase = "data"
            conn.send(payload)
            code, reply = conn.getreply()
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        except Exception as exc:
            raise _SmtpFailure(exc, phase) from exc
        _log.debug("smtp accepted %s for %s: %s %r", msg.message_id, msg.to_addr, code, reply)

    def _recover(self, session: _Session, failure: _SmtpFailure) -> None:
        """Leave the connection clean for the next message, or drop it if its state is unknown."""
        conn = session.conn
        if conn is None:
            return
        if not _connection_survives(failure.exc):
            session.drop()
            return
        if failure.phase == "data":
            return  # the server answered the data: the transaction is over
        try:
            code, _ = conn.rset()
        except Exception:
            code = -1
        if code != 250:
            session.drop()

    # -- the connection ----------------------------------------------------

    def _connection(self, session: _Session) -> smtplib.SMTP:
        if session.conn is None:
            session.conn = self._open()
        return session.conn

    def _tls_context(self) -> SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _open(self) -> smtplib.SMTP:
        phase: Phase = "connect"
        conn: smtplib.SMTP | None = None
        try:
            kwargs: dict[str, Any] = {
                "host": self._host,
                "port": self._port,
                "local_hostname": self._local_hostname,
                "timeout": self._timeout,
            }
            if self._implicit_tls:
                kwargs["context"] = self._tls_context()
            factory = self._smtp_factory or (
                smtplib.SMTP_SSL if self._implicit_tls else smtplib.SMTP
            )
            # Connecting in the constructor also records the host name that
            # STARTTLS checks the certificate against.
            conn = factory(**kwargs)
            phase = "ehlo"
            conn.ehlo_or_helo_if_needed()
            if self._starttls:
                phase = "starttls"
                conn.starttls(context=self._tls_context())
                phase = "ehlo"
                code, reply = conn.ehlo()
                if code != 250:
                    raise smtplib.SMTPHeloError(code, reply)
            if self._username is not None:
                phase = "login"
                conn.login(self._username, self._password or "")
        except Exception as exc:
            if conn is not None:
                _close_quietly(conn)
            raise _SmtpFailure(exc, phase) from exc
        return conn


def _dot_stuff(raw: bytes) -> bytes:
    """Escape leading dots and add the end-of-data marker (RFC 5321 section 4.5.2)."""
    data = _LEADING_DOT.sub(b"..", raw)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"
