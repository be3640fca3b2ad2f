"""Write email to a directory instead of sending it: for demos, dry runs and local development.

Talks to: the local file system. Each message becomes ``<directory>/<touch
key>.eml``, the same RFC 5322 bytes the SMTP sender would transmit (CRLF line
endings), so any mail client can open it.

Limits: one file per touch; no delivery, so no bounces, replies or opens.

Quirks:

* Idempotent per touch key: if the file exists, nothing is written again and
  the result carries the Message-ID of the message already in the file.
* Writes are atomic: a temporary file in the same directory, fsync, then a
  link into place (``os.replace`` where links are not supported), so a reader
  never sees half a message and a crash never leaves one behind.
* Touch keys are percent-encoded into file names (``a:b/c`` becomes
  ``a%3Ab%2Fc.eml``), so distinct keys never share a file and no key escapes
  the directory. Very long keys are shortened with a SHA-256 suffix.
* The directory is created on first use.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Sequence
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import quote

from touchflow.adapters.smtp.email_sender import build_message
from touchflow.errors import ConnectorError, FatalError, RetryableError
from touchflow.ports import OutboundEmail, SendResult

__all__ = ["OutboxEmailSender", "map_outbox_error", "outbox_filename"]

CONNECTOR = "outbox"

_MAX_STEM = 200  # file systems cap names at 255 bytes; leave room for ".eml" and temp suffixes

# Errors that retrying will not fix: the path or its permissions are wrong.
_FATAL_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}
)


def outbox_filename(touch_key: str) -> str:
    """The file name for a touch key: percent-encoded, injective, safe in any directory."""
    stem = quote(touch_key, safe="-_.@+=")
    if stem.startswith("."):
        stem = "%2E" + stem[1:]  # no hidden files, no "." or ".."
    if len(stem) > _MAX_STEM:
        digest = hashlib.sha256(touch_key.encode("utf-8")).hexdigest()
        stem = f"{stem[: _MAX_STEM - 65]}~{digest}"
    return f"{stem}.eml"


def map_outbox_error(exc: BaseException, operation: str) -> ConnectorError:
    """Turn an exception from building or writing a message into a touchflow error."""
    if isinstance(exc, OSError) and exc.errno not in _FATAL_ERRNOS:
        error: ConnectorError = RetryableError(
            f"cannot write message ({exc})", connector=CONNECTOR, operation=operation
        )
    else:
        error = FatalError(
            f"cannot write message ({type(exc).__name__}: {exc})",
            connector=CONNECTOR,
            operation=operation,
        )
    error.__cause__ = exc
    return error


class OutboxEmailSender:
    """:class:`~touchflow.ports.EmailSender` that writes ``.eml`` files into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"OutboxEmailSender({str(self.directory)!r})"

    def path_for(self, touch_key: str) -> Path:
        """Where the message for ``touch_key`` is (or would be) written."""
        return self.directory / outbox_filename(touch_key)

    def send_batch(self, messages: Sequence[OutboundEmail]) -> list[SendResult]:
        """Write each message; return one result per message, in order. Never raises."""
        return [self._send_one(msg) for msg in messages]

    def close(self) -> None:
        """Nothing to release."""

    def _send_one(self, msg: OutboundEmail) -> SendResult:
        operation = "build"
        try:
            data = build_message(msg).as_bytes()
            operation = "write"
            path = self.path_for(msg.touch_key)
            existing = _message_id_of(path)
            if existing is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                existing = _write_once(path, data)
        except Exception as exc:
            return SendResult(msg.touch_key, error=map_outbox_error(exc, operation))
        return SendResult(msg.touch_key, provider_id=existing or msg.message_id)


def _message_id_of(path: Path) -> str | None:
    """The Message-ID of the message at ``path``; ``None`` if there is no file yet."""
    try:
        with path.open("rb") as fh:
            headers = BytesHeaderParser(policy=default_policy).parse(fh)
    except FileNotFoundError:
        return None
    return str(headers.get("Message-ID", "")).strip()


def _write_once(path: Path, data: bytes) -> str | None:
    """Write ``data`` to ``path`` atomically unless a file is already there.

    Returns ``None`` when this call wrote the file, or the Message-ID of the
    file that another writer put there first.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".eml.part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # unlike os.replace, fails if a concurrent writer won
        except FileExistsError:
            return _message_id_of(path)
        except OSError:
            os.replace(tmp, path)  # no hard links here (some network or FAT mounts)
            tmp = ""
        _fsync_directory(path.parent)
        return None
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
