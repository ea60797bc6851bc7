"""The twin's AWS endpoint process: moto's server application, metered (``python -m localtwin.endpoint``).

Runs moto's application as ``python -m moto.server`` does (moto's ``DomainDispatcherApplication``
over ``create_backend_app``), unchanged, wrapped in :class:`localtwin.replay.meter.MeteredApp`,
which times every request per operation and answers ``GET /_localtwin/meter`` with the figures
and ``GET /_localtwin/timeline`` with every request's times (arrival, moto's answer, the answer
written back). It is served by :mod:`localtwin.wsgi_server` rather than werkzeug's development
server, which closes every connection after one request: here connections are kept alive, with
``TCP_NODELAY``. With ``--fast-moto`` (the demo's and the soak's switch) only, and only in this
process, :func:`localtwin.moto_speedups.speed_up_moto` replaces moto's slow paths first.
:class:`localtwin.embedded_aws.EmbeddedAWS` starts it as a child process
(:class:`localtwin.moto_server.MotoServer`); it runs until SIGTERM.

Usage: ``python -m localtwin.endpoint -H 127.0.0.1 -p 5000 [--fast-moto]``
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from typing import Any

from localtwin.replay.meter import MeteredApp
from localtwin.wsgi_server import make_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--fast-moto", action="store_true", help="apply localtwin.moto_speedups in this process")
    args = parser.parse_args(argv)
    if args.fast_moto:
        from localtwin.moto_speedups import speed_up_moto

        if not speed_up_moto():
            print("endpoint: --fast-moto: this moto lacks the methods the speed-ups replace", file=sys.stderr)
            return 2
    from moto.server import DomainDispatcherApplication, create_backend_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    app = MeteredApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, on_written=app.written)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(SystemExit, KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
