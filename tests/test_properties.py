"""Property: whatever the records, process_batch accounts for each exactly as stream semantics say.

The strategies build hostile batches and know what each record is, by construction: every
strategy below yields ``(record, what)`` with ``what`` one of :mod:`testing.accounting`'s
labels (GOOD, RAISES, POISON, SKIP). The oracle (:func:`testing.accounting.expect`) turns
the labels and the sinks' chosen failures into the response, report and persisted items
the function must produce; nothing here asks the code under test what a record is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inference.batch import ModelFailure, process_batch

from testing.accounting import GOOD, OUTCOMES, POISON, RAISES, SKIP, Expected, check, expect
from testing.doubles import FakeQuarantine, FakeSink, SpyModel, failing_at
from testing.events import dynamodb_record, kinesis_ddb_document, kinesis_record

pytestmark = pytest.mark.unit

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The text the raising model (``SpyModel(fail_if=raises_on)``) rejects.
BOOM = "BOOM"

# Hypothesis favours the first and last element of sampled_from: keep the odd cases inside.
# Mostly usable (and often duplicated) sequence numbers; sometimes missing, empty or not a
# string: such a record is poison whatever it holds (the oracle's rule 2).
MAYBE_SEQUENCE = st.sampled_from(
    ["1", "2", "3", "17", None, "", 7, ["1"], "49545115243490985018280067714973144582180062593244200961"]
    + ["1", "2", "3", "17"]
)

#: Any JSON value. Its objects' keys have at most 8 characters, so an object drawn here
#: never holds ``eventSource``, ``sequenceNumber`` or ``SequenceNumber``.
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
texts = st.text(max_size=40) | st.sampled_from(["wonderful film", "dull boring plot", f"{BOOM} breaks the model"])
#: Numbers a tabular model reads (finite, not bool) and ones it must refuse.
finite_numbers = st.one_of(
    st.floats(-1e6, 1e6), st.integers(-(10**6), 10**6), st.sampled_from([1.7e308, -0.0, 5e-324, 10**300])
)
#: What DynamoDB's number type holds (38 digits, exponents -130 to 125): ``str`` of these.
dynamodb_numbers = st.integers(-(10**12), 10**12) | st.floats(-1e6, 1e6).filter(lambda x: x == 0 or abs(x) > 1e-100)
#: Any JSON value but an object.
not_objects = json_values.filter(lambda v: not isinstance(v, dict))
bad_features = st.sampled_from([math.nan, math.inf, -math.inf, 10**400, True, "1.5", None, [], {"n": 1}, False])


def raises_on(value: Any) -> bool:
    """The raising model's rule: it cannot score a text that starts with :data:`BOOM`."""
    return isinstance(value, str) and value.startswith(BOOM)


def _text_label(text: str) -> str:
    return RAISES if raises_on(text) else GOOD


# --- payload documents: (document, what) ------------------------------------------------


def text_documents() -> st.SearchStrategy[tuple[Any, str]]:
    extras = st.dictionaries(st.sampled_from(["a", "x", "note", "Text"]), json_values, max_size=3)
    good = st.builds(lambda extra, text: ({**extra, "text": text}, _text_label(text)), extras, texts)
    no_field = st.dictionaries(st.sampled_from(["a", "b", "c", "x", "Text", "texts"]), json_values, max_size=4)
    wrong_type = st.builds(lambda v: {"text": v}, json_values.filter(lambda v: not isinstance(v, str)))
    return st.one_of(good, good, st.tuples(st.one_of(no_field, wrong_type, not_objects), st.just(POISON)))


def _broken(
    draw: st.DrawFn, doc: dict[str, Any], how: str, names: Sequence[str], bad: st.SearchStrategy[Any]
) -> tuple[Any, str]:
    """``doc`` with one of ``names`` deleted (``how == "missing"``) or given a value from ``bad``: POISON."""
    name = draw(st.sampled_from(names))
    if how == "missing":
        del doc[name]
    else:
        doc[name] = draw(bad)
    return doc, POISON


@st.composite
def tabular_documents(draw: st.DrawFn) -> tuple[Any, str]:
    row: dict[str, Any] = {k: draw(finite_numbers) for k in "abc"}
    if draw(st.booleans()):
        row[draw(st.sampled_from(["text", "x", "d"]))] = draw(json_values)  # not a feature: never read
    broken = draw(st.sampled_from([None, None, "missing", "bad", None, "not-object"]))
    if broken is None:
        return row, GOOD
    if broken == "not-object":
        return draw(not_objects), POISON
    return _broken(draw, row, broken, "abc", bad_features)


# --- DynamoDB images (typed attributes): (image, what) -------------------------------------

#: Typed attributes the model does not read: anything, well-formed or not.
unread_attributes = st.dictionaries(
    st.sampled_from(["Id", "other", "note", "d"]),
    st.one_of(
        json_values,
        st.sampled_from([{"XX": 1}, {}, "plain", None, {"N": "1e400"}, {"M": "x"}, {"L": 5}, {"B": "aGk="}]),
    ),
    max_size=3,
)
#: A text attribute that does not deserialise to a string.
bad_text_attributes = st.one_of(
    st.sampled_from([{"N": "1"}, {"BOOL": True}, {"NULL": True}, {"L": []}, {"M": {}}, {"SS": ["x"]}, {"XX": 1}]),
    st.sampled_from([{}, "plain", None, {"M": "x"}, {"L": 5}, {"S": 5}, {"S": ["x"]}, {"B": "aGk="}, 7]),
)
#: A number attribute that does not deserialise to a finite number.
bad_number_attributes = st.sampled_from(
    [{"S": "1"}, {"N": "NaN"}, {"N": "Infinity"}, {"N": "1e400"}, {"N": "abc"}, {"BOOL": True}, {"NULL": True}]
    + [{"L": [{"N": "1"}]}, {}, None, "1", {"XX": "1"}]
)


@st.composite
def dynamodb_images(draw: st.DrawFn, contract: str) -> tuple[Any, str]:
    """A NewImage for ``contract``, or None (no NewImage: SKIP)."""
    image: dict[str, Any] = draw(unread_attributes)
    broken = draw(st.sampled_from([None, None, "bad", "missing", None, "not-object", "none"]))
    if broken == "none":
        return None, SKIP
    if broken == "not-object":
        return draw(st.sampled_from(["x", [], 5, True, [{"S": "x"}]])), POISON
    if contract == "text":
        text = draw(texts)
        image["text"] = {"S": text}
        return (
            (image, _text_label(text))
            if broken is None
            else _broken(draw, image, broken, ["text"], bad_text_attributes)
        )
    for k in "abc":
        image[k] = {"N": str(draw(dynamodb_numbers))}
    return (image, GOOD) if broken is None else _broken(draw, image, broken, "abc", bad_number_attributes)


@st.composite
def routed_changes(draw: st.DrawFn, contract: str) -> tuple[Any, str]:
    """The document of a DynamoDB change delivered through Kinesis."""
    image, what = draw(IMAGES[contract])
    event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE", "bogus"]))
    return kinesis_ddb_document(image, event_name), SKIP if event_name == "REMOVE" else what


#: Built once: a strategy built inside a draw is built again for every draw (slow).
IMAGES = {contract: dynamodb_images(contract) for contract in ("text", "tabular")}


# --- Kinesis payload bytes: (payload, what) ---------------------------------------------


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


def kinesis_payloads(contract: str) -> st.SearchStrategy[tuple[bytes, str]]:
    documents = st.one_of(
        text_documents() if contract == "text" else tabular_documents(),
        routed_changes(contract),
    )
    garbage = st.one_of(
        st.binary(max_size=40).filter(lambda raw: not _json_object(raw)),  # bad UTF-8, bad JSON, not an object
        st.just(b'{"text": "\xff"}'),
        st.just(b"Hello, this is a test 123."),
        st.just(b'{"a": 1, "b": 2, "c": ' + b"9" * 5000 + b"}"),  # beyond the int digits limit
    )
    return st.one_of(
        documents.map(lambda pair: (json.dumps(pair[0]).encode(), pair[1])),
        documents.map(lambda pair: (json.dumps(pair[0]).encode(), pair[1])),
        st.tuples(garbage, st.just(POISON)),
    )


PAYLOADS = {contract: kinesis_payloads(contract) for contract in ("text", "tabular")}


# --- records: (record, what) ----------------------------------------------------------------

#: Most records keep their shape (-1); the rest have it broken in one of five ways.
MUTATIONS = st.sampled_from([-1] * 5 + [0, 1, 2, 3, 4] + [-1] * 5)


@st.composite
def kinesis_records(draw: st.DrawFn, contract: str, first: bool = False) -> tuple[Any, str]:
    payload, what = draw(PAYLOADS[contract])
    record = kinesis_record(payload, 0)
    seq = draw(MAYBE_SEQUENCE)
    if seq is None:
        del record["kinesis"]["sequenceNumber"]
    else:
        record["kinesis"]["sequenceNumber"] = seq
    if draw(st.booleans()):
        record["eventID"] = draw(st.sampled_from([f"shard:{seq}", "dup-id", None, 5]))
    mutation = draw(MUTATIONS)
    if mutation == 0:
        # 12 characters of base64 at most are 9 bytes: no payload a record can be scored or skipped by.
        record["kinesis"]["data"] = draw(st.text(max_size=12) | st.integers() | st.none())
        what = POISON
    elif mutation == 1:
        del record["kinesis"]["data"]
        what = POISON
    elif mutation == 2:
        record["kinesis"] = draw(json_values)
        what = POISON
    elif mutation == 3 and not first:
        record["eventSource"] = draw(st.sampled_from(["aws:sqs", None, "aws:dynamodb"]))
        what = POISON
    elif mutation == 4:
        key = draw(st.sampled_from(["eventSourceARN", "eventName", "kinesis"]))
        del record[key]
        what = POISON if key == "kinesis" else what
    return record, what


@st.composite
def dynamodb_records(draw: st.DrawFn, contract: str, first: bool = False) -> tuple[Any, str]:
    event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE", "other"]))
    image, what = draw(IMAGES[contract])
    seq = draw(MAYBE_SEQUENCE)
    record = dynamodb_record(
        image,
        sequence=seq if isinstance(seq, str) else None,
        event_name=event_name,
        event_id=draw(st.sampled_from(["e-1", "e-2", "dup-id", ""])) or None,
        view_type=draw(st.sampled_from(["NEW_AND_OLD_IMAGES", "NEW_IMAGE", "KEYS_ONLY"])),
    )
    if event_name == "REMOVE":
        what = SKIP  # whatever the image holds
    if seq is not None and not isinstance(seq, str):
        record["dynamodb"]["SequenceNumber"] = seq
    mutation = draw(MUTATIONS)  # 0-2: break the record's shape (3, 4: leave it)
    if mutation == 0:
        record["dynamodb"] = draw(json_values)
        what = POISON
    elif mutation == 1 and not first:
        record["eventSource"] = draw(st.sampled_from(["aws:kinesis", None, "aws:sqs"]))
        what = POISON
    elif mutation == 2:
        del record["eventSourceARN"]
    return record, what


RECORDS = {
    (kind, contract, first): (kinesis_records if kind == "kinesis" else dynamodb_records)(contract, first)
    for kind in ("kinesis", "dynamodb")
    for contract in ("text", "tabular")
    for first in (True, False)
}
#: A record, or (one time in eight) any JSON value instead of a record object.
RECORD_KINDS = st.sampled_from([True] * 4 + [False] + [True] * 3)


@st.composite
def batches(draw: st.DrawFn, kind: str, contract: str) -> tuple[dict[str, Any], list[str]]:
    """``(event, what)``: a batch whose first record is of ``kind`` (so the batch is), and its labels."""
    first, others = RECORDS[kind, contract, True], RECORDS[kind, contract, False]
    pairs = [draw(first)]
    for _ in range(draw(st.integers(0, 11))):
        pairs.append(draw(others) if draw(RECORD_KINDS) else (draw(json_values), POISON))
    return {"Records": [record for record, _ in pairs]}, [what for _, what in pairs]


@st.composite
def all_raising_batches(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """Kinesis batches in which every input makes the raising model raise (mostly two or
    more of them: the model's fault), among poison records."""
    pairs: list[tuple[Any, str]] = [
        (kinesis_record(json.dumps({"text": f"{BOOM} {draw(texts)}"}), draw(MAYBE_SEQUENCE.filter(bool))), RAISES)
        for _ in range(draw(st.integers(1, 5)))
    ]
    for _ in range(draw(st.integers(0, 3))):
        pairs.insert(draw(st.integers(1, len(pairs))), (draw(json_values), POISON))
    return {"Records": [record for record, _ in pairs]}, [what for _, what in pairs]


#: For the model that raises on BOOM: any batch, or one where it raises on every input.
RAISING_BATCHES = st.one_of(batches("kinesis", "text"), batches("kinesis", "text"), all_raising_batches())

#: Indices a fake sink / quarantine fails: none, a few near the front of the batch, every
#: one from some record on (an outage), or all.
FAILS = st.one_of(
    st.just(frozenset()),
    st.frozensets(st.integers(0, 6), min_size=1, max_size=3),
    st.integers(0, 11).map(lambda first: frozenset(range(first, 12))),
    st.just(frozenset(range(12))),
)


def assert_accounted(
    expected: Expected, response: Any, report: Any, sink: FakeSink, quarantine: FakeQuarantine
) -> None:
    """The response, the report and what the doubles hold are what the oracle says."""
    assert check(expected, response, sink, quarantine) == []
    assert {
        "predicted": report.predicted,
        "quarantined": report.quarantined,
        "skipped": report.skipped,
        "retried": report.retry,
    } == {outcome: expected.indices(outcome) for outcome in OUTCOMES}
    assert report.failures == expected.failures
    assert report.counts() == expected.counts()


@pytest.mark.parametrize(("kind", "contract"), [("kinesis", "text"), ("dynamodb", "text"), ("kinesis", "tabular")])
@SETTINGS
@given(data=st.data(), sink_fails=FAILS, quarantine_fails=FAILS)
def test_process_batch_accounts_for_every_record(
    kind, contract, text_model, tabular_model, data, sink_fails, quarantine_fails
) -> None:
    model = text_model if contract == "text" else tabular_model
    event, what = data.draw(batches(kind, contract), label="event")
    what = [GOOD if w == RAISES else w for w in what]  # this model raises on nothing
    sink, quarantine = FakeSink(fail=failing_at(sink_fails)), FakeQuarantine(fail=failing_at(quarantine_fails))
    spy = SpyModel(model)
    response, report = process_batch(event, spy, sink, quarantine)
    expected = expect(event, what, sink_fails, quarantine_fails)
    assert expected is not None and expected.kind == kind
    assert_accounted(expected, response, report, sink, quarantine)
    assert len(spy.calls) == (1 if GOOD in expected.what else 0), "one predict call when the model does not raise"
    assert len(spy.calls) == report.predict_calls


@SETTINGS
@given(batch=RAISING_BATCHES, sink_fails=FAILS)
def test_process_batch_with_a_model_that_raises_on_some_inputs(text_model, batch, sink_fails) -> None:
    """ModelFailure only when two or more inputs each fail alone; otherwise the bad ones are quarantined."""
    event, what = batch
    sink, quarantine = FakeSink(fail=failing_at(sink_fails)), FakeQuarantine()
    spy = SpyModel(text_model, fail_if=raises_on)
    expected = expect(event, what, sink_fails)
    assert expected is not None
    if expected.model_failure:
        with pytest.raises(ModelFailure):
            process_batch(event, spy, sink, quarantine)
        assert sink.calls == [] and quarantine.calls == []
        return
    response, report = process_batch(event, spy, sink, quarantine)
    assert_accounted(expected, response, report, sink, quarantine)
    for i in expected.indices("quarantined"):
        assert quarantine.kept[i].reason.startswith("model raised ValueError") == (expected.what[i] == RAISES)


def situations(case: tuple[tuple[dict[str, Any], list[str]], frozenset[int], frozenset[int]]) -> set[str]:
    """The labels, outcomes and cutoff cases one generated batch (with its sinks' failures) reaches."""
    (event, what), sink_fails, quarantine_fails = case
    expected = expect(event, what, sink_fails, quarantine_fails)
    assert expected is not None
    if expected.model_failure:
        return {*what, "model failure"}
    found = {*what, *expected.outcomes}
    if expected.failures == [{"itemIdentifier": ""}]:
        found.add("whole batch")
    elif expected.cutoff < expected.first_failure:
        found.add("moved back")
    return found


def reached(strategy: st.SearchStrategy[Any], examples: int) -> set[str]:
    """Every situation ``examples`` generated cases reach (derandomized)."""
    seen: set[str] = set()

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None)
    @given(case=strategy)
    def run(case: Any) -> None:
        seen.update(situations(case))

    run()
    return seen


def test_the_strategies_reach_every_label_outcome_and_cutoff_case() -> None:
    """Guard against a vacuous property: the generated batches reach every label, every
    outcome, a cutoff moved back to a record with a sequence number and a whole-batch
    failure (each expected ten times or more in these runs), and a model failure."""
    assert reached(st.tuples(batches("kinesis", "text"), FAILS, FAILS), 300) >= {
        GOOD,
        RAISES,
        POISON,
        SKIP,
        *OUTCOMES,
        "whole batch",
        "moved back",
    }
    assert "model failure" in reached(st.tuples(RAISING_BATCHES, FAILS, FAILS), 100)
