"""Gallery, from the zips: the typed-input tabular models served as Lambda runs them.

The models of ``tests/test_gallery_tabular.py`` (same builders and fixtures: each model is
dumped and packaged through ``layers.model_layer``'s command line, what ``make
model-layer`` runs) are served here by the local Lambda runtime from the function zip, the
dependencies layer (plus the extras layer, for pandas, where the model is a DataFrame
pipeline) and the model's layer: one runtime per layer set, every event of that set
handled by the same warm environment. Every prediction must be what the model's own
``predict_proba`` gives on the same rows, built as a data scientist would build them (a
float array with NaN, a DataFrame, an object array); a quarantined record is named, with
its reason, in the function's log.
"""

from __future__ import annotations

# ruff: noqa: F811 - the fixtures imported from tests.test_gallery_tabular are the tests' parameters
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layers.deps_layer import EXTRAS_OUT as EXTRAS_LAYER
from layers.function_zip import build_function_zip
from localtwin.invoke import invoke
from testing.events import dynamodb_record
from tests.test_gallery_tabular import (  # noqa: F401 - the model fixtures
    COLUMNS,
    TYPED_IMAGES,
    assert_same,
    best_probabilities,
    cancer,
    dataframe_model,
    hist_gradient_boosting,
    kinesis_batch,
    object_array_model,
    table,
    typed_docs,
    with_gaps,
)

pytestmark = [pytest.mark.twin, pytest.mark.slow]


def layer_zip(folder: Path) -> Path:
    """The layer ``tests.test_gallery_tabular.package`` built for the model in ``folder``."""
    return folder.parent / "layer.zip"


@pytest.fixture(scope="module")
def function_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_function_zip(tmp_path_factory.mktemp("function") / "function.zip")


@pytest.fixture(scope="module")
def extras_layer() -> Path:
    if not EXTRAS_LAYER.is_file():
        pytest.fail(f"{EXTRAS_LAYER} is missing: run `make extras-layer` (`make test` builds it first)")
    return EXTRAS_LAYER


def served(events: list[dict[str, Any]], function: Path, layers: list[Path], workdir: Path) -> tuple[list[dict], str]:
    """The responses to ``events``, one after the other in one warm environment; the function's log."""
    proc = invoke(events, function, layers, workdir=workdir, many=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def in_order(response: dict[str, Any], event: dict[str, Any], indices: list[int] | None = None) -> list[dict]:
    records = event["Records"]
    return [response["predictions"][records[i]["eventID"]] for i in indices or range(len(records))]


def quarantined(log: str) -> dict[str, str]:
    """``eventID -> reason`` of the records the function's log says it quarantined."""
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return {line["record_id"]: line["reason"] for line in lines if "reason" in line and "record_id" in line}


def test_nan_for_null_and_absent_features_from_the_zips(
    hist_gradient_boosting, cancer, function_zip: Path, deps_layer: Path, tmp_path: Path
) -> None:
    model, folder, _ = hist_gradient_boosting
    docs, rows = with_gaps(cancer[0])
    event = kinesis_batch(docs)

    (response,), _ = served([event], function_zip, [deps_layer, layer_zip(folder)], tmp_path / "invoke")

    assert response["batchItemFailures"] == [] and len(response["predictions"]) == len(docs)
    assert_same(in_order(response, event), best_probabilities(model, rows))


def test_a_dataframe_pipeline_from_the_zips_with_pandas_from_the_extras_layer(
    dataframe_model, table, function_zip: Path, deps_layer: Path, extras_layer: Path, tmp_path: Path
) -> None:
    model, folder, _ = dataframe_model
    frame = table[0]
    event = kinesis_batch(typed_docs(frame))
    layers = [deps_layer, extras_layer, layer_zip(folder)]

    (response,), log = served([event], function_zip, layers, tmp_path / "invoke")

    assert response["batchItemFailures"] == []
    good = [i for i in range(10) if i not in (3, 6)]
    assert set(response["predictions"]) == {event["Records"][i]["eventID"] for i in good}
    assert_same(in_order(response, event, good), best_probabilities(model, frame.iloc[good].reset_index(drop=True)))
    reasons = quarantined(log)
    assert reasons[event["Records"][3]["eventID"]] == (
        "feature 'color' is null, and the model does not accept missing values"
    )
    assert reasons[event["Records"][6]["eventID"]] == "model raised ValueError"  # an unseen colour


def test_typed_dynamodb_images_and_kinesis_records_from_the_zips(
    object_array_model, table, function_zip: Path, deps_layer: Path, tmp_path: Path
) -> None:
    """S, N, BOOL and NULL attributes (NULL where the model takes a missing value); then the same
    model on a Kinesis batch of typed JSON, in the same warm environment."""
    model, folder, _ = object_array_model
    images = TYPED_IMAGES
    stream = {"Records": [dynamodb_record(image, str(100 + i), event_id=f"e{i}") for i, image in enumerate(images)]}
    docs = typed_docs(table[0])
    batch = kinesis_batch(docs)

    (from_stream, from_batch), log = served([stream, batch], function_zip, [deps_layer, layer_zip(folder)], tmp_path)

    assert from_stream["batchItemFailures"] == [] and set(from_stream["predictions"]) == {"e0", "e1", "e2"}
    rows = np.array([["red", 0.5, 2.0, True], [None, -1.25, 3.0, False], [None, 1.0, 1.5, True]], dtype=object)
    assert_same(in_order(from_stream, stream, [0, 1, 2]), best_probabilities(model, rows))
    assert quarantined(log)["e3"] == "NewImage: feature 'size' is null, and the model does not accept missing values"
    assert from_batch["batchItemFailures"] == []
    rows = np.array([[doc[c] for c in COLUMNS] for doc in docs], dtype=object)
    assert_same(in_order(from_batch, batch), best_probabilities(model, rows))
