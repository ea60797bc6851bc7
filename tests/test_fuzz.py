"""The fuzzer's smaller run, and regression tests for what fuzzing found.

``testing.fuzz`` drives the real handler with malformed and hostile events (``make soak``
runs 10,000 cases); here a few hundred, which must all pass and must reach every
category and every outcome. Then one test per bug the fuzzer found, and the check that
neither payloads nor credentials reach the logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from inference.app import App
from inference.batch import ModelFailure, process_batch
from inference.decode import decode_records
from inference.events import UnsupportedEventError
from inference.quarantine import QuarantineItem, SQSQuarantine
from inference.telemetry import JsonFormatter

from testing import fuzz
from testing.doubles import FakeQuarantine, FakeSink, SpyModel
from testing.events import dynamodb_record as ddb_record
from testing.events import kinesis_event, kinesis_record
from tests.helpers import b64, kinesis_raw

pytestmark = pytest.mark.unit

TEXT = {"kind": "text", "field": "text"}


def test_a_small_fuzz_run_passes_and_is_not_vacuous(tmp_path: Path, text_model_dir: Path) -> None:
    report = fuzz.run_fuzz(400, seed=7, progress=False, failures_dir=tmp_path, model_dir=text_model_dir)

    assert report.failures == [], fuzz.format_report(report)  # an unhandled exception is a failure too
    assert set(report.categories) == set(fuzz.CATEGORIES)
    assert all(report.outcomes[name] > 0 for name in fuzz.OUTCOMES), report.outcomes
    assert report.rejected > 0 and report.empty > 0
    assert list(tmp_path.iterdir()) == []


def test_the_generator_is_reproducible() -> None:
    a, b = random.Random(3), random.Random(3)
    for number in range(50):
        ca, cb = fuzz.generate(a, number), fuzz.generate(b, number)
        assert (ca.category, ca.contents, ca.sink_fails, ca.quarantine_fails) == (
            cb.category,
            cb.contents,
            cb.sink_fails,
            cb.quarantine_fails,
        )
        assert json.dumps(ca.event) == json.dumps(cb.event)


def test_a_failing_case_is_saved_whole_and_reported(tmp_path: Path, text_model_dir: Path, monkeypatch) -> None:
    """The fuzzer itself: a handler that breaks is caught, its event saved, the run goes on."""
    real = fuzz.expect

    def wrong(case):  # claim every stream batch must fail whole: every case with records fails
        expected = real(case)
        if expected is not None and expected.outcomes:
            expected.failures = [{"itemIdentifier": ""}]
        return expected

    monkeypatch.setattr(fuzz.run, "expect", wrong)
    report = fuzz.run_fuzz(30, seed=1, progress=False, failures_dir=tmp_path, model_dir=text_model_dir)
    assert report.failures
    first = report.failures[0]
    assert Path(first.saved) == tmp_path / f"{first.case}.json"
    rng = random.Random(1)
    case = [fuzz.generate(rng, number) for number in range(first.case + 1)][-1]
    assert Path(first.saved).read_text() == json.dumps(case.event)
    assert f"failures: {len(report.failures)}" in fuzz.format_report(report)


# --- regressions: what the fuzzer found ----------------------------------------------------


def test_garbage_before_the_first_stream_record_is_quarantined_not_an_unsupported_event(text_model) -> None:
    good = kinesis_event(["a warm and funny film"])["Records"][0]
    event = {"Records": [None, "x", {}, {"eventSource": "aws:sqs"}, good]}
    response, report = process_batch(event, text_model, FakeSink(), FakeQuarantine())
    assert response == {"batchItemFailures": []}
    assert report.quarantined == [0, 1, 2, 3] and report.predicted == [4]


def test_an_event_without_any_stream_record_is_rejected(text_model) -> None:
    with pytest.raises(UnsupportedEventError, match="no record of 2"):
        process_batch({"Records": [None, {"eventSource": "aws:sqs"}]}, text_model, FakeSink(), FakeQuarantine())


def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_records_nested_beyond_json_limits_are_quarantined_not_a_crash(text_model) -> None:
    """Only an in-process caller can build these (Lambda's runtime parses the event with
    json, which stops near 1,500 levels): ids and quarantine documents still come out."""
    deep = _deep(100_000)
    nameless = {"eventSource": "aws:kinesis", "kinesis": {"data": "e30="}, "x": _deep(100_000)}
    decoded = decode_records([deep, deep, nameless], "kinesis", TEXT)
    assert [d.status for d in decoded] == ["poison"] * 3
    assert all(d.record_id.startswith("unidentified-") for d in decoded)
    assert decoded[0].record_id != decoded[1].record_id  # named by position when the content can't be

    item = QuarantineItem(0, decoded[0].record_id, None, "", "record is not an object", deep)
    doc = json.loads(item.body())
    assert doc["record_omitted"] == "not serialisable as JSON (RecursionError)"
    assert doc["record_id"] == decoded[0].record_id

    class Client:
        calls: list = []

        def send_message_batch(self, QueueUrl, Entries):
            self.calls.append(Entries)
            return {}

    client = Client()
    event = {"Records": [kinesis_event(["fine"])["Records"][0], deep]}
    response, report = process_batch(event, text_model, FakeSink(), SQSQuarantine("url", client=client))
    assert response == {"batchItemFailures": []} and report.quarantined == [1]
    assert json.loads(client.calls[0][0]["MessageBody"])["record_omitted"].startswith("not serialisable")


def test_quarantine_body_carries_the_record_or_says_why_not() -> None:
    record = kinesis_record(b"\xff", 5)
    item = QuarantineItem(0, "id-0", "5", "arn", "data is not valid UTF-8 (byte 0)", record, "more")
    assert json.loads(item.body()) == {
        "record_id": "id-0",
        "sequence_number": "5",
        "source_arn": "arn",
        "reason": "data is not valid UTF-8 (byte 0)",
        "detail": "more",
        "record": record,
    }
    big = dataclasses.replace(item, record={"data": "x" * 300_000})
    assert "record" not in json.loads(big.body()) and json.loads(big.body())["record_omitted_bytes"] > 300_000
    assert json.loads(big.body(attach_limit=None))["record"] == big.record


def test_json_the_event_parser_can_nest_is_read_or_quarantined(text_model) -> None:
    """As deep as Lambda can deliver: a DynamoDB attribute the model does not read is
    ignored; a payload too deep for json is poison with a reason."""
    deep: dict = {"S": "bottom"}
    for _ in range(690):
        deep = {"L": [deep]}
    event = json.loads(json.dumps({"Records": [ddb_record({"text": {"S": "fine film"}, "deep": deep}, "1")]}))
    response, report = process_batch(event, text_model, FakeSink(), FakeQuarantine())
    assert report.predicted == [0]

    record = kinesis_raw(b64(b'{"text": "x", "y": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), 1)
    [d] = decode_records([record], "kinesis", TEXT)
    assert (d.status, d.reason) == ("poison", "data is not valid JSON (nested too deeply to read)")


# --- nothing sensitive in logs ---------------------------------------------------------------


@contextlib.contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """What the ``inference`` logger writes (INFO and up) and what goes to stdout (EMF)."""
    logger = logging.getLogger("inference")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        logger.removeHandler(handler)


def test_handler_never_logs_payloads_or_credentials(text_model_dir: Path, monkeypatch) -> None:
    canary = "zqcanary-payload-4242"
    for name, value in fuzz.CANARY_ENV.items():
        monkeypatch.setenv(name, value)
    import lambda_function

    app = App.from_env({"MODEL_DIR": str(text_model_dir), "LOG_LEVEL": "INFO"})
    # A model whose error message quotes its input, as a real one's may.
    app = dataclasses.replace(app, model=SpyModel(app.model, fail_if=lambda text: "BOOM" in text))
    monkeypatch.setattr(lambda_function, "app", app)
    records = [
        kinesis_record(json.dumps({"text": f"a warm film {canary}"}), 1),
        kinesis_record(json.dumps({"text": f"BOOM {canary}"}), 2),  # the model raises on it
        kinesis_record(f'{{"text": "{canary}" oops', 3),  # bad JSON
        kinesis_record(f'{{"txt": "{canary}"}}', 4),  # missing field
        kinesis_record(b'{"text": "' + canary.encode() + b'\xff"}', 5),  # bad UTF-8
        {**kinesis_record("{}", 6), "eventSource": f"aws:{canary}"},  # a source that is not echoed
        ddb_record({"text": {"N": "1"}, "secret": {"S": canary}}, "7"),
    ]
    with captured_output() as out:
        response = lambda_function.lambda_handler({"Records": records}, None)
        with pytest.raises(UnsupportedEventError) as info:
            lambda_function.lambda_handler({"Records": [{"eventSource": canary, "body": canary}]}, None)
    logs = out.getvalue()
    assert response["batchItemFailures"] == [] and len(response["predictions"]) == 1
    quarantined = [json.loads(line) for line in logs.splitlines() if "record quarantined" in line]
    assert len(quarantined) == 6
    assert {"model raised ValueError", "eventSource an unknown str of 25 characters in a kinesis batch"} <= {
        q["reason"] for q in quarantined
    }
    assert not fuzz.leaks(logs), logs
    assert not fuzz.leaks(str(info.value)), info.value


def test_model_failure_message_does_not_quote_inputs(text_model) -> None:
    spy = SpyModel(text_model, fail_if=lambda text: True)
    with pytest.raises(ModelFailure) as info:
        process_batch(kinesis_event(["zqcanary one", "zqcanary two"]), spy, FakeSink(), FakeQuarantine())
    assert "zqcanary" not in str(info.value)
    assert "model raised ValueError" in str(info.value)
