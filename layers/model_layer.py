"""Package a folder of joblib artifacts into the model layer zip.

The zip holds ``model/manifest.json`` and the artifacts under ``model/``; Lambda
extracts layers into ``/opt``, so the function finds them in ``/opt/model`` (its
default ``MODEL_DIR``). ``--layer-dir candidate`` puts them under ``candidate/`` instead: the
candidate model layer of a shadow rollout (``/opt/candidate``, :mod:`inference.shadow`).

Usage::

    python -m layers.model_layer --src build/model            # folder with manifest.json
    python -m layers.model_layer --src build/candidate --layer-dir candidate --out build/layers/candidate-layer.zip
    python -m layers.model_layer --src my_model --name churn --version 3 \\
        --pipeline scaler.joblib,classifier.joblib --features age,tenure,spend [--class-probabilities]
    python -m layers.model_layer --src churn --name churn --version 3 \\
        --pipeline model.joblib --features country:string,age,tenure,active:bool

A folder that has ``manifest.json`` is checked against it (every file present, every
sha256 equal). A folder without one gets a manifest built from the options; a missing
option is named. Either way every artifact is unpickled once here, in the pinned
environment, with scikit-learn's ``InconsistentVersionWarning`` as an error, so a model
pickled by another scikit-learn never reaches a layer.

The last artifact may be any fitted scikit-learn classifier, regressor, outlier detector or
clusterer with ``predict`` (or a ``Pipeline`` ending in one); its task is read from the
estimator with scikit-learn's ``is_classifier`` / ``is_regressor`` / ``is_outlier_detector`` /
``is_clusterer`` and recorded in the manifest as ``task``. Anything else is refused with a
message that names the fix (:func:`check_estimator`).

Building a manifest also writes golden predictions (``golden.json``, listed in the manifest
with its sha256): the records of ``--sample FILE`` (or synthetic ones) with the results the
pipeline gives for them here, which ``make check-layers`` requires of the built layers
(:mod:`layers.golden`). A folder with a manifest that lists them has them recomputed and
compared, so a folder scored elsewhere is refused if this environment disagrees.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    ManifestError,
    listed_files,
    manifest_task,
    read_manifest,
    sha256_bytes,
    validate_manifest,
)
from inference.model import (
    ModelLoadError,
    check_estimator_fits,
    check_versions,
    estimator_task,
    installed_versions,
    required_methods,
)

from layers.custom_code import CustomCodeError, describe_code, needed_code, stage_code
from layers.golden import (
    GOLDEN_NAME,
    GoldenError,
    compare,
    golden_document,
    read_sample,
    synthetic_sample,
    write_golden,
)
from layers.input_contract import (
    ContractError,
    base_row,
    features_spec,
    normalized_spec,
    probe_missing,
    tabular_contract,
)
from layers.pickle_libraries import pickle_modules, required_libraries
from layers.zipping import write_zip

ROOT = Path(__file__).resolve().parents[1]
LAYER_PREFIX = "model/"
DEFAULT_SRC = ROOT / "build" / "model"
DEFAULT_OUT = ROOT / "build" / "layers" / "model-layer.zip"
#: The folders under ``/opt`` a model layer may use: the live model's, and a candidate's in shadow.
LAYER_DIRS = ("model", "candidate")


class PackagingError(ValueError):
    """The model folder cannot be packaged; the message says what to change."""


def _load_verified(name: str, data: bytes) -> Any:
    """Unpickle one artifact from ``data`` (the very bytes that were hashed)."""
    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            return joblib.load(io.BytesIO(data))
        except InconsistentVersionWarning as exc:
            raise PackagingError(
                f"{name} was pickled by scikit-learn {exc.original_sklearn_version}; the "
                f"pinned runtime has {exc.current_sklearn_version}. Retrain it with the pinned "
                "requirements (requirements.txt) before packaging"
            ) from None
        except Exception as exc:  # not a joblib file, or pickled against modules not installed here
            raise PackagingError(
                f"{name} cannot be loaded with joblib ({type(exc).__name__}: {str(exc)[:200]}); "
                "save each pipeline step with joblib.dump in the pinned environment"
            ) from None


def _kind(obj: Any) -> str:
    """The class name of ``obj``, or of a Pipeline's last step (the estimator the messages are about)."""
    while isinstance(getattr(obj, "steps", None), list) and obj.steps:
        obj = obj.steps[-1][1]
    return type(obj).__name__


def _check_fitted(file: str, obj: Any) -> None:
    """Refuse an unfitted estimator (scikit-learn's ``check_is_fitted``)."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(obj)
    except NotFittedError:
        raise PackagingError(
            f"{file} holds a {_kind(obj)} that is not fitted yet: call fit on it with your training data, "
            "then joblib.dump it again"
        ) from None
    except TypeError:  # not an estimator at all: check_estimator says what it is
        pass


def check_estimator(file: str, estimator: Any, class_probabilities: bool = False) -> str:
    """The task of the last pipeline artifact, once it is known to be servable.

    Parameters
    ----------
    file : str
        The artifact's file name, for the messages.
    estimator : object
        What it unpickled to.
    class_probabilities : bool
        Whether results are to carry every class's probability.

    Returns
    -------
    str
        ``classifier``, ``regressor``, ``outlier_detector`` or ``clusterer``.

    Raises
    ------
    PackagingError
        An estimator without ``predict``, of no supported task, not fitted, a
        multi-output classifier, or ``class_probabilities`` where it cannot apply; each
        message says what to change.
    """
    task = estimator_task(estimator)
    kind = _kind(estimator)
    if not hasattr(estimator, "predict"):
        hint = "put transformers before the estimator in --pipeline, or end the Pipeline with an estimator"
        if kind == "LocalOutlierFactor":
            hint = "fit LocalOutlierFactor(novelty=True), which predicts new data, and dump it again"
        elif task in ("clusterer", "outlier_detector"):
            hint = (
                f"a {kind} only labels the data it was fitted on (fit_predict); use one that predicts new data "
                "(e.g. KMeans), or train a classifier on its labels"
            )
        raise PackagingError(f"the last --pipeline file, {file}, is a {kind}, which has no predict(): {hint}")
    if task is None:
        raise PackagingError(
            f"the last --pipeline file, {file}, is a {kind}, which scikit-learn's is_classifier, is_regressor, "
            "is_outlier_detector and is_clusterer all reject: serve a classifier, regressor, outlier detector or "
            "clusterer (a custom estimator inherits ClassifierMixin, RegressorMixin, OutlierMixin or ClusterMixin, "
            "then BaseEstimator)"
        )
    _check_fitted(file, estimator)
    if class_probabilities and task != "classifier":
        raise PackagingError(f"--class-probabilities is for classifiers; {file} is a {task}: drop the option")
    missing = [m for m in required_methods(task, class_probabilities) if not hasattr(estimator, m)]
    if missing == ["predict_proba"]:
        raise PackagingError(
            f"{file} is a {kind} without predict_proba(), so --class-probabilities cannot be served: drop "
            "the option, or wrap the classifier in sklearn.calibration.CalibratedClassifierCV"
        )
    if missing:
        raise PackagingError(
            f"{file} is a {kind} without {', '.join(missing)}(), which a {task.replace('_', ' ')}'s results need"
        )
    if task == "classifier":
        classes = getattr(estimator, "classes_", None)
        if getattr(classes, "ndim", 0) != 1:
            raise PackagingError(
                f"{file} is a {kind} whose classes_ is not one array of labels (a multi-output or multi-label "
                "classifier): serve one classifier per output"
            )
    return task


def artifact_libraries(objects: list[Any], raw: list[bytes]) -> dict[str, str]:
    """The manifest's ``libraries``: Python and the tracked libraries, and every installed
    distribution the artifacts' pickles name (:mod:`layers.pickle_libraries`), with the
    versions installed here (what the function's init then requires)."""
    modules = set().union(*(pickle_modules(obj, data) for obj, data in zip(objects, raw)))
    return installed_versions(required_libraries(modules))


def build_manifest(
    src: Path,
    *,
    name: str,
    version: str,
    pipeline: list[str],
    text_field: str | None = None,
    features: list[str] | None = None,
    metrics: dict[str, Any] | None = None,
    class_probabilities: bool = False,
    sample: list[Any] | None = None,
    code: list[str] | None = None,
) -> Manifest:
    """Describe the artifacts in ``src`` as a manifest (not yet written), and write the golden predictions.

    Parameters
    ----------
    src : Path
        Folder holding the artifacts.
    name, version : str
        Model name and version, as they will appear in results and releases.
    pipeline : list of str
        Artifact file names in order: preprocessors, then the estimator last (a
        classifier, regressor, outlier detector or clusterer, or a Pipeline ending in one).
    text_field : str, optional
        For a text model: the JSON field holding the text.
    features : list of str, optional
        For a tabular model: the feature names, in the column order the model expects, each
        ``name`` or ``name:type`` (:mod:`layers.input_contract`); may be left out for a model
        fitted on a pandas DataFrame, whose columns it then is. Which features may be missing
        is found out by trying the model (``accepts_missing``).
    metrics : dict, optional
        Evaluation figures to record (e.g. held-out accuracy).
    class_probabilities : bool
        A classifier with ``predict_proba``: each result also carries every class's
        probability (recorded in the manifest).
    sample : list, optional
        Record payloads for the golden predictions (:mod:`layers.golden`); synthetic ones
        when not given. ``src/golden.json`` is written with them and their results.
    code : list of str, optional
        Top-level modules of ``src`` to ship as custom code besides those the artifacts
        need, which are found by scanning them (:mod:`layers.custom_code`).

    Raises
    ------
    PackagingError
        Naming the missing option or file, the version conflict, what makes the
        estimator unservable (:func:`check_estimator`), or a sample record that does not fit.
    """
    if text_field is not None and features is not None:
        raise PackagingError("give exactly one input contract: --text-field NAME (text) or --features a,b,c (tabular)")
    if not pipeline:
        raise PackagingError("--pipeline is required: the artifact files in order, the estimator last")
    steps = []
    objects = []
    contents = {}
    for file in pipeline:
        path = Path(src) / file
        if not path.is_file():
            raise PackagingError(f"--pipeline names {file}, which is not in {src}")
        contents[file] = path.read_bytes()
    try:  # scanned before anything is unpickled: __main__ and missing modules are refused here
        custom = describe_code(src, needed_code(src, contents, code))
        stage_code(src, {"code": custom} if custom else {})
    except CustomCodeError as exc:
        raise PackagingError(str(exc)) from None
    for file, data in contents.items():
        objects.append(_load_verified(file, data))
        steps.append({"name": Path(file).stem, "file": file, "role": "preprocessor", "sha256": sha256_bytes(data)})
    estimator = objects[-1]
    for file, obj in zip(pipeline[:-1], objects[:-1]):
        if not hasattr(obj, "transform"):
            raise PackagingError(
                f"preprocessor {file} ({_kind(obj)}) has no transform(); only the last file may be the estimator"
            )
        _check_fitted(file, obj)
    task = check_estimator(pipeline[-1], estimator, class_probabilities)
    steps[-1]["role"] = "classifier" if task == "classifier" else "estimator"
    contract: Any  # a TextInput or TabularInput, completed below
    try:  # a tabular contract: typed features, a DataFrame model's columns (layers.input_contract)
        contract = (
            {"kind": "text", "field": text_field}
            if text_field is not None
            else tabular_contract(features, objects[0], sample)
        )
    except ContractError as exc:
        if features is None:
            raise PackagingError(
                f"give exactly one input contract: --text-field NAME (text) or --features a,b:string,c (tabular); {exc}"
            ) from None
        raise PackagingError(str(exc)) from None
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pipeline": steps,
        "input": contract,
        "task": task,
    }
    if task == "classifier":
        manifest["classes"] = [c.item() if hasattr(c, "item") else c for c in estimator.classes_]
        manifest["class_probabilities"] = class_probabilities
    manifest.update({"libraries": artifact_libraries(objects, list(contents.values())), "metrics": metrics or {}})
    if custom:
        manifest["code"] = custom
    if GOLDEN_NAME in pipeline:
        raise PackagingError(f"--pipeline names {GOLDEN_NAME}, the name packaging gives the golden predictions")
    try:
        described = validate_manifest(manifest)
        records = sample if sample is not None else synthetic_sample(described)
        if contract["kind"] == "tabular":
            contract["accepts_missing"] = probe_missing(
                described, tuple(objects[:-1]), estimator, base_row(described, records)
            )
            described = validate_manifest(manifest)
        golden = write_golden(src, golden_document(described, tuple(objects[:-1]), estimator, records))
    except (ManifestError, GoldenError) as exc:
        raise PackagingError(str(exc)) from None
    manifest["golden"] = {"file": GOLDEN_NAME, "sha256": sha256_bytes(golden.read_bytes()), "records": len(records)}
    return validate_manifest(manifest)


def verify_folder(src: Path) -> Manifest:
    """Check an existing manifest against the artifacts beside it.

    Raises
    ------
    PackagingError
        On library versions other than this (the pinned runtime's) environment's, as the
        function checks them at init (checked first, before anything is unpickled); a
        missing file; a sha256 mismatch; or an estimator that does not fit the manifest (its
        task, the methods the task needs, a classifier's classes).
    """
    try:
        manifest = read_manifest(src)
        check_versions(manifest, installed_versions(manifest["libraries"]))  # before anything is unpickled
    except (ManifestError, ModelLoadError) as exc:
        raise PackagingError(str(exc)) from None
    if "artifacts_uri" in manifest:
        raise PackagingError(
            f"{src / MANIFEST_NAME} has artifacts_uri, but a model folder holds its artifacts: remove the key "
            "(`make publish-model-layer` moves the artifacts to S3 by itself when they do not fit in a layer)"
        )
    contents = {}
    for file, sha256 in listed_files(manifest):
        path = Path(src) / file
        if not path.is_file():
            raise PackagingError(f"manifest lists {file}, which is not in {src}")
        contents[file] = path.read_bytes()
        actual = sha256_bytes(contents[file])
        if actual != sha256:
            raise PackagingError(
                f"{file} does not match its manifest (sha256 {actual}, manifest says "
                f"{sha256}): refusing to package an artifact nobody verified"
            )
    try:  # the same scan as for a new manifest: only the manifest's code may ship
        shipped = manifest.get("code", {}).get("modules", [])
        artifacts = {step["file"]: contents[step["file"]] for step in manifest["pipeline"]}
        unlisted = [m for m in needed_code(src, artifacts) if m not in shipped]
        if unlisted:
            raise CustomCodeError(
                f"the artifacts need module(s) {', '.join(unlisted)} of {src}, which {MANIFEST_NAME} does not list "
                f"under code: delete {MANIFEST_NAME} and package the folder again from the options"
            )
        stage_code(src, manifest)
    except CustomCodeError as exc:
        raise PackagingError(str(exc)) from None
    objects = [_load_verified(step["file"], contents[step["file"]]) for step in manifest["pipeline"]]
    try:
        # The function refuses a layer whose estimator does not fit its manifest at start-up.
        check_estimator_fits(manifest, objects[-1])
    except ModelLoadError as exc:
        raise PackagingError(str(exc)) from None
    if "golden" in manifest:
        _check_golden(manifest, objects, contents[manifest["golden"]["file"]])
    return manifest


def _check_golden(manifest: Manifest, objects: list[Any], data: bytes) -> None:
    """The golden results, recomputed here, agree with the file (:func:`layers.golden.compare`)."""
    name = manifest["golden"]["file"]
    try:
        stored = json.loads(data)
        again = golden_document(manifest, tuple(objects[:-1]), objects[-1], stored["records"])
    except (ValueError, KeyError, TypeError, GoldenError) as exc:
        raise PackagingError(f"{name} cannot be used ({type(exc).__name__}: {str(exc)[:200]})") from None
    problems = compare(stored["results"], again["results"])
    if problems:
        raise PackagingError(
            f"the pipeline does not reproduce its golden predictions here: {'; '.join(problems[:3])}. Rebuild the "
            f"manifest in the pinned environment (delete {MANIFEST_NAME} and {name}, then `make model-layer` with "
            "the options)"
        )


def write_manifest(src: Path, manifest: Manifest) -> Path:
    path = Path(src) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def package_model_layer(src: Path, out: Path, layer_dir: str = "model") -> tuple[Path, Manifest]:
    """Zip a verified model folder (``manifest.json`` + its artifacts) under ``layer_dir/``
    (one of :data:`LAYER_DIRS`)."""
    if layer_dir not in LAYER_DIRS:
        raise PackagingError(f"layer dir {layer_dir!r} is not one of {', '.join(LAYER_DIRS)}")
    manifest = verify_folder(src)
    files = [MANIFEST_NAME] + [file for file, _ in listed_files(manifest)]
    return write_zip(out, [(f"{layer_dir}/{f}", Path(src) / f) for f in files]), manifest


def _option_conflicts(args: argparse.Namespace) -> list[str]:
    """Options given for a folder that has a manifest, whose values the manifest contradicts.

    Without this check they would be ignored silently (e.g. ``VERSION=2`` packaging 1.0.0).
    """
    try:
        manifest = read_manifest(args.src)
    except ManifestError:
        return []  # verify_folder reports what is wrong with it
    contract = manifest["input"]
    text_field = contract["field"] if contract["kind"] == "text" else None
    features = features_spec(contract) if contract["kind"] == "tabular" else ""
    given = {
        "--name": (args.name, manifest["name"]),
        "--version": (args.version, manifest["version"]),
        "--pipeline": (args.pipeline, ",".join(step["file"] for step in manifest["pipeline"])),
        "--text-field": (args.text_field, text_field),
        "--features": (args.features and normalized_spec(args.features), features or None),
        "--class-probabilities": (args.class_probabilities or None, manifest.get("class_probabilities", False)),
        "--code": (args.code, ",".join(manifest.get("code", {}).get("modules", [])) or None),
    }
    conflicts = [
        f"{option} {wanted} but the manifest has {have}"
        for option, (wanted, have) in given.items()
        if wanted is not None and wanted != have
    ]
    if args.sample is not None:
        conflicts.append(f"--sample {args.sample} but the manifest's golden predictions are built already")
    return conflicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Package a model folder into the model layer zip.")
    parser.add_argument(
        "--src", type=Path, default=DEFAULT_SRC, help="folder of joblib artifacts (default: build/model)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="layer zip to write")
    parser.add_argument(
        "--layer-dir",
        choices=LAYER_DIRS,
        default="model",
        help="folder under /opt: model (default), or candidate for a shadow rollout's candidate layer",
    )
    parser.add_argument("--name", help="model name (folders without manifest.json)")
    parser.add_argument("--version", help="model version (folders without manifest.json)")
    parser.add_argument("--pipeline", help="artifact files in order, comma-separated, the estimator last")
    parser.add_argument("--text-field", help="text model: JSON field that holds the text")
    parser.add_argument(
        "--features",
        help="tabular model: feature names in column order, comma-separated, each name[:number|string|bool] "
        "(default number); optional for a model fitted on a pandas DataFrame",
    )
    parser.add_argument(
        "--class-probabilities",
        action="store_true",
        help="classifier with predict_proba: each result also carries every class's probability",
    )
    parser.add_argument(
        "--code",
        help="your own modules in --src to ship besides those the artifacts need (found by themselves), comma-separated",
    )
    parser.add_argument(
        "--sample",
        type=Path,
        help="records (a JSON list or JSON Lines) for the golden predictions; default: synthetic ones",
    )
    args = parser.parse_args(argv)
    try:
        if not args.src.is_dir():
            raise PackagingError(f"MODEL_SRC {args.src} is not a folder (train the reference model with `make train`)")
        if not (args.src / MANIFEST_NAME).exists():
            missing = [
                opt
                for opt, val in (("--name", args.name), ("--version", args.version), ("--pipeline", args.pipeline))
                if not val
            ]
            if missing:
                raise PackagingError(
                    f"{args.src} has no {MANIFEST_NAME}, so one is built from options; missing: {', '.join(missing)} "
                    "(and --text-field or --features)"
                )
            manifest = build_manifest(
                args.src,
                name=args.name,
                version=args.version,
                pipeline=args.pipeline.split(","),
                text_field=args.text_field,
                features=args.features.split(",") if args.features else None,
                class_probabilities=args.class_probabilities,
                sample=read_sample(args.sample) if args.sample else None,
                code=args.code.split(",") if args.code else None,
            )
            print(f"wrote {write_manifest(args.src, manifest)}")
        else:
            conflicts = _option_conflicts(args)
            if conflicts:
                raise PackagingError(
                    f"{args.src} already has {MANIFEST_NAME}, and the options contradict it: "
                    f"{'; '.join(conflicts)}. Delete {args.src / MANIFEST_NAME} to rebuild it from "
                    "the options, or drop the options to package the folder as its manifest says"
                )
        out, manifest = package_model_layer(args.src, args.out, args.layer_dir)
    except (PackagingError, GoldenError) as exc:
        print(f"model-layer: {exc}", file=sys.stderr)
        return 2
    print(
        f"model layer: {out} ({out.stat().st_size:,} bytes) - {manifest['name']} {manifest['version']} "
        f"({manifest_task(manifest).replace('_', ' ')}), "
        f"{len(manifest['pipeline'])} artifacts under /opt/{args.layer_dir}/"
        + (f", custom code: {', '.join(manifest['code']['modules'])}" if "code" in manifest else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
