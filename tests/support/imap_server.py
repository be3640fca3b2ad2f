"""A real IMAP server for tests: Dovecot, started in the foreground with a private config.

Everything lives in one temp dir: config, passwd-file, Maildirs, sockets, state
and log. It listens on 127.0.0.1 on a free port, without TLS, and takes plain
passwords (``AUTH=PLAIN``/``LOGIN``). Needs the ``dovecot`` binary from Debian's
``dovecot-imapd`` package::

    apt-get install -y dovecot-imapd

Tests get a server from :func:`dovecot_server`: without the binary the test
skips with :data:`INSTALL_HINT`, except in CI (``CI=true``), where it fails:
a CI run must not pass without its IMAP tests.

Dovecot refuses to run its login processes as root and to give mail to UID 0,
so the users it runs as depend on who starts it:

* as root: login processes as ``dovenull``, internal ones as ``dovecot`` (both
  created by the package; ``nobody`` if missing), mail as ``nobody``, who
  owns the Maildirs;
* as anybody else: every process as the current user, with chrooting off (it
  needs root), as in Dovecot's "rootless install".
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

INSTALL_HINT = (
    "dovecot is not installed: run `make test` (it installs it) or "
    "`apt-get install -y dovecot-imapd`"
)


class DovecotMissing(RuntimeError):
    """The dovecot binary is not installed."""


def in_ci() -> bool:
    """``CI`` is set to true (GitHub Actions, GitLab and most CI systems set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def find_dovecot() -> str:
    """Path of the dovecot binary (also looked for in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise DovecotMissing(INSTALL_HINT)
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left in the group
        os.killpg(pgid, sig)


def _user(name: str, fallback: str = "nobody") -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return pwd.getpwnam(fallback)


class DovecotServer:
    """Dovecot on 127.0.0.1 with the given users (name -> password), for one test or module.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``extra_config``
    is appended to the generated ``dovecot.conf`` (for example
    ``imap_capability = IMAP4rev1 UIDPLUS`` to hide MOVE from clients).
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        extra_config: str = "",
        start_timeout_s: float = 15,
    ) -> None:
        self.users = dict(users or {"rep@example.com": "secret"})
        for name, password in self.users.items():
            if any(c in name + password for c in ":\n\r"):
                raise ValueError(f"user names and passwords must not contain ':' ({name!r})")
        self.extra_config = extra_config
        self.start_timeout_s = start_timeout_s
        self.host = "127.0.0.1"
        self.port = 0
        self.binary = find_dovecot()
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

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

    def start(self) -> None:
        # Short path under /tmp: unix socket paths are limited to 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="tf-dovecot-", dir="/tmp"))
        self.dir.chmod(0o755)  # unprivileged dovecot processes must reach their sockets
        last_error = ""
        for _ in range(3):  # the free port may be taken between picking and binding it
            self.port = _free_port()
            self._write_config()
            log = self.dir / "dovecot.log"
            log.unlink(missing_ok=True)
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.dir / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: _kill stops the children too
            )
            if self._wait_ready():
                return
            last_error = self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        raise RuntimeError(f"dovecot did not start:\n{last_error}")

    def stop(self) -> None:
        if self._proc is not None:
            self._kill()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _kill(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        # SIGTERM to the master and its children at once. The master alone waits a
        # second for its children and then exits without them; an imap process with a
        # client lingers another ten seconds before it says BYE ("Server shutting down")
        # and holds our stderr pipe open until then. Signalled directly, it says the
        # same BYE at once.
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        _signal_group(proc.pid, signal.SIGKILL)  # whatever is left of the group
        stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        return f"{stderr}\n{self.log()}"

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def log(self) -> str:
        """Dovecot's log so far (for assertion messages)."""
        if self.dir is None:
            return ""
        path = self.dir / "dovecot.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    # -- configuration ------------------------------------------------------------------------

    def _write_config(self) -> None:
        assert self.dir is not None
        d = self.dir
        if os.geteuid() == 0:
            internal = _user("dovecot")
            login = _user("dovenull")
            mail = pwd.getpwnam("nobody")
            internal_group = grp.getgrgid(internal.pw_gid).gr_name
            first_valid_uid = mail.pw_uid
        else:
            internal = login = mail = pwd.getpwuid(os.getuid())
            internal_group = grp.getgrgid(os.getgid()).gr_name
            first_valid_uid = mail.pw_uid
        home = d / "home"
        home.mkdir(exist_ok=True)
        passwd = d / "passwd"
        lines = []
        for name, password in self.users.items():
            user_home = home / name
            user_home.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                os.chown(user_home, mail.pw_uid, mail.pw_gid)
            lines.append(f"{name}:{{PLAIN}}{password}:{mail.pw_uid}:{mail.pw_gid}::{user_home}::")
        passwd.write_text("\n".join(lines) + "\n")
        passwd.chmod(0o644)
        config = f"""\
# Generated by tests/support/imap_server.py: a throwaway server, not for production.
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# A refused login is answered within 0.5 s (the default delay is 2 s).
auth_failure_delay = 0
default_internal_user = {internal.pw_name}
default_internal_group = {internal_group}
default_login_user = {login.pw_name}
first_valid_uid = {first_valid_uid}
last_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  # No auth penalty: a failed login would slow every later login from 127.0.0.1
  # (2, 4, 8... s), in whichever test comes next.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{self.extra_config}
"""
        (d / "dovecot.conf").write_text(config)

    # -- mail ---------------------------------------------------------------------------------

    def connect(self, user: str) -> imaplib.IMAP4:
        """A logged-in imaplib client for ``user`` (close it with ``logout()``)."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        conn.login(user, self.users[user])
        return conn

    def append(self, user: str, raw: bytes, *, folder: str = "INBOX", flags: str = "") -> None:
        """Deliver ``raw`` to ``user``'s ``folder`` with IMAP APPEND, as that user."""
        conn = self.connect(user)
        try:
            typ, data = conn.append(f'"{folder}"', f"({flags})" if flags else None, None, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def uids(self, user: str, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        """UIDs of the messages in ``folder`` matching ``criteria`` ([] if there is no folder)."""
        conn = self.connect(user)
        try:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            typ, data = conn.uid("SEARCH", None, criteria)
            return sorted(int(u) for chunk in data if chunk for u in chunk.split())
        finally:
            with contextlib.suppress(Exception):
                conn.logout()


def dovecot_server(users: Mapping[str, str] | None = None, **kw: Any) -> DovecotServer:
    """A :class:`DovecotServer` (not started yet) for a test.

    Without the dovecot binary the test skips, or fails when ``CI=true``.
    """
    try:
        return DovecotServer(users, **kw)
    except DovecotMissing as exc:
        missing = str(exc)
    if in_ci():
        pytest.fail(f"{missing} (CI=true: the IMAP tests must run, not skip)", pytrace=False)
    pytest.skip(missing)
