"""Typed tabular contracts: the manifest's ``types`` / ``accepts_missing`` / ``dataframe``, the values
:func:`inference.decode.extract_input` takes for each type, the model input a batch becomes, and what
packaging refuses in ``--features``."""

from __future__ import annotations

import copy
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inference.decode import extract_input
from inference.features import model_input
from inference.manifest import ManifestError, validate_manifest

from layers.input_contract import ContractError, features_spec, normalized_spec, parse_features
from layers.model_layer import main as model_layer
from training.tabular_model import make_tabular_model

pytestmark = pytest.mark.unit

TYPED = {
    "kind": "tabular",
    "features": ["country", "age", "active"],
    "types": ["string", "number", "bool"],
    "accepts_missing": ["age"],
}


def test_a_manifest_from_before_typed_features_is_still_valid(tabular_model_dir: Path) -> None:
    manifest = json.loads((tabular_model_dir / "manifest.json").read_text())
    for key in ("types", "accepts_missing"):
        manifest["input"].pop(key)
    assert validate_manifest(manifest)["input"] == {"kind": "tabular", "features": ["a", "b", "c"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"types": ["number", "text", "bool"]}, "input.types must give one of number, string, bool"),
        ({"types": ["number"]}, "for each of the 3 features"),
        ({"accepts_missing": ["age", "height"]}, "accepts_missing names ['height']"),
        ({"accepts_missing": "age"}, "'accepts_missing' must be list"),
        ({"dataframe": {"dtypes": ["str", "float64"]}}, "dataframe.dtypes must name a pandas dtype"),
        ({"dataframe": {}}, "missing required key 'dtypes'"),
    ],
)
def test_a_malformed_typed_contract_is_refused(tabular_model_dir: Path, change: dict, message: str) -> None:
    manifest = json.loads((tabular_model_dir / "manifest.json").read_text())
    manifest["input"] = {**copy.deepcopy(TYPED), "features": ["country", "age", "active"], **change}
    with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_manifest(manifest)


GOOD = [
    ({"country": "NZ", "age": 41, "active": True}, ["NZ", 41.0, True]),
    ({"country": "", "age": Decimal("2.5"), "active": False}, ["", 2.5, False]),
    ({"country": "é", "age": None, "active": True}, ["é", math.nan, True]),
    ({"country": "x", "active": False}, ["x", math.nan, False]),  # age absent: accepted as missing
]


@pytest.mark.parametrize(("doc", "row"), GOOD)
def test_each_type_takes_its_values(doc: dict, row: list) -> None:
    value, reason = extract_input(doc, TYPED)
    assert reason == ""
    assert [type(v) for v in value] == [type(v) for v in row]
    assert value[:1] + value[2:] == row[:1] + row[2:]
    assert value[1] == row[1] or (math.isnan(value[1]) and math.isnan(row[1]))


BAD = [
    ({"country": 5, "age": 1, "active": True}, "feature 'country' is int, expected a string"),
    ({"country": "NZ", "age": "41", "active": True}, "feature 'age' is str, expected a number"),
    ({"country": "NZ", "age": True, "active": True}, "feature 'age' is bool, expected a number"),
    ({"country": "NZ", "age": math.inf, "active": True}, "feature 'age' is inf, expected a finite number"),
    ({"country": "NZ", "age": 1, "active": 1}, "feature 'active' is int, expected true or false"),
    ({"country": "NZ", "age": 1, "active": "true"}, "feature 'active' is str, expected true or false"),
    ({"country": None, "age": 1, "active": True}, "feature 'country' is null, and the model does not accept"),
    ({"age": 1, "active": True}, "missing feature 'country'"),
]


@pytest.mark.parametrize(("doc", "reason"), BAD)
def test_a_value_of_another_type_or_missing_where_refused_names_the_feature(doc: dict, reason: str) -> None:
    value, got = extract_input(doc, TYPED)
    assert value is None and got.startswith(reason)


def test_a_batch_is_one_float_array_when_all_numbers_and_one_object_array_otherwise() -> None:
    numbers = {"kind": "tabular", "features": ["a", "b"], "types": ["number", "number"], "accepts_missing": ["b"]}
    floats = model_input(numbers, [[1.0, math.nan], [2.0, 3.0]])
    assert floats.dtype == np.float64 and floats.shape == (2, 2) and np.isnan(floats[0, 1])

    mixed = model_input(TYPED, [["NZ", 41.0, True], [None, math.nan, False]])
    assert mixed.dtype == object and mixed.shape == (2, 3)
    assert mixed.tolist()[0] == ["NZ", 41.0, True] and mixed[1, 0] is None


def test_a_dataframe_batch_has_the_recorded_columns_and_dtypes() -> None:
    import pandas as pd

    contract: Any = {**TYPED, "accepts_missing": ["age", "active"], "dataframe": {"dtypes": ["str", "float64", "bool"]}}
    frame = model_input(contract, [["NZ", 41.0, True], ["AU", math.nan, False]])
    assert list(frame.columns) == ["country", "age", "active"]
    assert [str(t) for t in frame.dtypes] == ["str", "float64", "bool"]
    assert frame["country"].tolist() == ["NZ", "AU"] and math.isnan(frame["age"][1])

    with_missing = model_input(contract, [[None, 1.0, None], ["AU", 2.0, True]])
    assert pd.isna(with_missing["country"][0]) and with_missing["active"].dtype == object
    assert with_missing["active"].tolist() == [None, True]


def test_features_parse_with_their_types_and_print_back() -> None:
    names, types = parse_features(["country:string", " age ", "tenure:number", "active:bool"])
    assert (names, types) == (["country", "age", "tenure", "active"], ["string", "number", "number", "bool"])
    spec = features_spec({"kind": "tabular", "features": names, "types": types})
    assert spec == "country:string,age,tenure,active:bool"
    assert normalized_spec("country:string,age:number,tenure,active:bool") == spec
    with pytest.raises(ContractError, match="the type must be one of number, string, bool"):
        parse_features(["age:int"])
    with pytest.raises(ContractError, match="empty name"):
        parse_features(["age", ":string"])


def test_packaging_refuses_features_that_do_not_describe_the_model(tmp_path: Path, capsys) -> None:
    """Left out for a model fitted on a numpy array; other columns than a DataFrame model's; a typed
    manifest's FEATURES given again with types spelled another way is no conflict."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    numpy_folder = make_tabular_model(tmp_path / "numpy")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 0.0, 1.0, 0.0]})
    frame_folder = tmp_path / "frame"
    frame_folder.mkdir()
    joblib.dump(LogisticRegression().fit(frame, [0, 0, 1, 1]), frame_folder / "model.joblib")
    args = ["--out", str(tmp_path / "layer.zip"), "--name", "m", "--version", "1", "--pipeline"]

    (numpy_folder / "manifest.json").unlink()
    assert model_layer(["--src", str(numpy_folder), *args, "scaler.joblib,classifier.joblib"]) == 2
    assert "no column names to read the features from" in capsys.readouterr().err
    assert model_layer(["--src", str(frame_folder), *args, "model.joblib", "--features", "y,x"]) == 2
    assert "fitted on a DataFrame with the columns x,y: list those, in that order" in capsys.readouterr().err
    assert model_layer(["--src", str(frame_folder), *args, "model.joblib", "--features", "x:number,y"]) == 0
    manifest = json.loads((frame_folder / "manifest.json").read_text())
    assert manifest["input"]["dataframe"] == {"dtypes": ["float64", "float64"]}
    again = ["--src", str(frame_folder), "--out", str(tmp_path / "again.zip"), "--features"]
    assert model_layer([*again, "x,y:number"]) == 0
    assert model_layer([*again, "x,y:string"]) == 2
    assert "--features x,y:string but the manifest has x,y" in capsys.readouterr().err
