"""Plain helpers the tests share (``from tests.helpers import ...``); the fixtures are in ``conftest.py``.

They live here, not in ``testing/``, because only the tests use them: ``make_invoke``
runs ``make`` and fails the test through pytest, and the small text model is a test
fixture's. Builders and doubles that the tools use too (the fuzzer, the soak) are in
:mod:`testing.events` and :mod:`testing.doubles`.

Paths
    :data:`ROOT` (the checkout), :data:`REFERENCE_MODEL` (``build/model``),
    :data:`DEPS_LAYER` and :data:`MODEL_LAYER` (the built layer zips).
Models
    :func:`make_text_model` trains and packages the small text model the ``text_model``
    fixtures load; the tabular one is :func:`training.tabular_model.make_tabular_model`.
Records
    :func:`kinesis_raw` (``data`` verbatim), :func:`kinesis_ddb_record` (a DynamoDB change
    through Kinesis), :func:`b64`.
The built function
    :func:`make_invoke` runs ``make invoke``.
Fake layer zips for the release tests
    :func:`write_zip`, :func:`fake_deps_zip` (dist-info folders and one extension module name: what
    the release code reads of a dependencies layer), :func:`fake_model_zip` (a manifest and its
    artifacts with their sha256); :data:`FAKE_LIBRARIES` are their library versions.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from inference.manifest import sha256_bytes

from layers.deps_layer import DEFAULT_OUT as DEPS_LAYER
from layers.model_layer import DEFAULT_OUT as MODEL_LAYER
from layers.model_layer import DEFAULT_SRC as REFERENCE_MODEL
from layers.model_layer import build_manifest, write_manifest
from testing.events import kinesis_ddb_document, kinesis_record

__all__ = [
    "DEPS_LAYER",
    "FAKE_LIBRARIES",
    "MODEL_LAYER",
    "REFERENCE_MODEL",
    "ROOT",
    "TEXT_FIELD",
    "TEXT_PIPELINE",
    "b64",
    "fake_deps_zip",
    "fake_model_zip",
    "kinesis_ddb_record",
    "kinesis_raw",
    "make_invoke",
    "make_text_model",
    "synthetic_reviews",
    "write_zip",
]

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
    """Train the small text model and package it (artifacts + manifest) into ``out``.

    CountVectorizer -> TfidfTransformer -> LogisticRegression (``training.train.fit_pipeline``)
    on :func:`synthetic_reviews`; labels ``fresh`` / ``rotten``; text field ``text``.
    """
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


def make_invoke(event_path: Path) -> dict[str, Any]:
    """Run ``make invoke EVENT=event_path`` and return the response it prints.

    Needs the reference model and the dependencies layer (a test calling this asks for the
    ``reference_model`` and ``deps_layer`` fixtures, which build or demand them). ``-o``:
    never retrain the reference model or rebuild the dependencies layer here (a newer venv
    stamp or Pipfile would trigger them); the function zip and the model layer are rebuilt
    by make when their sources changed.
    """
    missing = [str(p.relative_to(ROOT)) for p in (REFERENCE_MODEL / "manifest.json", DEPS_LAYER) if not p.is_file()]
    if missing:
        pytest.fail(f"make invoke needs {', '.join(missing)}: run `make train deps-layer` (or `make test`)")
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
    # A zip rebuilt on the way announces itself first; the response comes last.
    start = proc.stdout.find("{\n")
    assert start >= 0, proc.stdout
    return json.loads(proc.stdout[start:])


# --------------------------------------------------------------------------- fake layer zips

#: The library versions of the fake layers (what the release code compares between them).
FAKE_LIBRARIES = {"numpy": "2.2.6", "scipy": "1.16.3", "scikit-learn": "1.7.2", "joblib": "1.6.0"}


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    """A zip of ``name -> bytes`` with fixed timestamps (the same files give the same sha256)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


def fake_deps_zip(
    path: Path,
    *,
    libraries: dict[str, str] = FAKE_LIBRARIES,
    extension_tag: str = "cpython-312-x86_64",
    padding: bytes = b"",
) -> Path:
    """A dependencies layer as the release code sees one: ``*.dist-info`` folders naming ``libraries``
    and one extension module named for ``extension_tag`` (its Python and CPU); ``padding`` makes it bigger."""
    files = {
        f"python/{lib.replace('-', '_')}-{v}.dist-info/METADATA": f"Name: {lib}\nVersion: {v}\n".encode()
        for lib, v in libraries.items()
    }
    files[f"python/sklearn/_fake.{extension_tag}-linux-gnu.so"] = b"\x7fELF"
    if padding:
        files["python/padding.bin"] = padding
    return write_zip(path, files)


def fake_model_zip(
    path: Path,
    version: str,
    *,
    libraries: dict[str, str] = FAKE_LIBRARIES,
    python: str = "3.12.8",
    artifacts: tuple[str, ...] = ("vectorizer", "classifier"),
    tamper: bool = False,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """A model layer of the reference model's name: a manifest listing ``artifacts`` (the last is the
    classifier) with their sha256, built with ``libraries`` on ``python``. ``tamper`` changes the
    classifier's bytes after hashing; ``extra`` adds files the manifest does not list."""
    data = {f"{name}.joblib": f"{name[:3]} {version}".encode() for name in artifacts}
    manifest = {
        "schema_version": 1,
        "name": "rotten-tomatoes-sentiment",
        "version": version,
        "created_at": "2026-11-21T09:25:36+00:00",
        "pipeline": [
            {
                "name": name,
                "file": f"{name}.joblib",
                "role": "classifier" if i == len(artifacts) - 1 else "preprocessor",
                "sha256": sha256_bytes(data[f"{name}.joblib"]),
            }
            for i, name in enumerate(artifacts)
        ],
        "input": {"kind": "text", "field": "text"},
        "classes": ["fresh", "rotten"],
        "libraries": {"python": python, **libraries},
        "metrics": {},
    }
    if tamper:
        data[f"{artifacts[-1]}.joblib"] += b" swapped"
    files = {"model/manifest.json": json.dumps(manifest).encode()}
    files.update({f"model/{name}": content for name, content in data.items()})
    files.update(extra or {})
    return write_zip(path, files)
