"""Stock moto's server in a process of its own, on loopback: an AWS endpoint over real HTTP.

What a user points ``AWS_ENDPOINT_URL`` at to try the release commands without an account
(``make local-aws``), and what the release tests run against end to end. Unlike
:mod:`localtwin.embedded_aws` (moto in the demo's own process, sped up for the replay), this
is moto exactly as released: nothing of it is replaced, and its state lives and dies with
the process.

Usage::

    with MotoServer() as server:
        os.environ["AWS_ENDPOINT_URL"] = server.url
        ...

    python -m localtwin.moto_server --port 5000   # until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

HOST = "127.0.0.1"
#: Fake credentials moto accepts; real ones are never needed (or sent anywhere else).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
REGION = "us-east-1"


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on ``HOST:port``; started by :meth:`start` or ``with``.

    Parameters
    ----------
    port : int, optional
        A free port is chosen when omitted.
    startup_timeout_s : float
        How long :meth:`start` waits for the server to answer before giving up.
    """

    def __init__(self, port: int | None = None, startup_timeout_s: float = 30.0) -> None:
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        # The server logs every request to stderr: into a file, never a pipe nobody reads (it would fill
        # up after some 64 KB and block the server).
        self._log: Any = None

    @property
    def url(self) -> str:
        """The endpoint URL, e.g. ``http://127.0.0.1:5000``."""
        return f"http://{HOST}:{self.port}"

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (and the Makefile's commands) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            **CREDENTIALS,
        }

    def start(self) -> MotoServer:
        """Start the process and wait until it answers HTTP.

        Raises
        ------
        RuntimeError
            If the process exits or does not answer within ``startup_timeout_s``.
        """
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (open as long as the process runs; closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise RuntimeError(f"moto server exited with {self.process.returncode}: {err.strip()[-500:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.url} within {self.startup_timeout_s:.0f} s")

    def reset(self) -> None:
        """Forget every resource (moto's ``/moto-api/reset``), keeping the process."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s); idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run stock moto's server on loopback until Ctrl-C.")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    with MotoServer(args.port) as server:
        print(f"moto server on {server.url} (pid {server.process.pid if server.process else '?'}); Ctrl-C stops it")
        for name, value in server.environment().items():
            print(f"export {name}={value}")
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        signal.sigwait(stop_signals)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
