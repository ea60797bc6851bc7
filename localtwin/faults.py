"""Faults injected into a local replay, as the field serves them (``make soak``).

:class:`SinkFaults` is a small HTTP proxy on loopback, in the replay's process, in front
of the twin's endpoint (moto's server, in a process of its own): the function's workers
are pointed at it (``AWS_ENDPOINT_URL``), it forwards every request to the endpoint
unchanged and, for the DynamoDB ``BatchWriteItem`` calls that write the results table,
plays the part of a struggling table and a failing fleet:

* **throttling**: a share of the calls is throttled, half of them with DynamoDB's
  ``ProvisionedThroughputExceededException`` (HTTP 400; the SDK's standard retry mode
  retries it with backoff), half by accepting only the first items and returning the
  rest in ``UnprocessedItems`` (the function retries those itself);
* **throttling bursts**: ``bursts`` times, spread over the run, every call is throttled
  for ``burst_s`` seconds, long enough to outlast the retries inside the function, so
  it reports the unwritten records in ``batchItemFailures`` and Lambda redelivers them;
* **dead workers**: about every ``kill_every`` result writes, the worker process of an
  execution environment that is running an invocation is killed with SIGKILL
  (:meth:`localtwin.runtime.pool.LocalLambda.kill_invoking_environment`); the
  invocation ends in ``Runtime.ExitError``;
* **timeouts**: ``timeouts`` calls, spread over the run, are held for ``hold_s``
  seconds (longer than the function's timeout) before the table takes them: the
  invocation times out and is killed, and the write lands afterwards, as a write
  whose answer was lost does. No worker is killed while a call is held (the kill
  could hit the held invocation); a kill that falls due then comes after.

Every write the table does take is counted per ``record_id``: a record written more
than once was redelivered (after a kill, a timeout or a retried remainder) and
overwritten in place, which the results table's key makes harmless.

The decisions come from one seeded random generator; with several invocations in flight
the interleaving, and so the exact figures, still vary from run to run.
"""

from __future__ import annotations

import binascii
import http.client
import io
import json
import logging
import random
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

_BATCH_WRITE = "DynamoDB_20120810.BatchWriteItem"
#: Headers of one connection, not forwarded (as ``HTTP_*`` WSGI keys without the prefix).
_HOP_BY_HOP = {"CONNECTION", "KEEP_ALIVE", "TRANSFER_ENCODING", "TE", "TRAILER", "UPGRADE", "EXPECT", "HOST"}
_THROTTLED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API.",
}


@dataclass(frozen=True)
class FaultPlan:
    """What to inject.

    Attributes
    ----------
    throttle_share : float
        Share of the results table's BatchWriteItem calls that are throttled.
    kill_every : int
        Result writes between two worker kills (0: none).
    timeouts : int
        Calls held past the function's timeout, spread over ``expected_records``.
    hold_s : float
        How long such a call is held (set it above the function's timeout).
    bursts : int
        Times every call is throttled for ``burst_s`` seconds, spread over ``expected_records``.
    burst_s : float
    expected_records : int
        Records the run will write (to spread the timeouts and bursts).
    seed : int
    """

    throttle_share: float = 0.10
    kill_every: int = 5_000
    timeouts: int = 3
    hold_s: float = 6.0
    bursts: int = 3
    burst_s: float = 1.5
    expected_records: int = 50_000
    seed: int = 11

    def __post_init__(self) -> None:
        if not 0 <= self.throttle_share < 1:
            raise ValueError(f"throttle_share={self.throttle_share}: must be in [0, 1)")
        if min(self.kill_every, self.timeouts, self.hold_s, self.bursts, self.burst_s) < 0 or self.expected_records < 1:
            raise ValueError("kill_every, timeouts, hold_s, bursts and burst_s must be >= 0, expected_records >= 1")


@dataclass
class FaultCounts:
    """What was injected, and what the table took."""

    calls: int = 0
    throttled_errors: int = 0
    throttled_partial: int = 0
    unprocessed_items: int = 0
    kills: int = 0
    kills_missed: int = 0  # a kill was due but no invocation was in flight
    held: int = 0
    bursts: int = 0
    burst_calls: int = 0  # calls throttled because they came during a burst
    writes: Counter[str] = field(default_factory=Counter)  # record_id -> times the table took it

    @property
    def rewrites(self) -> int:
        """Writes of a record beyond its first (redeliveries, overwritten in place)."""
        return sum(self.writes.values()) - len(self.writes)


class SinkFaults:
    """Inject :class:`FaultPlan` into the results table's writes: a proxy, as a context manager.

    Parameters
    ----------
    plan : FaultPlan
    table : str
        The results table; other tables' writes, and every other call, pass untouched.
    upstream : str
        The endpoint the proxy forwards to (``http://127.0.0.1:PORT``).
    kill : callable, optional
        Kills one busy worker, returns whether it did; may be set after construction
        (``.kill = runtime.kill_invoking_environment``). No kills without it.

    While active, :attr:`url` is the proxy's endpoint URL.
    """

    def __init__(self, plan: FaultPlan, table: str, upstream: str, kill: Callable[[], bool] | None = None) -> None:
        self.plan = plan
        self.table = table
        self.upstream = urllib.parse.urlsplit(upstream)
        self.kill = kill
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._connections = threading.local()
        self.counts = FaultCounts()
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._since_kill = 0
        self._written = 0
        self._hold_at = _spread(plan.timeouts, plan.expected_records)
        # Offset from the holds, so that a burst and a hold don't start at one call.
        self._burst_at = [
            n + plan.expected_records // (2 * (plan.bursts + 1)) for n in _spread(plan.bursts, plan.expected_records)
        ]
        self._burst_until = 0.0
        self._holding = 0
        self._original: Any = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running proxy."""
        if self._server is None:
            raise RuntimeError("SinkFaults is not running; use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> SinkFaults:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class NoDelayHandler(WSGIRequestHandler):
            disable_nagle_algorithm = True  # else a body waits ~40 ms for the delayed ACK of its headers

        werkzeug = logging.getLogger("werkzeug")  # no access log line per request on this process's stderr
        if werkzeug.level == logging.NOTSET or werkzeug.level < logging.WARNING:
            werkzeug.setLevel(logging.WARNING)
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=NoDelayHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sink-faults", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET") != _BATCH_WRITE:
            return self._forward(environ, start_response)
        return self._batch_write(self._forward, environ, start_response)

    def _forward(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """Send the request to the upstream endpoint as it came; answer with its response."""
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        body = stream.read(int(length)) if length else (stream.read() if environ.get("wsgi.input_terminated") else b"")
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:] not in _HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers["Content-Length"] = str(len(body))
        path = environ.get("RAW_URI") or urllib.parse.quote(environ.get("PATH_INFO", "/"))
        if "?" not in path and environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        for attempt in range(2):
            connection = getattr(self._connections, "upstream", None)
            if connection is None:
                host, port = self.upstream.hostname or "127.0.0.1", self.upstream.port or 80
                connection = self._connections.upstream = http.client.HTTPConnection(host, port, timeout=120)
            try:
                connection.request(environ["REQUEST_METHOD"], path, body, headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):  # a kept-alive connection the server closed
                connection.close()
                self._connections.upstream = None
                if attempt:
                    raise
        kept = [(k, v) for k, v in response.getheaders() if k.upper().replace("-", "_") not in _HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", kept)
        return [data]

    # --- one BatchWriteItem call

    def _decide(self, n_items: int) -> tuple[str, int, bool, bool]:
        """(``"pass"``/``"error"``/``"partial"``, items kept, kill now, hold now)."""
        with self._lock:
            self.counts.calls += 1
            hold = bool(self._hold_at) and self._written >= self._hold_at[0]
            if hold:
                self._hold_at.pop(0)
                self.counts.held += 1
                self._holding += 1
            # No kill while a call is held: it could hit the held invocation, which must time out.
            kill = bool(self.plan.kill_every) and self._since_kill >= self.plan.kill_every and not self._holding
            if kill:
                self._since_kill = 0
            now = time.monotonic()
            if self._burst_at and self._written >= self._burst_at[0]:
                self._burst_at.pop(0)
                self._burst_until = now + self.plan.burst_s
                self.counts.bursts += 1
            roll = self._rng.random()
            if now < self._burst_until:
                self.counts.burst_calls += 1
                return ("error", 0, kill, hold) if roll < 0.5 else ("partial", 0, kill, hold)
            if roll < self.plan.throttle_share / 2:
                return "error", 0, kill, hold
            if roll < self.plan.throttle_share:
                return "partial", self._rng.randrange(n_items), kill, hold
            return "pass", n_items, kill, hold

    def _batch_write(
        self, forward: Callable[[dict[str, Any], Any], Iterable[bytes]], environ: dict[str, Any], start_response: Any
    ) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        doc = json.loads(body)
        requests = doc.get("RequestItems", {}).get(self.table)
        if not requests or len(doc["RequestItems"]) != 1:  # not (only) the results table
            return forward(_with_body(environ, body), start_response)
        action, keep, kill, hold = self._decide(len(requests))
        if kill:
            killed = self.kill() if self.kill is not None else False
            with self._lock:
                self.counts.kills += killed
                self.counts.kills_missed += not killed
        if hold:
            time.sleep(self.plan.hold_s)
            with self._lock:
                self._holding -= 1
        if action == "error":
            with self._lock:
                self.counts.throttled_errors += 1
            return _respond(start_response, "400 Bad Request", _THROTTLED)
        taken, unprocessed = requests[:keep], requests[keep:]
        status, headers = "200 OK", []
        answer: dict[str, Any] = {"UnprocessedItems": {}}
        if taken:
            captured: dict[str, Any] = {}

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
                captured.update(status=status, headers=headers)

            raw = b"".join(
                forward(_with_body(environ, json.dumps({**doc, "RequestItems": {self.table: taken}}).encode()), capture)
            )
            status, headers = captured["status"], captured["headers"]
            if not status.startswith("200"):
                return _respond(start_response, status, json.loads(raw or b"{}"))
            answer = json.loads(raw)
        with self._lock:
            for request in taken:
                self.counts.writes[request["PutRequest"]["Item"]["record_id"]["S"]] += 1
            self._since_kill += len(taken)
            self._written += len(taken)
            if unprocessed:
                self.counts.throttled_partial += 1
                self.counts.unprocessed_items += len(unprocessed)
        if unprocessed:
            answer.setdefault("UnprocessedItems", {})[self.table] = unprocessed
        kept_headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "x-amz-crc32")]
        return _respond(start_response, status, answer, kept_headers)


def _spread(n: int, total: int) -> list[int]:
    """``n`` points evenly inside ``0..total``."""
    return [total * (k + 1) // (n + 1) for k in range(n)]


def _with_body(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    return {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}


def _respond(
    start_response: Any, status: str, doc: dict[str, Any], headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    body = json.dumps(doc).encode()
    start_response(
        status,
        [
            *(headers or [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", str(uuid.uuid4()))]),
            ("Content-Length", str(len(body))),
            ("x-amz-crc32", str(binascii.crc32(body) & 0xFFFFFFFF)),
        ],
    )
    return [body]
