"""Shared fixtures and fakes for the function's tests.

Session fixtures (trained once, in a temporary folder, in well under a second):

``text_model_dir`` / ``text_model``
    CountVectorizer -> TfidfTransformer -> LogisticRegression (``tools.train.fit_pipeline``)
    trained on a small synthetic review corpus; labels ``fresh`` / ``rotten``; text field
    ``text``. Packaged with ``layers.model_layer.build_manifest`` + ``write_manifest``.
``tabular_model_dir`` / ``tabular_model``
    StandardScaler -> LogisticRegression on synthetic rows, features ``a``, ``b``, ``c``;
    classes ``0`` / ``1``, where the label is driven by feature ``a`` alone (so a row
    read in the wrong column order is predicted wrongly).

Never mutate the session folders; copy them (``shutil.copytree``) or build a fresh one
with :func:`make_text_model` / :func:`make_tabular_model`.

Plain helpers, importable as ``from tests.conftest import ...``: the model builders,
DynamoDB / Kinesis-routed record builders, and fakes for the results sink, the
quarantine and the model.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from inference.model import LoadedModel, Predictions, load_model
from inference.quarantine import QuarantineItem
from inference.sinks import ResultItem

from layers.model_layer import build_manifest, write_manifest
from tools.events import REGION, TABLE_STREAM_ARN, kinesis_record

TEXT_FIELD = "text"
TEXT_PIPELINE = ["vectorizer.joblib", "tfidf.joblib", "classifier.joblib"]
TABULAR_FEATURES = ["a", "b", "c"]
TABULAR_PIPELINE = ["scaler.joblib", "classifier.joblib"]

_POSITIVE = ["wonderful", "moving", "brilliant", "funny", "beautiful", "inventive", "warm", "delightful", "charming"]
_NEGATIVE = ["tedious", "boring", "dull", "awful", "bored", "overlong", "clumsy", "lifeless", "tiresome", "dreadful"]
_FILLER = ["the", "film", "movie", "story", "acting", "plot", "a", "really", "quite", "this", "is", "and", "its"]


def synthetic_reviews(n: int = 300, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` short reviews, half ``fresh`` (positive words) and half ``rotten``."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = "fresh" if i % 2 == 0 else "rotten"
        mood = _POSITIVE if label == "fresh" else _NEGATIVE
        words = rng.sample(_FILLER, 4) + rng.sample(mood, 2)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def make_text_model(out: Path, name: str = "test-sentiment", version: str = "0.0.1") -> Path:
    """Train the small text model and package it (artifacts + manifest) into ``out``."""
    import joblib

    from tools.train import fit_pipeline

    texts, labels = synthetic_reviews()
    vectorizer, tfidf, classifier, metrics = fit_pipeline(texts, labels)
    out.mkdir(parents=True, exist_ok=True)
    for obj, file in zip((vectorizer, tfidf, classifier), TEXT_PIPELINE):
        joblib.dump(obj, out / file)
    manifest = build_manifest(
        out, name=name, version=version, pipeline=TEXT_PIPELINE, text_field=TEXT_FIELD, metrics=metrics
    )
    write_manifest(out, manifest)
    return out


def make_tabular_model(
    out: Path,
    features: Sequence[str] = TABULAR_FEATURES,
    name: str = "test-tabular",
    version: str = "0.0.1",
    seed: int = 0,
) -> Path:
    """Train StandardScaler -> LogisticRegression on synthetic rows; the label is ``a > 0``."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(features)))
    y = (x[:, 0] > 0).astype(int)
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression().fit(scaler.transform(x), y)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(scaler, out / TABULAR_PIPELINE[0])
    joblib.dump(classifier, out / TABULAR_PIPELINE[1])
    manifest = build_manifest(
        out,
        name=name,
        version=version,
        pipeline=TABULAR_PIPELINE,
        features=list(features),
        metrics={"train_accuracy": float(classifier.score(scaler.transform(x), y))},
    )
    write_manifest(out, manifest)
    return out


@pytest.fixture(scope="session")
def text_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packaged text model folder (read-only by convention: copy it before changing it)."""
    return make_text_model(tmp_path_factory.mktemp("text_model"))


@pytest.fixture(scope="session")
def text_model(text_model_dir: Path) -> LoadedModel:
    return load_model(text_model_dir)


@pytest.fixture(scope="session")
def tabular_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A packaged tabular model folder (read-only by convention: copy it before changing it)."""
    return make_tabular_model(tmp_path_factory.mktemp("tabular_model"))


@pytest.fixture(scope="session")
def tabular_model(tabular_model_dir: Path) -> LoadedModel:
    return load_model(tabular_model_dir)


# --- record builders ---------------------------------------------------------------


def ddb_record(
    new_image: dict[str, Any] | None,
    sequence: str | None = "100",
    event_name: str = "INSERT",
    event_id: str | None = None,
    view_type: str = "NEW_AND_OLD_IMAGES",
    old_image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One DynamoDB Streams record (``sam local generate-event dynamodb update`` shape)."""
    change: dict[str, Any] = {"Keys": {"Id": {"N": "101"}}, "ApproximateCreationDateTime": 1428537600}
    if new_image is not None:
        change["NewImage"] = new_image
    if old_image is not None:
        change["OldImage"] = old_image
    if sequence is not None:
        change["SequenceNumber"] = sequence
    change.update({"SizeBytes": 26, "StreamViewType": view_type})
    return {
        "eventID": event_id or f"ddb-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": TABLE_STREAM_ARN,
    }


def kinesis_ddb_document(
    new_image: dict[str, Any] | None, event_name: str = "INSERT", old_image: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON a "Kinesis Data Streams for DynamoDB" record carries (REFERENCE.md §1)."""
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": 1700000000123456,  # microseconds
        "Keys": {"Id": {"N": "101"}},
        "SizeBytes": 42,
    }
    if new_image is not None:
        change["NewImage"] = new_image
    if old_image is not None:
        change["OldImage"] = old_image
    return {
        "awsRegion": REGION,
        "eventID": "4b25bd0c-5a4b-4b1a-9a23-7c7d0b6bd4a1",
        "eventName": event_name,
        "userIdentity": None,
        "recordFormat": "application/json",
        "tableName": "ExampleTableWithStream",
        "eventSource": "aws:dynamodb",
        "dynamodb": change,
    }


def kinesis_ddb_record(new_image: dict[str, Any] | None, sequence: int | str, event_name: str = "INSERT") -> dict:
    """A Kinesis record whose data is a DynamoDB change document."""
    return kinesis_record(json.dumps(kinesis_ddb_document(new_image, event_name)), sequence)


def kinesis_raw(data: str, sequence: int | str | None = 1) -> dict[str, Any]:
    """A Kinesis record with ``data`` set verbatim (not base64-encoded for you)."""
    record = kinesis_record(b"", sequence if sequence is not None else 0)
    record["kinesis"]["data"] = data
    if sequence is None:
        del record["kinesis"]["sequenceNumber"]
    return record


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# --- fakes ---------------------------------------------------------------------------


class FakeSink:
    """A results sink backed by a dict keyed by ``record_id`` (like the DynamoDB sink).

    ``fail(item) -> bool`` chooses the items it reports as not written.
    """

    def __init__(self, fail: Callable[[ResultItem], bool] | None = None) -> None:
        self.fail = fail
        self.store: dict[str, ResultItem] = {}
        self.calls: list[list[ResultItem]] = []

    def write(self, items: list[ResultItem]) -> set[int]:
        self.calls.append(list(items))
        failed = set()
        for item in items:
            if self.fail is not None and self.fail(item):
                failed.add(item.index)
            else:
                self.store[item.record_id] = item
        return failed

    @property
    def received(self) -> list[int]:
        """Indices handed to the sink, over all calls."""
        return [item.index for call in self.calls for item in call]


class FakeQuarantine:
    """A quarantine keyed by ``record_id``; ``fail(item) -> bool`` picks items it cannot keep."""

    def __init__(self, fail: Callable[[QuarantineItem], bool] | None = None) -> None:
        self.fail = fail
        self.store: dict[str, QuarantineItem] = {}
        self.calls: list[list[QuarantineItem]] = []

    def send(self, items: list[QuarantineItem]) -> set[int]:
        self.calls.append(list(items))
        failed = set()
        for item in items:
            if self.fail is not None and self.fail(item):
                failed.add(item.index)
            else:
                self.store[item.record_id] = item
        return failed

    @property
    def received(self) -> list[int]:
        return [item.index for call in self.calls for item in call]


class SpyModel:
    """Wraps a :class:`LoadedModel`: records every predict call, and raises on chosen inputs.

    ``fail_if(input) -> bool``: a predict call raises ``ValueError`` when any of its
    inputs matches (as a model does when one row of a batch is bad).
    """

    def __init__(self, model: LoadedModel, fail_if: Callable[[Any], bool] | None = None) -> None:
        self.model = model
        self.fail_if = fail_if
        self.calls: list[list[Any]] = []

    def __getattr__(self, name: str) -> Any:  # manifest, name, version, ...
        return getattr(self.model, name)

    def predict(self, inputs: Sequence[Any]) -> Predictions:
        self.calls.append(list(inputs))
        if self.fail_if is not None:
            for value in inputs:
                if self.fail_if(value):
                    raise ValueError(f"cannot score {str(value)[:30]!r}")
        return self.model.predict(inputs)
