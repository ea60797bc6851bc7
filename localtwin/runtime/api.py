"""The Lambda Runtime API that one execution environment's runtime client talks to.

AWS's runtime interface client (``awslambdaric``) long-polls
``GET /2018-06-01/runtime/invocation/next`` for an event and posts the handler's
outcome back; this module is the server side of that protocol, on ``127.0.0.1`` and a
free port, one server per execution environment (as on Lambda, where each sandbox
has its own endpoint):

``GET  /2018-06-01/runtime/invocation/next``
    blocks until :meth:`RuntimeAPIServer.submit` queues an invocation, then answers
    with the event as the body and the ``Lambda-Runtime-*`` headers.
``POST /2018-06-01/runtime/invocation/{id}/response`` and ``…/{id}/error``
    the handler's response, or its error document (``errorType``, ``errorMessage``…).
``POST /2018-06-01/runtime/init/error``
    the handler could not be loaded (e.g. ``Runtime.ImportModuleError``).
``GET  /2018-06-01/runtime/restore/next`` and ``POST /2018-06-01/runtime/restore/error``
    SnapStart (:mod:`localtwin.runtime.snapshot`): the runtime is ready to be snapshotted
    (answered at once: the clone runs on, restored), and an after restore hook raised.

Every request is reported to a ``listener`` as an :class:`ApiEvent`, synchronously and
*before* the runtime gets its answer, so the owner of the environment has seen an
outcome by the time the worker can act on the reply (e.g. exit after an init error).
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testing.http_body import read_request_body

PREFIX = "/2018-06-01/runtime"
_OUTCOME = re.compile(rf"^{PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"


@dataclass
class Invocation:
    """One event waiting for the runtime's next ``GET …/invocation/next``."""

    request_id: str
    body: bytes
    timeout_s: float
    function_arn: str
    trace_id: str = ""


@dataclass
class ApiEvent:
    """Something the runtime did through the API.

    ``kind`` is ``"next"`` (the runtime asks for work: the first one ends init),
    ``"dispatch"`` (an invocation was handed over), ``"response"``, ``"error"`` or
    ``"init_error"``. ``at`` is a :func:`time.perf_counter` timestamp.
    """

    kind: str
    at: float
    request_id: str | None = None
    body: bytes = b""
    error_type: str | None = None
    #: When the request's line was read (``time.perf_counter``): before ``at`` by the time its body took.
    received_at: float | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and Expect: 100-continue handled
    disable_nagle_algorithm = True  # else headers and body wait on the client's delayed ACK (~40 ms)
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Silence the default per-request access log."""

    def parse_request(self) -> bool:
        # The request line has just been read: the request is here from now on.
        self.received_at = time.perf_counter()
        return super().parse_request()

    def _read_body(self) -> bytes:
        return read_request_body(self)

    def _reply(
        self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> None:
        data = body if body is not None else json.dumps(doc).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.last_write_at = time.perf_counter()  # the runtime has the answer from here
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        api = self.server.api
        if self.path == f"{PREFIX}/restore/next":
            api.notify(ApiEvent("restore", time.perf_counter()))
            self._reply(200, {}, body=b"")
            return
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(404, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})
            return
        api.notify(ApiEvent("next", time.perf_counter()))
        invocation = api.wait_for_invocation()
        if invocation is None:  # the server is closing
            self.close_connection = True
            self._reply(410, {"errorType": "Gone", "errorMessage": "execution environment shutting down"})
            return
        deadline_ms = int((time.time() + invocation.timeout_s) * 1000)
        api.notify(ApiEvent("dispatch", time.perf_counter(), invocation.request_id))
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
            "Lambda-Runtime-Trace-Id": invocation.trace_id,
            "Content-Type": "application/json",
        }
        self._reply(200, {}, headers, invocation.body)
        api.dispatch_written_at = self.last_write_at

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        api = self.server.api
        body = self._read_body()
        error_type = self.headers.get(ERROR_TYPE_HEADER)
        if self.path in (f"{PREFIX}/init/error", f"{PREFIX}/restore/error"):
            kind = "init_error" if self.path.endswith("/init/error") else "restore_error"
            api.notify(ApiEvent(kind, time.perf_counter(), None, body, error_type))
            self._reply(202, {"status": "OK"})
            return
        match = _OUTCOME.match(self.path)
        if match is None:
            self._reply(404, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})
            return
        if match["id"] != api.current_request_id:
            self._reply(400, {"errorType": "InvalidRequestID", "errorMessage": f"unknown request {match['id']}"})
            return
        api.current_request_id = None
        api.notify(ApiEvent(match["kind"], time.perf_counter(), match["id"], body, error_type, self.received_at))
        self._reply(202, {"status": "OK"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: RuntimeAPIServer

    def handle_error(self, request: object, client_address: object) -> None:
        """A worker killed mid-request resets its connection: expected, not worth a traceback."""


class RuntimeAPIServer:
    """A Runtime API endpoint on 127.0.0.1 for one execution environment.

    Parameters
    ----------
    listener : callable
        Called with every :class:`ApiEvent`, from the server's request threads.
    """

    def __init__(self, listener: Callable[[ApiEvent], None]) -> None:
        self._listener = listener
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self._closed = threading.Event()
        self.current_request_id: str | None = None
        #: When the last invocation's event was written to the runtime (``time.perf_counter``).
        self.dispatch_written_at: float | None = None
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.api = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``host:port``, the value of ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"{host}:{port}"

    def submit(self, invocation: Invocation) -> None:
        """Queue ``invocation`` for the runtime's next ``GET …/invocation/next``."""
        self._pending.put(invocation)

    def wait_for_invocation(self) -> Invocation | None:
        """Block until an invocation is queued (``None`` once the server closes)."""
        while not self._closed.is_set():
            try:
                invocation = self._pending.get(timeout=0.2)
            except queue.Empty:
                continue
            self.current_request_id = invocation.request_id
            return invocation
        return None

    def notify(self, event: ApiEvent) -> None:
        self._listener(event)

    def close(self) -> None:
        """Stop serving; a runtime blocked on ``next`` is answered 410 and let go."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._httpd.shutdown()
        self._httpd.server_close()
