"""Lambda description texts: what each layer version and function version records.

A description is a kind, then ``key=value`` pairs whose values are percent-encoded
(:func:`format_description`), at most 256 characters::

    deps python=3.12 numpy=2.5.5 scipy=1.18.1 scikit-learn=1.9.1 joblib=1.6.0 sha256=<64 hex>
    model name=rotten-tomatoes-sentiment version=1.0.0 python=3.12 numpy=2.5.5 scipy=1.18.1 scikit-learn=1.9.1 joblib=1.6.0 sha256=<64 hex>
    relink model=rotten-tomatoes-sentiment version=1.0.0 layer=arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N

The library versions they carry are what :func:`library_mismatches` compares before a
model layer is put beside a dependencies layer.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from inference.manifest import Manifest

from layers.deps_zip import TRACKED_LIBRARIES
from release.errors import ReleaseError

#: Lambda's limit on layer and version descriptions.
DESCRIPTION_LIMIT = 256


def format_description(kind: str, fields: dict[str, str]) -> str:
    """Render ``kind key=value ...`` with percent-encoded values, for a Lambda description.

    Parameters
    ----------
    kind : str
        First word: ``deps``, ``model``, or a release action.
    fields : dict of str to str
        Values may hold any character; spaces and ``=`` are encoded.

    Raises
    ------
    ReleaseError
        If the text exceeds Lambda's 256-character description limit.
    """
    text = " ".join([kind, *(f"{k}={quote(str(v), safe='-._~:/@+,')}" for k, v in fields.items())])
    if len(text) > DESCRIPTION_LIMIT:
        raise ReleaseError(
            f"description would be {len(text)} characters, over Lambda's {DESCRIPTION_LIMIT}: {text[:80]}...; "
            "shorten the model name or version in its manifest"
        )
    return text


def parse_description(text: str | None) -> tuple[str, dict[str, str]]:
    """Inverse of :func:`format_description`; ``("", {})`` for an empty description."""
    words = (text or "").split()
    if not words:
        return "", {}
    fields = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if sep:
            fields[key] = unquote(value)
    return words[0], fields


def python_minor(version: str) -> str:
    """``major.minor`` of a Python version (``3.12.1`` -> ``3.12``)."""
    return ".".join(version.split(".")[:2])


def deps_description(python: str, versions: dict[str, str], zip_sha256: str) -> str:
    """The dependencies layer's description: Python, library versions, the zip's sha256.

    Parameters
    ----------
    python : str
        The runtime's ``major.minor``.
    versions : dict of str to str
        Library versions found in the zip; only :data:`TRACKED_LIBRARIES` are recorded.
    zip_sha256 : str
        Hex sha256 of the layer zip.
    """
    fields = {"python": python, **{lib: versions[lib] for lib in TRACKED_LIBRARIES if lib in versions}}
    return format_description("deps", {**fields, "sha256": zip_sha256})


def model_description(manifest: Manifest, zip_sha256: str) -> str:
    """The model layer's description: name, version, library versions, the zip's sha256."""
    libraries = manifest["libraries"]
    fields = {"name": manifest["name"], "version": manifest["version"]}
    if "python" in libraries:
        fields["python"] = python_minor(libraries["python"])
    fields.update({lib: libraries[lib] for lib in TRACKED_LIBRARIES if lib in libraries})
    return format_description("model", {**fields, "sha256": zip_sha256})


def version_description(action: str, model: dict[str, str], layer_arn: str) -> str:
    """A function version's (and the alias's) description: the action, the model and its layer.

    Falls back to the action and the layer alone when the model's name and version
    would make it longer than Lambda allows.
    """
    try:
        return format_description(
            action, {"model": model.get("name", "?"), "version": model.get("version", "?"), "layer": layer_arn}
        )
    except ReleaseError:
        return format_description(action, {"layer": layer_arn})


def library_mismatches(model: dict[str, str], deps: dict[str, str]) -> list[str]:
    """Differences between the library versions a model needs and those a layer serves.

    Parameters
    ----------
    model, deps : dict of str to str
        Parsed descriptions (or manifest ``libraries``). scikit-learn must be in both;
        numpy, scipy, joblib and python (major.minor) are compared where both have them.

    Returns
    -------
    list of str
        One readable line per difference; empty when compatible.
    """
    problems = []
    for lib in ("python", *TRACKED_LIBRARIES):
        want, have = model.get(lib), deps.get(lib)
        if lib == "python" and want and have:
            want, have = python_minor(want), python_minor(have)
        if (want is None or have is None) and lib == "scikit-learn":
            problems.append(
                f"scikit-learn version unknown ({'model' if want is None else 'dependencies'} layer "
                "description has none); republish that layer with this tool"
            )
        elif want is not None and have is not None and want != have:
            problems.append(f"{lib}: model built with {want}, dependencies layer has {have}")
    return problems
