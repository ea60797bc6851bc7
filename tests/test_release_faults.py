"""Faults at every AWS call of every release command, against moto's server over real HTTP.

A moto server process (:class:`localtwin.moto_server.MotoServer`) sits behind the fault proxy
(:class:`testing.fault_proxy.FaultProxy`); the commands run as a user runs them
(``python -m release ...``'s :func:`release.cli.main`, clients built from the environment with
``AWS_ENDPOINT_URL`` at the proxy). The calls of each command are enumerated by running it once
on a clean setup through the proxy (at collection), so a call added to a command is covered
without touching this file. Then for every (command, call, fault):

1. the command fails: non-zero exit, a message naming the call and the ``make`` command to run,
   no traceback;
2. the alias serves what it served before, or exactly what the command set out to release;
3. ``make releases`` reports an unfinished release whenever AWS holds one, and a different
   release command refuses while it is there, changing nothing;
4. re-running the command finishes it: the alias serves the release, nothing is left
   unfinished, and no layer version was published twice.

Separately, ``make release-abort`` after a lost answer (``timeout``: applied, never confirmed)
puts the alias back and leaves nothing pending. Retries and timeouts are short here
(``RELEASE_*`` environment variables); the defaults are for people.
"""

from __future__ import annotations

import atexit
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from inference.manifest import sha256_bytes, sha256_file

from localtwin.moto_server import CREDENTIALS, REGION, MotoServer
from release.aws import FUNCTION_CHANGES, Clients
from release.cli import main
from release.descriptions import parse_description
from release.settings import load_settings
from release.state import FunctionState
from testing.fault_proxy import FAULTS, FaultProxy
from tests.helpers import fake_deps_zip, fake_model_zip, write_zip

pytestmark = [pytest.mark.aws, pytest.mark.slow]

ACCOUNT = "123456789012"
FUNCTION = "stream-inference"
#: Zips above this go through S3 in these tests (the fake deps layer does; the model layers do not).
UPLOAD_LIMIT = 3000
#: The client bounds for the tests: one try, answers within a second.
CLIENT_ENV = {"RELEASE_MAX_ATTEMPTS": "1", "RELEASE_CONNECT_TIMEOUT_S": "1", "RELEASE_READ_TIMEOUT_S": "1"}


# --------------------------------------------------------------------------- zips and settings


def deps_zip(tmp: Path, build: str) -> Path:
    """A fake dependencies layer for python3.12/x86_64, over :data:`UPLOAD_LIMIT` (so it goes through S3)."""
    padding = sha256_bytes(build.encode()).encode() * 200  # incompressible enough
    return fake_deps_zip(tmp / f"deps-{build}.zip", padding=padding)


def model_zip(tmp: Path, version: str) -> Path:
    return fake_model_zip(tmp / f"model-{version}.zip", version, artifacts=("classifier",))


def candidate_zip(tmp: Path, version: str) -> Path:
    """``model_zip(tmp, version)`` with its files under ``candidate/``: a shadow rollout's candidate layer."""
    import zipfile

    with zipfile.ZipFile(model_zip(tmp, version)) as zf:
        files = {"candidate/" + name.removeprefix("model/"): zf.read(name) for name in zf.namelist()}
    return write_zip(tmp / f"candidate-{version}.zip", files)


def function_zip(tmp: Path, code: str) -> Path:
    return write_zip(
        tmp / f"function-{code}.zip",
        {"lambda_function.py": f"def lambda_handler(e, c):\n    return {code!r}\n".encode()},
    )


def write_toml(path: Path, stream_arn: str, queue_arn: str, *, memory_mb: int = 1024, batch_size: int = 100) -> Path:
    path.write_text(
        f"""[function]
name = "{FUNCTION}"
runtime = "python3.12"
architecture = "x86_64"
memory_mb = {memory_mb}
timeout_s = 60
role_arn = "arn:aws:iam::{ACCOUNT}:role/stream-inference-role"
alias = "live"
[function.environment]
RESULTS_TABLE = "stream-inference-results"
[layers]
model_name = "model-layer"
dependencies_name = "deps-layer"
artifact_bucket = "artifacts-bucket"
[history]
file = "history/releases.jsonl"
[[event_sources]]
type = "kinesis"
source_arn = "{stream_arn}"
batch_size = {batch_size}
starting_position = "TRIM_HORIZON"
on_failure_destination_arn = "{queue_arn}"
"""
    )
    return path


# --------------------------------------------------------------------------- the lab: moto server + proxy


class Lab:
    """One moto server process and the fault proxy in front of it, for the whole session."""

    def __init__(self) -> None:
        import boto3

        self.moto = MotoServer().start()
        self.proxy = FaultProxy(self.moto.url, hold_s=3.0).start()
        credentials = {
            "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": CREDENTIALS["AWS_SESSION_TOKEN"],
            "region_name": REGION,
        }
        self.session = boto3.Session(**credentials)  # one session: its loaded service models are reused
        self.direct = {
            s: self.session.client(s, endpoint_url=self.moto.url) for s in ("lambda", "s3", "sts", "iam", "kinesis")
        }
        self.direct_clients = Clients(self.direct["lambda"], self.direct["s3"], self.direct["sts"])

    def stop(self) -> None:
        self.proxy.stop()
        self.moto.stop()

    def reset(self) -> None:
        self.moto.reset()
        self.proxy.reset()

    def proxied_clients(self) -> Clients:
        """Clients as the CLI builds them (bounded by ``RELEASE_*``), through the proxy."""
        import os

        os.environ["AWS_ENDPOINT_URL"] = self.proxy.url
        return Clients.from_session(self.session)


_LAB: Lab | None = None


def lab() -> Lab:
    global _LAB
    if _LAB is None:
        _LAB = Lab()
        atexit.register(_LAB.stop)
    return _LAB


@dataclass
class World:
    """A function with two releases behind it (model 1.0.0, then 2.0.0 live), and the files to go further."""

    tmp: Path
    toml: Path
    settings: Any
    stream_arn: str
    queue_arn: str
    layers: dict[str, str]


def build_world(tmp: Path, *, function: bool = True) -> World:
    """Everything a release needs, made directly in moto (not through the proxy) with as few calls as
    the state takes: what ``publish-deps-layer``, ``publish-model-layer`` (1.0.0), ``deploy`` and
    ``publish-model-layer`` (2.0.0) would have left."""
    from layers.deps_zip import inspect_deps_zip
    from release.descriptions import deps_description, model_description, version_description
    from release.history import release_tags
    from release.model_zip import verify_model_zip

    d = lab().direct
    lam = d["lambda"]
    d["iam"].create_role(RoleName="stream-inference-role", AssumeRolePolicyDocument="{}")
    d["kinesis"].create_stream(StreamName="reviews", ShardCount=1)
    stream_arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/reviews"
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:failures"  # named only: no queue is needed to map
    d["s3"].create_bucket(Bucket="artifacts-bucket")
    toml = write_toml(tmp / "deploy.toml", stream_arn, queue_arn)
    settings = load_settings(toml)

    def publish(name: str, path: Path, description: str) -> str:
        return lam.publish_layer_version(
            LayerName=name,
            Description=description,
            Content={"ZipFile": path.read_bytes()},
            CompatibleRuntimes=["python3.12"],
            CompatibleArchitectures=["x86_64"],
        )["LayerVersionArn"]

    deps = deps_zip(tmp, "one")
    layers = {
        "deps:1": publish("deps-layer", deps, deps_description("3.12", inspect_deps_zip(deps), sha256_file(deps)))
    }
    models = {v: model_zip(tmp, v) for v in ("1.0.0", "2.0.0")}
    describe = {v: model_description(verify_model_zip(z), sha256_file(z)) for v, z in models.items()}
    layers["model:1"] = publish("model-layer", models["1.0.0"], describe["1.0.0"])
    if function:
        layers["model:2"] = publish("model-layer", models["2.0.0"], describe["2.0.0"])
        config = {
            "Runtime": "python3.12",
            "Role": settings.function.role_arn,
            "Handler": settings.function.handler,
            "MemorySize": 1024,
            "Timeout": 60,
            "Environment": {"Variables": dict(settings.function.environment)},
        }
        fields = {"name": "rotten-tomatoes-sentiment"}
        lam.create_function(
            FunctionName=FUNCTION,
            Code={"ZipFile": function_zip(tmp, "one").read_bytes()},
            Architectures=["x86_64"],
            Layers=[layers["deps:1"], layers["model:1"]],
            **config,
        )
        v1 = version_description("deploy", {**fields, "version": "1.0.0"}, layers["model:1"])
        lam.publish_version(FunctionName=FUNCTION, Description=v1)
        lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1", Description=v1)
        lam.update_function_configuration(FunctionName=FUNCTION, Layers=[layers["deps:1"], layers["model:2"]])
        v2 = version_description("publish-model-layer", {**fields, "version": "2.0.0"}, layers["model:2"])
        lam.publish_version(FunctionName=FUNCTION, Description=v2)
        lam.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="2", Description=v2)
        lam.tag_resource(
            Resource=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}",
            Tags=release_tags("publish-model-layer", "2", layers["model:2"], {**fields, "version": "2.0.0"}),
        )
        source = settings.event_sources[0]
        from release.deploy import mapping_options

        lam.create_event_source_mapping(
            EventSourceArn=stream_arn,
            FunctionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}:live",
            StartingPosition="TRIM_HORIZON",
            **mapping_options(source),
        )
    return World(tmp, toml, settings, stream_arn, queue_arn, layers)


def served() -> tuple[Any, ...] | None:
    """What the alias serves: (code sha256, layers, memory, batch size of the mapping); ``None`` without an alias."""
    lam = lab().direct["lambda"]
    try:
        version = lam.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"]
    except lam.exceptions.ResourceNotFoundException:
        return None
    config = lam.get_function_configuration(FunctionName=FUNCTION, Qualifier=version)
    mappings = lam.list_event_source_mappings(FunctionName=config["FunctionArn"].rsplit(":", 1)[0] + ":live")
    batch = sorted(m["BatchSize"] for m in mappings["EventSourceMappings"])
    return config["CodeSha256"], tuple(layer["Arn"] for layer in config["Layers"]), config["MemorySize"], tuple(batch)


def layer_shas(name: str) -> list[str]:
    """The sha256 in the description of every version of a layer (one per publication)."""
    versions = lab().direct["lambda"].list_layer_versions(LayerName=name)["LayerVersions"]
    return [parse_description(v["Description"])[1].get("sha256", "") for v in versions]


def run(argv: list[str], world: World) -> tuple[int, str, str]:
    """``python -m release --settings TOML ARGV`` in this process, through the proxy; (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(["--settings", str(world.toml), *argv], clients=lab().proxied_clients())
    return status, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- the commands under test


@dataclass(frozen=True)
class Command:
    """A release command: how to set up before it, its argv, and a different command to try while it is unfinished."""

    name: str
    argv: Callable[[World], list[str]]
    function: bool = True
    other: Callable[[World], list[str]] | None = None
    prepare: Callable[[World], None] | None = None


def _bigger(world: World) -> None:
    """Deploy's change: new code, more memory, a bigger batch."""
    write_toml(world.toml, world.stream_arn, world.queue_arn, memory_mb=2048, batch_size=500)


def _plain_deploy(world: World) -> list[str]:
    return ["deploy", "--function-zip", str(function_zip(world.tmp, "one"))]


COMMANDS = {
    c.name: c
    for c in (
        Command("publish-deps-layer", lambda w: ["publish-deps-layer", "--zip", str(deps_zip(w.tmp, "two"))]),
        Command(
            "publish-model-layer",
            lambda w: ["publish-model-layer", "--zip", str(model_zip(w.tmp, "3.0.0"))],
            other=_plain_deploy,
        ),
        Command(
            "shadow",
            lambda w: (
                ["publish-model-layer", "--strategy", "shadow", "--zip", str(model_zip(w.tmp, "3.0.0"))]
                + ["--candidate-zip", str(candidate_zip(w.tmp, "3.0.0"))]
            ),
            other=_plain_deploy,
        ),
        Command("relink", lambda w: ["relink", "--layer-arn", w.layers["model:1"]], other=_plain_deploy),
        Command("rollback", lambda w: ["rollback"], other=_plain_deploy),
        Command(
            "deploy",
            lambda w: ["deploy", "--function-zip", str(function_zip(w.tmp, "two"))],
            prepare=_bigger,
            other=lambda w: ["relink", "--layer-arn", w.layers["model:1"]],
        ),
        Command(
            "first-deploy",
            lambda w: ["deploy", "--function-zip", str(function_zip(w.tmp, "one"))],
            function=False,
            other=lambda w: ["relink", "--layer-arn", w.layers["model:1"]],
        ),
    )
}


@dataclass
class Recording:
    calls: list[str]
    before: Any
    after: Any


def _prepare(command: Command, tmp: Path) -> World:
    lab().reset()
    world = build_world(tmp, function=command.function)
    if command.prepare:
        command.prepare(world)
    return world


def record(command: Command, tmp: Path) -> Recording:
    """Run the command once on a clean setup; the calls it made (through the proxy) and what the alias served."""
    world = _prepare(command, tmp)
    before = served()
    status, out, err = run(command.argv(world), world)
    assert status == 0, err
    return Recording(list(lab().proxy.calls), before, served())


def numbered(calls: list[str]) -> list[tuple[str, int]]:
    """Each call with its occurrence number: ``[("Lambda.GetAlias", 1), ("Lambda.GetAlias", 2), ...]``."""
    seen: dict[str, int] = {}
    out = []
    for call in calls:
        seen[call] = seen.get(call, 0) + 1
        out.append((call, seen[call]))
    return out


_RECORDINGS: dict[str, Recording] = {}


def recording(name: str) -> Recording:
    if name not in _RECORDINGS:
        import tempfile

        with _client_env():
            _RECORDINGS[name] = record(COMMANDS[name], Path(tempfile.mkdtemp(prefix=f"record-{name}-")))
    return _RECORDINGS[name]


class _client_env:
    """The environment of the commands (credentials, region, bounded clients, small upload limit)."""

    def __enter__(self) -> None:
        import os

        import release.upload

        self.saved = {k: os.environ.get(k) for k in (*CLIENT_ENV, *CREDENTIALS, "AWS_DEFAULT_REGION", "AWS_PROFILE")}
        os.environ.update({**CLIENT_ENV, **CREDENTIALS, "AWS_DEFAULT_REGION": REGION})
        os.environ.pop("AWS_PROFILE", None)
        self.limit = release.upload.DIRECT_UPLOAD_LIMIT
        release.upload.DIRECT_UPLOAD_LIMIT = UPLOAD_LIMIT

    def __exit__(self, *exc: object) -> None:
        import os

        import release.upload

        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ.pop("AWS_ENDPOINT_URL", None)
        release.upload.DIRECT_UPLOAD_LIMIT = self.limit


#: The faults every call gets in ``make test``: the two states a dying connection leaves behind, a
#: request that never reached AWS (``drop``) and one AWS applied whose answer was lost (``timeout``;
#: at calls that change something, since at a read it leaves what ``drop`` leaves; likewise the abort
#: cases, after each change).
#: The service's own errors (``http-500``, ``http-503``, ``throttle``) leave the state ``drop`` leaves,
#: through another error path; ``make test-faults`` (``RELEASE_FAULT_KINDS=all``) runs every kind.
DEFAULT_KINDS = ("drop", "timeout")


def fault_kinds() -> tuple[str, ...]:
    """The kinds of ``RELEASE_FAULT_KINDS`` (``all``, or names separated by commas), else :data:`DEFAULT_KINDS`."""
    import os

    chosen = os.environ.get("RELEASE_FAULT_KINDS", "")
    if chosen == "all":
        return FAULTS
    kinds = tuple(k.strip() for k in chosen.split(",") if k.strip()) or DEFAULT_KINDS
    unknown = sorted(set(kinds) - set(FAULTS))
    if unknown:
        raise pytest.UsageError(f"RELEASE_FAULT_KINDS: unknown {unknown}; use 'all' or some of {FAULTS}")
    return kinds


def is_read(call: str) -> bool:
    """Whether an operation (``Lambda.GetAlias``) only reads: applied or not, it changes nothing."""
    return call.split(".")[1].startswith(("Get", "List", "Head", "Describe"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault_case" not in metafunc.fixturenames:
        return
    abort = metafunc.function.__name__ == "test_abort_after_a_lost_answer"
    kinds = ("timeout",) if abort else fault_kinds()
    every_kind_everywhere = os.environ.get("RELEASE_FAULT_KINDS") == "all"
    cases, ids = [], []
    for name in COMMANDS:
        calls = numbered(recording(name).calls)
        first_change = next(
            (i for i, (call, _) in enumerate(calls) if call.split(".")[1] in FUNCTION_CHANGES), len(calls)
        )
        for index, (call, nth) in enumerate(calls):
            if abort and (index < first_change or name == "publish-deps-layer"):
                continue
            for kind in kinds:
                if kind == "timeout" and not every_kind_everywhere and is_read(call):
                    continue  # a read that answers late leaves what a dropped one leaves: nothing applied
                cases.append((name, call, nth, kind))
                ids.append(f"{name}-{index:02d}-{call}#{nth}-{kind}")
    metafunc.parametrize("fault_case", cases, ids=ids)


@pytest.fixture(scope="session")
def the_lab() -> Iterator[Lab]:
    yield lab()


@pytest.fixture
def env(the_lab: Lab, tmp_path: Path) -> Iterator[Path]:
    with _client_env():
        the_lab.reset()
        yield tmp_path


# --------------------------------------------------------------------------- the suite


def test_the_recorded_calls_cover_each_command(env):
    """The enumeration is what the commands do: every change to the function is among the recorded calls."""
    assert "Lambda.PublishVersion" in recording("relink").calls
    assert {"S3.PutObject", "Lambda.PublishLayerVersion"} <= set(recording("publish-deps-layer").calls)
    assert {"Lambda.UpdateFunctionCode", "Lambda.UpdateEventSourceMapping"} <= set(recording("deploy").calls)
    assert {"Lambda.CreateFunction", "Lambda.CreateAlias", "Lambda.CreateEventSourceMapping"} <= set(
        recording("first-deploy").calls
    )
    for name in ("publish-model-layer", "relink", "rollback", "deploy"):
        calls = recording(name).calls
        assert (
            calls.index("Lambda.TagResource")
            < calls.index("Lambda.PublishVersion")
            < calls.index("Lambda.UntagResource")
        )
        assert recording(name).after != recording(name).before


def test_a_fault_at_any_call_leaves_the_alias_alone_and_the_rerun_finishes(env, fault_case):
    name, call, nth, kind = fault_case
    command, rec = COMMANDS[name], recording(name)
    world = _prepare(command, env)
    proxy = lab().proxy
    assert served() == rec.before
    proxy.arm(call, nth, kind)

    status, _, err = run(command.argv(world), world)

    assert proxy.fired == f"{call}#{nth}:{kind}"
    assert status == 1, err
    assert call.split(".")[1] in err and "make " in err and "Traceback" not in err, err
    # The alias serves what it served, or the release (a deploy's mappings come after it and may lag).
    now = served()
    assert now in (rec.before, rec.after) or (
        name.endswith("deploy") and now is not None and now[:3] == rec.after[:3]
    ), now

    proxy.heal()
    state = FunctionState.read(world.settings, lab().direct_clients)
    if state.unfinished:  # AWS holds a half-done release: it is reported, and blocks any other release
        status, out, _ = run(["releases"], world)
        assert status == 0 and "this machine:" in out, out  # the failed command's intent, from the local journal
        assert state.pending is not None and f"unfinished {state.pending.action}" in out, out
    if state.unfinished and command.other is not None:
        now_served = served()
        status, _, other_err = run(command.other(world), world)
        assert status == 2 and "refusing" in other_err and "unfinished" in other_err, other_err
        assert served() == now_served

    status, _, err = run(command.argv(world), world)

    assert status == 0, err
    assert served() == rec.after
    assert not FunctionState.read(world.settings, lab().direct_clients).unfinished
    if name == "publish-deps-layer":
        assert layer_shas("deps-layer").count(sha256_file(deps_zip(world.tmp, "two"))) == 1
    if name == "publish-model-layer":
        assert layer_shas("model-layer").count(sha256_file(model_zip(world.tmp, "3.0.0"))) == 1
    if name == "shadow":
        assert layer_shas("model-layer").count(sha256_file(model_zip(world.tmp, "3.0.0"))) == 1
        assert layer_shas("model-layer-candidate").count(sha256_file(candidate_zip(world.tmp, "3.0.0"))) == 1


def test_abort_after_a_lost_answer(env, fault_case):
    """``make release-abort`` after an applied-but-unconfirmed call (from the command's first change to the
    function on): the alias serves what it served before, and nothing is pending."""
    name, call, nth, kind = fault_case
    command, rec = COMMANDS[name], recording(name)
    world = _prepare(command, env)
    lab().proxy.arm(call, nth, kind)
    assert run(command.argv(world), world)[0] == 1
    lab().proxy.heal()
    completed = not FunctionState.read(world.settings, lab().direct_clients).unfinished

    status, out, err = run(["abort"], world)

    assert status == 0, err
    state = FunctionState.read(world.settings, lab().direct_clients)
    assert state.pending is None
    if completed:  # the lost answer was the release's last call: it went through, nothing to undo
        now = served()  # (a deploy's mappings come after its release: they may still be behind)
        assert "nothing unfinished" in out and now is not None and now[:3] == rec.after[:3], (out, now)
        return
    if rec.before is None:  # nothing was live: abort leaves nothing live
        assert served() is None
        return
    assert served() == rec.before
    code_only = [c for c in state.latest_changes() if not c.startswith("CodeSha256")]
    assert code_only == [], state.latest_changes()


# --------------------------------------------------------------------------- the reproduction, and errors


def test_a_deploy_after_a_relink_cut_at_publish_version_keeps_the_live_model_and_reports_it(env):
    """Issue 17: relink model:1 while model:2 is live, the connection dies at PublishVersion; a plain deploy
    must not release model:1."""
    world = build_world(env)
    lam = lab().direct["lambda"]
    model_2 = world.layers["model:2"]
    assert served()[1][-1] == model_2
    lab().proxy.arm("Lambda.PublishVersion", 1, "drop")

    status, _, err = run(["relink", "--layer-arn", world.layers["model:1"]], world)

    assert status == 1 and "PublishVersion" in err and "make release-abort" in err
    latest = lam.get_function_configuration(FunctionName=FUNCTION)
    assert latest["Layers"][-1]["Arn"] == world.layers["model:1"]  # staged in $LATEST, not released
    assert served()[1][-1] == model_2
    lab().proxy.heal()

    status, out, err = run(_plain_deploy(world), world)

    assert status == 2, out
    assert served()[1][-1] == model_2
    assert "unfinished relink" in err and f"make relink LAYER_ARN={world.layers['model:1']}" in err
    assert "$LATEST changed, not published" in err and "alias moved: no" in err
    history = [json.loads(line) for line in (world.tmp / "history/releases.jsonl").read_text().splitlines()]
    assert not any(
        e.get("event") == "release" and e.get("action") == "deploy" and e["model_layer_arn"] != model_2 for e in history
    )

    status, out, _ = run(["relink", "--layer-arn", world.layers["model:1"]], world)
    assert status == 0 and served()[1][-1] == world.layers["model:1"]
    status, out, _ = run(_plain_deploy(world), world)
    assert status == 0 and "nothing changed" in out and served()[1][-1] == world.layers["model:1"]


def test_an_unreachable_endpoint_fails_fast_and_says_cannot_reach(env, monkeypatch):
    from localtwin.moto_server import free_port

    world = build_world(env)
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RELEASE_MAX_ATTEMPTS", "3")
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setenv("AWS_ENDPOINT_URL", nowhere)
    with redirect_stdout(out), redirect_stderr(err):
        status = main(["--settings", str(world.toml), "relink", "--layer-arn", world.layers["model:1"]])
    assert status == 1
    message = err.getvalue()
    assert f"cannot reach {nowhere}" in message and "refused" not in message and "Nothing on the function" in message


def test_a_missing_bucket_names_the_setting_and_bootstrap(env):
    world = build_world(env)
    for key in _keys():
        lab().direct["s3"].delete_object(Bucket="artifacts-bucket", Key=key)
    lab().direct["s3"].delete_bucket(Bucket="artifacts-bucket")

    status, _, err = run(["publish-deps-layer", "--zip", str(deps_zip(world.tmp, "two"))], world)

    assert status == 2
    assert "artifacts-bucket" in err and "[layers] artifact_bucket in deploy.toml" in err and "make bootstrap" in err
    assert "Traceback" not in err


def _keys() -> list[str]:
    listed = lab().direct["s3"].list_objects_v2(Bucket="artifacts-bucket")
    return [o["Key"] for o in listed.get("Contents", [])]
