"""The built zips, run the way Lambda runs them (``localtwin.invoke`` and ``make invoke``)."""

from __future__ import annotations

import json
import subprocess

import pytest

from localtwin.invoke import invoke
from testing.events import SAMPLE_TEXTS, dynamodb_update_event, kinesis_event, kinesis_record
from tests.helpers import REFERENCE_MODEL, make_invoke

pytestmark = pytest.mark.twin


@pytest.fixture
def run(zips):
    function_zip, layers, workdir = zips

    def _run(event, **kwargs) -> subprocess.CompletedProcess:
        return invoke(event, function_zip, layers, workdir=workdir, **kwargs)

    return _run


def log_lines(stderr: str) -> list[dict]:
    """Every non-empty stderr line must be one JSON document (log line or EMF metrics)."""
    docs = []
    for line in stderr.splitlines():
        if line.strip():
            docs.append(json.loads(line))
    return docs


def by_message(docs: list[dict], message: str) -> list[dict]:
    return [d for d in docs if d.get("message") == message]


def test_kinesis_event_is_scored_from_the_zips(run):
    event = kinesis_event(SAMPLE_TEXTS)

    proc = run(event)

    assert proc.returncode == 0, proc.stderr
    response = json.loads(proc.stdout)
    assert response["batchItemFailures"] == []
    assert set(response["predictions"]) == {r["eventID"] for r in event["Records"]}
    manifest = json.loads((REFERENCE_MODEL / "manifest.json").read_text())
    for prediction in response["predictions"].values():
        assert prediction["label"] in manifest["classes"]
        assert 0.5 <= prediction["probability"] <= 1.0

    docs = log_lines(proc.stderr)
    assert by_message(docs, "model loaded")[0]["model_version"] == manifest["version"]
    (summary,) = by_message(docs, "batch scored")
    assert summary["level"] == "INFO"
    assert (summary["RecordsIn"], summary["RecordsPredicted"]) == (4, 4)
    (metrics,) = [d for d in docs if "_aws" in d]
    assert metrics["RecordsPredicted"] == 4
    for text in SAMPLE_TEXTS:
        assert text not in proc.stderr
        assert text not in proc.stdout


def test_dynamodb_event_predicts_every_record_but_remove(run):
    event = dynamodb_update_event()

    proc = run(event)

    assert proc.returncode == 0, proc.stderr
    response = json.loads(proc.stdout)
    assert response["batchItemFailures"] == []
    expected = {r["eventID"] for r in event["Records"] if r["eventName"] != "REMOVE"}
    assert set(response["predictions"]) == expected
    (summary,) = by_message(log_lines(proc.stderr), "batch scored")
    assert (summary["RecordsPredicted"], summary["RecordsSkipped"]) == (2, 1)
    for text in SAMPLE_TEXTS[:2]:
        assert text not in proc.stderr


def test_poison_record_is_logged_without_its_payload(run):
    secret = "my card number is 4111 1111 1111 1111"
    good = kinesis_record(json.dumps({"text": SAMPLE_TEXTS[0]}), 1)
    poison = kinesis_record(json.dumps({"body": secret}), 2)

    proc = run({"Records": [good, poison]})

    assert proc.returncode == 0, proc.stderr
    response = json.loads(proc.stdout)
    assert response["batchItemFailures"] == []
    assert set(response["predictions"]) == {good["eventID"]}
    (warning,) = by_message(log_lines(proc.stderr), "record quarantined")
    assert warning["level"] == "WARNING"
    assert warning["record_id"] == poison["eventID"]
    assert "'text'" in warning["reason"]
    assert secret not in proc.stderr
    assert poison["kinesis"]["data"] not in proc.stderr


def test_warm_invocations_load_the_model_once(run):
    events = [kinesis_event(SAMPLE_TEXTS[:2]), dynamodb_update_event()]

    proc = run(events, many=True)

    assert proc.returncode == 0, proc.stderr
    responses = json.loads(proc.stdout)
    assert [len(r["predictions"]) for r in responses] == [2, 2]
    docs = log_lines(proc.stderr)
    assert len(by_message(docs, "model loaded")) == 1
    assert len(by_message(docs, "batch scored")) == 2


def test_unsupported_event_fails_naming_what_was_seen(run):
    proc = run({"foo": 1})

    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "UnsupportedEventError" in proc.stderr
    assert "Kinesis or DynamoDB Streams" in proc.stderr
    assert "foo" in proc.stderr


def test_make_invoke_prints_the_response(reference_model, deps_layer, tmp_path):
    event = kinesis_event(SAMPLE_TEXTS[:3])
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))

    response = make_invoke(path)

    assert response["batchItemFailures"] == []
    assert set(response["predictions"]) == {r["eventID"] for r in event["Records"]}


def test_invoke_cli_reports_an_unreadable_event(tmp_path):
    from localtwin.invoke import main

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad)]) == 2
