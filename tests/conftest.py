"""Shared fixtures and fakes for the function's tests.

Session fixtures (trained once, in a temporary folder, in well under a second):

``text_model_dir`` / ``text_model``
    CountVectorizer -> TfidfTransformer -> LogisticRegression (``training.train.fit_pipeline``)
    trained on a small synthetic review corpus; labels ``fresh`` / ``rotten``; text field
    ``text``. Packaged with ``layers.model_layer.build_manifest`` + ``write_manifest``.
``tabular_model_dir`` / ``tabular_model``
    StandardScaler -> LogisticRegression on synthetic rows, features ``a``, ``b``, ``c``;
    classes ``0`` / ``1``, where the label is driven by feature ``a`` alone (so a row
    read in the wrong column order is predicted wrongly).

Never mutate the session folders; copy them (``shutil.copytree``) or build a fresh one
with :func:`make_text_model` / :func:`make_tabular_model`.

Other fixtures:

``zips`` (session)
    The function zip built from this checkout, the layers (dependencies, then the reference
    model in ``build/model`` packaged into a temporary folder) and a work folder for
    ``localtwin.invoke``; skips when the reference model or the dependencies layer is not built.
``inference_logs``
    ``caplog`` for the ``inference`` logger (which stops propagating once set up).

Plain helpers, importable as ``from tests.conftest import ...``: the model builders,
DynamoDB / Kinesis-routed record builders, fakes for the results sink, the quarantine
and the model, and :func:`make_invoke`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from inference.model import LoadedModel, Predictions, load_model
from inference.quarantine import QuarantineItem
from inference.sinks import ResultItem

from layers.deps_layer import DEFAULT_OUT as DEPS_LAYER
from layers.function_zip import build_function_zip
from layers.model_layer import DEFAULT_OUT as MODEL_LAYER
from layers.model_layer import DEFAULT_SRC as REFERENCE_MODEL
from layers.model_layer import build_manifest, package_model_layer, write_manifest
from testing.events import REGION, kinesis_ddb_document, kinesis_record
from testing.events import dynamodb_record as ddb_record  # noqa: F401 (re-exported for the tests)
from training.tabular_model import TABULAR_FEATURES, make_tabular_model  # noqa: F401 (TABULAR_FEATURES: re-exported)

ROOT = Path(__file__).resolve().parents[1]

TEXT_FIELD = "text"
TEXT_PIPELINE = ["vectorizer.joblib", "tfidf.joblib", "classifier.joblib"]

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

    from training.train import fit_pipeline

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


@pytest.fixture
def inference_logs(caplog: pytest.LogCaptureFixture):
    """caplog for the ``inference`` logger, which stops propagating once logging is set up."""
    logger = logging.getLogger("inference")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # caplog's handler sits on the root logger too: count each record once
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)
    logger.propagate = propagate


# --- the built zips -----------------------------------------------------------------


@pytest.fixture(scope="session")
def zips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path]:
    """The function zip, the layers (dependencies, then the model built from this checkout
    into a temp folder) and a work folder the tests share (``localtwin.invoke``'s ``workdir``)."""
    if not (REFERENCE_MODEL / "manifest.json").is_file():
        pytest.skip("reference model missing: run `make train`")
    if not DEPS_LAYER.is_file():
        pytest.skip("dependencies layer missing: run `make deps-layer`")
    out = tmp_path_factory.mktemp("zips")
    function_zip = build_function_zip(out / "function.zip")
    layer_zip, _ = package_model_layer(REFERENCE_MODEL, out / "model-layer.zip")
    return function_zip, [DEPS_LAYER, layer_zip], out / "invoke"


def make_invoke(event_path: Path) -> dict[str, Any]:
    """Run ``make invoke EVENT=event_path`` and return the response it prints.

    Skips unless the reference model and both layers are built. ``-o``: never retrain the
    reference model or rebuild the dependencies layer here (a newer venv stamp or Pipfile
    would trigger them); the function zip is still rebuilt from the sources if they changed.
    """
    if not all(p.is_file() for p in (REFERENCE_MODEL / "manifest.json", DEPS_LAYER, MODEL_LAYER)):
        pytest.skip("build the reference model and layers first: `make train model-layer deps-layer`")
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", "build/model/manifest.json", "-o", ".venv/.installed-requirements"]
        + ["-o", "build/layers/deps-layer.zip"]
        + ["invoke", f"EVENT={event_path}"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    # A function zip rebuilt on the way announces itself first; the response comes last.
    start = proc.stdout.find("{\n")
    assert start >= 0, proc.stdout
    return json.loads(proc.stdout[start:])


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, region us-east-1, and every boto3 call served by moto (in process)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    from moto import mock_aws

    with mock_aws():
        yield


# --- record builders ---------------------------------------------------------------


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


class _FakeStore:
    """Keeps what it is given, keyed by ``record_id`` (as the DynamoDB sink and the S3
    quarantine do); ``fail(item) -> bool`` chooses the items it reports as not kept."""

    def __init__(self, fail: Callable[[Any], bool] | None = None) -> None:
        self.fail = fail
        self.store: dict[str, Any] = {}
        self.calls: list[list[Any]] = []

    def _keep(self, items: list[Any]) -> set[int]:
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
        """Indices handed over, over all calls."""
        return [item.index for call in self.calls for item in call]


class FakeSink(_FakeStore):
    """A results sink (:class:`~inference.sinks.ResultSink`)."""

    def write(self, items: list[ResultItem]) -> set[int]:
        return self._keep(items)


class FakeQuarantine(_FakeStore):
    """A quarantine (:class:`~inference.quarantine.Quarantine`)."""

    def send(self, items: list[QuarantineItem]) -> set[int]:
        return self._keep(items)


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
