"""Reading an HTTP request's body in a ``http.server`` handler: by ``Content-Length`` or chunked.

``BaseHTTPRequestHandler`` leaves the body to the handler; botocore sends a chunked body for
streamed uploads and ``awslambdaric`` may too, so both loopback servers here (the local Runtime
API and the fault proxy) read it with :func:`read_request_body`.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


def read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The whole body of the request ``handler`` is serving (trailers of a chunked body are skipped)."""
    rfile, headers = handler.rfile, handler.headers
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline()
    return rfile.read(int(headers.get("Content-Length") or 0))
