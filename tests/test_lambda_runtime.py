"""The local Lambda runtime (``localtwin.runtime``) with scripted functions.

Tiny handlers zipped on the fly (no layers, or tiny fake ones) keep these fast; one
test runs the real function from its zip and layers.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from localtwin.runtime.pool import LocalLambda
from localtwin.runtime.report import PayloadTooLargeError
from localtwin.runtime.staging import ensure_runtime_dir
from testing.events import SAMPLE_TEXTS, kinesis_event

pytestmark = pytest.mark.twin

SCRIPTED = """
import json, os, sys, time

CALLS = 0
print(json.dumps({"message": "init"}))


def lambda_handler(event, context):
    global CALLS
    CALLS += 1
    print(json.dumps({"message": "handling", "request_id": context.aws_request_id}))
    action = event.get("action", "echo")
    if action == "raise":
        raise ValueError(f"record {event['k']} is bad")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "exit":
        os._exit(3)
    if action == "spin":
        started = time.process_time()
        while time.process_time() - started < event["seconds"]:
            pass
    if action == "allocate":
        block = bytearray(event["mb"] << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
    return {
        "event": event,
        "pid": os.getpid(),
        "calls": CALLS,
        "request_id": context.aws_request_id,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": dict(os.environ),
        "sys_path": sys.path,
        "cwd": os.getcwd(),
    }
"""

REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: \d+\.\d{2} ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: (?P<memory>\d+) MB\tMax Memory Used: \d+ MB(?P<init>\tInit Duration: \d+\.\d{2} ms)?"
    r"(?P<status>\tStatus: \w+\tError Type: [\w.]+)?$"
)


def make_zip(path: Path, files: dict[str, str]) -> Path:
    """A zip holding ``files`` (archive name -> source text)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def scripted_zip(tmp_path_factory) -> Path:
    return make_zip(tmp_path_factory.mktemp("fn") / "function.zip", {"lambda_function.py": SCRIPTED})


@pytest.fixture
def local(tmp_path):
    """``local(zip, layers=[], **options)``: a LocalLambda closed after the test, logging to a list."""
    made: list[LocalLambda] = []

    def _make(function_zip: Path, layers: list[Path] | None = None, **options) -> LocalLambda:
        lines: list[str] = []
        options.setdefault("memory_mb", 128)
        options.setdefault("timeout_s", 5)
        fn = LocalLambda(function_zip, layers or [], log=lines.append, workdir=tmp_path / f"w{len(made)}", **options)
        fn.lines = lines  # type: ignore[attr-defined]
        made.append(fn)
        return fn

    yield _make
    for fn in made:
        fn.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_echo_runs_in_an_isolated_worker_with_lambdas_environment(local, scripted_zip, tmp_path):
    layer = make_zip(tmp_path / "layer.zip", {"python/helper_lib.py": "VALUE = 42\n"})
    fn = local(scripted_zip, [layer], environment={"RESULTS_TABLE": "results", "CONFIG": "/opt/config.json"})

    result = fn.invoke({"action": "echo", "k": 1})

    assert result.error is None, result.error
    payload = result.payload
    assert payload["event"] == {"action": "echo", "k": 1}
    assert result.cold and payload["calls"] == 1
    assert payload["request_id"] == result.report.request_id
    assert payload["memory_limit_in_mb"] == "128"
    assert 0 < payload["remaining_ms"] <= 5000
    task, opt = fn.task_root, fn.opt
    env = payload["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "stream-inference"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/stream-inference"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert (env["TZ"], env["_HANDLER"]) == (":UTC", "lambda_function.lambda_handler")
    assert env["LAMBDA_TASK_ROOT"] == str(task) == payload["cwd"]
    assert env["RESULTS_TABLE"] == "results"
    assert env["CONFIG"] == f"{opt}/config.json"  # /opt is the extracted layer tree
    assert env["MODEL_DIR"] == f"{opt}/model"
    assert not {"PYTEST_CURRENT_TEST", "VIRTUAL_ENV"} & set(env)  # nothing leaks from the host
    runtime = ensure_runtime_dir()
    site = f"{opt}/python/lib/python3.{sys.version_info[1]}/site-packages"
    assert payload["sys_path"][:4] == [str(task), site, f"{opt}/python", str(runtime)]
    assert all("site-packages" not in p for p in payload["sys_path"][4:])  # then the stdlib only
    assert [json.loads(line)["message"] for line in result.logs] == ["init", "handling"]
    assert fn.lines[0].startswith("INIT_START")
    assert fn.lines.index('{"message": "init"}') < fn.lines.index(
        f"START RequestId: {result.report.request_id} Version: $LATEST"
    )
    assert fn.lines[-2:] == [f"END RequestId: {result.report.request_id}", result.report.line()]


def test_warm_reuse_and_the_report_line(local, scripted_zip):
    fn = local(scripted_zip)

    first, second = fn.invoke({"n": 1}), fn.invoke({"n": 2})

    assert first.cold and not second.cold
    assert second.payload["pid"] == first.payload["pid"] and second.payload["calls"] == 2
    assert [json.loads(line)["message"] for line in second.logs] == ["handling"]  # init logs once
    cold, warm = REPORT.match(first.report.line()), REPORT.match(second.report.line())
    assert cold and warm
    assert cold["init"] and not warm["init"] and not cold["status"]
    assert cold["id"] == first.report.request_id and cold["memory"] == "128"
    assert first.report.init_ms > 0 and second.report.init_ms is None
    assert first.report.billed_ms >= first.report.init_ms + first.report.duration_ms  # init is billed
    assert second.report.billed_ms == int(second.report.duration_ms) + 1
    assert 0 < first.report.max_memory_mb <= second.report.max_memory_mb < 128
    assert [line for line in fn.lines if line.startswith("REPORT")] == [first.report.line(), second.report.line()]
    assert fn.stats["cold_starts"] == 1 and fn.stats["invocations"] == 2


def test_cpu_time_is_the_workers_during_the_invocation(local, scripted_zip):
    fn = local(scripted_zip)
    fn.invoke({})  # the cold start's init is not an invocation's CPU time

    spun, idle = fn.invoke({"action": "spin", "seconds": 0.3}), fn.invoke({"action": "sleep", "seconds": 0.3})

    assert 250 <= spun.report.cpu_ms <= spun.report.duration_ms + 20  # clock-tick resolution
    assert idle.report.cpu_ms < 100 and idle.report.duration_ms >= 300  # asleep: no CPU


def test_function_error_keeps_the_environment_warm(local, scripted_zip):
    fn = local(scripted_zip)

    failed = fn.invoke({"action": "raise", "k": 7})
    after = fn.invoke({})

    assert failed.payload is None
    assert failed.error["errorType"] == "ValueError"
    assert failed.error["errorMessage"] == "record 7 is bad"
    assert any("lambda_handler" in frame for frame in failed.error["stackTrace"])
    assert any(line.startswith("[ERROR] ValueError: record 7 is bad") for line in failed.logs)
    assert not after.cold and after.error is None
    assert fn.stats["function_errors"] == 1


def test_timeout_kills_the_worker_and_the_next_invocation_is_cold(local, scripted_zip):
    fn = local(scripted_zip, timeout_s=1)
    pid = fn.invoke({}).payload["pid"]

    started = time.perf_counter()
    result = fn.invoke({"action": "sleep", "seconds": 30})
    elapsed = time.perf_counter() - started

    assert 1.0 <= elapsed < 3
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert result.error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert 1000 <= result.report.duration_ms < 1500
    assert REPORT.match(result.report.line())["status"] == "\tStatus: timeout\tError Type: Sandbox.Timedout"
    assert not alive(pid)
    after = fn.invoke({})
    assert after.cold and after.payload["pid"] != pid
    assert fn.stats["timeouts"] == 1 and fn.stats["cold_starts"] == 2


def test_worker_that_dies_mid_invocation_is_replaced(local, scripted_zip):
    fn = local(scripted_zip)
    pid = fn.invoke({}).payload["pid"]

    result = fn.invoke({"action": "exit"})
    after = fn.invoke({})

    assert result.payload is None
    assert result.error["errorType"] == "Runtime.ExitError"
    assert result.error["errorMessage"].endswith("Runtime exited with error: exit status 3")
    assert result.report.status == "error"
    assert after.cold and after.payload["pid"] != pid
    assert fn.stats["crashes"] == 1


def test_out_of_memory_fails_the_invocation_and_discards_the_environment(local, scripted_zip):
    fn = local(scripted_zip, memory_mb=128)

    result = fn.invoke({"action": "allocate", "mb": 256})
    after = fn.invoke({})

    assert result.error["errorType"] == "Runtime.OutOfMemory"
    assert result.report.max_memory_mb > 128
    assert after.cold and after.error is None


def test_handler_import_error_is_an_init_error(local, tmp_path):
    function_zip = make_zip(tmp_path / "f.zip", {"lambda_function.py": "import not_installed_anywhere\n"})
    fn = local(function_zip)

    result = fn.invoke({})

    assert result.cold and result.payload is None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'not_installed_anywhere'" in result.error["errorMessage"]
    assert result.report.init_ms is not None and "Status: error" in result.report.line()
    assert fn.stats["environments"] == 0 and fn.stats["init_errors"] == 1


def test_a_layer_missing_a_dependency_fails_as_on_lambda(local, tmp_path):
    handler = "import featurelib\n\ndef lambda_handler(event, context):\n    return featurelib.score()\n"
    function_zip = make_zip(tmp_path / "f.zip", {"lambda_function.py": handler})
    features = make_zip(
        tmp_path / "features.zip",
        {"python/featurelib.py": "import fastmath\n\ndef score():\n    return fastmath.answer()\n"},
    )
    fastmath = make_zip(
        tmp_path / "fastmath.zip",
        {f"python/lib/python3.{sys.version_info[1]}/site-packages/fastmath.py": "def answer():\n    return 42\n"},
    )
    uses_host_package = make_zip(tmp_path / "numpy.zip", {"lambda_function.py": "import numpy\n"})

    broken = local(function_zip, [features]).invoke({})
    complete = local(function_zip, [features, fastmath]).invoke({})
    host = local(uses_host_package).invoke({})  # numpy is in the venv, but in no layer

    assert broken.error["errorType"] == "Runtime.ImportModuleError"
    assert broken.error["errorMessage"] == "Unable to import module 'lambda_function': No module named 'fastmath'"
    assert complete.error is None and complete.payload == 42
    assert host.error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'numpy'" in host.error["errorMessage"]


def test_concurrent_invocations_are_bounded_by_max_environments(local, scripted_zip):
    fn = local(scripted_zip, max_environments=2)
    results = []

    def call(i: int) -> None:
        results.append(fn.invoke({"action": "sleep", "seconds": 0.3, "i": i}))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started

    assert sorted(r.payload["event"]["i"] for r in results) == list(range(6))
    assert len({r.payload["pid"] for r in results}) == 2
    assert sum(r.cold for r in results) == 2
    assert elapsed >= 0.9  # three rounds of two
    assert len({r.report.request_id for r in results}) == 6
    for r in results:  # each invocation got its own log lines
        assert json.loads(r.logs[-1])["request_id"] == r.report.request_id
    stats = fn.stats
    assert (stats["peak_concurrency"], stats["environments"], stats["invocations"]) == (2, 2, 6)


def test_idle_environments_expire_and_close_stops_the_workers(local, scripted_zip):
    fn = local(scripted_zip, idle_ttl_s=0.2)
    pid = fn.invoke({}).payload["pid"]
    time.sleep(0.3)

    after = fn.invoke({})
    fn.close()

    assert after.cold and fn.stats["environments_expired"] == 1
    assert not alive(pid) and not alive(after.payload["pid"])
    with pytest.raises(RuntimeError, match="closed"):
        fn.invoke({})


def test_an_event_over_6_mb_is_refused(local, scripted_zip):
    fn = local(scripted_zip)
    with pytest.raises(PayloadTooLargeError):
        fn.invoke({"data": "x" * (6 * 1024 * 1024)})


PROBE = """
import sys

import lambda_function


def handler(event, context):
    response = lambda_function.lambda_handler(event, context)
    files = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
    return {"response": response, "sys_path": sys.path, "files": files}
"""


def test_the_real_function_predicts_from_its_zip_and_layers(zips, tmp_path):
    function_zip, layers, _ = zips
    # A probe handler (in a layer of its own) calls the real handler, then reports where
    # every module came from.
    probe = make_zip(tmp_path / "probe.zip", {"python/probe.py": PROBE})
    event = kinesis_event(SAMPLE_TEXTS)
    lines: list[str] = []

    with LocalLambda(function_zip, [*layers, probe], handler="probe.handler", log=lines.append, workdir=tmp_path) as fn:
        result = fn.invoke(event)
        task, opt = fn.task_root, fn.opt

    assert result.error is None, result.error
    response = result.payload["response"]
    assert response["batchItemFailures"] == []
    assert set(response["predictions"]) == {r["eventID"] for r in event["Records"]}
    assert any(json.loads(line).get("message") == "model loaded" for line in result.logs)
    runtime = str(ensure_runtime_dir())
    site = f"{opt}/python/lib/python3.{sys.version_info[1]}/site-packages"
    assert result.payload["sys_path"][:4] == [str(task), site, f"{opt}/python", runtime]
    stdlib = result.payload["sys_path"][4:]
    assert all(p.startswith(sys.base_prefix) and "site-packages" not in p for p in stdlib)
    ours = (str(task), str(opt), runtime, *stdlib)
    assert [f for f in result.payload["files"] if not f.startswith(ours)] == []
    numpy_files = [f for f in result.payload["files"] if "/numpy/" in f]
    assert numpy_files and all(f.startswith(f"{opt}/python/") for f in numpy_files)
    assert result.cold and REPORT.match(result.report.line())["init"]
    assert result.report.max_memory_mb > 50
