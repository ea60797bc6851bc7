"""Run the handler once on an event file, from the built zips, like ``sam local invoke -e``.

The function zip and the model layer zip are extracted the way Lambda does it (the
layer into a folder standing for ``/opt``), and the handler runs in a fresh
interpreter that imports the function only from the extracted zip. The response JSON
goes to stdout; the function's logs go to stderr.

Usage: ``python -m tools.invoke EVENT.json [--function build/function.zip]
[--layer build/layers/model-layer.zip] [--env KEY=VALUE ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
DEFAULT_FUNCTION = BUILD / "function.zip"
DEFAULT_LAYERS = [BUILD / "layers" / "model-layer.zip"]

# Runs inside the fresh interpreter: function code from the task root only, logs to stderr.
_BOOTSTRAP = r"""
import json, sys, uuid
task_root = sys.argv[1]
sys.path.insert(0, task_root)
event = json.load(sys.stdin)
real_stdout, sys.stdout = sys.stdout, sys.stderr

class Context:
    function_name = "local-invoke"
    memory_limit_in_mb = 1024
    aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return 60000

import lambda_function
if sys.argv[2:] == ["--many"]:
    responses = [lambda_function.lambda_handler(e, Context()) for e in event]
    real_stdout.write(json.dumps(responses, default=str) + "\n")
else:
    response = lambda_function.lambda_handler(event, Context())
    real_stdout.write(json.dumps(response, indent=2, default=str) + "\n")
"""


def extract(function_zip: Path, layer_zips: list[Path], into: Path) -> tuple[Path, Path]:
    """Unzip the function to ``into/task`` and the layers, in order, to ``into/opt``."""
    for missing in [p for p in [function_zip, *layer_zips] if not Path(p).is_file()]:
        raise FileNotFoundError(f"{missing} not found: build it first (make function-zip / make model-layer)")
    shutil.rmtree(into, ignore_errors=True)
    task, opt = into / "task", into / "opt"
    with zipfile.ZipFile(function_zip) as zf:
        zf.extractall(task)
    opt.mkdir(parents=True)
    for layer in layer_zips:
        with zipfile.ZipFile(layer) as zf:
            zf.extractall(opt)
    return task, opt


def invoke(
    event: dict | list[dict],
    function_zip: Path = DEFAULT_FUNCTION,
    layer_zips: list[Path] | None = None,
    env: dict[str, str] | None = None,
    workdir: Path = BUILD / "invoke",
    many: bool = False,
) -> subprocess.CompletedProcess:
    """Invoke the handler on ``event`` in a fresh interpreter; return the finished process.

    With ``many=True``, ``event`` is a list of events handled one after the other by the
    same (warm) interpreter, and stdout holds the list of responses.
    """
    task, opt = extract(function_zip, layer_zips or DEFAULT_LAYERS, workdir)
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    child_env.update(
        {"MODEL_DIR": str(opt / "model"), "AWS_LAMBDA_FUNCTION_NAME": "local-invoke", "LAMBDA_TASK_ROOT": str(task)}
    )
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, str(task), *(["--many"] if many else [])],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=child_env,
        cwd=task,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Invoke the built function on an event file.")
    parser.add_argument("event", type=Path, help="event JSON file (e.g. from `make events`)")
    parser.add_argument("--function", type=Path, default=DEFAULT_FUNCTION)
    parser.add_argument("--layer", type=Path, action="append", help="layer zip, in order (default: the model layer)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the function's environment")
    args = parser.parse_args(argv)
    try:
        event = json.loads(args.event.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"invoke: cannot read event {args.event}: {exc}", file=sys.stderr)
        return 2
    bad = [item for item in args.env if "=" not in item]
    if bad:
        parser.error(f"--env takes KEY=VALUE, got {bad[0]!r}")
    env = dict(item.split("=", 1) for item in args.env)
    proc = invoke(event, args.function, args.layer, env)
    sys.stderr.write(proc.stderr)
    sys.stdout.write(proc.stdout)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
