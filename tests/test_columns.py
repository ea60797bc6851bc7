"""The batch's parallel lists: :class:`inference.decode.DecodedBatch` and
:class:`inference.sinks.Results` read as the sequences of records and results they stand for."""

from __future__ import annotations

import dataclasses

import pytest
from inference.decode import DecodedBatch, DecodedRecord
from inference.sinks import ResponseSink, ResultItem, Results


def results(keys: list | None = None) -> Results:
    return Results(
        [0, 2, 5],
        ["a", "c", "f"],
        ["1", "3", "6"],
        ["arn"] * 3,
        [{"label": "pos"}, {"label": "neg"}, {"label": "pos"}],
        "m",
        "1.0.0",
        keys,
    )


def test_results_read_as_result_items_in_order() -> None:
    items = list(results())
    assert items[1] == ResultItem(2, "c", "3", "arn", {"label": "neg"}, "m", "1.0.0", None)
    assert results()[-1].index == 5 and results()[0:2] == items[0:2]
    with pytest.raises(IndexError):
        results()[3]


def test_results_before_a_cutoff_keep_only_the_records_before_it() -> None:
    assert [r.index for r in results().before(5)] == [0, 2]
    assert [r.index for r in results().before(3)] == [0, 2]
    assert [r.index for r in results().before(0)] == []
    assert [r.index for r in results().before(6)] == [0, 2, 5]


@pytest.mark.parametrize("keys", [None, [{"id": "1"}, None, {"id": "6"}]])
def test_the_response_from_the_lists_is_the_response_from_the_items(keys: list | None) -> None:
    from_lists, from_items = ResponseSink(), ResponseSink()
    assert from_lists.write(results(keys)) == set() and from_items.write(list(results(keys))) == set()
    assert from_lists.predictions == from_items.predictions
    assert ("key" in from_lists.predictions["a"]) == (keys is not None)


def test_a_decoded_batch_reads_as_its_records_and_poison_changes_one() -> None:
    batch = DecodedBatch()
    batch.add("a", "1", "arn", "input", "text", "", "", 0)
    batch.append(DecodedRecord(1, "b", None, "arn", "poison", None, "bad JSON", "quoted", 1))
    assert batch[1] == DecodedRecord(1, "b", None, "arn", "poison", None, "bad JSON", "quoted", 1)
    assert batch[-2].value == "text" and len(batch[0:2]) == 2 and batch == list(batch)
    batch.poison(0, "model raised ValueError", "message")
    assert (batch[0].status, batch[0].reason, batch[0].detail) == ("poison", "model raised ValueError", "message")
    with pytest.raises(dataclasses.FrozenInstanceError):  # a change goes through the batch
        batch[0].status = "input"  # type: ignore[misc]
    with pytest.raises(IndexError):
        batch[2]
