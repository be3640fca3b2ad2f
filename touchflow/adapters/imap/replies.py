"""Poll a rep's mailbox over IMAP for replies to touches.

Talks to: any IMAP4rev1 server (RFC 3501) through :mod:`imaplib`, in plain
text, with STARTTLS, or with implicit TLS (usually port 993). Google Workspace
needs an app password or OAuth (not supported here), Microsoft 365 needs IMAP
enabled for the mailbox.

Limits: Gmail allows about 15 simultaneous IMAP connections per account and
2,500 MB of downloads a day; Microsoft 365 throttles at about 20 connections
per mailbox. One poll opens one connection, fetches at most ``limit``
messages in batches of 100 and reuses the connection for :meth:`mark_processed`.

Quirks:

* "New" means *unseen* in ``folder``. A message the rep already opened in
  their mail client before the poll is not fetched: point ``folder`` at a
  folder a server-side rule fills (a label in Gmail) when reps read their
  INBOX first.
* Fetching uses ``BODY.PEEK[]``, so it never marks anything as read. Only
  :meth:`ImapMailbox.mark_processed` changes the mailbox: it moves messages to
  ``processed_folder`` (``MOVE`` when the server announces it after login, else
  ``COPY`` + ``\\Deleted`` + ``UID EXPUNGE``, or plain ``EXPUNGE`` without
  UIDPLUS, which also removes other messages someone flagged ``\\Deleted``), or
  only sets ``\\Seen`` when ``processed_folder`` is None.
* Delivery is at least once: a process that crashes between
  :meth:`~ImapMailbox.fetch_new` and :meth:`~ImapMailbox.mark_processed` sees
  the same messages again on the next poll. The caller deduplicates on
  Message-ID (the provider event id), which is why fetch and mark are two steps.
* Folder names must be ASCII (no modified UTF-7 encoding is done here).
* :meth:`ImapMailbox.find_sent` looks Message-IDs up in the Sent folder
  (``sent_folder``; by default the folder the server marks ``\\Sent``,
  RFC 6154, else ``Sent``), opened read-only with ``EXAMINE``. It finds what
  the mail client or the server saved there: Gmail and Microsoft 365 keep a
  copy of what is sent over SMTP submission; a plain relay does not, so
  reconciliation from the Sent folder needs a server that saves sent mail.
* Dates: the ``Date`` header, read as UTC when it says ``-0000`` or has no zone;
  the server's INTERNALDATE when the header is missing or unreadable.

Every imaplib, socket and ssl exception becomes a :mod:`touchflow.errors`
error in :func:`map_imap_error` and nowhere else: network failures and
timeouts are :class:`~touchflow.errors.RetryableError`, refused credentials
and other refused commands :class:`~touchflow.errors.FatalError`.
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from touchflow.adapters.closing import ClosesOnExit
from touchflow.adapters.mime import parse_message
from touchflow.domain.batching import chunks
from touchflow.errors import ConfigError, ConnectorError, FatalError, RetryableError
from touchflow.ports import FetchedMessage

__all__ = ["FetchedMessage", "ImapMailbox", "map_imap_error"]

_log = logging.getLogger(__name__)

CONNECTOR = "imap"
_BATCH = 100

# Response codes (RFC 5530) that say "try again later" rather than "you are wrong".
_TRANSIENT_CODES = ("UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT", "EXPUNGEISSUED")


def map_imap_error(exc: BaseException, operation: str) -> ConnectorError:
    """The touchflow error for an imaplib, socket or ssl exception raised during ``operation``."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FatalError(f"certificate rejected: {text}", connector=CONNECTOR, operation=operation)
    if isinstance(exc, imaplib.IMAP4.abort | OSError | EOFError):
        # Timeouts, refused or reset connections, TLS failures, the server hanging up.
        return RetryableError(text, connector=CONNECTOR, operation=operation)
    if isinstance(exc, imaplib.IMAP4.error):
        code = re.search(r"\[([A-Z-]+)", text)
        vendor = code.group(1) if code else None
        if vendor in _TRANSIENT_CODES:
            return RetryableError(
                text, connector=CONNECTOR, operation=operation, vendor_code=vendor
            )
        return FatalError(text, connector=CONNECTOR, operation=operation, vendor_code=vendor)
    return FatalError(text, connector=CONNECTOR, operation=operation)


# ``ssl`` is also a parameter of ImapMailbox; these keep the module's objects reachable there.
_SslContext = ssl.SSLContext
_create_default_context = ssl.create_default_context


def _quote(mailbox: str) -> str:
    if not mailbox.isascii() or any(c in mailbox for c in "\r\n\0"):
        raise ConfigError(f"IMAP folder name must be plain ASCII: {mailbox!r}")
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uid_set(uids: Iterable[int]) -> str:
    return ",".join(str(int(u)) for u in uids)


class ImapMailbox(ClosesOnExit):
    """One IMAP mailbox polled for replies; a context manager that holds one connection.

    ``ssl`` is implicit TLS (port 993), ``starttls`` upgrades a plain connection
    (port 143); both verify the certificate with ``ssl_context`` or the system's
    trust store. The connection opens on first use and is reopened after
    :meth:`close`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        ssl: bool = False,
        starttls: bool = False,
        folder: str = "INBOX",
        processed_folder: str | None = "touchflow-processed",
        sent_folder: str | None = None,
        timeout_s: float = 30,
        ssl_context: _SslContext | None = None,
    ) -> None:
        if ssl and starttls:
            raise ConfigError("IMAP: choose implicit TLS (ssl) or STARTTLS, not both")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.use_ssl = ssl
        self.starttls = starttls
        self.folder = folder
        self.processed_folder = processed_folder
        self.sent_folder = sent_folder
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context
        self._conn: imaplib.IMAP4 | None = None
        self._capabilities: frozenset[str] = frozenset()
        self._selected: str | None = None
        self._processed_exists = False
        # Validate folder names now: a misconfiguration should fail before any I/O.
        _quote(folder)
        if processed_folder is not None:
            _quote(processed_folder)
        if sent_folder is not None:
            _quote(sent_folder)

    def __repr__(self) -> str:  # never the password
        return f"ImapMailbox({self.username!r} at {self.host}:{self.port}, folder={self.folder!r})"

    # -- connection ---------------------------------------------------------------------------

    def _context(self) -> _SslContext:
        return self._ssl_context or _create_default_context()

    def _connect(self) -> imaplib.IMAP4:
        if self._conn is not None:
            return self._conn
        operation = "connect"
        conn: imaplib.IMAP4 | None = None
        try:
            if self.use_ssl:
                conn = imaplib.IMAP4_SSL(
                    self.host, self.port, ssl_context=self._context(), timeout=self.timeout_s
                )
            else:
                conn = imaplib.IMAP4(self.host, self.port, timeout=self.timeout_s)
            if self.starttls:
                operation = "starttls"
                conn.starttls(ssl_context=self._context())
            operation = "login"
            conn.login(self.username, self._password)
            typ, data = conn.capability()
            caps = data[0].decode("ascii", "replace") if typ == "OK" and data and data[0] else ""
            self._capabilities = frozenset(caps.upper().split())
        except Exception as exc:
            if conn is not None:
                _shutdown(conn)
            raise map_imap_error(exc, operation) from exc
        self._conn = conn
        self._selected = None
        return conn

    def close(self) -> None:
        """Log out and close the connection; safe to call twice."""
        conn, self._conn = self._conn, None
        self._selected = None
        if conn is not None:
            try:
                if conn.state == "SELECTED":
                    conn.close()  # no expunge happens here: only \Deleted we set, and we expunge
                conn.logout()
            except Exception as exc:  # closing must not fail the caller's work
                _log.debug("imap logout failed: %s", exc)
                _shutdown(conn)

    def _call(self, operation: str, fn: Any, *args: Any) -> list[Any]:
        """Run one imaplib command; a NO/BAD answer or a failure becomes a touchflow error."""
        try:
            typ, data = fn(*args)
        except Exception as exc:
            self._drop_if_broken(exc)
            raise map_imap_error(exc, operation) from exc
        if typ != "OK":
            detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise map_imap_error(imaplib.IMAP4.error(f"{typ} {detail}"), operation)
        return list(data)

    def _drop_if_broken(self, exc: BaseException) -> None:
        if isinstance(exc, imaplib.IMAP4.abort | OSError | EOFError) and self._conn is not None:
            _shutdown(self._conn)
            self._conn = None
            self._selected = None

    def _select(self, conn: imaplib.IMAP4) -> None:
        if self._selected != self.folder:
            self._call("select", conn.select, _quote(self.folder))
            self._selected = self.folder

    # -- the two operations -------------------------------------------------------------------

    def fetch_new(self, limit: int = 500) -> list[FetchedMessage]:
        """Up to ``limit`` unseen messages of ``folder``, oldest UID first, left unseen.

        A message that cannot be parsed is logged and skipped (and stays unseen,
        so a person can look at it); the others are returned.
        """
        conn = self._connect()
        self._select(conn)
        data = self._call("search", conn.uid, "SEARCH", None, "UNSEEN")
        uids = sorted({int(u) for chunk in data if chunk for u in chunk.split()})[: max(limit, 0)]
        fetched: list[FetchedMessage] = []
        for batch in chunks(uids, _BATCH):
            rows = self._call(
                "fetch", conn.uid, "FETCH", _uid_set(batch), "(INTERNALDATE BODY.PEEK[])"
            )
            for uid, internaldate, raw in _fetch_rows(rows):
                try:
                    message = parse_message(raw, fallback_date=internaldate or datetime.now(UTC))
                except Exception:  # one malformed message must not block the mailbox
                    _log.exception("imap: cannot parse message uid %s in %s", uid, self.folder)
                    continue
                fetched.append(FetchedMessage(uid, message))
        fetched.sort(key=lambda f: f.uid)
        return fetched

    def mark_processed(self, uids: Iterable[int]) -> None:
        """Make ``uids`` (from :meth:`fetch_new`) not come back on the next poll.

        Moves them to ``processed_folder`` (created when missing), or sets
        ``\\Seen`` when ``processed_folder`` is None. UIDs that are already gone
        are ignored, so calling this twice is harmless.
        """
        todo = sorted({int(u) for u in uids})
        if not todo:
            return
        conn = self._connect()
        self._select(conn)
        for batch in chunks(todo, _BATCH):
            uid_set = _uid_set(batch)
            if self.processed_folder is None:
                self._call("mark_seen", conn.uid, "STORE", uid_set, "+FLAGS.SILENT", r"(\Seen)")
                continue
            self._ensure_processed_folder(conn)
            target = _quote(self.processed_folder)
            if "MOVE" in self._capabilities:
                self._call("move", conn.uid, "MOVE", uid_set, target)
                continue
            self._call("copy", conn.uid, "COPY", uid_set, target)
            self._call("delete", conn.uid, "STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
            if "UIDPLUS" in self._capabilities:
                self._call("expunge", conn.uid, "EXPUNGE", uid_set)
            else:
                self._call("expunge", conn.expunge)

    def find_sent(self, message_ids: Iterable[str]) -> set[str]:
        """Which of ``message_ids`` (``<...>``) are in the Sent folder; the mailbox is not changed.

        One ``UID SEARCH HEADER Message-ID`` per id, on a connection reused for
        all of them; an id that is not a plain ``<...>`` token is never found.
        """
        wanted = sorted({m for m in message_ids if _MESSAGE_ID.fullmatch(m)})
        if not wanted:
            return set()
        conn = self._connect()
        folder = self.sent_folder or self._special_use_sent(conn)
        self._call("examine", conn.select, _quote(folder), True)
        self._selected = None  # the next fetch_new selects its folder again, read-write
        found: set[str] = set()
        for mid in wanted:
            query = ("HEADER", "Message-ID", f'"{mid}"')
            data = self._call("search", conn.uid, "SEARCH", None, *query)
            if any(chunk and chunk.split() for chunk in data):
                found.add(mid)
        return found

    def _special_use_sent(self, conn: imaplib.IMAP4) -> str:
        for item in self._call("list", conn.list, '""', "*"):
            line = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
            match = _LIST_LINE.match(line)
            if match and "\\sent" in match.group(1).lower():
                return match.group(2).strip('"')
        return "Sent"

    def _ensure_processed_folder(self, conn: imaplib.IMAP4) -> None:
        if self._processed_exists or self.processed_folder is None:
            return
        target = _quote(self.processed_folder)
        listed = self._call("list", conn.list, '""', target)
        if not any(item for item in listed if item):
            self._call("create", conn.create, target)
        self._processed_exists = True


def _shutdown(conn: imaplib.IMAP4) -> None:
    try:
        conn.shutdown()
    except Exception as exc:
        _log.debug("imap shutdown failed: %s", exc)


# --------------------------------------------------------------------------- FETCH responses

_UID = re.compile(rb"\bUID (\d+)")
# RFC 5322 msg-id in dot-atom form: no space, quote or backslash, so it quotes as is.
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\[\]-]+>")
_LIST_LINE = re.compile(r'\(([^)]*)\) (?:"[^"]*"|NIL) (.+)$')
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


def _fetch_rows(data: list[Any]) -> Iterator[tuple[int, datetime | None, bytes]]:
    """(uid, internaldate, raw message) for each message in a UID FETCH answer."""
    for item in data:
        if not isinstance(item, tuple) or len(item) < 2:
            continue  # the b")" that closes each message
        head, raw = item[0], item[1]
        uid = _UID.search(head)
        if uid is None or not isinstance(raw, bytes):
            continue
        date = _INTERNALDATE.search(head)
        yield int(uid.group(1)), _internaldate(date.group(1).decode()) if date else None, raw


def _internaldate(value: str) -> datetime | None:
    """``17-Jul-1996 02:44:25 -0700`` as an aware datetime (independent of the locale)."""
    m = re.fullmatch(
        r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\s*", value
    )
    if m is None or m.group(2).lower() not in _MONTHS:
        return None
    day, _, year, hh, mm, ss, sign, oh, om = m.groups()
    offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
    try:
        return datetime(
            int(year), _MONTHS[m.group(2).lower()], int(day), int(hh), int(mm), int(ss),
            tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError:
        return None


# --------------------------------------------------------------------------- parsing
