"""docs/first-deploy.md, followed command by command against ``make local-aws`` (a moto server process, over HTTP).

The test starts ``python -m localtwin.local_aws`` as the page says, takes the environment from
the ``export`` line it prints, and runs the page's sequence in that environment, each ``make``
command as the ``python -m`` command its Makefile recipe runs (checked below against the
Makefile). After each command it checks the command's effect through boto3 against the same
endpoint. The layer zips are small fakes (the real ones are tested by the layer checks, which
the publish targets run first and this test does not).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release.settings import DEFAULT_PATH, ROOT, load_settings
from tests.helpers import fake_deps_zip, fake_model_zip, write_zip

pytestmark = pytest.mark.aws

DOC = ROOT / "docs" / "first-deploy.md"
MAKEFILE = ROOT / "Makefile"
#: What each target's recipe runs (before its options), as the Makefile spells it.
RECIPES = {
    "bootstrap": "$(PY) -m release.bootstrap",
    "local-aws": "$(PY) -m localtwin.local_aws",
    "publish-deps-layer": "$(RELEASE) publish-deps-layer --zip",
    "publish-model-layer": "$(RELEASE) publish-model-layer --zip",
    "deploy": "$(RELEASE) deploy --function-zip",
    "releases": "$(RELEASE) releases",
    "relink": '$(RELEASE) relink --layer-arn "$(LAYER_ARN)"',
    "rollback": "$(RELEASE) rollback",
}
SETTINGS = load_settings(DEFAULT_PATH)
FUNCTION, ALIAS = SETTINGS.function.name, SETTINGS.function.alias
DEPS, MODEL = SETTINGS.layers.dependencies_name, SETTINGS.layers.model_name
PYTHON_TAG = SETTINGS.function.runtime.removeprefix("python").replace(".", "")


# --------------------------------------------------------------------------- the page and the Makefile


def _bash_blocks(text: str) -> list[list[str]]:
    """The command lines of each ```bash block (comments and blank lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [
        [ln.split(" #")[0].strip() for ln in b.splitlines() if ln.strip() and not ln.startswith("#")] for b in blocks
    ]


def _recipe(target: str) -> str:
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", MAKEFILE.read_text(encoding="utf-8"), re.M)
    assert match, f"no target {target} in the Makefile"
    return match.group(1)


def test_each_make_target_the_page_uses_runs_the_command_this_test_runs():
    commands = [line for block in _bash_blocks(DOC.read_text(encoding="utf-8")) for line in block]
    targets = {shlex.split(line)[1] for line in commands if line.startswith("make ")}
    assert targets == set(RECIPES)
    for target, command in RECIPES.items():
        assert command in _recipe(target), target


@pytest.mark.parametrize(
    "history",
    ['[history]\nfile = "build/releases.jsonl"\n', "[history]\n# no file: the default\n", ""],
    ids=["file set", "no file key", "no history table"],
)
def test_the_local_settings_copy_keeps_everything_but_the_history_file(tmp_path, history):
    from localtwin.local_aws import local_settings_text

    text = DEFAULT_PATH.read_text(encoding="utf-8").split("[history]")[0] + history
    original = tomllib.loads(text)
    copy = tomllib.loads(local_settings_text(text))
    assert copy.pop("history") == {"file": "releases.jsonl"}
    original.pop("history", None)
    assert copy == original


# --------------------------------------------------------------------------- fake zips


def _deps_zip(tmp: Path) -> Path:
    """A dependencies layer for deploy.toml's runtime and architecture: dist-info folders, one extension name."""
    arch = {"arm64": "aarch64"}.get(SETTINGS.function.architecture, SETTINGS.function.architecture)
    return fake_deps_zip(tmp / "deps-layer.zip", extension_tag=f"cpython-{PYTHON_TAG}-{arch}")


def _model_zip(tmp: Path, version: str) -> Path:
    """A model layer whose manifest lists its two artifacts with their sha256, built for the same libraries."""
    python = f"{SETTINGS.function.runtime.removeprefix('python')}.1"
    return fake_model_zip(tmp / f"model-layer-{version}.zip", version, python=python)


# --------------------------------------------------------------------------- make local-aws


@pytest.fixture
def local_aws(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``python -m localtwin.local_aws`` (what ``make local-aws`` runs) until the test ends; its export line parsed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = f"{ROOT / 'function'}{os.pathsep}{ROOT}"
    out = tmp_path / "local-aws"
    process = subprocess.Popen(
        [sys.executable, "-m", "localtwin.local_aws", "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    printed = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            printed.append(line)
            if line.startswith("export "):
                break
        else:
            pytest.fail(
                f"local-aws printed no export line: {''.join(printed)}{process.stderr.read() if process.stderr else ''}"
            )
        exported = dict(item.split("=", 1) for item in shlex.split(printed[-1])[1:])
        yield {
            "process": process,
            "printed": "".join(printed),
            "exported": exported,
            "env": {**env, **exported},
            "out": out,
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def _run(local: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=local["env"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def _boto3_session(local: dict[str, Any]) -> Any:
    import boto3

    exported = local["exported"]
    return boto3.Session(
        aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=exported["AWS_SESSION_TOKEN"],
        region_name=exported["AWS_DEFAULT_REGION"],
    )


def test_the_first_deploy_page_against_local_aws(local_aws, tmp_path, monkeypatch):
    blocks = _bash_blocks(DOC.read_text(encoding="utf-8"))
    sequence = blocks[0]
    local_block = blocks[1:]
    assert local_block[0] == ["make local-aws"]
    assert local_block[1][0].startswith("export AWS_ENDPOINT_URL=") and local_block[1][1:] == sequence[:2]

    exported = local_aws["exported"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", exported["AWS_ENDPOINT_URL"])
    assert exported["DEPLOY_SETTINGS"] == str(local_aws["out"] / "deploy.toml")
    settings_copy = load_settings(exported["DEPLOY_SETTINGS"])
    assert settings_copy.history.file == local_aws["out"] / "releases.jsonl"
    assert settings_copy.function == SETTINGS.function and settings_copy.event_sources == SETTINGS.event_sources
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, exported[name])  # boto3 in this process: the same endpoint
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    session = _boto3_session(local_aws)
    lam = session.client("lambda")
    repo_history = SETTINGS.history.file
    repo_history_before = repo_history.read_bytes() if repo_history.exists() else None

    # local-aws bootstrapped everything, the stream included.
    assert f"created IAM role {SETTINGS.function.role_arn.rsplit('/', 1)[1]}" in local_aws["printed"]
    assert session.client("iam").get_role(RoleName="stream-inference-role")["Role"]["Arn"] == SETTINGS.function.role_arn
    stream = session.client("kinesis").describe_stream_summary(StreamName="reviews")["StreamDescriptionSummary"]
    assert stream["StreamARN"] == SETTINGS.event_sources[0].source_arn

    function_zip = write_zip(
        tmp_path / "function.zip", {"lambda_function.py": b"def lambda_handler(e, c):\n    return {}\n"}
    )
    model_zips = iter([_model_zip(tmp_path, "1.0.0"), _model_zip(tmp_path, "1.1.0")])
    layer_arn = f"arn:aws:lambda:{exported['AWS_DEFAULT_REGION']}:{SETTINGS.function.role_arn.split(':')[4]}:layer"

    def live_layers() -> list[str]:
        return [
            layer["Arn"] for layer in lam.get_function_configuration(FunctionName=FUNCTION, Qualifier=ALIAS)["Layers"]
        ]

    for line in sequence:
        words = shlex.split(line)
        target, variables = words[1], dict(w.split("=", 1) for w in words[2:])
        if target == "bootstrap":
            done = _run(local_aws, "release.bootstrap")  # no terminal, and nothing to ask about
            assert "bootstrap: nothing to create" in done.stdout
        elif target == "publish-deps-layer":
            done = _run(local_aws, "release", "publish-deps-layer", "--zip", str(_deps_zip(tmp_path)))
            assert f"published {layer_arn}:{DEPS}:1" in done.stdout
        elif target == "publish-model-layer":
            done = _run(local_aws, "release", "publish-model-layer", "--zip", str(next(model_zips)))
            if "MODEL_SRC" not in variables:
                assert f"published {layer_arn}:{MODEL}:1" in done.stdout and "does not exist yet" in done.stdout
                with pytest.raises(lam.exceptions.ResourceNotFoundException):
                    lam.get_function(FunctionName=FUNCTION)
            else:  # the next model: a release
                assert f"published {layer_arn}:{MODEL}:2" in done.stdout
                assert live_layers() == [f"{layer_arn}:{DEPS}:1", f"{layer_arn}:{MODEL}:2"]
        elif target == "deploy":
            _run(local_aws, "release", "deploy", "--function-zip", str(function_zip))
            config = lam.get_function_configuration(FunctionName=FUNCTION, Qualifier=ALIAS)
            assert config["Version"] != "$LATEST" and config["Role"] == SETTINGS.function.role_arn
            assert (config["Runtime"], config["Architectures"]) == (
                SETTINGS.function.runtime,
                [SETTINGS.function.architecture],
            )
            assert live_layers() == [f"{layer_arn}:{DEPS}:1", f"{layer_arn}:{MODEL}:1"]
            alias_arn = config["FunctionArn"].rsplit(":", 1)[0] + f":{ALIAS}"
            source = SETTINGS.event_sources[0]
            # moto reports the mapping's FunctionArn as the alias's version: ask by alias instead.
            (mapping,) = lam.list_event_source_mappings(EventSourceArn=source.source_arn, FunctionName=alias_arn)[
                "EventSourceMappings"
            ]
            assert mapping["BatchSize"] == source.batch_size
            assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == source.on_failure_destination_arn
            again = _run(local_aws, "release", "deploy", "--function-zip", str(function_zip))
            assert "nothing changed" in again.stdout  # the page: "Run again: nothing changes"
        elif target == "releases":
            done = _run(local_aws, "release", "releases")
            rows = {arn: ln for ln in done.stdout.splitlines() for arn in re.findall(r"arn:\S+", ln)}
            assert set(rows) >= {f"{layer_arn}:{MODEL}:1", f"{layer_arn}:{MODEL}:2"}
            assert "1.0.0" in rows[f"{layer_arn}:{MODEL}:1"] and "1.1.0" in rows[f"{layer_arn}:{MODEL}:2"]
            assert rows[f"{layer_arn}:{MODEL}:2"].lstrip().startswith("*")
            assert not rows[f"{layer_arn}:{MODEL}:1"].lstrip().startswith("*")
        elif target == "relink":
            assert variables["LAYER_ARN"] == f"{layer_arn}:{MODEL}:1"
            before = lam.get_alias(FunctionName=FUNCTION, Name=ALIAS)["FunctionVersion"]
            _run(local_aws, "release", "relink", "--layer-arn", variables["LAYER_ARN"])
            assert lam.get_alias(FunctionName=FUNCTION, Name=ALIAS)["FunctionVersion"] != before
            assert live_layers() == [f"{layer_arn}:{DEPS}:1", f"{layer_arn}:{MODEL}:1"]
        elif target == "rollback":
            _run(local_aws, "release", "rollback")
            assert live_layers() == [f"{layer_arn}:{DEPS}:1", f"{layer_arn}:{MODEL}:2"]
        else:
            pytest.fail(f"the page runs `{line}`, which this test does not know")

    # The releases went to the copy's history, not to the repository's.
    history = [json.loads(ln) for ln in (local_aws["out"] / "releases.jsonl").read_text().splitlines()]
    assert history and all(entry.get("function", FUNCTION) == FUNCTION for entry in history)
    assert (repo_history.read_bytes() if repo_history.exists() else None) == repo_history_before

    # Ctrl-C stops the server: the endpoint is gone.
    process = local_aws["process"]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    port = int(exported["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
