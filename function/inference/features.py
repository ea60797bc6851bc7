"""One batch's tabular rows as the one model input a vectorised predict takes.

The rows come from :func:`inference.decode.extract_input`, in the manifest's feature order.
What the model is given depends on the input contract (:class:`inference.manifest.TabularInput`):

- every feature a ``number`` (every manifest written before typed features): a float64
  numpy array, ``len(rows)`` by the number of features; a missing value is NaN;
- any ``string`` or ``bool`` feature: an object numpy array of the rows' Python values
  (``float``, ``str``, ``bool``; a missing number is NaN, any other missing value ``None``);
- a ``dataframe`` contract (a model fitted on a pandas DataFrame): one DataFrame, the
  features as its columns in order, each of the dtype recorded at packaging. A ``bool``
  or ``string`` column holding a missing value keeps it as missing: ``bool`` columns
  with one become ``object`` (a numpy bool can't be missing), a ``str`` column's is NaN.

pandas is imported here only, by :func:`require_libraries` when a DataFrame model is loaded
(so not on the first batch): the function serving any other contract never imports it
itself. (scikit-learn does, from ``sklearn.utils.fixes``, whenever pandas is installed.)
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from .manifest import TabularInput


def model_input(contract: TabularInput, rows: Sequence[Sequence[Any]]) -> Any:
    """The batch ``rows`` as one numpy array or one pandas DataFrame (module docstring).

    Parameters
    ----------
    contract : TabularInput
        The manifest's input contract.
    rows : sequence of sequences
        One row per input, one value per feature in ``contract["features"]`` order.

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
    """
    import numpy as np

    types = contract.get("types")
    if "dataframe" in contract:
        return _frame(contract, rows)
    width = len(contract["features"])
    if types is None or all(t == "number" for t in types):
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    table = np.empty((len(rows), width), dtype=object)
    for i, row in enumerate(rows):
        table[i] = row
    return table


def require_libraries(contract: TabularInput) -> str:
    """Import what the model input of ``contract`` needs (pandas, for a DataFrame model).

    Returns
    -------
    str
        Empty when it is there; otherwise what is missing and how to fix it.
    """
    if "dataframe" not in contract:
        return ""
    try:
        importlib.import_module("pandas")  # imported once, at load: every batch then finds it loaded
    except ImportError:
        return (
            "the model was fitted on a pandas DataFrame (its manifest's input.dataframe) and is served one, but "
            "pandas is not installed: attach a dependencies layer that has pandas "
            "(`make deps-layer EXTRAS=pandas`, or the extras layer `make extras-layer` after it)"
        )
    return ""


def _frame(contract: TabularInput, rows: Sequence[Sequence[Any]]) -> Any:
    """One DataFrame of ``rows``: columns built one by one, each cast to its recorded dtype."""
    import numpy as np

    pd = importlib.import_module("pandas")  # loaded already (require_libraries); untyped here, without stubs
    features = contract["features"]
    types = contract.get("types") or ["number"] * len(features)
    columns: dict[str, Any] = {}
    for j, (name, kind, dtype) in enumerate(zip(features, types, contract["dataframe"]["dtypes"])):
        if kind == "number":
            values = np.fromiter((row[j] for row in rows), dtype=np.float64, count=len(rows))
            columns[name] = values if dtype == "float64" else pd.Series(values).astype(dtype)
            continue
        values = np.empty(len(rows), dtype=object)
        values[:] = [row[j] for row in rows]
        if kind == "bool" and any(v is None for v in values):
            columns[name] = pd.Series(values, dtype=object)
        else:
            columns[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))
