"""The model layer's contract: ``manifest.json`` and the checks run on it.

The manifest sits next to the joblib artifacts in the model layer (``/opt/model`` on
Lambda). It names the ordered pipeline, the input contract, the model's task (what
each result holds: :data:`RESULT_FIELDS`), the output classes of a classifier, the
sha256 of every artifact and the library versions that produced them. A manifest
without ``task`` (written before tasks existed) describes a classifier. This module is
shared by the function (which verifies a layer before loading it) and by the packaging
layer packaging and release code (which write and check manifests), so both sides read one definition.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict, get_args

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
#: Libraries whose versions must match between training and serving.
TRACKED_LIBRARIES = ("python", "numpy", "scipy", "scikit-learn", "joblib")

#: What the last pipeline step does, as scikit-learn's ``is_classifier`` / ``is_regressor``
#: / ``is_outlier_detector`` / ``is_clusterer`` tell it.
Task = Literal["classifier", "regressor", "outlier_detector", "clusterer"]
TASKS: tuple[Task, ...] = get_args(Task)
#: The fields of one result, per task (docs/model-layer.md, "Results"). A classifier's
#: ``probabilities`` is there only when the manifest's ``class_probabilities`` is true.
RESULT_FIELDS: dict[Task, tuple[str, ...]] = {
    "classifier": ("label", "probability", "probabilities"),
    "regressor": ("value",),
    "outlier_detector": ("label", "score"),
    "clusterer": ("cluster",),
}


class ManifestError(ValueError):
    """The manifest is missing, malformed, or does not match the artifacts."""


class PipelineStep(TypedDict):
    """One joblib artifact. Preprocessors come first, the estimator last.

    The last step's role is ``classifier`` for a classifier (as before tasks existed) and
    ``estimator`` for every other task.
    """

    name: str
    file: str
    role: Literal["preprocessor", "classifier", "estimator"]
    sha256: str


class GoldenFile(TypedDict):
    """Sample records with the model's own results (``layers.golden``), checked before publishing."""

    file: str
    sha256: str
    records: int


class TextInput(TypedDict):
    """A text model: the record's JSON field ``field`` holds the text."""

    kind: Literal["text"]
    field: str


#: The type of a tabular feature's values (docs/model-layer.md, "Input types").
FeatureType = Literal["number", "string", "bool"]
FEATURE_TYPES: tuple[FeatureType, ...] = get_args(FeatureType)


class DataFrameInput(TypedDict):
    """A model fitted on a pandas DataFrame: it is fed one, columns ``features`` in order."""

    #: The pandas dtype of each column, in ``features`` order, as ``str(dtype)`` (``float64``, ``str``, ``bool``).
    dtypes: list[str]


class TabularInput(TypedDict):
    """A tabular model: the record's JSON holds one value per feature, in this order.

    Manifests written before typed features hold only ``kind`` and ``features``: every
    feature a number, none missing, a numpy array.
    """

    kind: Literal["tabular"]
    features: list[str]
    #: Each feature's type, in ``features`` order; absent: every feature is a ``number``.
    types: NotRequired[list[FeatureType]]
    #: The features that may be ``null`` or absent (passed as NaN / None), as packaging found
    #: by trying the model; absent: none may.
    accepts_missing: NotRequired[list[str]]
    #: Present when the model takes a pandas DataFrame (it was fitted on one).
    dataframe: NotRequired[DataFrameInput]


class CodeFile(TypedDict):
    """One file of the team's own code, by its path relative to the model folder."""

    file: str
    sha256: str


class CustomCode(TypedDict):
    """Python modules or packages shipped beside the artifacts (docs/model-layer.md, "Your own code").

    ``modules`` are the top-level names imported before unpickling; ``files`` every file
    of them (``name.py``, or ``name/__init__.py`` and the rest of the package), each with
    its sha256. The model folder is put first on ``sys.path`` to import them.
    """

    modules: list[str]
    files: list[CodeFile]


class Manifest(TypedDict):
    """``manifest.json`` as written by ``layers.model_layer`` (see docs/model-layer.md, "The manifest")."""

    schema_version: int
    name: str
    version: str
    created_at: str
    pipeline: list[PipelineStep]
    input: TextInput | TabularInput
    #: Absent in manifests written before tasks existed: read it with :func:`manifest_task`.
    task: NotRequired[Task]
    #: A classifier's ``classes_`` (required for classifiers, absent for other tasks).
    classes: NotRequired[list[Any]]
    #: A classifier with ``predict_proba``: each result also carries every class's probability.
    class_probabilities: NotRequired[bool]
    libraries: dict[str, str]
    metrics: dict[str, Any]
    #: Golden predictions (absent in manifests written before they existed).
    golden: NotRequired[GoldenFile]
    #: The team's own modules the artifacts need (absent when they need none).
    code: NotRequired[CustomCode]
    #: ``s3://bucket/prefix/``: the pipeline artifacts are objects ``<prefix><file>`` there, not
    #: files in the layer (docs/model-layer.md, "Models in S3"); absent for a model in its layer.
    artifacts_uri: NotRequired[str]


def listed_files(manifest: Manifest) -> list[tuple[str, str]]:
    """``(file, sha256)`` of every file the model layer holds besides the manifest: the artifacts
    (unless they are in S3, ``artifacts_uri``), the golden file, then the custom code files."""
    files = [] if "artifacts_uri" in manifest else [(step["file"], step["sha256"]) for step in manifest["pipeline"]]
    if "golden" in manifest:
        files.append((manifest["golden"]["file"], manifest["golden"]["sha256"]))
    files.extend((entry["file"], entry["sha256"]) for entry in manifest.get("code", {}).get("files", []))
    return files


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key prefix)`` of ``s3://bucket/prefix/``; the prefix is ``""`` or ends with ``/``.

    Raises
    ------
    ManifestError
        ``uri`` is not ``s3://`` followed by a bucket name.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ManifestError(f"artifacts URI {uri!r} must look like s3://bucket/prefix/")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket or any(c in bucket for c in " \\"):
        raise ManifestError(f"artifacts URI {uri!r} has no bucket name: write it s3://bucket/prefix/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def _check_code(code: Any, where: str) -> None:
    """``code``: module names that are identifiers, and files that belong to them, each once."""
    if not isinstance(code, dict):
        raise ManifestError(f"{where}: 'code' must be an object")
    modules = _require(code, "modules", list, f"{where}: code")
    if not modules or not all(isinstance(m, str) and m.isidentifier() for m in modules):
        raise ManifestError(f"{where}: code.modules must be a non-empty list of module names")
    files = _require(code, "files", list, f"{where}: code")
    seen = set()
    for i, entry in enumerate(files):
        at = f"{where}: code.files[{i}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{at} must be an object")
        for key in ("file", "sha256"):
            _require(entry, key, str, at)
        parts = entry["file"].split("/")
        if "\\" in entry["file"] or any(part in ("", ".", "..") for part in parts):
            raise ManifestError(f"{at}: 'file' must be a relative path inside the model folder, got {entry['file']!r}")
        top = parts[0].removesuffix(".py") if len(parts) == 1 else parts[0]
        if top not in modules:
            raise ManifestError(f"{at}: {entry['file']!r} belongs to none of code.modules {modules}")
        if len(entry["sha256"]) != 64:
            raise ManifestError(f"{at}: 'sha256' must be 64 hex characters")
        seen.add(entry["file"])
    for module in modules:
        if f"{module}.py" not in seen and f"{module}/__init__.py" not in seen:
            raise ManifestError(f"{where}: code.files has neither {module}.py nor {module}/__init__.py")


def manifest_task(manifest: Manifest) -> Task:
    """The model's task; ``classifier`` for a manifest written before tasks existed."""
    return manifest.get("task", "classifier")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file_entry(entry: dict[str, Any], at: str) -> None:
    """A listed file: a plain name and a 64-character sha256."""
    for key in ("file", "sha256"):
        _require(entry, key, str, at)
    if "/" in entry["file"] or "\\" in entry["file"] or entry["file"].startswith("."):
        raise ManifestError(f"{at}: 'file' must be a plain file name, got {entry['file']!r}")
    if len(entry["sha256"]) != 64:
        raise ManifestError(f"{at}: 'sha256' must be 64 hex characters")


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ManifestError(f"{where}: missing required key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{where}: {key!r} must be {names}, got {type(value).__name__}")
    return value


def feature_types(contract: TabularInput) -> list[FeatureType]:
    """Each feature's type, in order (``number`` for all in a manifest without ``types``)."""
    return contract.get("types") or ["number"] * len(contract["features"])


def _check_typed_input(contract: dict[str, Any], features: list[str], at: str) -> None:
    """The optional ``types``, ``accepts_missing`` and ``dataframe`` of a tabular contract."""
    if "types" in contract:
        types = _require(contract, "types", list, at)
        if len(types) != len(features) or not all(t in FEATURE_TYPES for t in types):
            raise ManifestError(
                f"{at}.types must give one of {', '.join(FEATURE_TYPES)} for each of the {len(features)} features"
            )
    if "accepts_missing" in contract:
        missing = _require(contract, "accepts_missing", list, at)
        unknown = [name for name in missing if name not in features]
        if unknown:
            raise ManifestError(f"{at}.accepts_missing names {unknown!r}, which are not features")
    if "dataframe" in contract:
        frame = _require(contract, "dataframe", dict, at)
        dtypes = _require(frame, "dtypes", list, f"{at}.dataframe")
        if len(dtypes) != len(features) or not all(isinstance(d, str) and d for d in dtypes):
            raise ManifestError(f"{at}.dataframe.dtypes must name a pandas dtype for each of the features")


def validate_manifest(data: Any) -> Manifest:
    """Check the structure of a parsed manifest and return it typed.

    Parameters
    ----------
    data : Any
        The parsed JSON document.

    Returns
    -------
    Manifest
        The same object, now known to have every required field.

    Raises
    ------
    ManifestError
        Naming the first missing or wrong-typed field and what it should be.
    """
    where = MANIFEST_NAME
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
    version = _require(data, "schema_version", int, where)
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"{where}: schema_version {version} is not supported (this function reads "
            f"{SCHEMA_VERSION}); repackage the model with this release's `make model-layer`"
        )
    for key in ("name", "version", "created_at"):
        if not _require(data, key, str, where).strip():
            raise ManifestError(f"{where}: {key!r} must not be empty")
    task = data.get("task", "classifier")
    if task not in TASKS:
        raise ManifestError(f"{where}: 'task' must be one of {', '.join(TASKS)}, got {task!r}")
    pipeline = _require(data, "pipeline", list, where)
    if not pipeline:
        raise ManifestError(f"{where}: 'pipeline' must list at least the estimator")
    for i, step in enumerate(pipeline):
        at = f"{where}: pipeline[{i}]"
        if not isinstance(step, dict):
            raise ManifestError(f"{at} must be an object")
        for key in ("name", "file", "role", "sha256"):
            _require(step, key, str, at)
        if "/" in step["file"] or "\\" in step["file"] or step["file"].startswith("."):
            raise ManifestError(f"{at}: 'file' must be a plain file name, got {step['file']!r}")
        last_role = "classifier" if task == "classifier" else "estimator"
        expected_role = last_role if i == len(pipeline) - 1 else "preprocessor"
        if step["role"] != expected_role:
            raise ManifestError(
                f"{at}: role {step['role']!r} out of place; the pipeline is preprocessors "
                f"in order, then exactly one {last_role}, last (task {task})"
            )
        if len(step["sha256"]) != 64:
            raise ManifestError(f"{at}: 'sha256' must be 64 hex characters")
    contract = _require(data, "input", dict, where)
    kind = _require(contract, "kind", str, f"{where}: input")
    if kind == "text":
        if not _require(contract, "field", str, f"{where}: input").strip():
            raise ManifestError(f"{where}: input.field must name the JSON field holding the text")
    elif kind == "tabular":
        features = _require(contract, "features", list, f"{where}: input")
        if not features or not all(isinstance(f, str) and f for f in features):
            raise ManifestError(f"{where}: input.features must be a non-empty list of names")
        if len(set(features)) != len(features):
            raise ManifestError(f"{where}: input.features has duplicate names")
        _check_typed_input(contract, features, f"{where}: input")
    else:
        raise ManifestError(f"{where}: input.kind must be 'text' or 'tabular', got {kind!r}")
    if task == "classifier":
        if not _require(data, "classes", list, where):
            raise ManifestError(f"{where}: 'classes' must list the classifier's classes")
        if not isinstance(data.get("class_probabilities", False), bool):
            raise ManifestError(f"{where}: 'class_probabilities' must be true or false")
    else:
        extra = [key for key in ("classes", "class_probabilities") if key in data]
        if extra:
            raise ManifestError(f"{where}: {', '.join(map(repr, extra))} only apply to classifiers, not to a {task}")
    libraries = _require(data, "libraries", dict, where)
    missing = [lib for lib in TRACKED_LIBRARIES if lib not in libraries]
    if missing:
        raise ManifestError(f"{where}: 'libraries' lacks versions for {', '.join(missing)}")
    _require(data, "metrics", dict, where)
    if "golden" in data:
        golden = _require(data, "golden", dict, where)
        _check_file_entry(golden, f"{where}: golden")
        if _require(golden, "records", int, f"{where}: golden") < 1:
            raise ManifestError(f"{where}: golden.records must be at least 1")
        if golden["file"] in {step["file"] for step in pipeline}:
            raise ManifestError(f"{where}: golden.file {golden['file']!r} is also a pipeline artifact")
    if "code" in data:
        _check_code(data["code"], where)
    if "artifacts_uri" in data:
        split_s3_uri(data["artifacts_uri"])
    return data  # type: ignore[return-value]  # checked key by key above: a Manifest


def read_manifest(model_dir: Path) -> Manifest:
    """Read and validate ``model_dir/manifest.json``.

    Raises
    ------
    ManifestError
        If the file is absent, is not JSON, or fails :func:`validate_manifest`.
    """
    path = Path(model_dir) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"no {MANIFEST_NAME} in {model_dir}: is the model layer attached, and does "
            "MODEL_DIR point at it? Build one with `make model-layer`"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    return validate_manifest(data)
