"""SnapStart in the local twin (localtwin.runtime.snapshot): one init, snapshotted, each new environment a restored clone.

The real function, from its zip and layers, under a probe handler that reports what the
restore left it with; and small scripted functions for the template's failures.
"""

from __future__ import annotations

import json
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from localtwin.runtime.pool import LocalLambda

pytestmark = pytest.mark.twin

#: Imports the real handler module (the function's init: model, sinks, hooks registered) and
#: keeps what init made, to compare with what the environment has when it is invoked.
PROBE = """
import os, random
import lambda_function

APP = lambda_function.app
INIT_SINK, INIT_CLIENT, INIT_QUARANTINE = APP.sink, APP.sink.client, APP.quarantine


def handler(event, context):
    return {
        "pid": os.getpid(),
        "initialization_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"],
        "sink_renewed": APP.sink is not INIT_SINK,
        "client_renewed": APP.sink.client is not INIT_CLIENT,
        "quarantine_renewed": APP.quarantine is not INIT_QUARANTINE,
        "table": APP.sink.table,
        "random": random.random(),
        "results": APP.model.predict(["a warm, funny film"]).results(),
    }
"""
ENVIRONMENT = {"RESULTS_TABLE": "results", "QUARANTINE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q"}


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def probed(zips, tmp_path_factory):
    """(function zip, layers + the probe layer, a work folder the tests share: extracted once)."""
    function_zip, layers, _ = zips
    folder = tmp_path_factory.mktemp("snapstart")
    probe = _zip(folder / "probe.zip", {"python/probe.py": PROBE})
    return function_zip, [*layers, probe], folder / "work"


def _messages(lines: list[str]) -> list[str]:
    messages = []
    for line in lines:
        try:
            messages.append(json.loads(line).get("message", ""))
        except ValueError:
            messages.append(line)
    return messages


@pytest.mark.slow
def test_restored_environments_run_the_after_restore_hook_and_share_nothing_it_renews(probed):
    function_zip, layers, work = probed
    lines: list[str] = []
    with LocalLambda(
        function_zip,
        layers,
        handler="probe.handler",
        environment=ENVIRONMENT,
        snap_start=True,
        max_environments=2,
        log=lines.append,
        workdir=work,
    ) as fn:
        with ThreadPoolExecutor(2) as pool:  # two at once: two environments, two restores
            first, second = pool.map(lambda _: fn.invoke({}), range(2))
        warm = fn.invoke({})
        stats, snapshot_init_ms = fn.stats, fn.snapshot_init_ms

    for result in (first, second):
        assert result.error is None, result.error
        assert result.cold and result.report.init_ms is None and result.report.restore_ms is not None
        assert "\tRestore Duration: " in result.report.line() and "Init Duration" not in result.report.line()
        payload = result.payload
        assert payload["initialization_type"] == "snap-start"
        assert payload["sink_renewed"] and payload["client_renewed"] and payload["quarantine_renewed"]
        assert payload["table"] == "results" and payload["results"][0]["label"] in ("fresh", "rotten")
    assert first.payload["pid"] != second.payload["pid"]
    assert first.payload["random"] != second.payload["random"]  # each clone reseeded after restore
    assert (
        not warm.cold
        and warm.report.restore_ms is None
        and warm.payload["pid"]
        in {
            first.payload["pid"],
            second.payload["pid"],
        }
    )
    messages = _messages(lines)
    assert messages.count("snapshot: model warmed up") == 1  # before the snapshot: once, in the template
    assert messages.count("model loaded") == 1  # the init ran once
    assert messages.count("restored from snapshot: clients and seeds renewed") == 2
    assert sum(m.startswith("RESTORE_START ") for m in messages) == 2
    assert not any(
        m.startswith("INIT_START Runtime Version: python:3.12.local") and "SnapStart" not in m for m in messages
    )
    assert stats["restores"] == stats["cold_starts"] == 2 and snapshot_init_ms is not None


@pytest.mark.slow
def test_without_snap_start_each_environment_initialises_and_no_hook_runs(probed):
    function_zip, layers, work = probed
    lines: list[str] = []
    with LocalLambda(
        function_zip, layers, handler="probe.handler", environment=ENVIRONMENT, log=lines.append, workdir=work
    ) as fn:
        result = fn.invoke({})
    assert result.error is None, result.error
    assert result.cold and result.report.init_ms is not None and result.report.restore_ms is None
    assert result.payload["initialization_type"] == "on-demand"
    assert not (result.payload["sink_renewed"] or result.payload["client_renewed"])
    messages = _messages(lines)
    assert (
        "snapshot: model warmed up" not in messages
        and "restored from snapshot: clients and seeds renewed" not in messages
    )


def test_a_template_whose_init_fails_makes_no_snapshot_and_environments_report_the_init_error(tmp_path):
    broken = _zip(tmp_path / "broken.zip", {"lambda_function.py": "raise RuntimeError('no model here')\n"})
    lines: list[str] = []
    with LocalLambda(broken, [], snap_start=True, log=lines.append, workdir=tmp_path / "w", memory_mb=128) as fn:
        result = fn.invoke({})
    assert result.error is not None and "no model here" in result.error["errorMessage"]
    assert result.report.restore_ms is None and fn.stats["restores"] == 0
    assert any(
        re.match(r"INIT_REPORT Phase: snapshot\tStatus: error \(RuntimeError: no model here\)", m) for m in lines
    )


def test_an_after_restore_hook_that_raises_fails_the_restore(tmp_path):
    source = (
        "from snapshot_restore_py import register_after_restore\n"
        "def fail():\n    raise ValueError('cannot renew')\n"
        "register_after_restore(fail)\n"
        "def lambda_handler(event, context):\n    return 'served'\n"
    )
    function_zip = _zip(tmp_path / "fn.zip", {"lambda_function.py": source})
    with LocalLambda(function_zip, [], snap_start=True, log=[].append, workdir=tmp_path / "w", memory_mb=128) as fn:
        result = fn.invoke({})
        stats = fn.stats
    assert result.payload is None and result.error is not None
    assert result.error["errorType"] == "ValueError" and result.error["errorMessage"] == "cannot renew"
    assert stats["init_errors"] == 1 and stats["environments"] == 0  # the environment is discarded
