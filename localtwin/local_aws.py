"""``make local-aws``: a local AWS endpoint holding what the release commands need, until Ctrl-C.

1. Starts stock moto's server on loopback (:class:`localtwin.moto_server.MotoServer`), as
   the account of ``[function] role_arn`` (moto's ``MOTO_ACCOUNT_ID``).
2. Writes ``OUT/deploy.toml`` (default ``build/local-aws/``): a copy of the settings whose
   ``[history] file`` is ``OUT/releases.jsonl``, so releases tried here never enter the
   history of real ones (moto forgets everything when it stops; that file should too).
3. Runs ``make bootstrap`` against it with ``--yes --create-streams``: the role, log group,
   artifact bucket, on-failure queue, results table and the Kinesis source stream(s).
4. Prints one ``export ...`` line: the endpoint, fake credentials, the region of the
   settings' streams and ``DEPLOY_SETTINGS``. Paste it into another shell and every release
   target (``make publish-deps-layer``, ``publish-model-layer``, ``deploy``, ``releases``,
   ``relink``, ``rollback``) talks to this server instead of an account.

Everything lives in the server process: stopping it (Ctrl-C) forgets every resource. Edit
``deploy.toml``? Restart ``make local-aws`` (the copy is taken at start).

Usage::

    python -m localtwin.local_aws [--port 5000] [--settings deploy.toml] [--out build/local-aws]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path

from localtwin.moto_server import REGION, MotoServer
from release.bootstrap import BootstrapClients
from release.bootstrap import main as bootstrap_main
from release.settings import ROOT, Settings, SettingsError, load_settings, settings_path

DEFAULT_OUT = ROOT / "build" / "local-aws"
HISTORY_FILE = "releases.jsonl"


def local_settings_text(text: str, history_file: str = HISTORY_FILE) -> str:
    """``deploy.toml``'s text with ``[history] file`` set to ``history_file`` (relative to the copy).

    Every other line is kept as written: the copy names the same function, layers and streams.
    """
    lines = text.splitlines()
    entry = f"file = {json.dumps(history_file)}"
    table = None
    for i, line in enumerate(lines):
        header = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
        if header or line.lstrip().startswith("[["):
            if table == "history":  # [history] without a file key: add one at its end
                lines.insert(i, entry)
                return "\n".join(lines) + "\n"
            table = header.group(1) if header else None
        elif table == "history" and re.match(r"^\s*file\s*=", line):
            lines[i] = entry
            return "\n".join(lines) + "\n"
    if table == "history":
        return "\n".join([*lines, entry]) + "\n"
    return "\n".join([*lines, "", "[history]", entry]) + "\n"


def write_local_settings(settings: Settings, out: Path) -> Path:
    """Write ``out/deploy.toml`` (:func:`local_settings_text` of ``settings``' file) and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "deploy.toml"
    path.write_text(local_settings_text(settings.path.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def settings_region(settings: Settings) -> str:
    """The region the settings' streams are in (where the function must be); moto's default without streams."""
    return settings.event_sources[0].source_arn.split(":")[3] if settings.event_sources else REGION


def export_line(environment: dict[str, str]) -> str:
    """One shell line exporting ``environment``."""
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in environment.items())


def main(argv: list[str] | None = None) -> int:
    """Start the server, bootstrap it, print the export line, and serve until SIGINT / SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m localtwin.local_aws", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--settings", type=Path, help="settings file to copy (default: $DEPLOY_SETTINGS, deploy.toml)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the settings copy and its history go")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(settings_path(args.settings))
    except SettingsError as exc:
        print(f"local-aws: {exc}", file=sys.stderr)
        return 2
    local_settings = write_local_settings(settings, args.out.resolve())
    account = settings.function.role_arn.split(":")[4]
    os.environ["MOTO_ACCOUNT_ID"] = account  # inherited by the server process: it answers as this account
    server = MotoServer(args.port)
    with server:
        environment = {
            **server.environment(),
            "AWS_DEFAULT_REGION": settings_region(settings),
            "DEPLOY_SETTINGS": str(local_settings),
        }
        os.environ.update(environment)
        os.environ.pop("AWS_PROFILE", None)  # credentials of a profile would never be used here
        print(f"local-aws: moto server on {server.url}, account {account}; bootstrapping {local_settings}")
        import boto3

        status = bootstrap_main(
            ["--yes", "--create-streams", "--settings", str(local_settings)],
            clients=BootstrapClients.from_session(boto3.Session()),
        )
        if status != 0:
            print("local-aws: bootstrap failed (above); stopping the server", file=sys.stderr)
            return status
        print("\nIn another shell, run the release targets against it (Ctrl-C here stops it and forgets everything):")
        print(export_line(environment), flush=True)
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        signal.sigwait(stop_signals)
    print("local-aws: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
