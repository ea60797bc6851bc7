"""Decoding: every record becomes exactly one input, skip, or poison verdict, and never raises."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
from typing import Any

import pytest
from inference.decode import decode_records, extract_input
from inference.events import UnsupportedEventError, classify_event
from inference.payload import PayloadOptions, options_from_env

from testing.events import SAMPLE_TEXTS, dynamodb_update_event, kinesis_ddb_document, kinesis_event, kinesis_record
from testing.events import dynamodb_record as ddb_record
from tests.helpers import b64, kinesis_ddb_record, kinesis_raw

pytestmark = pytest.mark.unit

TEXT = {"kind": "text", "field": "text"}
TABULAR = {"kind": "tabular", "features": ["a", "b", "c"]}


def decode_one(record: Any, kind: str = "kinesis", contract: dict = TEXT):
    [decoded] = decode_records([record], kind, contract)
    return decoded


# --- valid records ---------------------------------------------------------------------


def test_kinesis_sample_event_decodes_to_inputs_with_sequence_numbers() -> None:
    event = kinesis_event(SAMPLE_TEXTS)
    decoded = decode_records(event["Records"], "kinesis", TEXT)
    assert [d.status for d in decoded] == ["input"] * len(SAMPLE_TEXTS)
    assert [d.value for d in decoded] == SAMPLE_TEXTS
    assert [d.index for d in decoded] == list(range(len(SAMPLE_TEXTS)))
    for d, record in zip(decoded, event["Records"]):
        assert d.sequence_number == record["kinesis"]["sequenceNumber"]
        assert d.record_id == record["eventID"]
        assert d.source_arn == record["eventSourceARN"]


def test_dynamodb_sample_event_inserts_and_modifies_are_inputs_remove_is_skipped() -> None:
    event = dynamodb_update_event()
    decoded = decode_records(event["Records"], "dynamodb", TEXT)
    assert [d.status for d in decoded] == ["input", "input", "skip"]
    assert [d.value for d in decoded[:2]] == SAMPLE_TEXTS[:2]
    assert decoded[2].reason == "REMOVE event"
    assert [d.sequence_number for d in decoded] == [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
    assert [d.record_id for d in decoded] == [r["eventID"] for r in event["Records"]]


def test_keys_only_image_is_skipped_and_says_why() -> None:
    d = decode_one(ddb_record(None, view_type="KEYS_ONLY"), "dynamodb")
    assert d.status == "skip"
    assert "no NewImage" in d.reason and "KEYS_ONLY" in d.reason


def test_old_image_only_modify_is_skipped() -> None:
    record = ddb_record(None, event_name="MODIFY", view_type="OLD_IMAGE", old_image={"text": {"S": "x"}})
    d = decode_one(record, "dynamodb")
    assert d.status == "skip"
    assert "no NewImage" in d.reason


def test_remove_is_skipped_even_with_an_old_image() -> None:
    d = decode_one(ddb_record(None, event_name="REMOVE", old_image={"text": {"S": "gone"}}), "dynamodb")
    assert (d.status, d.reason) == ("skip", "REMOVE event")


def test_dynamodb_tabular_numbers_become_floats_in_feature_order() -> None:
    image = {"c": {"N": "3"}, "b": {"N": "-2.5"}, "a": {"N": "1"}, "extra": {"S": "ignored"}}
    d = decode_one(ddb_record(image), "dynamodb", TABULAR)
    assert d.status == "input"
    assert d.value == [1.0, -2.5, 3.0]
    assert all(type(v) is float for v in d.value)


def test_kinesis_tabular_row_is_in_feature_order_not_json_order() -> None:
    d = decode_one(kinesis_record(json.dumps({"c": 3, "a": 1.5, "b": 2}), 7), contract=TABULAR)
    assert (d.status, d.value) == ("input", [1.5, 2.0, 3.0])


def test_empty_string_text_is_a_valid_input() -> None:
    d = decode_one(kinesis_record(json.dumps({"text": ""}), 1))
    assert (d.status, d.value) == ("input", "")


# --- DynamoDB changes delivered through Kinesis ------------------------------------------


def test_dynamodb_change_through_kinesis_is_decoded_with_the_kinesis_sequence_number() -> None:
    record = kinesis_ddb_record({"Id": {"N": "101"}, "text": {"S": "a warm and funny film"}}, 4242)
    d = decode_one(record)
    assert d.status == "input"
    assert d.value == "a warm and funny film"
    assert d.sequence_number == "4242"
    assert d.record_id == record["eventID"]  # the Kinesis record's id, not the change's uuid


def test_dynamodb_change_through_kinesis_tabular() -> None:
    image = {"a": {"N": "1"}, "b": {"N": "2"}, "c": {"N": "3.5"}}
    d = decode_one(kinesis_ddb_record(image, 5), contract=TABULAR)
    assert (d.status, d.value, d.sequence_number) == ("input", [1.0, 2.0, 3.5], "5")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (kinesis_ddb_record(None, 1, event_name="REMOVE"), "REMOVE event"),
        (kinesis_ddb_record(None, 1, event_name="MODIFY"), "no NewImage"),
    ],
    ids=["remove", "keys-only"],
)
def test_dynamodb_change_through_kinesis_without_new_image_is_skipped(record: dict, reason: str) -> None:
    d = decode_one(record)
    assert d.status == "skip"
    assert reason in d.reason
    assert d.sequence_number == "1"


def test_dynamodb_change_through_kinesis_with_non_object_change_is_poison() -> None:
    doc = kinesis_ddb_document({"text": {"S": "x"}})
    doc["dynamodb"] = "oops"
    d = decode_one(kinesis_record(json.dumps(doc), 3))
    assert (d.status, d.reason) == ("poison", "'dynamodb' is not an object")


# --- poison: every class, with a reason that names it -----------------------------------


KINESIS_TEXT_POISON = [
    ("bad-base64", kinesis_raw("not base64 at all!!", 1), "data is not valid base64"),
    ("bad-base64-padding", kinesis_raw("abc", 1), "data is not valid base64"),
    ("non-ascii-base64", kinesis_raw("é€", 1), "data is not valid base64"),
    ("data-not-string", kinesis_raw(12345, 1), "data is not valid base64"),  # type: ignore[arg-type]
    ("invalid-utf8", kinesis_record(b'{"text": "\xff\xfe"}', 1), "data is not valid UTF-8 (byte 10)"),
    ("bad-json", kinesis_record("Hello, this is a test 123.", 1), "data is not valid JSON"),
    ("truncated-json", kinesis_record('{"text": "abc', 1), "data is not valid JSON"),
    ("empty-data", kinesis_record(b"", 1), "data is not valid JSON"),
    ("json-list", kinesis_record("[1, 2]", 1), "payload is a JSON list, expected an object"),
    ("json-string", kinesis_record('"text"', 1), "payload is a JSON str, expected an object"),
    ("json-null", kinesis_record("null", 1), "payload is a JSON NoneType, expected an object"),
    ("json-number", kinesis_record("3.5", 1), "payload is a JSON float, expected an object"),
    ("missing-field", kinesis_record('{"txt": "x"}', 1), "missing field 'text'"),
    ("field-int", kinesis_record('{"text": 5}', 1), "field 'text' is int, expected a string"),
    ("field-null", kinesis_record('{"text": null}', 1), "field 'text' is NoneType, expected a string"),
    ("field-list", kinesis_record('{"text": ["a"]}', 1), "field 'text' is list, expected a string"),
    ("field-bool", kinesis_record('{"text": true}', 1), "field 'text' is bool, expected a string"),
]


def _without_data() -> dict:
    record = kinesis_record("{}", 1)
    del record["kinesis"]["data"]
    return record


KINESIS_TEXT_POISON.append(("no-data", _without_data(), "record has no kinesis.data"))


@pytest.mark.parametrize(
    ("record", "reason"), [p[1:] for p in KINESIS_TEXT_POISON], ids=[p[0] for p in KINESIS_TEXT_POISON]
)
def test_kinesis_text_poison(record: dict, reason: str) -> None:
    d = decode_one(record)
    assert d.status == "poison"
    assert reason in d.reason
    assert d.value is None
    assert d.sequence_number == "1"  # poison keeps its identity, for quarantine and retry
    assert d.record_id == record["eventID"]


def test_deeply_nested_json_is_poison_not_a_crash() -> None:
    d = decode_one(kinesis_record("[" * 100_000 + "]" * 100_000, 1))
    assert d.status == "poison"
    assert "not valid JSON" in d.reason


TABULAR_POISON = [
    ("nan", '{"a": NaN, "b": 1, "c": 2}', "feature 'a' is nan, expected a finite number"),
    ("inf", '{"a": 1, "b": Infinity, "c": 2}', "feature 'b' is inf, expected a finite number"),
    ("minus-inf", '{"a": 1, "b": 2, "c": -Infinity}', "feature 'c' is -inf, expected a finite number"),
    ("overflowing-float", '{"a": 1e400, "b": 1, "c": 2}', "feature 'a' is inf, expected a finite number"),
    ("overflowing-int", '{"a": 1' + "0" * 400 + ', "b": 1, "c": 2}', "feature 'a' is 1000"),
    ("bool", '{"a": true, "b": 1, "c": 2}', "feature 'a' is bool, expected a number"),
    ("str", '{"a": "1.5", "b": 1, "c": 2}', "feature 'a' is str, expected a number"),
    ("null", '{"a": 1, "b": null, "c": 2}', "feature 'b' is NoneType, expected a number"),
    ("list", '{"a": 1, "b": 2, "c": [3]}', "feature 'c' is list, expected a number"),
    ("missing", '{"a": 1, "c": 2}', "missing feature 'b'"),
]


@pytest.mark.parametrize(("payload", "reason"), [p[1:] for p in TABULAR_POISON], ids=[p[0] for p in TABULAR_POISON])
def test_kinesis_tabular_poison(payload: str, reason: str) -> None:
    d = decode_one(kinesis_record(payload, 1), contract=TABULAR)
    assert d.status == "poison"
    assert reason in d.reason


DDB_TABULAR_POISON = [
    ("nan", {"N": "NaN"}, "feature 'a' is NaN, expected a finite number"),
    ("signaling-nan", {"N": "sNaN"}, "feature 'a' is sNaN, expected a finite number"),
    ("not-a-number", {"N": "abc"}, "feature 'a' is NaN, expected a finite number"),
    ("infinity", {"N": "Infinity"}, "feature 'a' is Infinity, expected a finite number"),
    ("bool", {"BOOL": True}, "feature 'a' is bool, expected a number"),
    ("string", {"S": "1"}, "feature 'a' is str, expected a number"),
    ("null", {"NULL": True}, "feature 'a' is NoneType, expected a number"),
    ("out-of-range", {"N": "1e400"}, "malformed DynamoDB attribute in NewImage"),
]


@pytest.mark.parametrize(
    ("attr", "reason"), [p[1:] for p in DDB_TABULAR_POISON], ids=[p[0] for p in DDB_TABULAR_POISON]
)
def test_dynamodb_tabular_poison(attr: dict, reason: str) -> None:
    image = {"a": attr, "b": {"N": "1"}, "c": {"N": "2"}}
    d = decode_one(ddb_record(image, sequence="77"), "dynamodb", TABULAR)
    assert d.status == "poison"
    assert reason in d.reason
    assert d.sequence_number == "77"


DDB_TEXT_POISON = [
    ("missing-field", {"Id": {"N": "101"}, "Message": {"S": "hi"}}, "NewImage: missing field 'text'"),
    ("empty-image", {}, "NewImage: missing field 'text'"),
    ("number-field", {"text": {"N": "101"}}, "NewImage: field 'text' is Decimal, expected a string"),
    ("list-field", {"text": {"L": [{"S": "a"}]}}, "NewImage: field 'text' is list, expected a string"),
    ("s-holding-int", {"text": {"S": 5}}, "NewImage: field 'text' is int, expected a string"),
    ("image-not-object", ["text"], "NewImage is not an object"),
    ("untyped-value", {"text": "plain"}, "malformed DynamoDB attribute in NewImage"),
    ("empty-descriptor", {"text": {}}, "malformed DynamoDB attribute in NewImage"),
    ("unknown-type", {"text": {"XX": "1"}}, "malformed DynamoDB attribute in NewImage"),
    ("map-not-object", {"text": {"M": "x"}}, "malformed DynamoDB attribute in NewImage"),
    ("list-not-list", {"text": {"L": 5}}, "malformed DynamoDB attribute in NewImage"),
    ("bad-nested", {"text": {"M": {"k": {"YY": 1}}}}, "malformed DynamoDB attribute in NewImage"),
    ("binary-field", {"text": {"B": "aGVsbG8="}}, "malformed DynamoDB attribute in NewImage"),
    ("descriptor-none", {"text": None}, "malformed DynamoDB attribute in NewImage"),
]


@pytest.mark.parametrize("kind", ["dynamodb", "kinesis"], ids=["dynamodb-stream", "through-kinesis"])
@pytest.mark.parametrize(("image", "reason"), [p[1:] for p in DDB_TEXT_POISON], ids=[p[0] for p in DDB_TEXT_POISON])
def test_dynamodb_text_poison(kind: str, image: Any, reason: str) -> None:
    """The same verdicts whether the change comes from a DynamoDB stream or through Kinesis."""
    record = ddb_record(image, sequence="55") if kind == "dynamodb" else kinesis_ddb_record(image, 55)
    d = decode_one(record, kind)
    assert d.status == "poison"
    assert reason in d.reason
    assert d.sequence_number == "55"


@pytest.mark.parametrize("kind", ["dynamodb", "kinesis"], ids=["dynamodb-stream", "through-kinesis"])
def test_dynamodb_attributes_the_model_does_not_read_do_not_matter(kind: str) -> None:
    """Only the model's attributes are read: a binary attribute (base64 text in a Lambda
    event, which boto3's TypeDeserializer refuses), a malformed one or one nested deeper
    than the deserializer can recurse elsewhere in the image does not quarantine the record."""
    deep: dict = {"S": "bottom"}
    for _ in range(600):
        deep = {"L": [deep]}
    image = {
        "text": {"S": "a fine review"},
        "photo": {"B": "aGVsbG8="},
        "thumbs": {"BS": ["aGVsbG8=", "d29ybGQ="]},
        "other": {"M": {"k": {"YY": 1}}},
        "deep": deep,
    }
    record = ddb_record(image, sequence="55") if kind == "dynamodb" else kinesis_ddb_record(image, 55)
    d = decode_one(record, kind)
    assert (d.status, d.value) == ("input", "a fine review")


def test_dynamodb_field_nested_too_deeply_is_poison() -> None:
    deep: dict = {"S": "bottom"}
    for _ in range(600):
        deep = {"M": {"k": deep}}
    d = decode_one(ddb_record({"text": deep}, sequence="55"), "dynamodb")
    assert (d.status, d.reason) == ("poison", "NewImage is nested too deeply")


def test_dynamodb_change_not_an_object_has_no_sequence_number() -> None:
    record = ddb_record({"text": {"S": "x"}})
    record["dynamodb"] = "broken"
    d = decode_one(record, "dynamodb")
    assert (d.status, d.sequence_number) == ("poison", None)
    assert d.reason == "record has no sequence number"


@pytest.mark.parametrize("seq", [None, "", 12345, ["1"]], ids=["missing", "empty", "int", "list"])
def test_kinesis_record_without_usable_sequence_number_is_poison(seq: Any) -> None:
    record = kinesis_record(json.dumps({"text": "fine"}), 1)
    if seq is None:
        del record["kinesis"]["sequenceNumber"]
    else:
        record["kinesis"]["sequenceNumber"] = seq
    d = decode_one(record)
    assert d.status == "poison"
    assert d.sequence_number is None
    assert d.reason == "record has no sequence number"
    assert d.record_id == record["eventID"]


def test_dynamodb_record_without_sequence_number_is_poison() -> None:
    d = decode_one(ddb_record({"text": {"S": "fine"}}, sequence=None, event_id="e1"), "dynamodb")
    assert (d.status, d.sequence_number, d.reason) == ("poison", None, "record has no sequence number")
    assert d.record_id == "e1"


def test_record_id_falls_back_to_sequence_number_then_content() -> None:
    with_seq = kinesis_record(json.dumps({"text": "x"}), 31)
    del with_seq["eventID"]
    without = kinesis_raw(b64(b'{"text": "x"}'), None)
    del without["eventID"]
    other = kinesis_raw(b64(b'{"text": "y"}'), None)
    del other["eventID"]
    a, b, c = decode_records([with_seq, without, other], "kinesis", TEXT)
    assert a.record_id == "31"
    # Unidentified records get an id from their content: distinct records never share
    # a quarantine key, and the same record gets the same id when it comes again.
    assert b.record_id.startswith("unidentified-") and c.record_id.startswith("unidentified-")
    assert b.record_id != c.record_id
    assert decode_records([without], "kinesis", TEXT)[0].record_id == b.record_id


@pytest.mark.parametrize(
    ("record", "kind", "reason"),
    [
        (ddb_record({"text": {"S": "x"}}), "kinesis", "eventSource 'aws:dynamodb' in a kinesis batch"),
        (kinesis_record('{"text": "x"}', 1), "dynamodb", "eventSource 'aws:kinesis' in a dynamodb batch"),
        ({**kinesis_record('{"text": "x"}', 1), "eventSource": "aws:sqs"}, "kinesis", "eventSource 'aws:sqs'"),
        ({k: v for k, v in kinesis_record('{"text": "x"}', 1).items() if k != "eventSource"}, "kinesis", "None"),
    ],
    ids=["ddb-in-kinesis", "kinesis-in-ddb", "sqs", "no-event-source"],
)
def test_record_with_another_event_source_is_poison(record: dict, kind: str, reason: str) -> None:
    d = decode_one(record, kind)
    assert d.status == "poison"
    assert reason in d.reason and "eventSource" in d.reason


@pytest.mark.parametrize("record", [None, 5, "text", ["a"], 1.5])
def test_record_that_is_not_an_object_is_poison(record: Any) -> None:
    d = decode_one(record)
    assert (d.status, d.reason, d.sequence_number) == ("poison", "record is not an object", None)
    assert d.record_id.startswith("unidentified-")


def test_a_whole_batch_of_poison_never_raises_and_keeps_order() -> None:
    records = [p[1] for p in KINESIS_TEXT_POISON] + [None, 3, kinesis_record('{"text": "ok"}', 99)]
    decoded = decode_records(records, "kinesis", TEXT)
    assert [d.index for d in decoded] == list(range(len(records)))
    assert [d.status for d in decoded] == ["poison"] * (len(records) - 1) + ["input"]
    assert all(d.reason for d in decoded[:-1])


def test_extract_input_rejects_non_objects_and_reads_text() -> None:
    assert extract_input({"text": "hi"}, TEXT) == ("hi", "")
    assert extract_input([1], TEXT) == (None, "payload is a JSON list, expected an object")
    assert extract_input({"a": 1, "b": 2, "c": 3}, TABULAR) == ([1.0, 2.0, 3.0], "")


# --- event classification -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "named"),
    [
        (None, "a NoneType"),
        ([1, 2], "a list"),
        ("Records", "a str"),
        ({}, "an object with no keys"),
        ({"records": []}, "an object with records"),
        ({"Records": "nope"}, "an object with Records"),
        ({"Records": {"0": {}}}, "an object with Records"),
        ({"Records": [{"eventSource": "aws:sqs", "body": "x"}]}, "'aws:sqs'"),
        ({"Records": [{"EventSource": "aws:sns", "Sns": {}}]}, "Records[0] is an object with EventSource, Sns"),
        ({"Records": [1]}, "Records[0] is a int"),
        ({"Records": [None, "x", {"eventSource": "aws:sqs"}]}, "no record of 3 has eventSource"),
        ({"Records": [{"eventSource": "aws:secret"}]}, "eventSource an unknown str of 10 characters"),
    ],
    ids=[
        "none",
        "list",
        "str",
        "empty",
        "lowercase-records",
        "records-str",
        "records-dict",
        "sqs",
        "sns",
        "int",
        "no-stream-record",
        "hostile-source-not-echoed",
    ],
)
def test_unknown_events_raise_unsupported_event_error_naming_what_was_seen(event: Any, named: str) -> None:
    with pytest.raises(UnsupportedEventError) as info:
        classify_event(event)
    assert named in str(info.value)
    assert "secret" not in str(info.value)


def test_known_events_are_classified_by_their_first_recognised_record() -> None:
    assert classify_event(kinesis_event(["x"]))[0] == "kinesis"
    assert classify_event(dynamodb_update_event())[0] == "dynamodb"
    assert classify_event({"Records": []}) == ("kinesis", [])
    # Garbage before the first Kinesis / DynamoDB record does not decide the batch's kind:
    # it is poison in that batch (see test_fuzz for the whole handler).
    garbage = [None, "x", [1], {"eventSource": "aws:sqs"}, {"eventSource": None}]
    assert classify_event({"Records": [*garbage, kinesis_record("{}", 1)]})[0] == "kinesis"
    ddb = dynamodb_update_event()["Records"][0]
    assert classify_event({"Records": [*garbage, ddb, kinesis_record("{}", 1)]})[0] == "dynamodb"


# --- gzip payloads (PAYLOAD_COMPRESSION) ---------------------------------------------------


def gzip_record(raw: bytes) -> dict:
    return kinesis_record(raw, 1)


def test_gzip_payload_is_decompressed_by_default() -> None:
    d = decode_one(gzip_record(gzip.compress(json.dumps({"text": "hello"}).encode())))
    assert (d.status, d.value) == ("input", "hello")
    members = gzip.compress(b'{"text": ') + gzip.compress(b'"two members"}')  # RFC 1952 allows several
    assert decode_one(gzip_record(members)).value == "two members"


def test_gzip_payload_is_not_valid_utf8_with_compression_none() -> None:
    [d] = decode_records([gzip_record(gzip.compress(b'{"text": "x"}'))], "kinesis", TEXT, PayloadOptions("none"))
    assert (d.status, d.reason) == ("poison", "data is not valid UTF-8 (byte 1)")


def test_a_gzip_user_record_inside_a_kpl_aggregate_is_decompressed() -> None:
    from aws_kinesis_agg.aggregator import RecordAggregator

    aggregator = RecordAggregator()
    aggregator.add_user_record("k", gzip.compress(b'{"text": "zipped"}'))
    aggregator.add_user_record("k", b'{"text": "plain"}')
    _, _, data = aggregator.clear_and_get().get_contents()
    assert [d.value for d in decode_records([kinesis_record(data, 1)], "kinesis", TEXT)] == ["zipped", "plain"]


def _corrupt_crc(raw: bytes) -> bytes:
    return raw[:-8] + bytes([raw[-8] ^ 1]) + raw[-7:]


@pytest.mark.parametrize(
    "raw, reason",
    [
        (gzip.compress(b'{"text": "x"}')[:-5], "gzip stream is truncated"),
        (_corrupt_crc(gzip.compress(b'{"text": "x"}')), "data is not a valid gzip stream (Error -3"),
        (b"\x1f\x8b\x00garbage", "data is not a valid gzip stream (Error -3"),
        (gzip.compress(b'{"text": "x"}') + b"tail", "4 bytes after the gzip stream are not another gzip member"),
        (gzip.compress(b"\xff\xfe"), "data is not valid UTF-8 (byte 0)"),
    ],
)
def test_a_bad_gzip_stream_is_poison_with_a_reason(raw: bytes, reason: str) -> None:
    d = decode_one(gzip_record(raw))
    assert d.status == "poison" and d.reason.startswith(reason), d.reason


def test_a_gzip_bomb_stops_at_the_cap_and_is_poison() -> None:
    bomb = gzip.compress(b'{"text": "' + b"a" * (64 << 20) + b'"}', compresslevel=9)  # 64 MiB in ~64 KiB
    tracemalloc.start()
    try:
        [d] = decode_records([gzip_record(bomb)], "kinesis", TEXT, PayloadOptions("auto", 1 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (d.status, d.reason) == (
        "poison",
        "gzip data decompresses to more than 1,048,576 bytes (PAYLOAD_MAX_DECOMPRESSED_BYTES)",
    )
    assert peak < 8 << 20  # decompression stopped near the cap: it never held the 64 MiB
    exactly = gzip.compress(b'{"text": "' + b"a" * 100 + b'"}')
    assert decode_one(gzip_record(exactly)).status == "input"
    [at_cap] = decode_records([gzip_record(exactly)], "kinesis", TEXT, PayloadOptions("auto", 112))
    assert at_cap.status == "input"  # the cap is inclusive: 112 bytes decompressed
    [past] = decode_records([gzip_record(exactly)], "kinesis", TEXT, PayloadOptions("auto", 111))
    assert past.status == "poison"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, PayloadOptions("auto", 1_048_576)),
        ({"PAYLOAD_COMPRESSION": "NONE"}, PayloadOptions("none", 1_048_576)),
        ({"PAYLOAD_COMPRESSION": "auto", "PAYLOAD_MAX_DECOMPRESSED_BYTES": "4096"}, PayloadOptions("auto", 4096)),
    ],
)
def test_payload_options_from_the_environment(env: dict, expected: PayloadOptions) -> None:
    assert options_from_env(env) == expected


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PAYLOAD_COMPRESSION": "gzip"}, "PAYLOAD_COMPRESSION='gzip' is not one of auto, none"),
        ({"PAYLOAD_MAX_DECOMPRESSED_BYTES": "1MB"}, "PAYLOAD_MAX_DECOMPRESSED_BYTES='1MB' must be a positive whole"),
        ({"PAYLOAD_MAX_DECOMPRESSED_BYTES": "0"}, "PAYLOAD_MAX_DECOMPRESSED_BYTES='0' must be a positive whole"),
    ],
)
def test_bad_payload_settings_name_the_variable(env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        options_from_env(env)


def test_a_bad_payload_setting_stops_init_with_a_config_error(text_model_dir) -> None:
    from inference.app import App, ConfigError

    with pytest.raises(ConfigError, match=re.escape("PAYLOAD_COMPRESSION='zstd' is not one of auto, none")):
        App.from_env({"MODEL_DIR": str(text_model_dir), "PAYLOAD_COMPRESSION": "zstd"})
    event = {"Records": [kinesis_record(gzip.compress(b'{"text": "x"}'), 1)]}
    assert App.from_env({"MODEL_DIR": str(text_model_dir)}).handle(event)["predictions"] != {}
    app = App.from_env({"MODEL_DIR": str(text_model_dir), "PAYLOAD_COMPRESSION": "none"})
    assert app.handle(event)["predictions"] == {}  # quarantined, as the setting asks


def test_the_fast_path_and_the_general_path_agree_on_every_fuzzed_record() -> None:
    """decode_records' fast path for plain Kinesis JSON records must give, record for record, what
    the general path gives: the fuzzer's hostile records (bad base64, UTF-8, JSON, types, shapes,
    KPL, gzip, whitespace around JSON, routed DynamoDB changes) and its valid ones."""
    import random

    from testing.fuzz.cases import generate

    rng = random.Random(15)
    compared = fast = 0
    for number in range(600):
        case = generate(rng, number)
        records = case.event.get("Records") if isinstance(case.event, dict) else None
        if not isinstance(records, list) or case.model != "text":
            continue
        extra = [
            kinesis_raw(b64(b' {"text": "padded"} ')),
            kinesis_raw(b64(b'\xef\xbb\xbf{"text": "bom"}')),
            kinesis_raw(b64(b'{"text": "a"} {"text": "b"}')),
            kinesis_raw(b64(b'{"eventSource": "aws:dynamodb", "text": "x"}')),
        ]
        for record in [*records, *extra]:
            general = decode_records([record], "kinesis", TEXT, fast=False)
            assert decode_records([record], "kinesis", TEXT) == general, record
            compared += 1
            fast += general[0].status == "input" if general else 0
    assert compared > 2_000 and fast > 500  # the run reached both paths, often
