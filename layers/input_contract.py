"""A tabular model's input contract, as packaging works it out from ``--features`` and the model.

``--features`` (``FEATURES``) names the fields in the model's column order, each with an
optional type: ``country:string,age,tenure,active:bool`` (``number`` when none is given;
:data:`inference.manifest.FEATURE_TYPES`).

A model fitted on a pandas DataFrame (its first artifact has ``feature_names_in_``) is fed a
DataFrame: its columns are the model's own ``feature_names_in_``, which ``--features`` may then
leave out (the types are then read from the first ``--sample`` record's values: a string is a
``string``, ``true`` / ``false`` a ``bool``, anything else a ``number``), or must list in that
order. The manifest records each column's pandas dtype: ``float64`` for a number, ``bool``, and
for a string the dtype this pandas gives a column of strings (``str`` in pandas 3).

Missing values are found out by trying (:func:`probe_missing`): for each feature, the model
predicts one row of the sample with that feature missing (NaN for a number, ``None``
otherwise); the features it scores without raising are the contract's ``accepts_missing``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from inference.decode import extract_input
from inference.manifest import FEATURE_TYPES, FeatureType, Manifest, TabularInput, feature_types
from inference.model import LoadedModel


class ContractError(ValueError):
    """``--features`` does not describe the model; the message says what to change."""


def parse_features(items: list[str]) -> tuple[list[str], list[FeatureType]]:
    """The names and types of ``name[:type]`` items (``number`` when no type is given).

    Raises
    ------
    ContractError
        An empty name or an unknown type.
    """
    names: list[str] = []
    types: list[FeatureType] = []
    for item in items:
        name, _, kind = item.strip().partition(":")
        kind = kind.strip() or "number"
        if not name.strip():
            raise ContractError(f"--features has an empty name in {','.join(items)!r}: name[:type],name[:type],...")
        if kind not in FEATURE_TYPES:
            raise ContractError(f"--features {item!r}: the type must be one of {', '.join(FEATURE_TYPES)}")
        names.append(name.strip())
        types.append(kind)  # checked against FEATURE_TYPES above
    return names, types


def features_spec(contract: TabularInput) -> str:
    """The ``--features`` value that describes ``contract`` (types other than ``number`` spelled out)."""
    return ",".join(
        name if kind == "number" else f"{name}:{kind}"
        for name, kind in zip(contract["features"], feature_types(contract))
    )


def normalized_spec(spec: str) -> str:
    """``spec`` as :func:`features_spec` writes it (``a:number`` is ``a``); as given if it does not parse."""
    try:
        names, types = parse_features(spec.split(","))
    except ContractError:
        return spec
    return features_spec({"kind": "tabular", "features": names, "types": types})


def base_row(manifest: Manifest, records: list[Any]) -> list[Any] | None:
    """The first of ``records`` that the contract accepts with no value missing, as a row; ``None`` if none."""
    for record in records:
        row, reason = extract_input(record, manifest["input"], "record")
        if not reason:
            return row
    return None


def frame_columns(first_artifact: Any) -> list[str] | None:
    """The columns a model fitted on a DataFrame was fitted on (``feature_names_in_``), else ``None``."""
    names = getattr(first_artifact, "feature_names_in_", None)
    return None if names is None else [str(name) for name in names]


def _type_of(value: Any) -> FeatureType:
    if isinstance(value, bool):
        return "bool"
    return "string" if isinstance(value, str) else "number"


def string_dtype() -> str:
    """The dtype this pandas gives a column of Python strings (``str`` in pandas 3, ``object`` before)."""
    pd = importlib.import_module("pandas")  # untyped here, without stubs
    return str(pd.Series(["a"]).dtype)


def tabular_contract(features: list[str] | None, first_artifact: Any, sample: list[Any] | None) -> TabularInput:
    """The contract ``--features`` and the model describe (``accepts_missing`` not yet probed).

    Raises
    ------
    ContractError
        ``--features`` left out for a model that has no column names, or naming other
        columns than a DataFrame model's.
    """
    columns = frame_columns(first_artifact)
    if features is None:
        if columns is None:
            raise ContractError(
                "the model was not fitted on a pandas DataFrame, so it has no column names to read the features from"
            )
        first = sample[0] if sample and isinstance(sample[0], dict) else {}
        names, types = columns, [_type_of(first.get(name)) for name in columns]
    else:
        names, types = parse_features(features)
        if columns is not None and names != columns:
            raise ContractError(
                f"--features names {','.join(names)}, but the model was fitted on a DataFrame with the columns "
                f"{','.join(columns)}: list those, in that order (with their types), or leave --features out"
            )
    contract: dict[str, Any] = {"kind": "tabular", "features": names, "types": types}
    if columns is not None:
        by_type = {"number": "float64", "bool": "bool", "string": string_dtype()}
        contract["dataframe"] = {"dtypes": [by_type[kind] for kind in types]}
    return contract  # type: ignore[return-value]  # built key by key: a TabularInput


def probe_missing(
    manifest: Manifest, preprocessors: tuple[Any, ...], estimator: Any, row: list[Any] | None
) -> list[str]:
    """The features the model scores when they alone are missing in ``row`` (module docstring).

    Parameters
    ----------
    manifest : Manifest
        The manifest being built; its input contract is tabular.
    preprocessors, estimator
        The unpickled pipeline.
    row : list or None
        A row the model scores, in feature order (:func:`base_row`); ``None``: no row to try.

    Returns
    -------
    list of str
        The feature names, in feature order (none without a row).
    """
    contract = manifest["input"]
    if row is None or contract["kind"] != "tabular":
        return []
    model = LoadedModel(manifest, preprocessors, estimator)
    accepted = []
    for j, (name, kind) in enumerate(zip(contract["features"], feature_types(contract))):
        probe = list(row)
        probe[j] = float("nan") if kind == "number" else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.predict([probe])
        except Exception:  # whatever the model raises on a missing value: it does not take one
            continue
        accepted.append(name)
    return accepted
