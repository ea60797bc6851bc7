"""The accounting oracle (:mod:`testing.accounting`): answers worked out by hand, and proof it can fail.

First :func:`~testing.accounting.expect` on small batches whose answers follow from the
rules in its module docstring (docs/aws-notes.md §2). Then :func:`~testing.accounting.check`
on answers that are wrong in one way each. Last, copies of ``inference.batch`` with one
deliberate bug each (an off-by-one cutoff, a sink given records past a failed quarantine,
...), loaded in memory: on a handful of batches the oracle must reject every copy and
accept the real module.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import inference.batch
import pytest

from testing.accounting import GOOD, POISON, RAISES, SKIP, check, expect
from testing.doubles import FakeQuarantine, FakeSink, SpyModel, failing_at
from testing.events import kinesis_ddb_document, kinesis_record

pytestmark = pytest.mark.unit

BOOM = "BOOM"


def good(seq: int | None) -> dict[str, Any]:
    return _without_seq(kinesis_record(json.dumps({"text": f"a warm film {seq}"}), seq or 0), seq)


def raising(seq: int | None) -> dict[str, Any]:
    return _without_seq(kinesis_record(json.dumps({"text": f"{BOOM} {seq}"}), seq or 0), seq)


def poison(seq: int | None) -> dict[str, Any]:
    return _without_seq(kinesis_record(b"\xff not UTF-8", seq or 0), seq)


def skip(seq: int | None) -> dict[str, Any]:
    return _without_seq(kinesis_record(json.dumps(kinesis_ddb_document(None, "REMOVE")), seq or 0), seq)


def _without_seq(record: dict[str, Any], seq: int | None) -> dict[str, Any]:
    if seq is None:
        del record["kinesis"]["sequenceNumber"]
    return record


def ids(*seqs: str) -> list[dict[str, str]]:
    return [{"itemIdentifier": s} for s in seqs]


# --- expect: answers by hand --------------------------------------------------------------


def test_a_clean_batch_is_predicted_skipped_and_quarantined_with_nothing_to_retry() -> None:
    event = {"Records": [good(1), skip(2), poison(3), good(4)]}
    expected = expect(event, [GOOD, SKIP, POISON, GOOD])
    assert expected is not None
    assert expected.outcomes == ["predicted", "skipped", "quarantined", "predicted"]
    assert (expected.failures, expected.cutoff, expected.sink_limit) == ([], 4, 4)
    assert expected.counts() == {
        "RecordsIn": 4,
        "RecordsPredicted": 2,
        "RecordsSkipped": 1,
        "RecordsQuarantined": 1,
        "RecordsRetried": 0,
    }


def test_a_failed_quarantine_cuts_the_batch_there_and_bounds_the_sink() -> None:
    event = {"Records": [good(1), poison(2), good(3), skip(4)]}
    expected = expect(event, [GOOD, POISON, GOOD, SKIP], quarantine_fails={1})
    assert expected is not None
    assert expected.outcomes == ["predicted", "retried", "retried", "retried"]
    assert expected.failures == ids("2", "3", "4")
    assert expected.sink_limit == 1  # record 3 must not reach the sink


def test_a_failed_result_cuts_the_batch_there() -> None:
    expected = expect({"Records": [good(1), good(2), good(3)]}, [GOOD] * 3, sink_fails={1, 2})
    assert expected is not None
    assert expected.outcomes == ["predicted", "retried", "retried"] and expected.failures == ids("2", "3")
    assert expected.sink_limit == 3


def test_failures_on_records_a_store_is_never_given_change_nothing() -> None:
    event = {"Records": [good(1), poison(2), skip(3)]}
    expected = expect(event, [GOOD, POISON, SKIP], sink_fails={1, 2}, quarantine_fails={0, 2})
    assert expected is not None
    assert expected.failures == [] and expected.outcomes == ["predicted", "quarantined", "skipped"]


def test_the_cutoff_moves_back_to_a_record_lambda_can_resume_at() -> None:
    event = {"Records": [good(1), good(2), poison(None), good(4)]}
    expected = expect(event, [GOOD, GOOD, POISON, GOOD], quarantine_fails={2})
    assert expected is not None
    assert (expected.first_failure, expected.cutoff) == (2, 1)
    assert expected.outcomes == ["predicted", "retried", "retried", "retried"]
    assert expected.failures == ids("2", "4")


def test_with_no_such_record_the_whole_batch_fails() -> None:
    event = {"Records": [poison(None), good(2)]}
    expected = expect(event, [POISON, GOOD], quarantine_fails={0})
    assert expected is not None
    assert expected.failures == [{"itemIdentifier": ""}] and expected.outcomes == ["retried", "retried"]


def test_a_sequence_number_is_named_once() -> None:
    event = {"Records": [good(1), good(7), good(7), good(8)]}
    expected = expect(event, [GOOD] * 4, sink_fails={1})
    assert expected is not None and expected.failures == ids("7", "8")


def test_records_of_another_source_or_without_a_sequence_number_are_poison_whatever_they_hold() -> None:
    other = {**good(2), "eventSource": "aws:sqs"}
    expected = expect({"Records": [good(1), other, good(None), None]}, [GOOD, GOOD, GOOD, GOOD])
    assert expected is not None
    assert expected.what == [GOOD, POISON, POISON, POISON]
    assert expected.record_ids == ["shardId-000000000000:1", "shardId-000000000000:2", "shardId-000000000000:0", None]


def test_the_model_is_at_fault_only_when_two_or_more_inputs_all_raise() -> None:
    both = expect({"Records": [raising(1), poison(2), raising(3)]}, [RAISES, POISON, RAISES])
    assert both is not None and both.model_failure and both.outcomes == []
    one = expect({"Records": [raising(1), good(2)]}, [RAISES, GOOD])
    assert one is not None and not one.model_failure and one.outcomes == ["quarantined", "predicted"]
    alone = expect({"Records": [raising(1), skip(2)]}, [RAISES, SKIP])
    assert alone is not None and not alone.model_failure and alone.outcomes == ["quarantined", "skipped"]


@pytest.mark.parametrize(
    "event", [None, [good(1)], {}, {"Records": None}, {"Records": [None, {"eventSource": "aws:sqs"}]}]
)
def test_an_event_that_is_no_stream_batch_is_to_be_rejected(event: Any) -> None:
    assert expect(event, []) is None


def test_an_empty_batch_is_a_kinesis_batch_with_nothing_in_it() -> None:
    expected = expect({"Records": []}, [])
    assert expected is not None and (expected.kind, expected.outcomes, expected.failures) == ("kinesis", [], [])


def test_labels_must_fit_the_batch() -> None:
    with pytest.raises(ValueError, match="2 labels for a batch of 1"):
        expect({"Records": [good(1)]}, [GOOD, GOOD])
    with pytest.raises(ValueError, match="unknown record labels"):
        expect({"Records": [good(1)]}, ["predicted"])


# --- check: wrong answers are caught ------------------------------------------------------


class _Item:
    def __init__(self, index: int, record_id: str) -> None:
        self.index, self.record_id = index, record_id


def _stores(kept: list[int], given: list[int] | None = None) -> FakeSink:
    sink = FakeSink(fail=lambda item: item.index not in kept)
    sink.keep([_Item(i, f"shardId-000000000000:{i + 1}") for i in (kept if given is None else given)])
    return sink


def test_check_accepts_the_right_answer_and_names_each_wrong_one() -> None:
    event = {"Records": [good(1), poison(2), good(3)]}
    expected = expect(event, [GOOD, POISON, GOOD], quarantine_fails={1})
    assert expected is not None
    right = {"batchItemFailures": ids("2", "3")}
    assert check(expected, right, _stores([0])) == []

    def problems(response: Any, sink: FakeSink) -> str:
        return "; ".join(check(expected, response, sink))

    assert "batchItemFailures" in problems({"batchItemFailures": ids("3")}, _stores([0]))
    assert "not written" in problems(right, _stores([]))
    assert "after a failed quarantine" in problems(right, _stores([0], given=[0, 2]))
    assert "twice" in problems(right, _stores([0], given=[0, 0]))
    assert "predictions in the response" in problems({**right, "predictions": {}}, _stores([0]))
    assert "strict JSON" in problems({**right, "x": float("nan")}, _stores([0]))
    assert "is not {'batchItemFailures'" in problems({"batchItemFailures": None}, _stores([0]))


def test_check_of_the_response_as_sink_and_of_the_quarantine() -> None:
    event = {"Records": [good(1), poison(2), skip(3)]}
    expected = expect(event, [GOOD, POISON, SKIP])
    assert expected is not None
    prediction = {"label": "fresh", "probability": 0.9}
    right = {"batchItemFailures": [], "predictions": {"shardId-000000000000:1": prediction}}
    quarantine = FakeQuarantine()
    quarantine.keep([_Item(1, "shardId-000000000000:2")])
    assert check(expected, right, None, quarantine) == []
    assert "no predictions in the response" in check(expected, {"batchItemFailures": []})[0]
    extra = {"batchItemFailures": [], "predictions": {**right["predictions"], "shardId-000000000000:3": prediction}}
    assert check(expected, extra) == ["response predictions do not match the predicted records"]
    assert check(expected, right, None, FakeQuarantine()) == ["quarantined records not kept: [1]"]
    quarantine.keep([_Item(0, "shardId-000000000000:1")])
    assert check(expected, right, None, quarantine) == ["records [0] sent to the quarantine are not poison"]


# --- the oracle rejects a broken batch.py -------------------------------------------------

#: One deliberate bug each: (text in inference/batch.py, what replaces it).
MUTANTS = {
    "cutoff one after a failed quarantine": (
        "min(failed, default=n)",
        "min((i + 1 for i in failed), default=n)",
    ),
    "cutoff one after a failed result": (
        "min(sink.write(results.before(cutoff)), default=cutoff)",
        "min((i + 1 for i in sink.write(results.before(cutoff))), default=cutoff)",
    ),
    "the cutoff is not moved back": (
        "while cutoff < n and seqs[cutoff] is None and cutoff > 0:",
        "while False:",
    ),
    "a sequence number named twice": ("if seq is not None and seq not in seen:", "if seq is not None:"),
    "the sink gets records past a failed quarantine": (
        "sink.write(results.before(cutoff))",
        "sink.write(results)",
    ),
    "a lone input that raises fails the batch": (
        "if len(inputs) > 1 and len(errors) == len(inputs):",
        "if len(inputs) > 0 and len(errors) == len(inputs):",
    ),
}

#: (records, what they are, sink fails, quarantine fails): each mutant goes wrong on one at least.
BATCHES = [
    ([good(1), poison(2), good(3), good(4)], [GOOD, POISON, GOOD, GOOD], set(), {1}),
    ([good(1), good(2), good(3)], [GOOD, GOOD, GOOD], {1}, set()),
    ([good(1), good(2), poison(None), good(4)], [GOOD, GOOD, POISON, GOOD], set(), {2}),
    ([good(1), good(5), good(5), good(6)], [GOOD, GOOD, GOOD, GOOD], {1}, set()),
    ([raising(1), poison(2), skip(3)], [RAISES, POISON, SKIP], set(), set()),
    ([good(1), raising(2), raising(3), skip(4)], [GOOD, RAISES, RAISES, SKIP], {0}, set()),
]


@pytest.fixture
def load_batch_module() -> Iterator[Any]:
    """``load(old, new)``: ``inference.batch`` with ``old`` replaced by ``new``, as a module."""
    source = Path(inference.batch.__file__).read_text()
    names: list[str] = []

    def load(old: str | None = None, new: str = "") -> types.ModuleType:
        text = source
        if old is not None:
            if source.count(old) != 1:
                pytest.fail(f"inference/batch.py no longer holds {old!r} once: update MUTANTS in {__file__}")
            text = source.replace(old, new)
        name = f"inference.batch_copy_{len(names)}"
        module = types.ModuleType(name)
        module.__package__ = "inference"
        sys.modules[name] = module  # dataclasses look the module up
        names.append(name)
        exec(compile(text, inference.batch.__file__, "exec"), module.__dict__)
        return module

    yield load
    for name in names:
        sys.modules.pop(name, None)


def problems_with(module: Any, text_model: Any) -> list[str]:
    """What the oracle finds wrong with ``module.process_batch`` on :data:`BATCHES`."""
    found = []
    for number, (records, what, sink_fails, quarantine_fails) in enumerate(BATCHES):
        event = {"Records": records}
        expected = expect(event, what, sink_fails, quarantine_fails)
        assert expected is not None
        sink, quarantine = FakeSink(failing_at(sink_fails)), FakeQuarantine(failing_at(quarantine_fails))
        model = SpyModel(text_model, fail_if=lambda text: text.startswith(BOOM))
        try:
            response, report = module.process_batch(event, model, sink, quarantine)
        except module.ModelFailure:
            if not expected.model_failure:
                found.append(f"batch {number}: ModelFailure")
            continue
        found += [f"batch {number}: {p}" for p in check(expected, response, sink, quarantine)]
        if report.retry != expected.indices("retried"):
            found.append(f"batch {number}: retried {report.retry} != {expected.indices('retried')}")
    return found


def test_the_real_batch_module_passes(load_batch_module: Any, text_model: Any) -> None:
    assert problems_with(load_batch_module(), text_model) == []


@pytest.mark.parametrize("mutant", MUTANTS)
def test_a_batch_module_with_one_bug_is_caught(mutant: str, load_batch_module: Any, text_model: Any) -> None:
    assert problems_with(load_batch_module(*MUTANTS[mutant]), text_model) != []
