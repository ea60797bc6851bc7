"""Run the handler on an event file from the built zips, like ``sam local invoke -e``.

The function zip and the layers (by default the dependencies layer, then the model
layer) are extracted the way Lambda does it, and the event goes through the local
Lambda runtime (:class:`localtwin.runtime.pool.LocalLambda`): a worker process
running AWS's runtime interface client, importing only from the zips and the runtime.
The response JSON goes to stdout; the function's logs and Lambda's ``START`` / ``END``
/ ``REPORT`` lines go to stderr; a function error exits with status 1.

Usage: ``python -m localtwin.invoke EVENT.json [--function build/function.zip]
[--layer ZIP ...] [--env KEY=VALUE ...] [--memory-mb 1024] [--timeout-s 60]``;
``-`` as ``EVENT.json`` reads the event from standard input (like ``sam local invoke -e -``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from layers.deps_layer import DEFAULT_OUT as DEPS_LAYER
from layers.function_zip import DEFAULT_OUT as FUNCTION_ZIP
from layers.model_layer import DEFAULT_OUT as MODEL_LAYER
from layers.zipping import extract_tree
from localtwin.runtime.pool import LocalLambda
from localtwin.runtime.report import InvokeResult

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
#: The function zip an invocation runs unless told otherwise (``make function-zip`` builds it).
DEFAULT_FUNCTION = FUNCTION_ZIP
#: The model layer alone (``experiments.bench`` runs the function with the venv's libraries).
DEFAULT_LAYERS = [MODEL_LAYER]
#: What an invocation runs with unless told otherwise: dependencies, then model.
INVOKE_LAYERS = [DEPS_LAYER, MODEL_LAYER]
#: Host variables handed to the function, as ``sam local invoke`` hands over credentials.
FORWARDED = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE",
)


def extract(function_zip: Path, layer_zips: list[Path], into: Path) -> tuple[Path, Path]:
    """Unzip the function to ``into/task`` and the layers, in order, to ``into/opt``."""
    shutil.rmtree(into, ignore_errors=True)
    return extract_tree(function_zip, layer_zips, into)


def run_events(
    events: list[dict[str, Any]],
    function_zip: Path = DEFAULT_FUNCTION,
    layer_zips: list[Path] | None = None,
    env: dict[str, str] | None = None,
    workdir: Path = BUILD / "invoke",
    log: Callable[[str], None] | None = None,
    memory_mb: int = 1024,
    timeout_s: float = 60,
) -> list[InvokeResult]:
    """Invoke the function on each event in turn, in one (warm) execution environment.

    Stops after the first invocation that fails. ``env`` is the function's
    environment, on top of the host's AWS credentials, region and endpoint.
    """
    environment = {k: os.environ[k] for k in FORWARDED if k in os.environ}
    environment.update(env or {})
    results = []
    with LocalLambda(
        function_zip,
        INVOKE_LAYERS if layer_zips is None else layer_zips,
        environment=environment,
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        max_environments=1,
        log=log,
        workdir=workdir,
    ) as function:
        for event in events:
            results.append(function.invoke(event))
            if results[-1].error is not None:
                break
    return results


def invoke(
    event: dict[str, Any] | list[dict[str, Any]],
    function_zip: Path = DEFAULT_FUNCTION,
    layer_zips: list[Path] | None = None,
    env: dict[str, str] | None = None,
    workdir: Path = BUILD / "invoke",
    many: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Invoke the handler on ``event``; return what a CLI run would have printed.

    ``stdout`` holds the response JSON (with ``many=True``: ``event`` is a list of
    events handled one after the other by the same warm environment, and stdout holds
    the list of responses); ``stderr`` holds the function's log lines, then on failure
    the error document; ``returncode`` is 1 if an invocation failed.
    """
    events = cast(list[dict[str, Any]], list(event) if many else [event])
    results = run_events(events, function_zip, layer_zips, env, workdir, log=lambda line: None)
    logs = [line for result in results for line in result.logs]
    failed = next((result for result in results if result.error is not None), None)
    if failed is not None:
        stderr = "".join(line + "\n" for line in [*logs, json.dumps(failed.error)])
        return subprocess.CompletedProcess(["localtwin.invoke"], 1, "", stderr)
    payloads = [result.payload for result in results]
    stdout = json.dumps(payloads) if many else json.dumps(payloads[0], indent=2)
    return subprocess.CompletedProcess(["localtwin.invoke"], 0, stdout + "\n", "".join(line + "\n" for line in logs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Invoke the built function on an event file.")
    parser.add_argument("event", help="event JSON file (e.g. from `make events`), or - for standard input")
    parser.add_argument("--function", type=Path, default=DEFAULT_FUNCTION)
    parser.add_argument(
        "--layer", type=Path, action="append", help="layer zip, in order (default: the dependencies + model layers)"
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the function's environment")
    parser.add_argument("--memory-mb", type=int, default=1024, help="memory size (MB), default 1024")
    parser.add_argument("--timeout-s", type=float, default=60, help="timeout (seconds), default 60")
    args = parser.parse_args(argv)
    source = "standard input" if args.event == "-" else args.event
    try:
        event = json.loads(sys.stdin.read() if args.event == "-" else Path(args.event).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"invoke: cannot read event {source}: {exc}", file=sys.stderr)
        return 2
    bad = [item for item in args.env if "=" not in item]
    if bad:
        parser.error(f"--env takes KEY=VALUE, got {bad[0]!r}")
    env = dict(item.split("=", 1) for item in args.env)
    try:
        (result,) = run_events(
            [event], args.function, args.layer, env, memory_mb=args.memory_mb, timeout_s=args.timeout_s
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"invoke: {exc}", file=sys.stderr)
        return 2
    if result.error is not None:
        print(f"invoke: the function failed: {json.dumps(result.error)}", file=sys.stderr)
        return 1
    print(json.dumps(result.payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
