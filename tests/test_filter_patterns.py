"""Lambda's filter patterns (release.filter_patterns): AWS's documented examples, validation, record views.

The examples are those of the Lambda developer guide ("Lambda event filtering", "Using event filtering
with a Kinesis / DynamoDB event source") and of EventBridge's comparison-operator table, which Lambda's
filter syntax follows; the expected answers are the ones those pages give.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from release.filter_patterns import (
    DROP_REMOVE_EVENTS,
    MAX_PATTERN_CHARS,
    FilterPatternError,
    default_patterns,
    filter_document,
    kinesis_document,
    matches,
    matches_any,
    parse_pattern,
)

pytestmark = pytest.mark.unit


def kinesis(data: bytes | dict[str, Any], partition_key: str = "1") -> dict[str, Any]:
    """A Kinesis record as Lambda delivers it, ``data`` base64 of JSON (or of the raw bytes)."""
    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": base64.b64encode(payload).decode(),
            "approximateArrivalTimestamp": 1545084650.987,
        },
        "eventSource": "aws:kinesis",
        "eventName": "aws:kinesis:record",
    }


def dynamodb(event_name: str, new_image: dict[str, Any] | None = None) -> dict[str, Any]:
    change: dict[str, Any] = {"Keys": {"Id": {"N": "101"}}, "SequenceNumber": "111", "SizeBytes": 26}
    if new_image is not None:
        change["NewImage"] = new_image
    return {"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": change}


def k_match(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    return matches(parse_pattern(pattern, "kinesis"), filter_document("kinesis", record))


def d_match(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    return matches(parse_pattern(pattern, "dynamodb"), filter_document("dynamodb", record))


ORDER = {"record": 12345, "order": {"type": "buy", "stock": "ANYCO", "quantity": 1000}}
WEATHER = {"City": "Seattle", "State": "WA", "Temperature": 46, "Month": "December", "Location": "Los Angeles"}


# --- the Lambda guide's examples ------------------------------------------------------------------


def test_kinesis_nested_data_equals() -> None:
    pattern = {"data": {"order": {"type": ["buy"]}}}
    assert k_match(pattern, kinesis(ORDER))
    assert not k_match(pattern, kinesis({**ORDER, "order": {**ORDER["order"], "type": "sell"}}))


def test_metadata_and_data_together() -> None:
    pattern = {"partitionKey": ["1"], "data": {"Location": ["Los Angeles"]}}
    assert k_match(pattern, kinesis(WEATHER, partition_key="1"))
    assert not k_match(pattern, kinesis(WEATHER, partition_key="2"))
    assert not k_match(pattern, kinesis({**WEATHER, "Location": "Seattle"}, partition_key="1"))


@pytest.mark.parametrize(("temperature", "expected"), [(50, False), (50.5, True), (60, True), (60.1, False)])
def test_numeric_range(temperature: float, expected: bool) -> None:
    pattern = {"data": {"Temperature": [{"numeric": [">", 50, "<=", 60]}]}}
    assert k_match(pattern, kinesis({**WEATHER, "Temperature": temperature})) is expected


def test_numeric_needs_a_number() -> None:
    pattern = {"data": {"Temperature": [{"numeric": [">", 50]}]}}
    assert not k_match(pattern, kinesis({**WEATHER, "Temperature": "55"}))  # a string is not a number
    assert not k_match(pattern, kinesis({**WEATHER, "Temperature": True}))


def test_dynamodb_multi_level() -> None:
    assert d_match({"dynamodb": {"Keys": {"Id": {"N": ["101"]}}}}, dynamodb("INSERT"))
    assert not d_match({"dynamodb": {"Keys": {"Id": {"N": ["102"]}}}}, dynamodb("INSERT"))


def test_or_of_values_and_the_console_example() -> None:
    assert d_match({"eventName": ["INSERT", "MODIFY"]}, dynamodb("MODIFY"))
    assert not d_match({"eventName": ["INSERT", "MODIFY"]}, dynamodb("REMOVE"))
    assert k_match({"data": {"a": [1, 2]}}, kinesis({"a": 2}))
    assert not k_match({"data": {"a": [1, 2]}}, kinesis({"a": 3}))


# --- the comparison operators (EventBridge's table, as Lambda supports it) -----------------------


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (None, None, True),  # null
        (None, "", False),
        ("", "", True),  # empty
        ("", None, False),
        ("Alice", "Alice", True),  # equals: exact, case-sensitive
        ("Alice", "alice", False),
        (100, 100, True),
        (300, 300.0, False),  # numbers compare by their JSON text
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        ({"equals-ignore-case": "alice"}, "ALICE", True),
        ({"equals-ignore-case": "alice"}, "alicia", False),
        ({"prefix": "us-"}, "us-east-1", True),
        ({"prefix": "us-"}, "eu-west-1", False),
        ({"prefix": "us-"}, 5, False),
        ({"prefix": {"equals-ignore-case": "US-"}}, "us-east-1", True),
        ({"suffix": ".png"}, "photo.png", True),
        ({"suffix": ".png"}, "photo.jpg", False),
        ({"suffix": {"equals-ignore-case": ".PNG"}}, "photo.png", True),
        ({"anything-but": "Raining"}, "Sunny", True),
        ({"anything-but": ["Raining", "Snowing"]}, "Snowing", False),
        ({"anything-but": [100, 200]}, 300, True),
        ({"anything-but": [100, 200]}, 100, False),
        ({"anything-but": {"prefix": "test-"}}, "test-1", False),
        ({"anything-but": {"prefix": "test-"}}, "prod-1", True),
        ({"anything-but": {"suffix": ".tmp"}}, "a.tmp", False),
        ({"anything-but": {"equals-ignore-case": ["REMOVE"]}}, "remove", False),
        ({"numeric": ["=", 100]}, 100, True),
        ({"numeric": ["=", 100]}, 100.0, True),  # numeric compares values, unlike a literal
        ({"numeric": [">=", 0, "<", 1]}, 1, False),
    ],
)
def test_operator(rule: Any, value: Any, expected: bool) -> None:
    assert k_match({"data": {"field": [rule]}}, kinesis({"field": value})) is expected


def test_exists_and_does_not_exist() -> None:
    assert k_match({"data": {"ProductName": [{"exists": True}]}}, kinesis({"ProductName": "x"}))
    assert not k_match({"data": {"ProductName": [{"exists": True}]}}, kinesis({"Other": "x"}))
    assert k_match({"data": {"ProductName": [{"exists": False}]}}, kinesis({"Other": "x"}))
    assert not k_match({"data": {"ProductName": [{"exists": False}]}}, kinesis({"ProductName": None}))
    # exists looks at leaf values: an object is not one, an empty array holds none
    assert not k_match({"data": {"ProductName": [{"exists": True}]}}, kinesis({"ProductName": {"S": "x"}}))
    assert k_match({"data": {"ProductName": [{"exists": False}]}}, kinesis({"ProductName": []}))
    # a missing nested path does not exist either
    assert d_match({"dynamodb": {"NewImage": {"text": [{"exists": False}]}}}, dynamodb("REMOVE"))
    assert not d_match({"dynamodb": {"NewImage": {"text": {"S": [{"exists": True}]}}}}, dynamodb("REMOVE"))


def test_a_missing_field_matches_nothing_but_exists_false() -> None:
    for rule in ["x", None, {"anything-but": "x"}, {"prefix": ""}, {"numeric": [">", 0]}]:
        assert not k_match({"data": {"field": [rule]}}, kinesis({"other": 1})), rule


def test_arrays_in_the_record_match_when_any_element_does() -> None:
    record = kinesis({"tags": ["fresh", "new"], "items": [{"sku": "A"}, {"sku": "B"}]})
    assert k_match({"data": {"tags": ["new"]}}, record)
    assert not k_match({"data": {"tags": ["old"]}}, record)
    assert k_match({"data": {"items": {"sku": ["B"]}}}, record)
    assert not k_match({"data": {"items": {"sku": ["C"]}}}, record)


def test_keys_of_one_object_must_all_match() -> None:
    pattern = {"data": {"Location": ["New York"], "Day": ["Monday"]}}
    assert k_match(pattern, kinesis({"Location": "New York", "Day": "Monday"}))
    assert not k_match(pattern, kinesis({"Location": "New York", "Day": "Tuesday"}))


def test_dollar_or() -> None:
    pattern = {"data": {"$or": [{"c": [1]}, {"d": [{"numeric": [">", 5]}]}]}}
    assert k_match(pattern, kinesis({"c": 1}))
    assert k_match(pattern, kinesis({"d": 6}))
    assert not k_match(pattern, kinesis({"c": 2, "d": 5}))
    top = {"$or": [{"eventName": ["INSERT"]}, {"dynamodb": {"Keys": {"Id": {"N": ["101"]}}}}]}
    assert d_match(top, dynamodb("REMOVE"))  # the second branch
    assert not d_match(top, {**dynamodb("REMOVE"), "dynamodb": {"Keys": {"Id": {"N": "7"}}}})


# --- Kinesis payloads that are not JSON -----------------------------------------------------------


@pytest.mark.parametrize("payload", [b"plain text", b"\x1f\x8b\x08\x00gzip", b"\xf3\x89\x9a\xc2kpl", b"{broken"])
def test_a_non_json_payload_matches_only_patterns_without_data(payload: bytes) -> None:
    record = kinesis(payload, partition_key="7")
    assert k_match({"partitionKey": ["7"]}, record)
    assert not k_match({"partitionKey": ["8"]}, record)
    assert not k_match({"data": {"text": [{"exists": False}]}}, record)  # AWS: "Lambda drops the record"
    assert not k_match({"partitionKey": ["7"], "data": {"x": [{"exists": False}]}}, record)


def test_kinesis_document_decodes_data() -> None:
    doc = kinesis_document(kinesis(ORDER)["kinesis"])
    assert doc["data"] == ORDER and doc["partitionKey"] == "1"
    assert kinesis_document(kinesis(b"42")["kinesis"])["data"] == 42  # any JSON value counts


# --- several patterns and the default ---------------------------------------------------------------


def test_any_pattern_may_match_and_none_means_everything() -> None:
    patterns = [
        parse_pattern({"eventName": ["INSERT"]}, "dynamodb"),
        parse_pattern({"eventName": ["MODIFY"]}, "dynamodb"),
    ]
    assert matches_any(patterns, dynamodb("MODIFY"))
    assert not matches_any(patterns, dynamodb("REMOVE"))
    assert matches_any([], dynamodb("REMOVE"))


def test_the_dynamodb_default_drops_remove_events_only() -> None:
    assert default_patterns("kinesis") == ()
    [pattern] = default_patterns("dynamodb")
    assert pattern == DROP_REMOVE_EVENTS
    assert [matches(pattern, dynamodb(name)) for name in ("INSERT", "MODIFY", "REMOVE")] == [True, True, False]


# --- validation: what Lambda would refuse, with the fix in the message ----------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "non-empty JSON object"),
        ({}, "non-empty JSON object"),
        ({"data": {"x": "buy"}}, r'must be a list of rules: \["buy"\]'),
        ({"data": {"x": []}}, "empty list"),
        ({"data": {"x": [{"wildcard": "a*"}]}}, "not an operator Lambda event filtering supports"),
        ({"data": {"x": [{"prefix": 1}]}}, "prefix takes a string"),
        ({"data": {"x": [{"exists": "yes"}]}}, "exists takes true or false"),
        ({"data": {"x": [{"numeric": [">", "5"]}]}}, "each comparison is one of"),
        ({"data": {"x": [{"numeric": ["<", 5, ">", 1]}]}}, "a range is a lower bound"),
        ({"data": {"x": [{"numeric": [">", 5, "<", 1]}]}}, "a range is a lower bound"),
        ({"data": {"x": [{"anything-but": []}]}}, "at least one value"),
        ({"data": {"x": [{"anything-but": {"wildcard": "a"}}]}}, "anything-but takes"),
        ({"data": {"x": [{"prefix": "a", "suffix": "b"}]}}, "one operator"),
        ({"data": {"$or": [{"x": ["a"]}]}}, "at least two patterns"),
        ({"Text": ["a"]}, "the payload's fields go under data"),
        ({"data": {"x": ["a" * MAX_PATTERN_CHARS]}}, "at most 4,096"),
    ],
)
def test_invalid_patterns_are_refused(pattern: Any, message: str) -> None:
    with pytest.raises(FilterPatternError, match=message):
        parse_pattern(pattern, "kinesis")


def test_top_level_keys_depend_on_the_source_type() -> None:
    parse_pattern({"eventName": ["INSERT"]}, "dynamodb")
    with pytest.raises(FilterPatternError, match="eventName, eventVersion"):
        parse_pattern({"EventName": ["INSERT"]}, "dynamodb")
    with pytest.raises(FilterPatternError, match="a kinesis record has no such field"):
        parse_pattern({"eventName": ["INSERT"]}, "kinesis")
