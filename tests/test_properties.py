"""Property: whatever the records, process_batch accounts for each exactly once and never raises."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inference.batch import ModelFailure, process_batch
from inference.decode import decode_records

from testing.events import kinesis_record
from tests.conftest import FakeQuarantine, FakeSink, SpyModel, ddb_record, kinesis_ddb_document

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Hypothesis favours the first and last element of sampled_from: keep the odd cases inside.
# Mostly usable (and often duplicated) sequence numbers; sometimes missing, empty or not a string.
MAYBE_SEQUENCE = st.sampled_from(
    ["1", "2", "3", "17", None, "", 7, ["1"], "49545115243490985018280067714973144582180062593244200961"]
    + ["1", "2", "3", "17"]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
texts = st.text(max_size=40) | st.sampled_from(["wonderful film", "dull boring plot", "BOOM breaks the model"])
numbers = st.one_of(
    st.floats(-1e6, 1e6),
    st.integers(-(10**6), 10**6),
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, True, "1.5", None]),
)

# DynamoDB typed attributes, well-formed or not
ddb_attr = st.recursive(
    st.one_of(
        st.builds(lambda s: {"S": s}, texts),
        st.builds(lambda n: {"N": str(n)}, numbers),
        st.builds(lambda b: {"BOOL": b}, st.booleans()),
        st.just({"NULL": True}),
        st.sampled_from([{"XX": 1}, {}, "plain", None, {"N": "1e400"}, {"N": "sNaN"}, {"M": "x"}, {"L": 5}]),
        json_values,
    ),
    lambda inner: (
        st.builds(lambda xs: {"L": xs}, st.lists(inner, max_size=3))
        | st.builds(lambda m: {"M": m}, st.dictionaries(st.text(max_size=5), inner, max_size=3))
    ),
    max_leaves=8,
)
ddb_image = st.one_of(
    st.dictionaries(st.sampled_from(["text", "a", "b", "c", "Id", "other"]), ddb_attr, max_size=5),
    st.fixed_dictionaries({"text": st.builds(lambda s: {"S": s}, texts)}),
    st.fixed_dictionaries({k: st.builds(lambda n: {"N": str(n)}, numbers) for k in "abc"}),
    json_values,
)


def payload_for(contract: str) -> st.SearchStrategy[bytes]:
    valid = (
        st.builds(lambda t: {"text": t}, texts)
        if contract == "text"
        else st.fixed_dictionaries({"a": numbers, "b": numbers, "c": numbers})
    )
    documents = st.one_of(
        valid,
        valid,
        json_values,
        st.dictionaries(st.sampled_from(["text", "a", "b", "c", "x"]), json_values, max_size=4),
        st.builds(
            kinesis_ddb_document,
            st.one_of(st.none(), ddb_image),
            st.sampled_from(["INSERT", "MODIFY", "REMOVE", "bogus"]),
        ),
    )
    return st.one_of(
        documents.map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=40),  # random bytes: bad UTF-8, bad JSON
        st.just(b'{"text": "\xff"}'),
        st.just(b"Hello, this is a test 123."),
    )


PAYLOADS = {contract: payload_for(contract) for contract in ("text", "tabular")}
#: most records keep their shape (-1); the rest have it broken in one of five ways
MUTATIONS = st.sampled_from([-1] * 5 + [0, 1, 2, 3, 4] + [-1] * 5)
#: a record, or (one time in eight) any JSON value instead of a record object
RECORD_KINDS = st.sampled_from([True] * 4 + [False] + [True] * 3)


@st.composite
def kinesis_records(draw, contract: str) -> Any:
    record = kinesis_record(draw(PAYLOADS[contract]), 0)
    seq = draw(MAYBE_SEQUENCE)
    if seq is None:
        del record["kinesis"]["sequenceNumber"]
    else:
        record["kinesis"]["sequenceNumber"] = seq
    if draw(st.booleans()):
        record["eventID"] = draw(st.sampled_from([f"shard:{seq}", "dup-id", None, 5]))
    mutation = draw(MUTATIONS)  # 0-4: break the record's shape
    if mutation == 0:
        record["kinesis"]["data"] = draw(st.text(max_size=12) | st.integers() | st.none())  # not base64
    elif mutation == 1:
        del record["kinesis"]["data"]
    elif mutation == 2:
        record["kinesis"] = draw(json_values)
    elif mutation == 3:
        record["eventSource"] = draw(st.sampled_from(["aws:sqs", None, "aws:dynamodb"]))
    elif mutation == 4:
        del record[draw(st.sampled_from(["eventSourceARN", "eventName", "kinesis"]))]
    return record


@st.composite
def dynamodb_records(draw, contract: str) -> Any:
    event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE", "other"]))
    image = draw(st.one_of(st.none(), ddb_image))
    seq = draw(MAYBE_SEQUENCE)
    record = ddb_record(
        image,
        sequence=seq if isinstance(seq, str) else None,
        event_name=event_name,
        event_id=draw(st.sampled_from(["e-1", "e-2", "dup-id", ""])) or None,
        view_type=draw(st.sampled_from(["NEW_AND_OLD_IMAGES", "NEW_IMAGE", "KEYS_ONLY"])),
    )
    if seq is not None and not isinstance(seq, str):
        record["dynamodb"]["SequenceNumber"] = seq
    mutation = draw(MUTATIONS)  # 0-2: break the record's shape (3, 4: leave it)
    if mutation == 0:
        record["dynamodb"] = draw(json_values)
    elif mutation == 1:
        record["eventSource"] = draw(st.sampled_from(["aws:kinesis", None, "aws:sqs"]))
    elif mutation == 2:
        del record["eventSourceARN"]
    return record


@st.composite
def batches(draw, kind: str, contract: str) -> dict:
    make = kinesis_records(contract) if kind == "kinesis" else dynamodb_records(contract)
    size = draw(st.integers(1, 12))
    records = [draw(make) if draw(RECORD_KINDS) else draw(json_values) for _ in range(size)]
    first = records[0] if isinstance(records[0], dict) else {}
    records[0] = {**first, "eventSource": f"aws:{kind}"}  # the event itself is a stream batch
    return {"Records": records}


#: indices a fake sink / quarantine fails: often none, else a few near the front of the batch
FAILS = st.one_of(st.just(frozenset()), st.frozensets(st.integers(0, 6), min_size=1, max_size=3))


def failing(indices: frozenset[int]):
    return lambda item: item.index in indices


def check_accounting(
    event: dict, kind: str, model, response: dict, report, sink: FakeSink, quarantine: FakeQuarantine
) -> None:
    n = len(event["Records"])
    decoded = decode_records(event["Records"], kind, model.manifest["input"])
    assert report.size == n
    states = report.predicted + report.skipped + report.quarantined + report.retry
    assert sorted(states) == list(range(n)), "every record in exactly one state"
    cutoff = min(report.retry, default=n)
    assert report.retry == list(range(cutoff, n)), "retry is everything from the cutoff on"

    # The cutoff is the first record that could not be persisted, moved back to the nearest
    # record Lambda can resume at (one with a sequence number); with none, the whole batch.
    not_kept = {item.index for call in quarantine.calls for item in call if quarantine.fail(item)}
    not_written = {item.index for call in sink.calls for item in call if sink.fail(item)}
    assert all(i < min(not_kept, default=n) for i in sink.received), "the sink never gets records past the cutoff"
    first_failure = min(not_kept | not_written, default=n)
    if first_failure < n:
        named = [i for i in range(first_failure, -1, -1) if decoded[i].sequence_number is not None]
        assert cutoff == (named[0] if named else 0)
    else:
        assert cutoff == n
    assert all(decoded[i].status == "skip" for i in report.skipped)

    failures = response["batchItemFailures"]
    ids = [f["itemIdentifier"] for f in failures]
    assert all(set(f) == {"itemIdentifier"} for f in failures)
    if not report.retry:
        assert ids == []
    elif ids == [""]:
        assert report.retry == list(range(n)), "a whole-batch failure retries everything"
        assert all(decoded[i].sequence_number is None for i in range(first_failure + 1)), "only when unavoidable"
    else:
        retry_seqs = {decoded[i].sequence_number for i in report.retry}
        assert all(isinstance(i, str) and i for i in ids)
        assert set(ids) <= retry_seqs, "every identifier belongs to a retry record"
        assert len(ids) == len(set(ids))
        assert decoded[cutoff].sequence_number in ids, "Lambda resumes at the cutoff record"

    # what was persisted agrees with the report
    written = {item.index for call in sink.calls for item in call if not sink.fail(item)}
    kept = {item.index for call in quarantine.calls for item in call if not quarantine.fail(item)}
    assert set(report.predicted) <= written
    assert set(report.quarantined) <= kept
    assert len(sink.received) == len(set(sink.received)), "no record handed to the sink twice"
    assert not set(sink.received) & (set(report.skipped) | set(report.quarantined))


@pytest.mark.parametrize(("kind", "contract"), [("kinesis", "text"), ("dynamodb", "text"), ("kinesis", "tabular")])
@SETTINGS
@given(data=st.data(), sink_fails=FAILS, quarantine_fails=FAILS)
def test_process_batch_accounts_for_every_record(
    kind, contract, text_model, tabular_model, data, sink_fails, quarantine_fails
) -> None:
    model = text_model if contract == "text" else tabular_model
    event = data.draw(batches(kind, contract), label="event")
    sink = FakeSink(fail=failing(sink_fails))
    quarantine = FakeQuarantine(fail=failing(quarantine_fails))
    spy = SpyModel(model)
    response, report = process_batch(event, spy, sink, quarantine)
    check_accounting(event, kind, model, response, report, sink, quarantine)
    assert len(spy.calls) <= 1, "one predict call when the model does not raise"
    assert len(spy.calls) == report.predict_calls


def _is_bad(text: str) -> bool:
    return text.startswith("BOOM")


@SETTINGS
@given(event=batches("kinesis", "text"), sink_fails=FAILS)
def test_process_batch_with_a_model_that_raises_on_some_inputs(text_model, event, sink_fails) -> None:
    """ModelFailure only when two or more inputs each fail alone; otherwise the bad ones are quarantined."""
    sink, quarantine = FakeSink(fail=failing(sink_fails)), FakeQuarantine(fail=failing(frozenset()))
    spy = SpyModel(text_model, fail_if=_is_bad)
    decoded = decode_records(event["Records"], "kinesis", text_model.manifest["input"])
    inputs = [d for d in decoded if d.status == "input"]
    if len(inputs) > 1 and all(_is_bad(d.value) for d in inputs):
        with pytest.raises(ModelFailure):
            process_batch(event, spy, sink, quarantine)
        assert sink.calls == [] and quarantine.calls == []
        return
    response, report = process_batch(event, spy, sink, quarantine)
    check_accounting(event, "kinesis", text_model, response, report, sink, quarantine)
    for d in inputs:
        if _is_bad(d.value) and d.index not in report.retry:
            assert d.index in report.quarantined
        if d.index in report.predicted:
            assert not _is_bad(d.value)
    reasons = [q.reason for call in quarantine.calls for q in call if _is_bad(str(decoded[q.index].value))]
    assert all(r.startswith("model raised ValueError") for r in reasons)


def test_strategies_reach_every_outcome(text_model) -> None:
    """Guard against a vacuous property: the generated batches do reach every state."""
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(event=batches("kinesis", "text"), sink_fails=FAILS, quarantine_fails=FAILS)
    def run(event, sink_fails, quarantine_fails) -> None:
        sink, quarantine = FakeSink(fail=failing(sink_fails)), FakeQuarantine(fail=failing(quarantine_fails))
        _, report = process_batch(event, text_model, sink, quarantine)
        seen.update(state for state in ("predicted", "skipped", "quarantined", "retry") if getattr(report, state))

    run()
    assert seen == {"predicted", "skipped", "quarantined", "retry"}
