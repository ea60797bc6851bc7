"""A small threaded WSGI server that keeps connections alive, for the twin's AWS endpoint.

werkzeug's development server (what ``python -m moto.server`` runs) closes every connection
after one request (``Connection: close``), and after each answer drains the socket for 10 ms
(which would swallow the next request of a kept-alive connection): every boto3 call then
costs a TCP handshake, a new server thread and a connection setup in the client. This
server (``http.server`` with HTTP/1.1, a thread per connection, ``TCP_NODELAY``) reads
each request's body whole (by ``Content-Length`` or chunked), calls the WSGI application,
and writes the status line, the headers and the body in one write, with a
``Content-Length``, so the connection stays open for the client's next call.

The application sees PEP 3333's environ (``PATH_INFO`` percent-decoded as latin-1,
``HTTP_*`` headers, ``wsgi.input`` a byte stream of the body), plus :data:`RECEIVED_AT`
(when the request line was read) and ``REMOTE_PORT``. ``on_written(environ, at)`` is called
after each answer, with the time (``time.perf_counter``) its write started: when the client
has it.
"""

from __future__ import annotations

import io
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testing.http_body import read_request_body

#: WSGI environ key: when the server read the request line (``time.perf_counter``).
RECEIVED_AT = "localtwin.received_at"

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
_NOT_FORWARDED = {"content-length", "connection", "transfer-encoding", "keep-alive"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """No access log line per request."""

    def parse_request(self) -> bool:
        self.received_at = time.perf_counter()  # the request line has just been read
        return super().parse_request()

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        if "://" in path:  # an absolute URI: the path is after the authority
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            RECEIVED_AT: self.received_at,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _serve(self) -> None:
        environ = self._environ(read_request_body(self))
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
            answer[:] = [status, headers]
            return extra.append

        extra: list[bytes] = []
        result = self.server.app(environ, start_response)
        try:
            body = b"".join([*extra, *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = answer
        lines = [f"HTTP/1.1 {status}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _NOT_FORWARDED]
        lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        written_at = time.perf_counter()
        self.wfile.write(head if self.command == "HEAD" else head + body)
        self.wfile.flush()
        self.server.on_written(environ, written_at)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: WSGIApp
    on_written: Callable[[dict[str, Any], float], None]

    def handle_error(self, request: object, client_address: object) -> None:
        """A client gone mid-request is not worth a traceback; anything else is printed."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def make_server(
    host: str, port: int, app: WSGIApp, on_written: Callable[[dict[str, Any], float], None] | None = None
) -> ThreadingHTTPServer:
    """A server for ``app`` on ``host:port`` (call ``serve_forever()``); see the module docstring."""
    server = _Server((host, port), _Handler)
    server.app = app
    server.on_written = on_written or (lambda environ, at: None)
    return server
