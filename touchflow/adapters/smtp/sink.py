"""A real SMTP server on 127.0.0.1 that keeps what it receives: for the demo and the tests.

Talks to: SMTP clients, through aiosmtpd (https://aiosmtpd.readthedocs.io/)
running its asyncio loop in a background thread. Nothing is relayed: messages
are kept in memory and, when a directory is given, written there as ``.eml``
files, byte for byte as received (after SMTP dot-unstuffing).

Limits: meant for one process on a developer machine or in CI, not for
production traffic; messages stay in memory for the sink's lifetime.

Quirks and test switches:

* ``port=0`` binds a free port chosen by the OS; read it back from ``port``.
* ``tls_context`` offers STARTTLS (``require_starttls`` refuses mail without
  it) or, with ``implicit_tls``, wraps the whole connection in TLS.
* ``auth`` requires AUTH (PLAIN and LOGIN) with one username and password;
  aiosmtpd refuses AUTH before TLS unless ``auth_require_tls`` is false.
* ``reject_rcpt`` answers ``550 5.1.1``, ``tempfail_rcpt`` answers ``451 4.3.0``
  to RCPT TO for those addresses (compared case-insensitively).
* ``drop_after_data``: for those recipients the sink reads the whole message,
  then drops the connection without the final ``250``, as a server that crashed
  or timed out after the data went out. Such messages land in ``dropped``.
* ``idle_timeout`` closes connections idle that long, as real servers do.
* ``data_delay_s`` waits that long before the final reply to each message's
  data (a real server's queueing and the round trips), without blocking the
  other connections: what makes a pool of connections measurable here.

Run it by hand: ``python -m touchflow.adapters.smtp.sink --port 8025 --dir outbox/sink``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import os
import signal
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["LocalSmtpSink", "ReceivedMessage", "main"]

_SERVER_NAME = "touchflow-sink.localhost"  # avoids socket.getfqdn(), slow without DNS


class ReceivedMessage(NamedTuple):
    """One message as the sink received it."""

    envelope_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    def parse(self) -> EmailMessage:
        """The message parsed with the modern email API."""
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    """aiosmtpd handler: counts sessions, answers RCPT per the test switches, stores DATA."""

    def __init__(self, sink: LocalSmtpSink) -> None:
        self._sink = sink

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        self._sink._greeted(server)
        return responses

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        session.host_name = hostname
        self._sink._greeted(server)
        return f"250 {server.hostname}"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        key = address.lower()
        if key in self._sink.reject_rcpt:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if key in self._sink.tempfail_rcpt:
            return f"451 4.3.0 <{address}>: Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = ReceivedMessage(
            envelope_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape"),
        )
        if any(r.lower() in self._sink.drop_after_data for r in message.rcpt_tos):
            self._sink._record_dropped(message)
            transport = server.transport
            if transport is not None:
                transport.abort()
            # connection_lost() cancels this coroutine; the sleep only guards against a hang.
            await asyncio.sleep(30)
            return "451 4.3.0 dropped"
        if self._sink.data_delay_s > 0:
            await asyncio.sleep(self._sink.data_delay_s)
        name = self._sink._record(message)
        return f"250 2.0.0 Ok: queued as {name}"


class _SMTP(SMTP):
    """aiosmtpd's protocol, telling the sink when a connection's session starts and ends."""

    def __init__(self, sink: LocalSmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink = sink

    async def _handle_client(self) -> None:
        # A client that dies may leave its last message in the socket buffer: the sink
        # records it or, once it sees the stream end, drops it (see wait_idle()).
        self._sink._session(+1)
        try:
            await super()._handle_client()
        finally:
            self._sink._session(-1)


class _Controller(Controller):
    """aiosmtpd's threaded controller, able to bind port 0 and report the port it got."""

    def __init__(self, sink: LocalSmtpSink, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self._sink = sink

    def factory(self) -> SMTP:
        return _SMTP(self._sink, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None and self.server.sockets:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class LocalSmtpSink:
    """A local SMTP server that keeps messages; a context manager that starts and stops it.

    >>> with LocalSmtpSink() as sink:  # doctest: +SKIP
    ...     SmtpEmailSender(sink.host, sink.port).send_batch([...])
    ...     sink.count
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
        auth_exclude: Iterable[str] = (),
        reject_rcpt: Iterable[str] = (),
        tempfail_rcpt: Iterable[str] = (),
        drop_after_data: Iterable[str] = (),
        idle_timeout: float = 300.0,
        on_message: Callable[[ReceivedMessage], None] | None = None,
        data_delay_s: float = 0.0,
    ) -> None:
        if (require_starttls or implicit_tls) and tls_context is None:
            raise ValueError("require_starttls and implicit_tls need a tls_context")
        self.directory = directory
        self.reject_rcpt = frozenset(a.lower() for a in reject_rcpt)
        self.tempfail_rcpt = frozenset(a.lower() for a in tempfail_rcpt)
        self.drop_after_data = frozenset(a.lower() for a in drop_after_data)
        self.data_delay_s = data_delay_s
        self._bind_host = host
        self._bind_port = port
        self._auth = auth
        self._on_message = on_message
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._dropped: list[ReceivedMessage] = []
        self._logins: list[tuple[str, str]] = []
        self._auth_failures = 0
        self._ehlo_count = 0
        self._connection_count = 0
        self._seq = 0
        smtp_kwargs: dict[str, Any] = {
            "server_hostname": _SERVER_NAME,
            "timeout": idle_timeout,
            "ready_timeout": 5.0,
        }
        if tls_context is not None and not implicit_tls:
            smtp_kwargs["tls_context"] = tls_context
            smtp_kwargs["require_starttls"] = require_starttls
        if implicit_tls:
            smtp_kwargs["ssl_context"] = tls_context
        if auth is not None:
            smtp_kwargs["authenticator"] = self._authenticate
            smtp_kwargs["auth_required"] = True
            smtp_kwargs["auth_require_tls"] = auth_require_tls
            smtp_kwargs["auth_exclude_mechanism"] = list(auth_exclude)
        self._open_sessions = 0
        self._idle = threading.Condition(self._lock)
        self._controller = _Controller(self, hostname=host, port=port, **smtp_kwargs)
        self._running = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in a background thread; returns once the server answers."""
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._running:
            self._controller.stop()
            self._running = False
            self._controller.port = self._bind_port  # a restart binds afresh

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """The address the sink listens on."""
        return self._bind_host

    @property
    def port(self) -> int:
        """The port the sink listens on (the one the OS chose when started with port 0)."""
        return int(self._controller.port)

    # -- what was received (thread safe) -----------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the messages accepted with 250, in arrival order."""
        with self._lock:
            return list(self._messages)

    @property
    def dropped(self) -> list[ReceivedMessage]:
        """Messages received in full but answered by dropping the connection."""
        with self._lock:
            return list(self._dropped)

    @property
    def count(self) -> int:
        """How many messages were accepted."""
        with self._lock:
            return len(self._messages)

    @property
    def ehlo_count(self) -> int:
        """How many EHLO/HELO commands were received (a STARTTLS session says EHLO twice)."""
        with self._lock:
            return self._ehlo_count

    @property
    def connection_count(self) -> int:
        """How many connections greeted the server (the controller's startup probe does not)."""
        with self._lock:
            return self._connection_count

    @property
    def logins(self) -> list[tuple[str, str]]:
        """Successful AUTH exchanges as (mechanism, username)."""
        with self._lock:
            return list(self._logins)

    @property
    def auth_failures(self) -> int:
        """How many AUTH attempts failed."""
        with self._lock:
            return self._auth_failures

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every connection's session has ended.

        A client killed mid-send may have handed the server a whole message that
        the sink has not processed yet; aiosmtpd either records it or drops it
        when it sees the stream end. Once idle, what the sink holds is final.
        """
        with self._idle:
            if not self._idle.wait_for(lambda: self._open_sessions == 0, timeout):
                raise TimeoutError(f"{self._open_sessions} SMTP session(s) still open")

    def clear(self) -> None:
        """Forget received messages and counters."""
        with self._lock:
            self._messages.clear()
            self._dropped.clear()
            self._logins.clear()
            self._auth_failures = self._ehlo_count = self._connection_count = 0

    # -- called from the server thread -------------------------------------

    def _session(self, delta: int) -> None:
        with self._idle:
            self._open_sessions += delta
            self._idle.notify_all()

    def _greeted(self, server: SMTP) -> None:
        with self._lock:
            self._ehlo_count += 1
            # One SMTP protocol object per TCP connection; sessions are renewed by STARTTLS.
            if not getattr(server, "_touchflow_greeted", False):
                server._touchflow_greeted = True  # type: ignore[attr-defined]
                self._connection_count += 1

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self._auth is not None
        username, password = self._auth
        ok = (
            isinstance(data, LoginPassword)
            and data.login == username.encode()
            and data.password == password.encode()
        )
        with self._lock:
            if ok:
                self._logins.append((mechanism, username))
            else:
                self._auth_failures += 1
        return AuthResult(success=ok, handled=False)

    def _record(self, message: ReceivedMessage) -> str:
        with self._lock:
            self._seq += 1
            name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{self._seq:06d}"
            self._messages.append(message)
        if self.directory is not None:
            _write_atomically(self.directory / f"{name}.eml", message.raw)
        if self._on_message is not None:
            self._on_message(message)
        return name

    def _record_dropped(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._dropped.append(message)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sink until interrupted (Ctrl-C or SIGTERM); returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m touchflow.adapters.smtp.sink",
        description="Local SMTP server that stores every message it receives (never relays).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="port to bind, 0 for any free one")
    parser.add_argument("--dir", type=Path, default=None, help="write each message here as .eml")
    args = parser.parse_args(argv)

    def show(message: ReceivedMessage) -> None:
        subject = message.parse().get("Subject", "")
        print(f"{message.envelope_from} -> {', '.join(message.rcpt_tos)}: {subject}", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop as cleanly on `kill` as on Ctrl-C
    sink = LocalSmtpSink(args.dir, host=args.host, port=args.port, on_message=show)
    with sink:
        where = f", writing to {args.dir}" if args.dir else ""
        print(f"smtp sink listening on {sink.host}:{sink.port}{where}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
