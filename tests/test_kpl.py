"""KPL aggregates: deaggregated in the function, each user record scored under its own id,
and an aggregate retried as a whole (Lambda can only resume at its sequence number).

Aggregates are built with AWS's ``aws-kinesis-agg`` package (the KPL's format, in Python),
and the function's own decoder (:mod:`inference.kpl`) is checked against its deaggregator.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import sys

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records
from hypothesis import given, settings
from hypothesis import strategies as st
from inference.batch import process_batch
from inference.decode import decode_records, source_record
from inference.kpl import MAGIC, MalformedAggregate, deaggregate
from inference.sinks import ResponseSink

from testing.doubles import FakeQuarantine, FakeSink
from testing.events import FIRST_SEQUENCE, kinesis_event, kinesis_record

TEXT = {"kind": "text", "field": "text"}
TEXTS = [
    "wonderful moving film",
    "boring and dull plot",
    "a brilliant funny story",
    "awful lifeless acting",
    "the cast is charming and warm",
    "tedious overlong script",
]


def aggregate(payloads: list[bytes], keys: list[str] | None = None, hash_keys: list[str | None] | None = None) -> bytes:
    """One KPL aggregate of ``payloads`` (the bytes a Kinesis record's data holds), built by aws-kinesis-agg."""
    aggregator = RecordAggregator()
    for i, payload in enumerate(payloads):
        key = keys[i] if keys else f"pk-{i % 3}"
        full = aggregator.add_user_record(key, payload, hash_keys[i] if hash_keys else None)
        assert full is None, "test aggregate grew past one Kinesis record"
    _, _, data = aggregator.clear_and_get().get_contents()
    return data


def doc(text: str) -> bytes:
    return json.dumps({"text": text}).encode()


def aggregate_record(texts: list[str], sequence: int) -> dict:
    return kinesis_record(aggregate([doc(t) for t in texts]), sequence)


def with_digest(message: bytes) -> bytes:
    """``message`` framed as an aggregate, with a correct digest."""
    return MAGIC + message + hashlib.md5(message).digest()


def ids(response: dict) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


# --- the decoder ---------------------------------------------------------------------


def test_an_aggregate_of_n_user_records_decodes_to_n_records_with_their_own_ids() -> None:
    record = aggregate_record(TEXTS, FIRST_SEQUENCE)
    decoded = decode_records([record], "kinesis", TEXT)
    assert [d.value for d in decoded] == TEXTS
    assert [d.status for d in decoded] == ["input"] * len(TEXTS)
    assert [d.record_id for d in decoded] == [f"{record['eventID']}:{i}" for i in range(len(TEXTS))]
    assert {d.sequence_number for d in decoded} == {record["kinesis"]["sequenceNumber"]}
    assert [d.index for d in decoded] == list(range(len(TEXTS)))
    assert {d.record_index for d in decoded} == {0}
    assert [d.user_record.partition_key for d in decoded] == [f"pk-{i % 3}" for i in range(len(TEXTS))]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=8),
            st.binary(max_size=40),
            st.none() | st.integers(min_value=0, max_value=2**128 - 1).map(str),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_decoder_agrees_with_aws_kinesis_agg(users) -> None:
    data = aggregate([p for _, p, _ in users], [k for k, _, _ in users], [h for _, _, h in users])
    theirs = deaggregate_records([kinesis_record(data, FIRST_SEQUENCE)])
    ours = deaggregate(data)
    assert [u.data for u in ours] == [base64.b64decode(r["kinesis"]["data"]) for r in theirs]
    assert [u.partition_key for u in ours] == [r["kinesis"]["partitionKey"] for r in theirs]
    assert [u.sub_sequence for u in ours] == [r["kinesis"]["subSequenceNumber"] for r in theirs]
    assert [u.explicit_hash_key for u in ours] == [h for _, _, h in users]


def test_a_plain_record_is_not_an_aggregate_and_decodes_as_before() -> None:
    plain = kinesis_record(doc("wonderful moving film"), FIRST_SEQUENCE)
    [d] = decode_records([plain], "kinesis", TEXT)
    assert (d.status, d.value, d.record_id, d.user_record) == ("input", "wonderful moving film", plain["eventID"], None)
    assert source_record([plain], d) is plain


def test_a_corrupt_digest_quarantines_the_aggregate_under_its_own_id() -> None:
    data = bytearray(aggregate([doc(t) for t in TEXTS[:3]]))
    data[-1] ^= 0xFF
    record = kinesis_record(bytes(data), FIRST_SEQUENCE)
    [d] = decode_records([record], "kinesis", TEXT)
    assert (d.status, d.record_id) == ("poison", record["eventID"])
    assert d.reason == "KPL aggregate's MD5 digest does not match its content"


def test_changed_content_under_the_old_digest_is_caught() -> None:
    data = bytearray(aggregate([doc(t) for t in TEXTS[:3]]))
    data[10] ^= 0x01
    with pytest.raises(MalformedAggregate, match="MD5"):
        deaggregate(bytes(data))


@pytest.mark.parametrize(
    "message, reason",
    [
        (b"\x0a\x05pk", "field 1 at byte 0 runs past the end of its message"),  # length past the end
        (b"\x0a\x01k\x1a\x01\x08", "truncated varint at byte 6"),  # record cut inside a varint
        (b"\x0a\x01k\x1a\x05\x08\x01\x1a\x01x", "user record 0 has partition_key_index 1; the table has 1 keys"),
        (b"\x0a\x01k\x12\x01h\x1a\x07\x08\x00\x10\x03\x1a\x01x", "explicit_hash_key_index 3; the table has 1 keys"),
        (b"\x0a\x02\xff\xfe\x1a\x05\x08\x00\x1a\x01x", "partition key 0 is not valid UTF-8 (byte 2)"),
        (b"\x0b\x00", "unsupported wire type 3 at byte 0"),
        (b"\x00\x00", "field number 0 at byte 0"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    ],
)
def test_malformed_protobuf_is_refused_with_a_reason(message: bytes, reason: str) -> None:
    with pytest.raises(MalformedAggregate, match=re.escape(reason)):
        deaggregate(with_digest(message))
    [d] = decode_records([kinesis_record(with_digest(message), FIRST_SEQUENCE)], "kinesis", TEXT)
    assert d.status == "poison" and reason in d.reason


def test_missing_fields_take_protobufs_defaults_as_a_proto3_encoder_leaves_them_out() -> None:
    # no partition_key_index (0), no data (empty): the aws-kinesis-agg deaggregator reads them so
    assert deaggregate(with_digest(b"\x0a\x01k\x1a\x03\x1a\x01x"))[0].partition_key == "k"
    assert deaggregate(with_digest(b"\x0a\x01k\x1a\x02\x08\x00"))[0].data == b""


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_on_damaged_protobuf_the_decoder_fails_only_where_protobuf_does_or_it_must(data) -> None:
    """Bytes changed inside the protobuf (under a recomputed digest): where protobuf's own
    parser reads the message, the decoder reads the same user records, or refuses for one
    of the reasons it documents as stricter; where protobuf refuses, so does the decoder."""
    import aws_kinesis_agg.deaggregator  # noqa: F401 (puts its generated modules on sys.path)
    import messages_pb2
    from google.protobuf.message import DecodeError

    payloads = data.draw(st.lists(st.binary(max_size=12), min_size=1, max_size=4))
    message = bytearray(aggregate(payloads)[len(MAGIC) : -16])
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(message) - 1))
        message[at] = data.draw(st.integers(0, 255))
    message = bytes(message[: data.draw(st.integers(1, len(message)))])
    reference = messages_pb2.AggregatedRecord()
    try:
        reference.ParseFromString(message)
    except DecodeError:
        with pytest.raises(MalformedAggregate):
            deaggregate(with_digest(message))
        return
    try:
        ours = deaggregate(with_digest(message))
    except MalformedAggregate as exc:
        assert any(why in str(exc) for why in ("wire type 3", "wire type 4", "not valid UTF-8", "the table has")), exc
        return
    assert [u.data for u in ours] == [r.data for r in reference.records]
    assert [u.partition_key for u in ours] == [
        reference.partition_key_table[r.partition_key_index] for r in reference.records
    ]


def test_unknown_fields_are_skipped_as_protobuf_does() -> None:
    # a varint field 9, a fixed64 field 10 and a fixed32 field 11 around the known fields
    message = b"\x48\x07" + b"\x51" + b"\x00" * 8 + b"\x0a\x01k\x1a\x0a\x08\x00\x1a\x01x\x5d\x00\x00\x00\x00"
    [user] = deaggregate(with_digest(message))
    assert (user.partition_key, user.data) == ("k", b"x")


def test_too_short_and_empty_aggregates() -> None:
    [short] = decode_records([kinesis_record(MAGIC + b"\x00" * 16, FIRST_SEQUENCE)], "kinesis", TEXT)
    assert short.status == "poison" and short.reason == "KPL aggregate too short (20 bytes)"
    [empty] = decode_records([kinesis_record(with_digest(b"\x0a\x01k"), FIRST_SEQUENCE)], "kinesis", TEXT)
    assert (empty.status, empty.reason) == ("skip", "KPL aggregate holds no user records")


def test_a_mixed_batch_keeps_plain_ids_and_positions() -> None:
    event = kinesis_event(TEXTS[:2])
    event["Records"].insert(1, aggregate_record(TEXTS[2:5], FIRST_SEQUENCE + 10))
    decoded = decode_records(event["Records"], "kinesis", TEXT)
    first, agg, last = event["Records"]
    assert [d.record_id for d in decoded] == [
        first["eventID"],
        f"{agg['eventID']}:0",
        f"{agg['eventID']}:1",
        f"{agg['eventID']}:2",
        last["eventID"],
    ]
    assert [d.record_index for d in decoded] == [0, 1, 1, 1, 2]
    assert [d.index for d in decoded] == [0, 1, 2, 3, 4]
    assert [d.value for d in decoded] == [TEXTS[0], *TEXTS[2:5], TEXTS[1]]


# --- through the batch -----------------------------------------------------------------


def test_every_user_record_is_predicted_under_its_own_id(text_model) -> None:
    record = aggregate_record(TEXTS, FIRST_SEQUENCE)
    response, report = process_batch({"Records": [record]}, text_model, ResponseSink(), FakeQuarantine())
    assert response["batchItemFailures"] == []
    assert report.size == len(TEXTS) and report.predicted == list(range(len(TEXTS)))
    labels = text_model.predict(TEXTS).labels
    predicted = {rid: p["label"] for rid, p in response["predictions"].items()}
    assert predicted == {f"{record['eventID']}:{i}": label for i, label in enumerate(labels)}


def test_a_mixed_batch_is_predicted_in_one_call(text_model) -> None:
    event = kinesis_event(TEXTS[:2])
    event["Records"].insert(1, aggregate_record(TEXTS[2:], FIRST_SEQUENCE + 10))
    sink = FakeSink()
    response, report = process_batch(event, text_model, sink, FakeQuarantine())
    assert response["batchItemFailures"] == [] and len(sink.calls) == 1
    assert report.predicted == list(range(len(TEXTS)))
    first, agg, last = event["Records"]
    expected = dict(
        zip(
            [first["eventID"], *(f"{agg['eventID']}:{i}" for i in range(4)), last["eventID"]],
            text_model.predict([TEXTS[0], *TEXTS[2:], TEXTS[1]]).labels,
        )
    )
    assert {rid: item.outputs["label"] for rid, item in sink.store.items()} == expected
    assert {item.sequence_number for rid, item in sink.store.items() if rid.startswith(agg["eventID"])} == {
        agg["kinesis"]["sequenceNumber"]
    }


def test_a_poison_user_record_is_quarantined_alone_as_a_replayable_record(text_model) -> None:
    payloads = [doc(TEXTS[0]), b"not json", doc(TEXTS[1])]
    record = kinesis_record(aggregate(payloads, keys=["a", "b", "c"]), FIRST_SEQUENCE)
    quarantine, sink = FakeQuarantine(), FakeSink()
    response, report = process_batch({"Records": [record]}, text_model, sink, quarantine)
    assert response["batchItemFailures"] == []
    assert (report.predicted, report.quarantined) == ([0, 2], [1])
    poison_id = f"{record['eventID']}:1"
    assert set(sink.store) == {f"{record['eventID']}:0", f"{record['eventID']}:2"}
    item = quarantine.store[poison_id]
    assert item.sequence_number == record["kinesis"]["sequenceNumber"]
    assert item.reason.startswith("data is not valid JSON")
    kept = item.record  # a Kinesis record of its own: the user record's data, key and id
    assert base64.b64decode(kept["kinesis"]["data"]) == b"not json"
    assert (kept["kinesis"]["partitionKey"], kept["kinesis"]["subSequenceNumber"]) == ("b", 1)
    assert kept["eventID"] == poison_id and record["eventID"] != poison_id  # the event's record is untouched
    kept["kinesis"]["data"] = base64.b64encode(doc(TEXTS[2])).decode()  # repaired, then replayed
    [replayed] = decode_records([kept], "kinesis", TEXT)
    assert (replayed.status, replayed.record_id, replayed.value) == ("input", poison_id, TEXTS[2])


def test_a_sink_failure_on_one_user_record_retries_the_whole_aggregate(text_model) -> None:
    event = kinesis_event(TEXTS[:2])
    agg = aggregate_record(TEXTS[2:5], FIRST_SEQUENCE + 10)
    event["Records"].insert(1, agg)
    failing_id = f"{agg['eventID']}:1"
    sink = FakeSink(fail=lambda item: item.record_id == failing_id)
    response, report = process_batch(event, text_model, sink, FakeQuarantine())
    # Lambda resumes at the aggregate: every user record of it, and the record after it, come again.
    assert ids(response) == [agg["kinesis"]["sequenceNumber"], event["Records"][2]["kinesis"]["sequenceNumber"]]
    assert report.retry == [1, 2, 3, 4]
    assert report.predicted == [0]  # nothing of the aggregate counts as done, though :0 was accepted
    assert report.counts()["RecordsRetried"] == 4

    # Redelivered from the aggregate on, with the sink working: each result lands once, under its id.
    redelivered = {"Records": event["Records"][1:]}
    response, report = process_batch(redelivered, text_model, FakeSink(), FakeQuarantine())
    assert response["batchItemFailures"] == [] and report.predicted == [0, 1, 2, 3]


def test_a_quarantine_failure_in_an_aggregate_keeps_all_of_it_from_the_sink(text_model) -> None:
    event = kinesis_event(TEXTS[:2])
    agg = kinesis_record(aggregate([doc(TEXTS[2]), doc(TEXTS[3]), b"{broken"]), FIRST_SEQUENCE + 10)
    event["Records"].insert(1, agg)
    sink = FakeSink()
    quarantine = FakeQuarantine(fail=lambda item: True)
    response, report = process_batch(event, text_model, sink, quarantine)
    assert ids(response) == [agg["kinesis"]["sequenceNumber"], event["Records"][2]["kinesis"]["sequenceNumber"]]
    assert report.retry == [1, 2, 3, 4] and report.predicted == [0]
    assert set(sink.store) == {event["Records"][0]["eventID"]}  # none of the aggregate, nor after it


def test_a_nameless_record_after_an_aggregate_retries_from_the_aggregate(text_model) -> None:
    agg = aggregate_record(TEXTS[:3], FIRST_SEQUENCE)
    nameless = kinesis_record(b"not json", FIRST_SEQUENCE + 1)
    del nameless["kinesis"]["sequenceNumber"]
    quarantine = FakeQuarantine(fail=lambda item: item.sequence_number is None)
    response, report = process_batch({"Records": [agg, nameless]}, text_model, FakeSink(), quarantine)
    assert ids(response) == [agg["kinesis"]["sequenceNumber"]]
    assert report.retry == [0, 1, 2, 3] and report.predicted == []


def test_a_corrupt_aggregate_is_quarantined_and_the_rest_of_the_batch_scored(text_model) -> None:
    event = kinesis_event(TEXTS[:2])
    data = bytearray(aggregate([doc(t) for t in TEXTS[2:4]]))
    data[-3] ^= 0x55
    bad = kinesis_record(bytes(data), FIRST_SEQUENCE + 10)
    event["Records"].insert(1, bad)
    quarantine = FakeQuarantine()
    response, report = process_batch(event, text_model, FakeSink(), quarantine)
    assert response["batchItemFailures"] == []
    assert (report.predicted, report.quarantined) == ([0, 2], [1])
    assert quarantine.store[bad["eventID"]].record is bad


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([*TEXTS, None]), min_size=1, max_size=4), min_size=1, max_size=6),
    st.sets(st.integers(0, 30), max_size=3),
    st.sets(st.integers(0, 30), max_size=2),
)
def test_any_mix_of_aggregates_and_failures_retries_whole_aggregates_only(
    text_model, groups, sink_fails, quarantine_fails
) -> None:
    """Groups of one are plain records, larger ones aggregates; ``None`` is a poison payload.
    Failing positions (of the decoded list) in the sink and the quarantine."""
    records = []
    for n, group in enumerate(groups):
        payloads = [doc(t) if t is not None else b"not json" for t in group]
        data = payloads[0] if len(group) == 1 else aggregate(payloads)
        records.append(kinesis_record(data, FIRST_SEQUENCE + n))
    event = {"Records": records}
    sink = FakeSink(fail=lambda item: item.index in sink_fails)
    quarantine = FakeQuarantine(fail=lambda item: item.index in quarantine_fails)
    response, report = process_batch(event, text_model, sink, quarantine)
    decoded = decode_records(records, "kinesis", TEXT)
    n = len(decoded)

    states = report.predicted + report.skipped + report.quarantined + report.retry
    assert sorted(states) == list(range(n)) == list(range(report.size))
    cutoff = min(report.retry, default=n)
    assert report.retry == list(range(cutoff, n))
    if 0 < cutoff < n:  # the cutoff is at a stream record's first user record, never inside an aggregate
        assert decoded[cutoff - 1].record_index != decoded[cutoff].record_index
    assert ids(response) == list(dict.fromkeys(decoded[i].sequence_number for i in report.retry))

    def first_of_its_record(i: int) -> int:
        return min((d.index for d in decoded if d.record_index == decoded[i].record_index), default=n)

    kept_not = [i for i in quarantine_fails if i < n and decoded[i].status == "poison"]
    expected = first_of_its_record(min(kept_not)) if kept_not else n
    written_not = [i for i in sink_fails if i < expected and decoded[i].status == "input"]
    expected = first_of_its_record(min(written_not)) if written_not else expected
    assert cutoff == expected
    assert all(i < (first_of_its_record(min(kept_not)) if kept_not else n) for i in sink.received)
    for i in report.predicted:
        assert decoded[i].record_id in sink.store
    for i in report.quarantined:
        assert decoded[i].record_id in quarantine.store


# --- make invoke EVENT=- ------------------------------------------------------------------


# --- make invoke EVENT=- ------------------------------------------------------------------


@pytest.mark.twin
def test_invoke_reads_the_event_from_standard_input_and_scores_an_aggregate(zips, monkeypatch, capsys) -> None:
    from localtwin.invoke import main

    function_zip, layers, _ = zips
    agg = aggregate_record(TEXTS[:3], FIRST_SEQUENCE)
    event = {"Records": [agg, kinesis_record(doc(TEXTS[3]), FIRST_SEQUENCE + 1)]}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(event)))
    args = ["-", "--function", str(function_zip)] + [arg for layer in layers for arg in ("--layer", str(layer))]
    assert main(args) == 0
    response = json.loads(capsys.readouterr().out)
    assert response["batchItemFailures"] == []
    assert set(response["predictions"]) == {f"{agg['eventID']}:{i}" for i in range(3)} | {
        event["Records"][1]["eventID"]
    }


def test_invoke_reports_unreadable_standard_input(monkeypatch, capsys) -> None:
    from localtwin.invoke import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("{not json"))
    assert main(["-"]) == 2
    assert "cannot read event standard input" in capsys.readouterr().err
