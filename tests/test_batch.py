"""process_batch: one predict per batch, results mapped back, and the stream cutoff semantics."""

from __future__ import annotations

import copy
import json
import math

import pytest
from inference.batch import ModelFailure, predict_isolating, process_batch
from inference.events import UnsupportedEventError
from inference.quarantine import LogQuarantine
from inference.sinks import ResponseSink

from testing.doubles import FakeQuarantine, FakeSink, SpyModel
from testing.events import FIRST_SEQUENCE, SAMPLE_TEXTS, dynamodb_update_event, kinesis_event, kinesis_record
from testing.events import dynamodb_record as ddb_record
from tests.helpers import kinesis_ddb_record, kinesis_raw

pytestmark = pytest.mark.unit

#: ``sam local generate-event kinesis get-records``, verbatim.
SAM_KINESIS_EVENT = {
    "Records": [
        {
            "kinesis": {
                "partitionKey": "partitionKey-03",
                "kinesisSchemaVersion": "1.0",
                "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0IDEyMy4=",
                "sequenceNumber": "49545115243490985018280067714973144582180062593244200961",
                "approximateArrivalTimestamp": 1428537600.0,
            },
            "eventSource": "aws:kinesis",
            "eventID": "shardId-000000000000:49545115243490985018280067714973144582180062593244200961",
            "invokeIdentityArn": "arn:aws:iam::EXAMPLE",
            "eventVersion": "1.0",
            "eventName": "aws:kinesis:record",
            "eventSourceARN": "arn:aws:kinesis:EXAMPLE",
            "awsRegion": "us-east-1",
        }
    ]
}

TEXTS = [
    "wonderful moving film",
    "boring and dull plot",
    "a brilliant funny story",
    "awful lifeless acting",
    "the cast is charming and warm",
    "tedious overlong script",
    "superb inventive movie",
    "dreadful tiresome film",
    "delightful beautiful story",
    "clumsy bored cast",
]


def seqs(event: dict, indices) -> list[str]:
    return [event["Records"][i]["kinesis"]["sequenceNumber"] for i in indices]


def identifiers(response: dict) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def assert_partition(report) -> None:
    """Every record is in exactly one state."""
    states = report.predicted + report.skipped + report.quarantined + report.retry
    assert sorted(states) == list(range(report.size))


def mixed_event() -> dict:
    """Kinesis batch: inputs interleaved with poison (bad JSON at 2, missing field at 5)."""
    event = kinesis_event(TEXTS)
    event["Records"][2] = kinesis_record("not json", FIRST_SEQUENCE + 2)
    event["Records"][5] = kinesis_record(json.dumps({"body": "x"}), FIRST_SEQUENCE + 5)
    return event


# --- AWS sample shapes -----------------------------------------------------------------


def test_kinesis_sample_event_is_predicted_and_returned_in_the_response(text_model) -> None:
    event = kinesis_event(SAMPLE_TEXTS)
    response, report = process_batch(event, text_model, ResponseSink(), LogQuarantine())
    assert response["batchItemFailures"] == []
    assert report.predicted == [0, 1, 2, 3]
    assert_partition(report)
    expected = text_model.predict(SAMPLE_TEXTS)
    assert response["predictions"] == {
        r["eventID"]: {"label": label, "probability": prob}
        for r, label, prob in zip(event["Records"], expected.labels, expected.probabilities)
    }


def test_dynamodb_sample_event_predicts_insert_and_modify_and_skips_remove(text_model) -> None:
    event = dynamodb_update_event()
    sink = FakeSink()
    response, report = process_batch(event, text_model, sink, FakeQuarantine())
    assert response == {"batchItemFailures": []}  # no "predictions" with a real sink
    assert (report.predicted, report.skipped, report.quarantined, report.retry) == ([0, 1], [2], [], [])
    expected = text_model.predict(SAMPLE_TEXTS[:2])
    assert [sink.store[r["eventID"]].label for r in event["Records"][:2]] == expected.labels
    assert [sink.store[r["eventID"]].sequence_number for r in event["Records"][:2]] == [
        r["dynamodb"]["SequenceNumber"] for r in event["Records"][:2]
    ]
    assert event["Records"][2]["eventID"] not in sink.store


def test_sam_default_kinesis_event_is_quarantined_as_bad_json(text_model) -> None:
    event = copy.deepcopy(SAM_KINESIS_EVENT)
    quarantine, sink = FakeQuarantine(), FakeSink()
    response, report = process_batch(event, text_model, sink, quarantine)
    assert response == {"batchItemFailures": []}  # poison must not block the shard
    assert report.quarantined == [0]
    assert report.predict_calls == 0
    [item] = quarantine.store.values()
    assert "not valid JSON" in item.reason
    assert item.record_id == SAM_KINESIS_EVENT["Records"][0]["eventID"]
    assert item.sequence_number == SAM_KINESIS_EVENT["Records"][0]["kinesis"]["sequenceNumber"]
    assert item.record == SAM_KINESIS_EVENT["Records"][0]  # the raw record, for replay
    assert sink.received == []


def test_empty_batch(text_model) -> None:
    response, report = process_batch({"Records": []}, text_model, FakeSink(), FakeQuarantine())
    assert response["batchItemFailures"] == []
    assert (report.size, report.predict_calls) == (0, 0)


def test_unsupported_event_propagates(text_model) -> None:
    with pytest.raises(UnsupportedEventError, match="aws:sqs"):
        process_batch({"Records": [{"eventSource": "aws:sqs"}]}, text_model, FakeSink(), FakeQuarantine())


# --- one predict, results mapped back ---------------------------------------------------


def test_one_predict_call_for_the_whole_batch(text_model) -> None:
    event = mixed_event()
    spy = SpyModel(text_model)
    _, report = process_batch(event, spy, FakeSink(), FakeQuarantine())
    inputs = [t for i, t in enumerate(TEXTS) if i not in (2, 5)]
    assert spy.calls == [inputs]
    assert report.predict_calls == 1


def test_results_are_mapped_back_to_their_records(text_model) -> None:
    event = mixed_event()
    sink = FakeSink()
    response, report = process_batch(event, text_model, sink, FakeQuarantine())
    valid = [i for i in range(len(TEXTS)) if i not in (2, 5)]
    assert report.predicted == valid
    assert report.quarantined == [2, 5]
    assert response["batchItemFailures"] == []
    direct = text_model.predict([TEXTS[i] for i in valid])
    assert set(direct.labels) == {"fresh", "rotten"}  # both classes occur: a shift would show
    for i, label, prob in zip(valid, direct.labels, direct.probabilities):
        item = sink.store[event["Records"][i]["eventID"]]
        assert (item.index, item.label) == (i, label)
        assert math.isclose(item.probability, prob)
        assert item.sequence_number == event["Records"][i]["kinesis"]["sequenceNumber"]
        assert item.source_arn == event["Records"][i]["eventSourceARN"]
        assert (item.model_name, item.model_version) == (text_model.name, text_model.version)
    assert len(sink.store) == len(valid)


def test_dynamodb_change_through_kinesis_is_scored_and_retried_by_kinesis_sequence(text_model) -> None:
    image = {"Id": {"N": "101"}, "text": {"S": "wonderful moving film"}}
    event = {"Records": [kinesis_ddb_record(image, 11), kinesis_ddb_record(image, 12)]}
    sink = FakeSink(fail=lambda item: item.index == 1)
    response, report = process_batch(event, text_model, sink, FakeQuarantine())
    assert report.predicted == [0]
    assert identifiers(response) == ["12"]
    assert sink.store[event["Records"][0]["eventID"]].label == text_model.predict(["wonderful moving film"]).labels[0]


# --- cutoff semantics -------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 3, 4, 9])
def test_result_sink_failing_record_k_retries_k_and_everything_after(text_model, k) -> None:
    # The results sink is handed the whole batch's results in one call (it cannot know in
    # advance which write fails), so what matters is the accounting: nothing from k on
    # counts as done, and everything before k that counts as predicted was written.
    event = mixed_event()
    sink = FakeSink(fail=lambda item: item.index == k)
    quarantine = FakeQuarantine()
    response, report = process_batch(event, text_model, sink, quarantine)
    n = len(TEXTS)
    assert identifiers(response) == seqs(event, range(k, n))
    assert report.retry == list(range(k, n))
    assert report.predicted == [i for i in range(k) if i not in (2, 5)]
    assert report.quarantined == [i for i in (2, 5) if i < k]
    assert_partition(report)
    assert len(sink.calls) == 1
    for i in report.predicted:  # everything accounted as predicted was written
        assert event["Records"][i]["eventID"] in sink.store


@pytest.mark.parametrize("k", [2, 5])
def test_quarantine_failing_record_k_retries_k_and_everything_after(text_model, k) -> None:
    event = mixed_event()
    sink = FakeSink()
    quarantine = FakeQuarantine(fail=lambda item: item.index == k)
    response, report = process_batch(event, text_model, sink, quarantine)
    n = len(TEXTS)
    assert identifiers(response) == seqs(event, range(k, n))
    assert report.retry == list(range(k, n))
    assert sorted(sink.received) == [i for i in range(k) if i not in (2, 5)]  # nothing at or past the cutoff
    assert report.predicted == sorted(sink.received)
    assert report.quarantined == [i for i in (2, 5) if i < k]
    for i in report.quarantined:
        assert event["Records"][i]["eventID"] in quarantine.store
    assert_partition(report)


def test_first_failure_wins_when_both_sinks_fail(text_model) -> None:
    event = mixed_event()
    sink = FakeSink(fail=lambda item: item.index in (3, 8))
    quarantine = FakeQuarantine(fail=lambda item: item.index == 5)
    response, report = process_batch(event, text_model, sink, quarantine)
    assert report.retry == list(range(3, len(TEXTS)))
    assert identifiers(response) == seqs(event, range(3, len(TEXTS)))
    assert all(i < 5 for i in sink.received)


def test_model_raising_on_one_input_quarantines_it_and_predicts_the_rest(text_model) -> None:
    texts = TEXTS[:8]
    texts[5] = "BOOM this one breaks the model"
    event = kinesis_event(texts)
    spy = SpyModel(text_model, fail_if=lambda text: text.startswith("BOOM"))
    sink, quarantine = FakeSink(), FakeQuarantine()
    response, report = process_batch(event, spy, sink, quarantine)
    assert response["batchItemFailures"] == []
    assert report.quarantined == [5]
    assert report.predicted == [0, 1, 2, 3, 4, 6, 7]
    [item] = quarantine.store.values()
    assert item.index == 5
    # The reason is logged: the exception's type only. Its message may quote the input,
    # so it goes to the quarantine destination only.
    assert item.reason == "model raised ValueError"
    assert "cannot score" in item.detail
    # bisection: the whole batch first, then halves, down to the single bad input
    assert spy.calls[0] == texts
    assert [texts[5]] in spy.calls
    assert 1 < report.predict_calls == len(spy.calls) <= 1 + 2 * math.ceil(math.log2(len(texts)))
    good = [i for i in range(8) if i != 5]
    direct = text_model.predict([texts[i] for i in good])
    assert [sink.store[event["Records"][i]["eventID"]].label for i in good] == direct.labels


def test_bisection_isolates_several_bad_inputs(text_model) -> None:
    inputs = [f"ok {i}" if i not in (0, 7, 12) else f"BOOM {i}" for i in range(16)]
    spy = SpyModel(text_model, fail_if=lambda text: text.startswith("BOOM"))
    results, errors, calls = predict_isolating(spy, inputs)
    assert sorted(errors) == [0, 7, 12]
    assert [i for i, r in enumerate(results) if r is None] == [0, 7, 12]
    assert calls == len(spy.calls)
    direct = text_model.predict([t for t in inputs if t.startswith("ok")])
    assert [r[0] for r in results if r is not None] == direct.labels


def test_model_raising_on_everything_is_a_model_failure_and_writes_nothing(text_model) -> None:
    spy = SpyModel(text_model, fail_if=lambda text: True)
    sink, quarantine = FakeSink(), FakeQuarantine()
    with pytest.raises(ModelFailure, match="model failed on all 8 inputs"):
        process_batch(mixed_event(), spy, sink, quarantine)
    assert sink.calls == [] and quarantine.calls == []


def test_lone_input_the_model_raises_on_is_quarantined_not_retried(text_model) -> None:
    """After Lambda's bisection has split a batch down to one record, that record must
    be quarantined: raising would block its shard until retries run out."""
    event = kinesis_event(["a review the model chokes on"])
    spy = SpyModel(text_model, fail_if=lambda text: True)
    quarantine = FakeQuarantine()
    response, report = process_batch(event, spy, FakeSink(), quarantine)
    assert response["batchItemFailures"] == []
    assert report.quarantined == [0] and report.predicted == []
    assert "model raised ValueError" in quarantine.calls[0][0].reason


def test_duplicate_sequence_numbers(text_model) -> None:
    event = kinesis_event(TEXTS[:5])
    dup = event["Records"][2]["kinesis"]["sequenceNumber"]
    event["Records"][3]["kinesis"]["sequenceNumber"] = dup  # eventIDs stay distinct
    sink = FakeSink()
    response, report = process_batch(event, text_model, sink, FakeQuarantine())
    assert report.predicted == [0, 1, 2, 3, 4]
    assert response["batchItemFailures"] == []
    assert len(sink.store) == 5

    failing = FakeSink(fail=lambda item: item.index == 2)
    response, report = process_batch(event, text_model, failing, FakeQuarantine())
    assert report.retry == [2, 3, 4]
    ids = identifiers(response)
    assert ids == [dup, event["Records"][4]["kinesis"]["sequenceNumber"]]  # each reported once
    assert len(ids) == len(set(ids))


def test_record_without_sequence_number_at_the_cutoff_fails_the_whole_batch(text_model) -> None:
    event = kinesis_event(TEXTS[:4])
    del event["Records"][0]["kinesis"]["sequenceNumber"]  # poison, and nameless
    quarantine = FakeQuarantine(fail=lambda item: item.index == 0)
    sink = FakeSink()
    response, report = process_batch(event, text_model, sink, quarantine)
    assert response["batchItemFailures"] == [{"itemIdentifier": ""}]
    assert report.retry == [0, 1, 2, 3]
    assert report.predicted == report.quarantined == report.skipped == []
    assert sink.received == []


def test_cutoff_at_a_nameless_record_moves_back_to_the_previous_named_one(text_model) -> None:
    event = kinesis_event(TEXTS[:5])
    event["Records"][2] = kinesis_raw("ZZZZ", None)  # bad base64 and no sequence number
    quarantine = FakeQuarantine(fail=lambda item: item.index == 2)
    response, report = process_batch(event, text_model, FakeSink(), quarantine)
    # resuming at record 1 is the only way Lambda redelivers record 2
    assert report.retry == [1, 2, 3, 4]
    assert identifiers(response) == seqs(event, [1, 3, 4])
    assert report.predicted == [0]


def test_nameless_poison_is_quarantined_when_the_quarantine_works(text_model) -> None:
    event = kinesis_event(TEXTS[:3])
    del event["Records"][0]["kinesis"]["sequenceNumber"]
    quarantine = FakeQuarantine()
    response, report = process_batch(event, text_model, FakeSink(), quarantine)
    assert response["batchItemFailures"] == []
    assert (report.quarantined, report.predicted) == ([0], [1, 2])
    assert quarantine.store[event["Records"][0]["eventID"]].reason == "record has no sequence number"


def test_a_retried_batch_leaves_exactly_one_result_per_record(text_model) -> None:
    event = mixed_event()
    store_sink = FakeSink(fail=lambda item: item.index == 6)
    response, _ = process_batch(event, text_model, store_sink, FakeQuarantine())
    assert identifiers(response)  # the first delivery failed part-way

    store_sink.fail = None  # the sink recovers; Lambda redelivers (here: the same event again)
    response, report = process_batch(event, text_model, store_sink, FakeQuarantine())
    assert response["batchItemFailures"] == []
    valid = [i for i in range(len(TEXTS)) if i not in (2, 5)]
    assert sorted(store_sink.store) == sorted(event["Records"][i]["eventID"] for i in valid)
    direct = text_model.predict([TEXTS[i] for i in valid])
    assert [store_sink.store[event["Records"][i]["eventID"]].label for i in valid] == direct.labels

    process_batch(event, text_model, store_sink, FakeQuarantine())  # a third delivery changes nothing
    assert len(store_sink.store) == len(valid)


def test_dynamodb_batch_cutoff_uses_stream_sequence_numbers(text_model) -> None:
    event = {
        "Records": [
            ddb_record({"text": {"S": t}}, sequence=str(1000 + i), event_id=f"e{i}") for i, t in enumerate(TEXTS[:4])
        ]
    }
    event["Records"][1] = ddb_record(None, sequence="1001", event_name="REMOVE", event_id="e1")
    sink = FakeSink(fail=lambda item: item.index == 2)
    response, report = process_batch(event, text_model, sink, FakeQuarantine())
    assert (report.predicted, report.skipped, report.retry) == ([0], [1], [2, 3])
    assert identifiers(response) == ["1002", "1003"]


def test_tabular_batch_through_process_batch(tabular_model) -> None:
    rows = [{"c": 0.0, "b": 0.0, "a": 3.0}, {"b": 3.0, "a": -3.0, "c": 3.0}, {"a": 1, "b": True, "c": 0}]
    event = {"Records": [kinesis_record(json.dumps(r), 500 + i) for i, r in enumerate(rows)]}
    sink = FakeSink()
    response, report = process_batch(event, tabular_model, sink, FakeQuarantine())
    assert response["batchItemFailures"] == []
    assert (report.predicted, report.quarantined) == ([0, 1], [2])
    assert [sink.store[event["Records"][i]["eventID"]].label for i in (0, 1)] == [1, 0]


def test_quarantined_records_are_logged_once_without_payload_and_retried_ones_not(text_model, inference_logs) -> None:
    """The WARNING lines match RecordsQuarantined: a poison record past the cutoff is retried,
    so it is logged when it is quarantined on redelivery, not now."""
    event = mixed_event()  # poison at 2 and 5
    quarantine = FakeQuarantine(fail=lambda item: item.index == 5)
    _, report = process_batch(event, text_model, FakeSink(), quarantine)
    assert (report.quarantined, report.retry[0]) == ([2], 5)

    warnings = [r for r in inference_logs.records if r.getMessage() == "record quarantined"]
    assert [(r.levelname, r.record_id) for r in warnings] == [("WARNING", event["Records"][2]["eventID"])]
    assert "not valid JSON" in warnings[0].reason
    assert event["Records"][2]["kinesis"]["data"] not in str(vars(warnings[0]))
