"""Every task a scikit-learn estimator can have, packaged, loaded and served like the reference model.

Each model is trained here on data scikit-learn ships (no download), dumped with joblib,
packaged through ``layers.model_layer``'s command line (what ``make model-layer`` runs),
loaded with the function's ``load_model`` and run through the real handler on a Kinesis
batch of rows; every result must be what the model's own ``predict`` (``predict_proba``,
``decision_function``) gives on the same rows. One model per task also runs from the
zips through the local Lambda runtime (``make invoke``'s path).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
import yaml
from inference.app import App
from inference.batch import process_batch
from inference.manifest import MANIFEST_NAME, RESULT_FIELDS, read_manifest
from inference.model import ModelLoadError, load_model
from inference.sinks import DynamoDBSink, KinesisSink, S3Sink
from openapi_schema_validator import OAS31Validator
from sklearn import datasets
from sklearn.cluster import DBSCAN, KMeans
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.mixture import GaussianMixture
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neighbors import KNeighborsRegressor, LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC, OneClassSVM

from layers.deps_layer import DEFAULT_OUT as DEPS_LAYER
from layers.function_zip import build_function_zip
from layers.model_layer import main as model_layer
from localtwin.invoke import invoke
from testing.doubles import FakeQuarantine, FakeSink
from testing.events import function_url_event, kinesis_record

ROOT = Path(__file__).resolve().parents[1]
#: Relative tolerance for floats that went through JSON in another process (repr round-trips
#: exactly; the margin only covers a BLAS that sums in another order there).
SERIALISED_RTOL = 1e-9
ROWS = 40  # records per batch


def feature_names(names: Any) -> list[str]:
    """Dataset feature names as JSON field names (``sepal length (cm)`` -> ``sepal_length_cm``)."""
    return [re.sub(r"\W+", "_", str(name)).strip("_") for name in names]


@dataclass
class Model:
    """A trained model as a data scientist would hand it over, and how to ask it directly."""

    task: str
    files: dict[str, Any]  # artifact file -> fitted object, in pipeline order
    features: list[str]
    rows: np.ndarray  # the batch to score
    options: tuple[str, ...] = ()

    def expected(self) -> list[dict[str, Any]]:
        """What the model's own methods give for :attr:`rows`, as result fields."""
        *steps, estimator = self.files.values()
        x = self.rows
        for step in steps:
            x = step.transform(x)
        labels = estimator.predict(x).tolist()
        if self.task == "regressor":
            return [{"value": v} for v in labels]
        if self.task == "clusterer":
            return [{"cluster": c} for c in labels]
        if self.task == "outlier_detector":
            return [{"label": lab, "score": s} for lab, s in zip(labels, estimator.decision_function(x).tolist())]
        if not hasattr(estimator, "predict_proba"):
            return [{"label": lab, "probability": None} for lab in labels]
        proba = estimator.predict_proba(x)
        results = [{"label": lab, "probability": max(p)} for lab, p in zip(labels, proba.tolist())]
        if "--class-probabilities" in self.options:
            for result, p in zip(results, proba.tolist()):
                result["probabilities"] = {str(c): q for c, q in zip(estimator.classes_, p)}
        return results


def ridge_pipeline() -> Model:
    data = datasets.load_diabetes()
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(data.data, data.target)
    return Model("regressor", {"model.joblib": model}, feature_names(data.feature_names), data.data[:ROWS])


def multi_output_regressor() -> Model:
    data = datasets.load_linnerud()  # three targets: weight, waist, pulse
    model = KNeighborsRegressor(n_neighbors=3).fit(data.data, data.target)
    rows = data.data + 0.5  # not the training rows themselves
    return Model("regressor", {"knn.joblib": model}, feature_names(data.feature_names), rows)


def isolation_forest() -> Model:
    data = datasets.load_wine()
    model = IsolationForest(random_state=0).fit(data.data)
    rows = np.vstack([data.data[: ROWS - 5], data.data[:5] * 4])  # the last five are far out
    return Model("outlier_detector", {"forest.joblib": model}, feature_names(data.feature_names), rows)


def local_outlier_factor() -> Model:
    """Two artifact files: the scaler, then the detector."""
    data = datasets.load_iris()
    scaler = StandardScaler().fit(data.data)
    detector = LocalOutlierFactor(novelty=True).fit(scaler.transform(data.data))
    rows = np.vstack([data.data[: ROWS - 4], data.data[:4] + 5])
    files = {"scaler.joblib": scaler, "lof.joblib": detector}
    return Model("outlier_detector", files, feature_names(data.feature_names), rows)


def one_class_svm() -> Model:
    data = datasets.load_iris()
    model = make_pipeline(StandardScaler(), OneClassSVM(nu=0.1)).fit(data.data)
    rows = np.vstack([data.data[: ROWS - 4], data.data[:4] * 3])
    return Model("outlier_detector", {"svm.joblib": model}, feature_names(data.feature_names), rows)


def kmeans() -> Model:
    data = datasets.load_iris()
    model = KMeans(n_clusters=3, n_init=10, random_state=0).fit(data.data)
    return Model("clusterer", {"kmeans.joblib": model}, feature_names(data.feature_names), data.data[::4][:ROWS])


def linear_svc() -> Model:
    """A classifier without predict_proba, with string labels."""
    data = datasets.load_wine()
    labels = data.target_names[data.target]
    model = make_pipeline(StandardScaler(), LinearSVC()).fit(data.data, labels)
    return Model("classifier", {"svc.joblib": model}, feature_names(data.feature_names), data.data[::4][:ROWS])


def all_class_probabilities() -> Model:
    data = datasets.load_iris()
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(data.data, data.target)
    rows = data.data[::3][:ROWS] + 0.05
    files = {"forest.joblib": model}
    return Model("classifier", files, feature_names(data.feature_names), rows, ("--class-probabilities",))


MODELS: dict[str, Callable[[], Model]] = {
    "ridge-pipeline": ridge_pipeline,
    "multi-output-regressor": multi_output_regressor,
    "isolation-forest": isolation_forest,
    "local-outlier-factor": local_outlier_factor,
    "one-class-svm": one_class_svm,
    "kmeans": kmeans,
    "linear-svc": linear_svc,
    "class-probabilities": all_class_probabilities,
}
#: One model per task (and the all-class option) also runs from the zips.
FROM_THE_ZIPS = ("ridge-pipeline", "isolation-forest", "kmeans", "linear-svc", "class-probabilities")


def dump(model: Model, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file, obj in model.files.items():
        joblib.dump(obj, folder / file)
    return folder


def package(model: Model, folder: Path, name: str) -> Path:
    """``make model-layer MODEL_SRC=folder NAME=name VERSION=1.0.0 PIPELINE=... FEATURES=...``."""
    out = folder.parent / f"{folder.name}-layer.zip"
    args = ["--src", str(folder), "--out", str(out), "--name", name, "--version", "1.0.0"]
    args += ["--pipeline", ",".join(model.files), "--features", ",".join(model.features), *model.options]
    assert model_layer(args) == 0
    return out


def kinesis_batch(model: Model) -> dict[str, Any]:
    rows = [dict(zip(model.features, row)) for row in model.rows.tolist()]
    return {"Records": [kinesis_record(json.dumps(row), 1000 + i) for i, row in enumerate(rows)]}


def assert_results(got: list[dict[str, Any]], want: list[dict[str, Any]], rtol: float = 0.0) -> None:
    """Same fields, labels and clusters equal, floats equal (or within ``rtol``)."""
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert set(g) == set(w), f"result {i}: fields {sorted(g)} != {sorted(w)}"
        for key, expected in w.items():
            actual = g[key]
            if isinstance(expected, float) or (
                isinstance(expected, list) and expected and isinstance(expected[0], float)
            ):
                assert np.allclose(actual, expected, rtol=rtol, atol=0), f"result {i} {key}: {actual} != {expected}"
            elif isinstance(expected, dict):
                assert list(actual) == list(expected)
                assert np.allclose(list(actual.values()), list(expected.values()), rtol=rtol, atol=0)
            else:
                assert actual == expected and type(actual) is type(expected), f"result {i} {key}: {actual!r}"


@pytest.fixture(scope="module", params=list(MODELS))
def packaged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Model, Path]:
    """(id, the trained model, its packaged folder with manifest.json): one per model."""
    model = MODELS[request.param]()
    folder = dump(model, tmp_path_factory.mktemp(request.param) / "model")
    package(model, folder, request.param)
    return request.param, model, folder


def test_the_task_is_read_from_the_estimator_and_recorded(packaged: tuple[str, Model, Path]) -> None:
    name, model, folder = packaged
    manifest = json.loads((folder / MANIFEST_NAME).read_text())

    assert manifest["task"] == model.task
    assert [step["role"] for step in manifest["pipeline"]][-1] == (
        "classifier" if model.task == "classifier" else "estimator"
    )
    if model.task == "classifier":
        *_, estimator = model.files.values()
        assert manifest["classes"] == estimator.classes_.tolist()
        assert manifest["class_probabilities"] is ("--class-probabilities" in model.options)
    else:
        assert "classes" not in manifest and "class_probabilities" not in manifest


def test_the_handler_gives_what_the_model_predicts(packaged: tuple[str, Model, Path]) -> None:
    name, model, folder = packaged
    app = App.from_env({"MODEL_DIR": str(folder)})
    event = kinesis_batch(model)

    response = app.handle(event)

    assert response["batchItemFailures"] == []
    predictions = response["predictions"]
    got = [predictions[record["eventID"]] for record in event["Records"]]
    assert_results(got, model.expected())
    assert {field for result in got for field in result} <= set(RESULT_FIELDS[model.task])


def test_one_vectorised_call_per_method_and_batch(packaged: tuple[str, Model, Path]) -> None:
    name, model, folder = packaged
    loaded = load_model(folder)
    calls: list[str] = []

    class Counting:
        def __init__(self, estimator: Any) -> None:
            self.estimator = estimator

        def __getattr__(self, method: str) -> Any:
            attribute = getattr(self.estimator, method)
            if method in ("predict", "predict_proba", "decision_function"):

                def counted(x: Any) -> Any:
                    calls.append(method)
                    return attribute(x)

                return counted
            return attribute

    counting = type(loaded)(loaded.manifest, loaded.preprocessors, Counting(loaded.estimator))
    process_batch(kinesis_batch(model), counting, FakeSink(), FakeQuarantine())

    assert sorted(calls) == sorted(set(calls))  # each method once for the whole batch
    assert len(calls) == (2 if model.task == "outlier_detector" else 1)


@pytest.mark.aws
def test_every_sink_writes_the_same_numbers(packaged: tuple[str, Model, Path], mocked_aws: None) -> None:
    """DynamoDB gets Decimals (lists and maps too), Kinesis and S3 the JSON of the response."""
    name, model, folder = packaged
    loaded = load_model(folder)
    event = kinesis_batch(model)
    want = model.expected()
    boto3.client("dynamodb").create_table(
        TableName="results",
        KeySchema=[{"AttributeName": "record_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "record_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("kinesis").create_stream(StreamName="results", ShardCount=1)
    boto3.client("s3").create_bucket(Bucket="results")

    for sink in (DynamoDBSink("results"), KinesisSink("results"), S3Sink("results")):
        response, report = process_batch(event, loaded, sink, FakeQuarantine())
        assert response == {"batchItemFailures": []} and len(report.predicted) == len(want)

    table = boto3.resource("dynamodb").Table("results")
    stored = {item["record_id"]: item for item in table.scan()["Items"]}

    def plain(value: Any) -> Any:  # Decimal("1") was an int, Decimal("2.0") a float
        if isinstance(value, Decimal):
            return int(value) if value.as_tuple().exponent >= 0 else float(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    fields = [f for f in want[0] if want[0][f] is not None]
    got = [{f: plain(stored[r["eventID"]][f]) for f in fields} for r in event["Records"]]
    assert_results(got, [{f: w[f] for f in fields} for w in want])

    shard = boto3.client("kinesis").list_shards(StreamName="results")["Shards"][0]["ShardId"]
    iterator = boto3.client("kinesis").get_shard_iterator(
        StreamName="results", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    docs = [json.loads(r["Data"]) for r in boto3.client("kinesis").get_records(ShardIterator=iterator)["Records"]]
    (key,) = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="results")["Contents"]]
    body = boto3.client("s3").get_object(Bucket="results", Key=key)["Body"].read().decode()
    lines = [json.loads(line) for line in body.splitlines()]
    for written in (docs, lines):
        assert [d["record_id"] for d in written] == [r["eventID"] for r in event["Records"]]
        assert_results([{f: d[f] for f in want[0]} for d in written], want)


def test_http_answers_carry_the_same_fields_and_conform_to_openapi(packaged: tuple[str, Model, Path]) -> None:
    from inference.http import handle_http

    name, model, folder = packaged
    loaded = load_model(folder)
    instances = [dict(zip(model.features, row)) for row in model.rows.tolist()]
    spec = yaml.safe_load((ROOT / "api" / "openapi.yaml").read_text())

    def answer(method: str, path: str, body: str | None = None) -> Any:
        reply = handle_http(function_url_event(body, method=method, path=path), loaded)
        assert reply["statusCode"] == 200, reply["body"]
        return json.loads(reply["body"])

    predicted = answer("POST", f"models/{name}/predict", json.dumps(instances))
    listed = answer("GET", "models")
    described = answer("GET", f"models/{name}/metadata")

    assert_results(predicted["predictions"], model.expected())
    assert listed["models"][0]["task"] == described["task"] == model.task
    assert ("classes" in described) is (model.task == "classifier")
    for doc, schema in ((predicted, "PredictResponse"), (listed, "ModelList"), (described, "ModelMetadata")):
        validator = OAS31Validator({"$ref": f"#/components/schemas/{schema}", "components": spec["components"]})
        assert not list(validator.iter_errors(doc)), schema


@pytest.fixture(scope="module")
def function_zip(tmp_path_factory: pytest.TempPathFactory, deps_layer: Path) -> Path:
    return build_function_zip(tmp_path_factory.mktemp("function") / "function.zip")


@pytest.mark.twin
@pytest.mark.parametrize("name", FROM_THE_ZIPS)
def test_from_the_zips_as_lambda_runs_them(name: str, function_zip: Path, tmp_path: Path) -> None:
    model = MODELS[name]()
    layer = package(model, dump(model, tmp_path / "model"), name)
    event = kinesis_batch(model)

    proc = invoke(event, function_zip, [DEPS_LAYER, layer], workdir=tmp_path / "invoke")

    assert proc.returncode == 0, proc.stderr
    response = json.loads(proc.stdout)
    assert response["batchItemFailures"] == []
    got = [response["predictions"][record["eventID"]] for record in event["Records"]]
    assert_results(got, model.expected(), rtol=SERIALISED_RTOL)


# --- refusals, named with the fix ---------------------------------------------------------------


IRIS = datasets.load_iris()


@pytest.mark.parametrize(
    ("files", "options", "fix"),
    [
        ({"ridge.joblib": Ridge()}, (), "not fitted yet: call fit"),
        ({"pipe.joblib": make_pipeline(StandardScaler(), Ridge())}, (), "not fitted yet: call fit"),
        ({"scaler.joblib": StandardScaler(), "ridge.joblib": Ridge().fit(IRIS.data, IRIS.target)}, (), "not fitted"),
        ({"scaler.joblib": StandardScaler().fit(IRIS.data)}, (), "has no predict(): put transformers before"),
        ({"lof.joblib": LocalOutlierFactor().fit(IRIS.data)}, (), "LocalOutlierFactor(novelty=True)"),
        (
            {"lof.joblib": make_pipeline(StandardScaler(), LocalOutlierFactor()).fit(IRIS.data)},
            (),
            "LocalOutlierFactor(novelty=True)",
        ),
        ({"dbscan.joblib": DBSCAN().fit(IRIS.data)}, (), "only labels the data it was fitted on (fit_predict)"),
        ({"gmm.joblib": GaussianMixture(2, random_state=0).fit(IRIS.data)}, (), "all reject"),
        (
            {"svc.joblib": LinearSVC().fit(IRIS.data, IRIS.target)},
            ("--class-probabilities",),
            "CalibratedClassifierCV",
        ),
        ({"ridge.joblib": Ridge().fit(IRIS.data, IRIS.target)}, ("--class-probabilities",), "drop the option"),
        (
            {
                "multi.joblib": MultiOutputClassifier(LogisticRegression(max_iter=1000)).fit(
                    IRIS.data, np.c_[IRIS.target, IRIS.target]
                )
            },
            (),
            "serve one classifier per output",
        ),
    ],
    ids=[
        "unfitted",
        "unfitted-pipeline",
        "unfitted-preprocessor",
        "transformer-last",
        "lof-without-novelty",
        "lof-without-novelty-in-a-pipeline",
        "dbscan",
        "density-estimator",
        "no-predict-proba-for-all-classes",
        "all-classes-for-a-regressor",
        "multi-output-classifier",
    ],
)
def test_unservable_estimators_are_refused_naming_the_fix(
    files: dict[str, Any], options: tuple[str, ...], fix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for file, obj in files.items():
        joblib.dump(obj, folder / file)
    args = ["--src", str(folder), "--out", str(tmp_path / "layer.zip"), "--name", "m", "--version", "1"]

    code = model_layer([*args, "--pipeline", ",".join(files), "--features", "a,b,c,d", *options])

    message = capsys.readouterr().err
    assert code == 2
    assert message.startswith("model-layer: ") and fix in message
    assert any(file in message for file in files)  # names the artifact at fault
    assert not (tmp_path / "layer.zip").exists() and not (folder / MANIFEST_NAME).exists()


# --- manifests ----------------------------------------------------------------------------------


def test_a_manifest_without_task_is_a_classifier(tmp_path: Path) -> None:
    model = linear_svc()
    folder = dump(model, tmp_path / "model")
    package(model, folder, "old")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    del manifest["task"], manifest["class_probabilities"]  # as written before tasks existed
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))

    loaded = load_model(folder)

    assert loaded.task == "classifier" and "task" not in read_manifest(folder)
    assert_results(loaded.predict(model.rows.tolist()).results(), model.expected())


def test_a_manifest_whose_task_is_not_the_estimators_is_refused_at_init(tmp_path: Path) -> None:
    model = kmeans()
    folder = dump(model, tmp_path / "model")
    package(model, folder, "k")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["task"] = "regressor"
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))

    with pytest.raises(ModelLoadError, match="task 'regressor', but the last artifact is a clusterer"):
        load_model(folder)


def test_non_finite_outputs_are_quarantined_not_written(tmp_path: Path) -> None:
    """A regressor whose inverse transform overflows to inf for some rows: those rows only are poison."""
    data = datasets.load_diabetes()
    regressor = TransformedTargetRegressor(Ridge(), func=np.log, inverse_func=np.exp).fit(data.data, data.target)
    model = Model("regressor", {"model.joblib": regressor}, feature_names(data.feature_names), data.data[:8].copy())
    model.rows[[2, 5], 2] = 1e6  # bmi a million standard deviations out: exp overflows
    folder = dump(model, tmp_path / "model")
    package(model, folder, "overflow")
    sink, quarantine = FakeSink(), FakeQuarantine()

    with np.errstate(over="ignore"):
        response, report = process_batch(kinesis_batch(model), load_model(folder), sink, quarantine)

    assert response == {"batchItemFailures": []}
    assert report.quarantined == [2, 5] and len(report.predicted) == 6
    assert all(math.isfinite(item.outputs["value"]) for item in sink.store.values())


@pytest.mark.aws
def test_dynamodb_gets_numbers_it_can_store(mocked_aws: None) -> None:
    """Floats below DynamoDB's smallest number (1e-130), which boto3 refuses to serialise, are written as 0."""
    from inference.sinks import ResultItem

    boto3.client("dynamodb").create_table(
        TableName="results",
        KeySchema=[{"AttributeName": "record_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "record_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    outputs = {"label": 2, "probability": 1.0, "probabilities": {"0": 3e-300, "1": 1e-120, "2": 1.0}}
    item = ResultItem(0, "rec-0", "1", "arn:aws:kinesis:us-east-1:123456789012:stream/s", outputs, "m", "1")

    assert DynamoDBSink("results").write([item]) == set()

    (stored,) = boto3.resource("dynamodb").Table("results").scan()["Items"]
    assert stored["probabilities"] == {"0": Decimal(0), "1": Decimal("1e-120"), "2": Decimal("1.0")}
    assert stored["label"] == 2 and stored["probability"] == Decimal("1.0")
