"""A fault-injecting HTTP proxy on loopback, in front of an AWS endpoint (a moto server).

Point ``AWS_ENDPOINT_URL`` at :attr:`FaultProxy.url`: every request is forwarded to the
upstream endpoint and answered as it answers, and noted in :attr:`FaultProxy.calls` by its
operation, named as botocore names it (``Lambda.PublishVersion``, ``S3.PutObject``,
``STS.GetCallerIdentity``). The operation is read from the request itself: the service from
the SigV4 ``Authorization`` header's credential scope, then the ``X-Amz-Target`` header (JSON
protocols), the ``Action`` form field (query protocol) or the method and path matched against
the service's REST routes in botocore's model (Lambda, S3).

:meth:`FaultProxy.arm` makes the Nth request of one operation fail one of these ways
(:data:`FAULTS`):

``http-500``  an HTTP 500 error response in the service's own format (not forwarded)
``http-503``  an HTTP 503 error response (not forwarded)
``throttle``  the service's throttling error (Lambda 429 ``TooManyRequestsException``,
              S3 503 ``SlowDown``, STS 400 ``Throttling``; not forwarded)
``timeout``   forwarded and applied upstream, but the answer never comes (held until the
              client gives up)
``drop``      the connection is closed without an answer (not forwarded)

From that request on the endpoint stays down (every further request is dropped) until
:meth:`FaultProxy.heal`: the connection died, as it does on a train. Faults are for tests;
nothing here is specific to one test framework.

Usage::

    with MotoServer() as moto, FaultProxy(moto.url) as proxy:
        proxy.arm("Lambda.PublishVersion", 1, "drop")
        ...   # run a command against proxy.url
        proxy.heal()
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from testing.http_body import read_request_body

HOST = "127.0.0.1"
FAULTS = ("http-500", "http-503", "throttle", "timeout", "drop")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    path: re.Pattern[str]
    query_keys: frozenset[str]
    headers: frozenset[str]
    literal: int


@cache
def _service(signing_name: str) -> tuple[str, str, tuple[_Route, ...]]:
    """(service id, protocol, REST routes most specific first) of a service, from botocore's model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(signing_name)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        pieces = re.split(r"(\{[^}]+\})", path)
        pattern = "".join(
            (".+" if piece.endswith("+}") else "[^/]+") if piece.startswith("{") else re.escape(piece)
            for piece in pieces
        )
        keys = frozenset(part.split("=")[0] for part in query.split("&") if part)
        shape = model.operation_model(name).input_shape
        required = set(getattr(shape, "required_members", []) or [])
        headers = frozenset(
            member.serialization["name"].lower()
            for key, member in (shape.members.items() if shape is not None else [])
            if key in required and member.serialization.get("location") == "header"
        )
        literal = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append(_Route(name, http.get("method", "POST"), re.compile(f"^{pattern}/?$"), keys, headers, literal))
    routes.sort(key=lambda r: (-len(r.query_keys) - len(r.headers), -r.literal))
    return model.service_id, model.protocol, tuple(routes)


def operation_of(method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    """The ``Service.Operation`` a signed AWS request calls (``?`` parts when it cannot be told)."""
    scope = _SCOPE.search(headers.get("authorization", ""))
    if not scope:
        return "?.?"
    try:
        service_id, protocol, routes = _service(scope[1])
    except Exception:
        return f"{scope[1]}.?"
    target = headers.get("x-amz-target")
    if target:
        return f"{service_id}.{target.rsplit('.', 1)[-1]}"
    if protocol in ("query", "ec2"):
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
        return f"{service_id}.{action}"
    parsed = urllib.parse.urlsplit(path)
    query = set(urllib.parse.parse_qs(parsed.query, keep_blank_values=True))
    for route in routes:
        if (
            route.method == method
            and route.query_keys <= query
            and route.headers <= headers.keys()
            and route.path.match(parsed.path)
        ):
            return f"{service_id}.{route.operation}"
    return f"{service_id}.?"


def error_response(kind: str, service_id: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of an injected error, in the service's own error format."""
    if kind == "throttle":
        status, code = {"Lambda": (429, "TooManyRequestsException"), "S3": (503, "SlowDown")}.get(
            service_id, (400, "Throttling")
        )
    elif kind == "http-503":
        status, code = 503, "ServiceUnavailable" if service_id != "Lambda" else "ServiceException"
    else:
        status, code = 500, {"S3": "InternalError", "Lambda": "ServiceException"}.get(service_id, "InternalFailure")
    message = f"injected {kind} by the fault proxy"
    if service_id == "Lambda" or service_id not in ("S3", "STS"):
        body = json.dumps({"message": message, "Type": "Service"}).encode()
        return status, {"Content-Type": "application/json", "x-amzn-ErrorType": code}, body
    if service_id == "S3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    else:
        body = (
            f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message>"
            "</Error></ErrorResponse>"
        ).encode()
    return status, {"Content-Type": "text/xml"}, body


class FaultProxy:
    """A threaded HTTP proxy on ``HOST`` in front of ``upstream`` that fails on request (module docstring).

    Parameters
    ----------
    upstream : str
        The endpoint to forward to, e.g. a :class:`localtwin.moto_server.MotoServer`'s ``url``.
    hold_s : float
        How long a ``timeout`` fault holds the answer back (longer than the client's read timeout).
    """

    def __init__(self, upstream: str, hold_s: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or HOST, parts.port or 80
        self.hold_s = hold_s
        self.calls: list[str] = []
        self.fault: tuple[str, int, str] | None = None
        self.fired: str | None = None
        self.down = False
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the proxy first"
        return f"http://{HOST}:{self._server.server_address[1]}"

    def arm(self, operation: str, nth: int, kind: str) -> None:
        """Fail the ``nth`` (1-based) request of ``operation`` from now on, the ``kind`` way; then stay down."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; use one of {FAULTS}")
        with self._lock:
            self.fault, self.fired, self.down, self._seen = (operation, nth, kind), None, False, {}

    def heal(self) -> None:
        """Forward everything again, and forget the fault."""
        with self._lock:
            self.fault, self.down = None, False

    def reset(self) -> None:
        """:meth:`heal`, and forget the calls seen."""
        with self._lock:
            self.fault, self.fired, self.down, self._seen, self.calls = None, None, False, {}, []

    def _decide(self, operation: str) -> str | None:
        """Note the call; the fault to inject into it (``drop`` while down), or ``None`` to forward it."""
        with self._lock:
            self.calls.append(operation)
            if self.down:
                return "drop"
            if self.fault is None or self.fault[0] != operation:
                return None
            self._seen[operation] = self._seen.get(operation, 0) + 1
            if self._seen[operation] != self.fault[1]:
                return None
            self.fired, self.down = f"{operation}#{self.fault[1]}:{self.fault[2]}", True
            return self.fault[2]

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            connection.connect()
            assert connection.sock is not None
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                pass

            def _body(self) -> bytes:
                return read_request_body(self)

            def _handle(self) -> None:
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                operation = operation_of(self.command, self.path, headers, body)
                fault = proxy._decide(operation)
                if fault == "drop":
                    self.close_connection = True
                    with _quietly():
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault in ("http-500", "http-503", "throttle"):
                    status, extra, payload = error_response(fault, operation.split(".")[0])
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                forward_headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "expect"
                }
                status, response_headers, payload = proxy._forward(self.command, self.path, forward_headers, body)
                if fault == "timeout":
                    time.sleep(proxy.hold_s)
                    self.close_connection = True
                    return
                self.send_response(status)
                for key, value in response_headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _safe(self) -> None:
                with _quietly():
                    self._handle()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _safe

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _quietly:
    """Swallow the socket errors of a client that has gone (it gave up, or we hung up on it)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)
