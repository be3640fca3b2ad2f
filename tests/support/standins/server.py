"""Serving a stand-in: an HTTP server in a daemon thread, started and stopped by the test."""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

# serve_forever() looks at its shutdown flag once a poll: stop() waits up to this long.
POLL_INTERVAL_S = 0.01


class StandinHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its stand-in (``self.server.standin`` in handlers)."""

    daemon_threads = True
    # The stdlib default backlog is 5: a burst of concurrent connects overflows
    # it and the kernel drops SYNs, which the client retries only after ~1 s.
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], standin: Any
    ) -> None:
        self.standin = standin
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Count the connection when the stand-in counts them, then serve it in a thread."""
        count = getattr(self.standin, "_count_connection", None)
        if count is not None:
            count()
        super().process_request(request, client_address)


class JsonHandler(BaseHTTPRequestHandler):
    """A stand-in's request handler that answers JSON (``Connection: close`` when closing)."""

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class BackgroundServer:
    """Start/stop/context-manager for a stand-in served from a background thread.

    Subclasses call :meth:`_init_server` in ``__init__`` and implement
    :meth:`_make_server`. ``_closing`` is set while stopping, so a request
    the stand-in holds on purpose (a scripted timeout) is released at once.
    """

    _thread_name = "standin"

    def _init_server(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._closing = threading.Event()
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    def _make_server(self, address: tuple[str, int]) -> socketserver.BaseServer:
        raise NotImplementedError

    def start(self) -> Self:
        """Bind and serve in a background thread; ``port=0`` picks a free port."""
        self._closing.clear()
        self._server = self._make_server((self._host, self._port))
        self._port = int(self._server.server_address[1])  # type: ignore[index]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_S},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by a scripted ``timeout`` are released."""
        self._closing.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://<host>:<port>``: the base URL to give the client under test."""
        return f"http://{self._host}:{self._port}"
