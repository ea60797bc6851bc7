"""Fixtures for the tests, and the rule that every test declares its tier.

Plain helpers (record builders, the small text model, ``make_invoke``) are in
:mod:`tests.helpers`; doubles for the sink, the quarantine and the model in
:mod:`testing.doubles`.

Tiers (markers registered in ``pyproject.toml``): every test has exactly one of ``unit``
(in process), ``aws`` (boto3 against moto, the embedded AWS included) or ``twin`` (the
function run through the local twin's Lambda runtime, or from the built zips), and ``slow``
when it takes seconds. A module whose tests share a tier says so with ``pytestmark``; in a
module that mixes them, a test marked neither ``aws`` nor ``twin`` is ``unit`` (marked so
here, at collection). ``make test`` runs them all, ``make test-fast`` all but ``twin`` and
``slow``.

Session fixtures (trained once, in a temporary folder, in well under a second):

``text_model_dir`` / ``text_model``
    :func:`tests.helpers.make_text_model`: a CountVectorizer -> TfidfTransformer ->
    LogisticRegression pipeline; labels ``fresh`` / ``rotten``; text field ``text``.
``tabular_model_dir`` / ``tabular_model``
    StandardScaler -> LogisticRegression on synthetic rows, features ``a``, ``b``, ``c``;
    classes ``0`` / ``1``, where the label is driven by feature ``a`` alone (so a row
    read in the wrong column order is predicted wrongly).

Never mutate the session folders; copy them (``shutil.copytree``) or build a fresh one
with :func:`~tests.helpers.make_text_model` / :func:`~training.tabular_model.make_tabular_model`.

What is built (session fixtures; never skipped: built here, or the test fails naming the
make target):

``reference_model``
    ``build/model``, trained here (as ``make train`` does) when it is missing.
``deps_layer``
    ``build/layers/deps-layer.zip``; too slow to build here (minutes, 65 MB): when it is
    missing the test fails, naming ``make deps-layer``.
``zips``
    The function zip built from this checkout, the layers (dependencies, then the
    reference model packaged into a temporary folder) and a work folder for
    ``localtwin.invoke``.
``built_zips``
    The zips at their ``build/`` paths (for code that reads them there, like the cost
    notebook): the function zip and model layer rebuilt when older than their sources.

Other fixtures: ``inference_logs`` (``caplog`` for the ``inference`` logger) and
``mocked_aws`` (every boto3 call served by moto, in process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from inference.model import LoadedModel, load_model

from layers.function_zip import DEFAULT_OUT as FUNCTION_ZIP
from layers.function_zip import FUNCTION_DIR, build_function_zip
from layers.model_layer import package_model_layer
from testing.events import REGION
from tests.helpers import DEPS_LAYER, MODEL_LAYER, REFERENCE_MODEL, make_text_model
from training.tabular_model import make_tabular_model

TIERS = ("unit", "aws", "twin")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark a test without a tier ``unit``; refuse one with two (``make test-fast`` selects by them).

    Runs before pytest's own ``-m`` selection (conftest hooks come first).
    """
    wrong = []
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIERS}
        if not tiers:
            item.add_marker(pytest.mark.unit)
        elif len(tiers) > 1:
            wrong.append(f"{item.nodeid}: {sorted(tiers)}")
    if wrong:
        raise pytest.UsageError(
            f"a test has exactly one of the markers {', '.join(TIERS)} (drop the module's `pytestmark` "
            "or the test's decorator):\n  " + "\n  ".join(wrong[:20])
        )


# --- small models -----------------------------------------------------------------


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
def inference_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
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


# --- what is built --------------------------------------------------------------------


def _older_than(target: Path, sources: list[Path]) -> bool:
    return not target.is_file() or any(s.stat().st_mtime > target.stat().st_mtime for s in sources)


@pytest.fixture(scope="session")
def reference_model() -> Path:
    """``build/model``, trained here when missing (``training.train.train``, as ``make train``)."""
    if not (REFERENCE_MODEL / "manifest.json").is_file():
        from training.train import train

        try:
            train(REFERENCE_MODEL)
        except Exception as exc:  # noqa: BLE001 - whatever stops training, say how to do it by hand
            pytest.fail(f"the reference model is missing and training it failed ({exc}): run `make train`")
    return REFERENCE_MODEL


@pytest.fixture(scope="session")
def deps_layer() -> Path:
    """``build/layers/deps-layer.zip``; fails, naming ``make deps-layer``, when it is missing."""
    if not DEPS_LAYER.is_file():
        pytest.fail(f"{DEPS_LAYER} is missing: run `make deps-layer` (`make test` builds it first)")
    return DEPS_LAYER


@pytest.fixture(scope="session")
def zips(
    tmp_path_factory: pytest.TempPathFactory, reference_model: Path, deps_layer: Path
) -> tuple[Path, list[Path], Path]:
    """The function zip, the layers (dependencies, then the reference model packaged into a
    temp folder) and a work folder the tests share (``localtwin.invoke``'s ``workdir``)."""
    out = tmp_path_factory.mktemp("zips")
    function_zip = build_function_zip(out / "function.zip")
    layer_zip, _ = package_model_layer(reference_model, out / "model-layer.zip")
    return function_zip, [deps_layer, layer_zip], out / "invoke"


@pytest.fixture(scope="session")
def built_zips(reference_model: Path, deps_layer: Path) -> tuple[Path, list[Path]]:
    """The function zip and the layers at their ``build/`` paths, each rebuilt (as make
    would) when older than its sources."""
    if _older_than(FUNCTION_ZIP, list(FUNCTION_DIR.rglob("*.py"))):
        build_function_zip(FUNCTION_ZIP)
    if _older_than(MODEL_LAYER, [p for p in reference_model.iterdir() if p.is_file()]):
        package_model_layer(reference_model, MODEL_LAYER)
    return FUNCTION_ZIP, [deps_layer, MODEL_LAYER]
