"""Gallery: tabular models with missing values, string and bool features, and DataFrame pipelines.

Each model is trained here (breast cancer from scikit-learn, or a small synthetic table),
dumped with joblib, packaged through ``layers.model_layer``'s command line (what ``make
model-layer`` runs) and served in process by the function's own handler (not from the zips:
the deps layer has no pandas yet). Every prediction must be what the model's own
``predict_proba`` gives on the same rows, built as a data scientist would build them (a
float array with NaN, an object array, a DataFrame).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from inference.app import App
from inference.batch import process_batch
from inference.http import handle_http
from inference.manifest import MANIFEST_NAME
from inference.model import LoadedModel, load_model
from openapi_schema_validator import OAS31Validator
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from layers.model_layer import main as model_layer
from testing.doubles import FakeQuarantine, FakeSink
from testing.events import dynamodb_record, function_url_event, kinesis_record

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = ["radius", "texture", "perimeter", "area"]
#: The synthetic table's columns: a string, two numbers and a bool.
TYPED = ["color:string", "size", "weight", "member:bool"]
COLUMNS = [spec.partition(":")[0] for spec in TYPED]
PREDICT = "models/typed-frame/predict"


def package(folder: Path, name: str, pipeline: list[str], *options: str) -> dict[str, Any]:
    """``make model-layer MODEL_SRC=folder NAME=name VERSION=1.0.0 PIPELINE=... [FEATURES=...]``; the manifest."""
    args = ["--src", str(folder), "--out", str(folder.parent / "layer.zip"), "--name", name, "--version", "1.0.0"]
    assert model_layer([*args, "--pipeline", ",".join(pipeline), *options]) == 0
    return json.loads((folder / MANIFEST_NAME).read_text())


def dumped(folder: Path, files: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    for file, obj in files.items():
        joblib.dump(obj, folder / file)
    return folder


def kinesis_batch(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": [kinesis_record(json.dumps(doc), 1000 + i) for i, doc in enumerate(docs)]}


def best_probabilities(model: Any, x: Any) -> list[dict[str, Any]]:
    """What the model's own methods give for ``x``, as a classifier's result fields."""
    proba = model.predict_proba(x)
    return [{"label": model.classes_[p.argmax()].item(), "probability": p.max()} for p in proba]


def results(sink: FakeSink) -> list[dict[str, Any]]:
    """The results the sink kept, in record order."""
    return [sink.kept[i].outputs for i in sorted(sink.kept)]


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["label"] for g in got] == [w["label"] for w in want]
    assert np.allclose([g["probability"] for g in got], [w["probability"] for w in want], rtol=1e-12, atol=0)


class Recording:
    """An estimator that keeps every input it is asked to score, then delegates."""

    def __init__(self, estimator: Any) -> None:
        self.estimator, self.inputs = estimator, []

    def __getattr__(self, method: str) -> Any:
        attribute = getattr(self.estimator, method)
        if method not in ("predict", "predict_proba"):
            return attribute

        def recorded(x: Any) -> Any:
            self.inputs.append(x)
            return attribute(x)

        return recorded


def recording(model: LoadedModel) -> tuple[LoadedModel, Recording]:
    spy = Recording(model.estimator)
    return LoadedModel(model.manifest, model.preprocessors, spy), spy


# --- numbers with missing values ---------------------------------------------------------


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    data = datasets.load_breast_cancer()
    return data.data[:, :4], data.target


@pytest.fixture(scope="module")
def hist_gradient_boosting(tmp_path_factory: pytest.TempPathFactory, cancer) -> tuple[Any, Path, dict]:
    """Fitted on rows with NaN (a tenth of the values), as HistGradientBoosting allows."""
    x, y = cancer
    x = x.copy()
    x[np.random.default_rng(0).random(x.shape) < 0.1] = np.nan
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    folder = dumped(tmp_path_factory.mktemp("hgb") / "model", {"model.joblib": model})
    return model, folder, package(folder, "cancer-hgb", ["model.joblib"], "--features", ",".join(NUMBERS))


@pytest.fixture(scope="module")
def logistic(tmp_path_factory: pytest.TempPathFactory, cancer) -> tuple[Any, Path, dict]:
    """A pipeline that refuses NaN (LogisticRegression does)."""
    x, y = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    folder = dumped(tmp_path_factory.mktemp("logistic") / "model", {"model.joblib": model})
    return model, folder, package(folder, "cancer-lr", ["model.joblib"], "--features", ",".join(NUMBERS))


def with_gaps(x: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Records of ``x``'s first 12 rows, some with a null and some with a feature left out; the rows with NaN."""
    rows = x[:12].copy()
    docs = [dict(zip(NUMBERS, row)) for row in rows.tolist()]
    for i in (1, 4, 7):
        docs[i][NUMBERS[i % 4]] = None
        rows[i, i % 4] = np.nan
    for i in (2, 9):
        del docs[i][NUMBERS[(i + 1) % 4]]
        rows[i, (i + 1) % 4] = np.nan
    return docs, rows


def test_packaging_finds_out_by_trying_which_models_take_missing_values(hist_gradient_boosting, logistic) -> None:
    assert hist_gradient_boosting[2]["input"] == {
        "kind": "tabular",
        "features": NUMBERS,
        "types": ["number"] * 4,
        "accepts_missing": NUMBERS,
    }
    assert logistic[2]["input"]["accepts_missing"] == []


def test_a_model_that_takes_nan_scores_null_and_absent_features_in_one_call(hist_gradient_boosting, cancer) -> None:
    model, folder, _ = hist_gradient_boosting
    docs, rows = with_gaps(cancer[0])
    served, spy = recording(load_model(folder))
    sink = FakeSink()

    response, report = process_batch(kinesis_batch(docs), served, sink, FakeQuarantine())

    assert response == {"batchItemFailures": []} and len(report.predicted) == len(docs)
    assert len(spy.inputs) == 1 and spy.inputs[0].dtype == np.float64
    assert_same(results(sink), best_probabilities(model, rows))


def test_a_model_that_refuses_nan_gets_the_record_quarantined_naming_the_field(logistic, cancer) -> None:
    model, folder, _ = logistic
    docs, rows = with_gaps(cancer[0])
    served, spy = recording(load_model(folder))
    sink, quarantine = FakeSink(), FakeQuarantine()

    response, report = process_batch(kinesis_batch(docs), served, sink, quarantine)

    gaps = [1, 2, 4, 7, 9]
    assert response == {"batchItemFailures": []} and report.quarantined == gaps
    reasons = {i: item.reason for i, item in quarantine.kept.items()}
    assert reasons[1] == "feature 'texture' is null, and the model does not accept missing values"
    assert reasons[2] == "missing feature 'area'"
    # Never called with a NaN: one call, for the complete records only.
    assert len(spy.inputs) == 1 and not np.isnan(spy.inputs[0]).any()
    complete = [i for i in range(len(docs)) if i not in gaps]
    assert_same(results(sink), best_probabilities(model, rows[complete]))


# --- a string column: numpy object arrays and DataFrames ---------------------------------


def synthetic_table(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Colour (string), size and weight (numbers), member (bool); the label depends on all four."""
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue"], size=n)
    size, weight = rng.normal(size=n), rng.normal(2, 1, size=n)
    member = rng.random(n) < 0.4
    y = ((colors == "red") ^ (size + weight / 2 > 1) ^ member).astype(int)
    frame = pd.DataFrame({"color": colors.tolist(), "size": size, "weight": weight, "member": member})
    return frame, y


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic_table()


@pytest.fixture(scope="module")
def object_array_model(tmp_path_factory: pytest.TempPathFactory, table) -> tuple[Any, Path, dict]:
    """ColumnTransformer by column position over a numpy object array; unknown colours ignored."""
    frame, y = table
    x = frame.to_numpy(dtype=object)
    encode = ColumnTransformer(
        [("color", OneHotEncoder(handle_unknown="ignore"), [0]), ("num", StandardScaler(), [1, 2, 3])]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(x, y)
    folder = dumped(tmp_path_factory.mktemp("object") / "model", {"model.joblib": model})
    return model, folder, package(folder, "typed-array", ["model.joblib"], "--features", ",".join(TYPED))


@pytest.fixture(scope="module")
def dataframe_model(tmp_path_factory: pytest.TempPathFactory, table) -> tuple[Any, Path, dict]:
    """ColumnTransformer by column name, fitted on a DataFrame; unknown colours refused; no FEATURES."""
    frame, y = table
    encode = ColumnTransformer(
        [("color", OneHotEncoder(), ["color"]), ("num", StandardScaler(), ["size", "weight", "member"])]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, y)
    folder = dumped(tmp_path_factory.mktemp("frame") / "model", {"model.joblib": model})
    sample = folder.parent / "sample.jsonl"
    sample.write_text("\n".join(json.dumps(r) for r in frame.head(5).to_dict("records")) + "\n")
    return model, folder, package(folder, "typed-frame", ["model.joblib"], "--sample", str(sample))


def typed_docs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records of ``frame``'s rows with a null colour in one and an unseen colour in another."""
    docs = frame.head(10).to_dict("records")
    docs[3]["color"] = None
    docs[6]["color"] = "purple"
    return docs


def test_typed_contracts_are_recorded(object_array_model, dataframe_model) -> None:
    assert object_array_model[2]["input"] == {
        "kind": "tabular",
        "features": COLUMNS,
        "types": ["string", "number", "number", "bool"],
        "accepts_missing": ["color"],  # an unknown colour is ignored; the regression refuses NaN
    }
    contract = dataframe_model[2]["input"]
    assert contract["features"] == COLUMNS  # read from the model's feature_names_in_
    assert contract["types"] == ["string", "number", "number", "bool"]  # from the sample's values
    assert contract["dataframe"] == {"dtypes": [str(pd.Series(["a"]).dtype), "float64", "float64", "bool"]}
    assert contract["accepts_missing"] == []  # OneHotEncoder(handle_unknown="error") refuses None


def test_an_object_array_model_gets_strings_and_bools_in_one_object_array(object_array_model, table) -> None:
    model, folder, _ = object_array_model
    docs = typed_docs(table[0])
    served, spy = recording(load_model(folder))
    sink = FakeSink()

    response, report = process_batch(kinesis_batch(docs), served, sink, FakeQuarantine())

    assert response == {"batchItemFailures": []} and len(report.predicted) == len(docs)
    (x,) = spy.inputs
    assert x.dtype == object and x.shape == (10, 4) and x[3, 0] is None and x[0, 3] in (True, False)
    rows = np.array([[d[c] for c in COLUMNS] for d in docs], dtype=object)
    assert_same(results(sink), best_probabilities(model, rows))


def test_a_dataframe_model_gets_one_dataframe_with_the_training_dtypes(dataframe_model, table) -> None:
    model, folder, _ = dataframe_model
    frame = table[0]
    docs = typed_docs(frame)
    served, spy = recording(load_model(folder))
    sink, quarantine = FakeSink(), FakeQuarantine()

    response, report = process_batch(kinesis_batch(docs), served, sink, quarantine)

    assert response == {"batchItemFailures": []}
    assert {i: item.reason for i, item in quarantine.kept.items()} == {
        3: "feature 'color' is null, and the model does not accept missing values",
        6: "model raised ValueError",  # an unseen colour: the encoder refuses it, bisection pins it
    }
    good = [i for i in range(10) if i not in (3, 6)]
    assert isinstance(spy.inputs[0], pd.DataFrame)
    assert spy.inputs[0].dtypes.to_dict() == frame.dtypes.to_dict()
    want = best_probabilities(model, frame.iloc[good].reset_index(drop=True))
    assert_same(results(sink), want)


def test_http_takes_the_same_typed_instances(dataframe_model, table) -> None:
    model, folder, _ = dataframe_model
    frame = table[0]
    app_model = load_model(folder)
    instances = frame.head(4).to_dict("records")

    ok = handle_http(function_url_event(json.dumps(instances), path=PREDICT), app_model)
    wrong = [{**instances[0], "member": "yes"}, {**instances[1], "size": None}]
    refused = handle_http(function_url_event(json.dumps(wrong), path=PREDICT), app_model)

    assert ok["statusCode"] == 200
    assert_same(json.loads(ok["body"])["predictions"], best_probabilities(model, frame.head(4)))
    assert refused["statusCode"] == 400
    problems = json.loads(refused["body"])["error"]["problems"]
    assert [(p["instance"], p["field"]) for p in problems] == [(0, "member"), (1, "size")]
    assert problems[0]["message"] == "feature 'member' is str, expected true or false"
    described = handle_http(function_url_event(None, method="GET", path="models/typed-frame/metadata"), app_model)
    spec = yaml.safe_load((ROOT / "api" / "openapi.yaml").read_text())
    validator = OAS31Validator({"$ref": "#/components/schemas/ModelMetadata", "components": spec["components"]})
    metadata = json.loads(described["body"])
    assert metadata["input"] == dataframe_model[2]["input"] and not list(validator.iter_errors(metadata))


#: DynamoDB images with S, N, BOOL and NULL attributes (and one absent) for the object-array model.
TYPED_IMAGES = [
    {"id": {"S": "a"}, "color": {"S": "red"}, "size": {"N": "0.5"}, "weight": {"N": "2"}, "member": {"BOOL": True}},
    {
        "id": {"S": "b"},
        "color": {"NULL": True},
        "size": {"N": "-1.25"},
        "weight": {"N": "3"},
        "member": {"BOOL": False},
    },
    {"id": {"S": "c"}, "size": {"N": "1"}, "weight": {"N": "1.5"}, "member": {"BOOL": True}},
    {
        "id": {"S": "d"},
        "color": {"S": "blue"},
        "size": {"NULL": True},
        "weight": {"N": "1"},
        "member": {"BOOL": True},
    },
]


def test_a_dynamodb_image_with_a_typed_attribute_for_every_feature_type(object_array_model, table) -> None:
    """S, N and BOOL attributes; NULL and an absent attribute where the model takes a missing value."""
    model, folder, _ = object_array_model
    images = [
        *TYPED_IMAGES,
        {"id": {"S": "e"}, "color": {"S": "blue"}, "size": {"N": "1"}, "weight": {"N": "1"}, "member": {"N": "1"}},
    ]
    event = {"Records": [dynamodb_record(image, str(100 + i), event_id=f"e{i}") for i, image in enumerate(images)]}
    app = App.from_env({"MODEL_DIR": str(folder)})

    response = app.handle(event)

    assert response["batchItemFailures"] == []
    rows = np.array([["red", 0.5, 2.0, True], [None, -1.25, 3.0, False], [None, 1.0, 1.5, True]], dtype=object)
    assert_same([response["predictions"][f"e{i}"] for i in range(3)], best_probabilities(model, rows))
    assert set(response["predictions"]) == {"e0", "e1", "e2"}  # e3 (size NULL) and e4 (member N) quarantined


@pytest.mark.slow
def test_only_a_dataframe_model_needs_pandas(object_array_model, dataframe_model) -> None:
    """With pandas not installed (blocked in a fresh interpreter), the function serves the object-array
    model, and refuses the DataFrame model at load, naming the fix."""
    script = (
        "import json, sys\n"
        "class NoPandas:  # import pandas raises ModuleNotFoundError, as where it is not installed\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'pandas':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoPandas())\n"
        "from inference.app import App; from inference.model import ModelLoadError, load_model\n"
        "from testing.events import kinesis_record\n"
        "doc = {'color': 'red', 'size': 1.0, 'weight': 2.0, 'member': True}\n"
        "out = App.from_env({'MODEL_DIR': sys.argv[1]}).handle({'Records': [kinesis_record(json.dumps(doc), 1)]})\n"
        "try:\n    load_model(sys.argv[2])\nexcept ModelLoadError as exc:\n    refused = str(exc)\n"
        "print(json.dumps([list(out['predictions'].values()), refused]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(object_array_model[1]), str(dataframe_model[1])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    (prediction,), refused = json.loads(proc.stdout.splitlines()[-1])
    row = np.array([["red", 1.0, 2.0, True]], dtype=object)
    assert_same([prediction], best_probabilities(object_array_model[0], row))
    assert "pandas is not installed: attach a dependencies layer that has pandas" in refused
