"""Publish layers, release model versions, relink and roll back, deploy: against AWS Lambda.

Usage (``make`` wraps each and sets ``PYTHONPATH=function:.``; settings come from
``deploy.toml``, see ``tools.settings``)::

    python -m tools.release publish-deps-layer  [--zip build/layers/deps-layer.zip]
    python -m tools.release publish-model-layer [--zip build/layers/model-layer.zip]
    python -m tools.release relink --layer-arn arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N
    python -m tools.release rollback
    python -m tools.release releases
    python -m tools.release deploy [--function-zip build/function.zip]
                                   [--deps-layer-arn ARN] [--model-layer-arn ARN]

Credentials and region come from boto3's usual chain (``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ``~/.aws/config``, an SSO or instance role).

A *release* moves the model layer: the function's layer list is rewritten with only
the model layer's ARN replaced, the update is awaited, a function version is published
and the alias (``[function] alias``, which the event source mappings invoke) is moved
to it. Each release is written where it survives a lost laptop: the layer version's
description (model name, version, library versions, sha256), the function version's
description and its layer list, and the function's tags; and, for convenience, one
JSON line in the local history file (``[history] file``).

Layer descriptions are machine-readable: a kind, then ``key=value`` pairs whose values
are percent-encoded (:func:`format_description`), at most 256 characters::

    deps python=3.11 numpy=2.2.6 scipy=1.16.3 scikit-learn=1.7.2 joblib=1.6.0 sha256=<64 hex>
    model name=rotten-tomatoes-sentiment version=1.0.0 python=3.11 numpy=2.2.6 scipy=1.16.3 scikit-learn=1.7.2 joblib=1.6.0 sha256=<64 hex>
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from inference.manifest import MANIFEST_NAME, Manifest, ManifestError, sha256_bytes, validate_manifest

from tools.settings import EventSource, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEPS_ZIP = ROOT / "build" / "layers" / "deps-layer.zip"
DEFAULT_MODEL_ZIP = ROOT / "build" / "layers" / "model-layer.zip"
DEFAULT_FUNCTION_ZIP = ROOT / "build" / "function.zip"

#: Largest zip Lambda accepts inline (ZipFile); larger ones go through S3.
DIRECT_UPLOAD_LIMIT = 52_428_800
#: Lambda's limit on layer and version descriptions.
DESCRIPTION_LIMIT = 256
#: Most layers a function may have.
MAX_LAYERS = 5
#: Libraries whose versions must agree between the model layer and the dependencies layer.
TRACKED_LIBRARIES = ("numpy", "scipy", "scikit-learn", "joblib")
#: Where the model layer keeps its files (``/opt/model`` once Lambda extracts it).
MODEL_PREFIX = "model/"
#: Updates that meet ``ResourceConflictException`` are tried this often in all ...
RETRY_ATTEMPTS = 5
#: ... waiting ``RETRY_BASE_DELAY_S * 2**n`` seconds before try n + 2.
RETRY_BASE_DELAY_S = 2.0

_LAYER_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"layer:(?P<name>[A-Za-z0-9_-]{1,140}):(?P<version>[1-9]\d*)$"
)
_DIST_INFO = re.compile(r"(?:^|/)([A-Za-z0-9_.]+)-([0-9][^/-]*)\.dist-info/")
_EXTENSION = re.compile(r"\.cpython-(\d)(\d+)-(x86_64|aarch64)-linux-gnu\.so$")
_VERSION_FILES = {
    "scikit-learn": "sklearn/__init__.py",
    "numpy": "numpy/version.py",
    "scipy": "scipy/version.py",
    "joblib": "joblib/__init__.py",
}
_VERSION_ASSIGN = re.compile(r"^(?:__version__|version|full_version)\s*[:=][^\"'\n]*[\"']([^\"']+)[\"']", re.M)


class ReleaseError(RuntimeError):
    """A release step cannot go ahead; the message says why and what to change."""


def _sleep(seconds: float) -> None:
    """Wait between retries (a seam for tests)."""
    time.sleep(seconds)


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Clients:
    """The boto3 clients a release needs.

    Attributes
    ----------
    lambda_ : botocore client
        A ``lambda`` client.
    s3 : botocore client
        An ``s3`` client, used only to upload zips over :data:`DIRECT_UPLOAD_LIMIT`.
    """

    lambda_: Any
    s3: Any

    @classmethod
    def from_session(cls, session: Any = None) -> Clients:
        """Clients from a boto3 session (default: credentials and region the usual way)."""
        import boto3
        from botocore.config import Config

        session = session or boto3.Session()
        config = Config(retries={"mode": "standard", "max_attempts": 8})
        return cls(session.client("lambda", config=config), session.client("s3", config=config))


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


# --------------------------------------------------------------------------- descriptions and ARNs


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


@dataclass(frozen=True)
class LayerArn:
    """A layer version ARN, ``arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION``."""

    partition: str
    region: str
    account: str
    name: str
    version: int

    @classmethod
    def parse(cls, text: str) -> LayerArn:
        """Parse and validate a layer version ARN.

        Raises
        ------
        ReleaseError
            If ``text`` is not a layer *version* ARN.
        """
        match = _LAYER_ARN.match(text.strip())
        if not match:
            raise ReleaseError(
                f"{text!r} is not a layer version ARN; expected arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION "
                "(`make releases` lists the model layer's versions)"
            )
        return cls(**{**match.groupdict(), "version": int(match["version"])})  # type: ignore[arg-type]

    @property
    def layer_arn(self) -> str:
        """The layer's ARN without the version (accepted as ``LayerName``, also across accounts)."""
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:layer:{self.name}"

    def __str__(self) -> str:
        return f"{self.layer_arn}:{self.version}"


def _layer_name(arn: str) -> str | None:
    match = _LAYER_ARN.match(arn)
    return match["name"] if match else None


# --------------------------------------------------------------------------- zips


def sha256_hex(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_sha256(path: Path) -> str:
    """Base64 sha256 of a zip: how Lambda reports ``CodeSha256``."""
    return base64.b64encode(bytes.fromhex(sha256_hex(path))).decode("ascii")


def verify_model_zip(zip_path: Path) -> Manifest:
    """Check a model layer zip: a valid manifest, and every artifact's sha256 equal to it.

    Raises
    ------
    ReleaseError
        On a missing or invalid manifest, a missing artifact or a sha256 mismatch.
    """
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = set(zf.namelist())
            if MODEL_PREFIX + MANIFEST_NAME not in names:
                raise ReleaseError(f"{zip_path} has no {MODEL_PREFIX}{MANIFEST_NAME}: build it with `make model-layer`")
            try:
                manifest = validate_manifest(json.loads(zf.read(MODEL_PREFIX + MANIFEST_NAME)))
            except (ManifestError, json.JSONDecodeError) as exc:
                raise ReleaseError(f"{zip_path}: {exc}") from None
            for step in manifest["pipeline"]:
                member = MODEL_PREFIX + step["file"]
                if member not in names:
                    raise ReleaseError(f"{zip_path}: the manifest lists {step['file']}, which is not in the zip")
                actual = sha256_bytes(zf.read(member))
                if actual != step["sha256"]:
                    raise ReleaseError(
                        f"{zip_path}: {step['file']} has sha256 {actual} but the manifest says {step['sha256']}; "
                        "refusing to publish an artifact nobody verified. Rebuild with `make model-layer`"
                    )
    except (zipfile.BadZipFile, FileNotFoundError) as exc:
        raise ReleaseError(f"{zip_path}: not a readable zip ({exc}); build it with `make model-layer`") from None
    return manifest


def _python_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def inspect_deps_zip(zip_path: Path) -> dict[str, str]:
    """Library versions, and where visible the Python and CPU, of a dependencies layer zip.

    Versions come from the ``*.dist-info`` folder names, else from the packages' own
    version files. ``python`` and ``arch`` come from extension module names
    (``*.cpython-311-x86_64-linux-gnu.so``) and are absent when there are none.

    Raises
    ------
    ReleaseError
        If the zip is unreadable or its scikit-learn version cannot be found.
    """
    info: dict[str, str] = {}
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            for name in names:
                match = _DIST_INFO.search(name)
                if match:
                    project = match[1].lower().replace("_", "-").replace(".", "-")
                    if project in TRACKED_LIBRARIES:
                        info.setdefault(project, match[2])
            for lib, tail in _VERSION_FILES.items():
                if lib in info:
                    continue
                for name in names:
                    if name.endswith("/" + tail) and name.count("/") <= 5:
                        found = _VERSION_ASSIGN.search(zf.read(name).decode("utf-8", "replace"))
                        if found:
                            info[lib] = found[1]
                            break
            tags = {(m[1] + "." + m[2], m[3]) for m in (_EXTENSION.search(n) for n in names) if m}
    except (zipfile.BadZipFile, FileNotFoundError) as exc:
        raise ReleaseError(f"{zip_path}: not a readable zip ({exc}); build it with `make deps-layer`") from None
    if "scikit-learn" not in info:
        raise ReleaseError(
            f"{zip_path}: no scikit-learn version found (no scikit_learn-*.dist-info, no sklearn/__init__.py); "
            "is this the dependencies layer? Build it with `make deps-layer`"
        )
    if len({py for py, _ in tags}) == 1:
        info["python"] = next(iter(tags))[0]
    if len({arch for _, arch in tags}) == 1:
        info["arch"] = {"aarch64": "arm64"}.get(next(iter(tags))[1], next(iter(tags))[1])
    return info


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
            want, have = _python_minor(want), _python_minor(have)
        if (want is None or have is None) and lib == "scikit-learn":
            problems.append(
                f"scikit-learn version unknown ({'model' if want is None else 'dependencies'} layer "
                "description has none); republish that layer with this tool"
            )
        elif want is not None and have is not None and want != have:
            problems.append(f"{lib}: model built with {want}, dependencies layer has {have}")
    return problems


# --------------------------------------------------------------------------- publishing


def _upload_to_s3(path: Path, bucket: str, key: str, s3: Any) -> None:
    from tqdm import tqdm

    size = path.stat().st_size
    with tqdm(
        total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"upload {path.name}", mininterval=0.5
    ) as bar:
        s3.upload_file(str(path), bucket, key, Callback=bar.update)


def _code_location(path: Path, bucket: str | None, key: str, s3: Any, what: str) -> dict[str, Any]:
    """``{"ZipFile": ...}`` for a small zip, else upload it and return ``{"S3Bucket", "S3Key"}``."""
    size = path.stat().st_size
    if size <= DIRECT_UPLOAD_LIMIT:
        return {"ZipFile": path.read_bytes()}
    if not bucket:
        raise ReleaseError(
            f"{what} {path} is {size:,} bytes, over Lambda's {DIRECT_UPLOAD_LIMIT:,}-byte direct upload limit; "
            "set [layers] artifact_bucket in deploy.toml to an S3 bucket in the function's region"
        )
    _upload_to_s3(path, bucket, key, s3)
    return {"S3Bucket": bucket, "S3Key": key}


def publish_layer(
    zip_path: Path,
    layer_name: str,
    description: str,
    runtime: str,
    arch: str,
    bucket: str | None,
    *,
    clients: Clients,
) -> dict[str, Any]:
    """Publish a layer version, inline when the zip is ≤ 50 MB, else through S3.

    Parameters
    ----------
    zip_path : Path
        The layer zip.
    layer_name : str
        Layer name; each call adds an immutable version to it.
    description : str
        At most 256 characters (:func:`format_description`).
    runtime, arch : str
        Recorded as the layer's only compatible runtime and architecture.
    bucket : str or None
        S3 bucket for zips over :data:`DIRECT_UPLOAD_LIMIT` (key
        ``layers/NAME/SHA256.zip``, uploaded with a progress bar).
    clients : Clients

    Returns
    -------
    dict
        The ``PublishLayerVersion`` response (``LayerVersionArn``, ``Version``, ...).

    Raises
    ------
    ReleaseError
        If the zip is too large and no bucket is set, or Lambda stored other bytes.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise ReleaseError(f"{zip_path} does not exist; build it first (make deps-layer / make model-layer)")
    if len(description) > DESCRIPTION_LIMIT:
        raise ReleaseError(f"layer description is {len(description)} characters; Lambda allows {DESCRIPTION_LIMIT}")
    sha = sha256_hex(zip_path)
    content = _code_location(zip_path, bucket, f"layers/{layer_name}/{sha}.zip", clients.s3, "layer zip")
    response = clients.lambda_.publish_layer_version(
        LayerName=layer_name,
        Description=description,
        Content=content,
        CompatibleRuntimes=[runtime],
        CompatibleArchitectures=[arch],
    )
    stored = response.get("Content", {}).get("CodeSha256")
    expected = base64.b64encode(bytes.fromhex(sha)).decode("ascii")
    if stored and stored != expected:
        raise ReleaseError(
            f"Lambda stored {response['LayerVersionArn']} with CodeSha256 {stored}, but {zip_path} has {expected}; "
            "delete that version (aws lambda delete-layer-version) and publish again"
        )
    return response


@dataclass
class PublishResult:
    """What a ``publish_*_layer`` call did.

    Attributes
    ----------
    layer_arn : str
        The layer version now carrying the zip.
    reused : bool
        True when a version with this exact description (same sha256, same library
        versions, same runtime and architecture) already existed, so nothing was published.
    release : Release or None
        The release that moved the function to it (model layer with a function only).
    """

    layer_arn: str
    reused: bool = False
    release: Release | None = None


def publish_layer_once(
    zip_path: Path,
    layer_name: str,
    description: str,
    runtime: str,
    arch: str,
    bucket: str | None,
    *,
    clients: Clients,
) -> PublishResult:
    """:func:`publish_layer`, unless a version with the same description already exists.

    The description holds the zip's sha256, so publishing the same zip twice reuses the
    first version instead of adding an identical one.
    """
    for version in _paginate(clients.lambda_, "list_layer_versions", "LayerVersions", LayerName=layer_name):
        if (
            version.get("Description") == description
            and runtime in version.get("CompatibleRuntimes", [])
            and arch in version.get("CompatibleArchitectures", [])
        ):
            return PublishResult(version["LayerVersionArn"], reused=True)
    response = publish_layer(zip_path, layer_name, description, runtime, arch, bucket, clients=clients)
    return PublishResult(response["LayerVersionArn"])


def publish_deps_layer(settings: Settings, zip_path: Path = DEFAULT_DEPS_ZIP, *, clients: Clients) -> PublishResult:
    """Publish the dependencies layer; its description lists the library versions it serves.

    The zip's extension modules must be built for ``[function] runtime`` and
    ``architecture``. The function is not changed: ``make deploy`` attaches the newest
    dependencies layer version.

    Returns
    -------
    PublishResult
        The layer version ARN (an existing one if this very zip was published before).

    Raises
    ------
    ReleaseError
        If the zip's Python or CPU differ from the settings, or it has no scikit-learn.
    """
    fn = settings.function
    info = inspect_deps_zip(zip_path)
    want_python = fn.runtime.removeprefix("python")
    if info.get("python", want_python) != want_python:
        raise ReleaseError(
            f"{zip_path} holds extension modules for Python {info['python']}, but [function] runtime is "
            f"{fn.runtime}; rebuild with `make deps-layer RUNTIME={fn.runtime}` or change the runtime in deploy.toml"
        )
    if info.get("arch", fn.architecture) != fn.architecture:
        raise ReleaseError(
            f"{zip_path} holds {info['arch']} extension modules, but [function] architecture is "
            f"{fn.architecture}; rebuild with `make deps-layer ARCH={fn.architecture}` or change deploy.toml"
        )
    fields = {"python": want_python, **{lib: info[lib] for lib in TRACKED_LIBRARIES if lib in info}}
    description = format_description("deps", {**fields, "sha256": sha256_hex(zip_path)})
    return publish_layer_once(
        zip_path,
        settings.layers.dependencies_name,
        description,
        fn.runtime,
        fn.architecture,
        settings.layers.artifact_bucket,
        clients=clients,
    )


def model_description(manifest: Manifest, zip_sha256: str) -> str:
    """The model layer's description: name, version, library versions, the zip's sha256."""
    libraries = manifest["libraries"]
    fields = {"name": manifest["name"], "version": manifest["version"]}
    if "python" in libraries:
        fields["python"] = _python_minor(libraries["python"])
    fields.update({lib: libraries[lib] for lib in TRACKED_LIBRARIES if lib in libraries})
    return format_description("model", {**fields, "sha256": zip_sha256})


# --------------------------------------------------------------------------- function state


def get_configuration(lam: Any, name: str, qualifier: str | None = None) -> dict[str, Any] | None:
    """The function's (or a version's / alias's) configuration, ``None`` if it does not exist."""
    try:
        kwargs = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
        return lam.get_function_configuration(**kwargs)
    except Exception as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def get_alias_version(lam: Any, name: str, alias: str) -> str | None:
    """The version the alias points at, ``None`` if there is no such alias."""
    try:
        return lam.get_alias(FunctionName=name, Name=alias)["FunctionVersion"]
    except Exception as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def layer_arns(config: dict[str, Any] | None) -> list[str]:
    """The layer version ARNs of a configuration, in order."""
    return [layer["Arn"] for layer in (config or {}).get("Layers", [])]


def find_layer(config: dict[str, Any] | None, name: str) -> str | None:
    """The ARN of the layer called ``name`` in a configuration, if attached."""
    return next((arn for arn in layer_arns(config) if _layer_name(arn) == name), None)


def replace_layers(current: list[str], by_name: dict[str, str]) -> list[str]:
    """Swap the ARNs whose layer name is a key of ``by_name``; keep every other layer.

    Layers keep their positions (Lambda extracts them into ``/opt`` in list order);
    a named layer not yet attached is appended, in ``by_name`` order.
    """
    out: list[str] = []
    placed: set[str] = set()
    for arn in current:
        name = _layer_name(arn)
        if name in by_name:
            if name not in placed:
                out.append(by_name[name])
                placed.add(name)
        else:
            out.append(arn)
    out += [arn for name, arn in by_name.items() if name not in placed]
    if len(out) > MAX_LAYERS:
        raise ReleaseError(f"the function would have {len(out)} layers; Lambda allows {MAX_LAYERS}: {out}")
    return out


def call_with_retry(call: Callable[..., Any], lam: Any, name: str, **kwargs: Any) -> Any:
    """Run an update, retrying while another update of the function is in progress.

    ``ResourceConflictException`` means the function is still applying an earlier
    change. Wait for it to settle and back off (2, 4, 8, 16 s), at most
    :data:`RETRY_ATTEMPTS` tries in all; any other error is raised at once.

    Raises
    ------
    ReleaseError
        If the function is still busy after the last try.
    """
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return call(**kwargs)
        except Exception as exc:
            if _error_code(exc) != "ResourceConflictException":
                raise
            if attempt == RETRY_ATTEMPTS - 1:
                raise ReleaseError(
                    f"function {name} is still busy with another update after {RETRY_ATTEMPTS} tries "
                    f"({exc}); check `aws lambda get-function-configuration --function-name {name}` and run again"
                ) from None
            delay = RETRY_BASE_DELAY_S * 2**attempt
            print(f"  {name}: an update is in progress; waiting {delay:g}s, then retrying", file=sys.stderr)
            with contextlib.suppress(ReleaseError):  # a failed earlier update does not block the next
                wait_updated(lam, name)
            _sleep(delay)
    raise AssertionError("unreachable")


def _waiter(lam: Any, preferred: str, fallback: str) -> Any:
    names = getattr(lam, "waiter_names", [])
    return lam.get_waiter(preferred if preferred in names else fallback)


def wait_updated(lam: Any, name: str) -> None:
    """Block until the function's last update has finished (``function_updated_v2``).

    Raises
    ------
    ReleaseError
        If the update failed or did not finish in the waiter's five minutes.
    """
    from botocore.exceptions import WaiterError

    try:
        _waiter(lam, "function_updated_v2", "function_updated").wait(FunctionName=name)
    except WaiterError as exc:
        config = get_configuration(lam, name) or {}
        reason = config.get("LastUpdateStatusReason", str(exc))
        raise ReleaseError(f"function {name}: the update did not complete ({reason})") from None


def wait_active(lam: Any, name: str) -> None:
    """Block until a new function is ``Active`` (``function_active_v2``)."""
    from botocore.exceptions import WaiterError

    try:
        _waiter(lam, "function_active_v2", "function_active").wait(FunctionName=name)
    except WaiterError as exc:
        config = get_configuration(lam, name) or {}
        raise ReleaseError(f"function {name} did not become active ({config.get('StateReason', exc)})") from None


# --------------------------------------------------------------------------- releases


@dataclass
class Release:
    """One move of the alias, as recorded in the history file."""

    action: str
    function: str
    alias: str
    version: str
    model_layer_arn: str
    model_name: str | None
    model_version: str | None
    previous_version: str | None
    previous_model_layer_arn: str | None
    changed: bool = True
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def append_history(path: Path, release: Release) -> None:
    """Append the release to the local JSON Lines history file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(release), sort_keys=True) + "\n")


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every release in the local history file, oldest first (``[]`` if there is none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _get_layer_version(lam: Any, arn: LayerArn) -> dict[str, Any]:
    # GetLayerVersion by name (or layer ARN) and number; moto lacks GetLayerVersionByArn.
    try:
        return lam.get_layer_version(LayerName=arn.layer_arn, VersionNumber=arn.version)
    except Exception as exc:
        code = _error_code(exc)
        if code == "ResourceNotFoundException":
            raise ReleaseError(
                f"layer version {arn} does not exist (never published, or deleted); `make releases` lists "
                "the model layer's versions"
            ) from None
        if code == "AccessDeniedException":
            raise ReleaseError(
                f"not allowed to read layer version {arn} ({exc}); check its layer permissions"
            ) from None
        raise


def check_layer(
    settings: Settings, config: dict[str, Any], arn: LayerArn, *, kind: str, lam: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check that a layer version exists and suits the function.

    Parameters
    ----------
    settings : Settings
    config : dict
        The function's configuration, or the one it is about to get: ``FunctionName``,
        ``Runtime`` and ``Architectures`` are read. The region is the client's.
    arn : LayerArn
    kind : {"model", "deps"}
        Which layer it must be: its name must be ``[layers] model_name`` or
        ``dependencies_name``, and its description must be of that kind.
    lam : botocore client

    Returns
    -------
    tuple
        The ``GetLayerVersion`` response and the parsed description fields.

    Raises
    ------
    ReleaseError
        Listing every reason the layer does not fit.
    """
    expected_name = settings.layers.model_name if kind == "model" else settings.layers.dependencies_name
    key = "model_name" if kind == "model" else "dependencies_name"
    if arn.name != expected_name:
        raise ReleaseError(
            f"{arn} is layer {arn.name!r}, not the {kind} layer {expected_name!r} ([layers] {key} in deploy.toml)"
        )
    region = lam.meta.region_name
    if arn.region != region:
        raise ReleaseError(f"{arn} is in {arn.region}; function {config['FunctionName']} is in {region}")
    version = _get_layer_version(arn=arn, lam=lam)
    runtime = config.get("Runtime")
    arch = (config.get("Architectures") or ["x86_64"])[0]
    problems = []
    if runtime not in version.get("CompatibleRuntimes", []):
        problems.append(
            f"its compatible runtimes {version.get('CompatibleRuntimes', [])} do not include the function's {runtime}"
        )
    if arch not in version.get("CompatibleArchitectures", []):
        problems.append(
            f"its compatible architectures {version.get('CompatibleArchitectures', [])} do not include "
            f"the function's {arch}"
        )
    found_kind, fields = parse_description(version.get("Description"))
    if found_kind != kind:
        problems.append(f"its description {version.get('Description', '')!r} is not a {kind} layer description")
    if problems:
        raise ReleaseError(
            f"layer version {arn} does not fit function {config['FunctionName']}: " + "; ".join(problems)
        )
    return version, fields


def _deps_fields(settings: Settings, config: dict[str, Any], lam: Any) -> dict[str, str]:
    arn = find_layer(config, settings.layers.dependencies_name)
    if arn is None:
        raise ReleaseError(
            f"function {config['FunctionName']} has no {settings.layers.dependencies_name} layer attached, so the "
            "model's library versions cannot be checked; run `make publish-deps-layer deploy` first"
        )
    return check_layer(settings, config, LayerArn.parse(arn), kind="deps", lam=lam)[1]


def _release_description(action: str, model: dict[str, str], layer_arn: str) -> str:
    try:
        return format_description(
            action, {"model": model.get("name", "?"), "version": model.get("version", "?"), "layer": layer_arn}
        )
    except ReleaseError:
        return format_description(action, {"layer": layer_arn})


def _tag_value(text: str) -> str:
    """Lambda tag values allow letters, digits, spaces and ``_ . : / = + - @``, 256 at most."""
    return re.sub(r"[^\w .:/=+@-]", "_", text)[:256]


def _move_alias(lam: Any, settings: Settings, version: str, description: str) -> None:
    fn = settings.function
    if get_alias_version(lam, fn.name, fn.alias) is None:
        lam.create_alias(FunctionName=fn.name, Name=fn.alias, FunctionVersion=version, Description=description)
    else:
        lam.update_alias(FunctionName=fn.name, Name=fn.alias, FunctionVersion=version, Description=description)


def _publish_and_point(
    settings: Settings, clients: Clients, *, action: str, model_arn: str, model: dict[str, str]
) -> tuple[str, str | None, str | None]:
    """Publish a version of the settled function and move the alias; tag the function.

    Returns the new version, and the version and model layer ARN the alias had before.
    """
    lam, fn = clients.lambda_, settings.function
    previous = get_alias_version(lam, fn.name, fn.alias)
    previous_model = (
        find_layer(get_configuration(lam, fn.name, previous), settings.layers.model_name) if previous else None
    )
    latest = get_configuration(lam, fn.name) or {}
    description = _release_description(action, model, model_arn)
    published = call_with_retry(
        lam.publish_version,
        lam,
        fn.name,
        FunctionName=fn.name,
        Description=description,
        **({"CodeSha256": latest["CodeSha256"]} if latest.get("CodeSha256") else {}),
    )
    version = published["Version"]
    _move_alias(lam, settings, version, description)
    lam.tag_resource(
        Resource=latest.get("FunctionArn") or published["FunctionArn"].rsplit(":", 1)[0],
        Tags={
            "model-name": _tag_value(model.get("name", "unknown")),
            "model-version": _tag_value(model.get("version", "unknown")),
            "model-layer-arn": model_arn,
            "release-version": version,
            "release-action": action,
            "released-at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return version, previous, previous_model


def relink(settings: Settings, layer_arn: str, *, clients: Clients, action: str = "relink") -> Release:
    """Switch the function's model layer to exactly ``layer_arn`` and move the alias to it.

    Checks first, changing nothing on failure: the ARN's format, that the version
    exists, that it is the model layer, that it lists the function's runtime and
    architecture, and that its library versions (scikit-learn above all) equal those
    of the dependencies layer attached to the function. Then rewrites the layer list
    (only the model layer's ARN changes), waits for the update, publishes a version,
    moves the alias, tags the function and appends to the history file.

    Parameters
    ----------
    settings : Settings
    layer_arn : str
        ``arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N``, forward or back.
    clients : Clients
    action : str
        Recorded in the history and the version description.

    Returns
    -------
    Release
        ``changed`` is false when the alias already served that layer.

    Raises
    ------
    ReleaseError
        Why the layer cannot be used, or why the function cannot be updated.
    """
    lam, fn = clients.lambda_, settings.function
    arn = LayerArn.parse(layer_arn)
    config = get_configuration(lam, fn.name)
    if config is None:
        raise ReleaseError(f"function {fn.name} does not exist; create it with `make deploy`")
    _, model = check_layer(settings, config, arn, kind="model", lam=lam)
    problems = library_mismatches(model, _deps_fields(settings, config, lam))
    if problems:
        raise ReleaseError(
            f"layer version {arn} cannot serve with the function's dependencies layer: " + "; ".join(problems)
        )
    live_version = get_alias_version(lam, fn.name, fn.alias)
    live_config = get_configuration(lam, fn.name, live_version) if live_version else None
    new_layers = replace_layers(layer_arns(config), {settings.layers.model_name: str(arn)})
    if live_config is not None and new_layers == layer_arns(config) == layer_arns(live_config):
        return Release(
            action,
            fn.name,
            fn.alias,
            live_version or "",
            str(arn),
            model.get("name"),
            model.get("version"),
            live_version,
            str(arn),
            changed=False,
        )
    wait_updated(lam, fn.name)
    if new_layers != layer_arns(config):
        call_with_retry(lam.update_function_configuration, lam, fn.name, FunctionName=fn.name, Layers=new_layers)
        wait_updated(lam, fn.name)
    version, previous, previous_model = _publish_and_point(
        settings, clients, action=action, model_arn=str(arn), model=model
    )
    release = Release(
        action, fn.name, fn.alias, version, str(arn), model.get("name"), model.get("version"), previous, previous_model
    )
    append_history(settings.history.file, release)
    return release


def publish_model_layer(settings: Settings, zip_path: Path = DEFAULT_MODEL_ZIP, *, clients: Clients) -> PublishResult:
    """Verify, publish and release a model layer zip.

    Every artifact's sha256 must equal the manifest's. If the function exists, the
    model's library versions are checked against its dependencies layer *before*
    publishing, then :func:`relink` moves the function and alias to the new version.
    Without a function the layer is only published (``make deploy`` attaches it).
    A zip published before is not published again: its version is relinked.

    Raises
    ------
    ReleaseError
        On an unverified zip, a library mismatch, or a failed release step.
    """
    lam, fn = clients.lambda_, settings.function
    manifest = verify_model_zip(zip_path)
    description = model_description(manifest, sha256_hex(zip_path))
    config = get_configuration(lam, fn.name)
    if config is not None:
        problems = library_mismatches(parse_description(description)[1], _deps_fields(settings, config, lam))
        if problems:
            raise ReleaseError(
                f"model {manifest['name']} {manifest['version']} cannot run on function {fn.name}'s dependencies "
                "layer: " + "; ".join(problems) + ". Retrain with the pinned requirements, or publish and deploy "
                "a dependencies layer built from the model's versions"
            )
    result = publish_layer_once(
        zip_path,
        settings.layers.model_name,
        description,
        fn.runtime,
        fn.architecture,
        settings.layers.artifact_bucket,
        clients=clients,
    )
    if config is not None:
        result.release = relink(settings, result.layer_arn, clients=clients, action="publish-model-layer")
    return result


def rollback(settings: Settings, *, clients: Clients) -> Release:
    """Relink to the model layer that was live before the current one.

    The record is the function's published versions (they survive a lost laptop):
    every release publishes a version with its layer list, and versions are numbered
    in publication order. Starting below the version the alias points at, the first
    version whose model layer differs from the live one is the previous release;
    its layer version is relinked (and checked) like any other. Rolling back twice
    therefore returns to where you started.

    Raises
    ------
    ReleaseError
        If nothing is live, or no earlier version used another model layer.
    """
    lam, fn = clients.lambda_, settings.function
    live = get_alias_version(lam, fn.name, fn.alias)
    if live is None or not live.isdigit():
        raise ReleaseError(f"alias {fn.alias} of {fn.name} does not point at a published version; nothing to roll back")
    live_model = find_layer(get_configuration(lam, fn.name, live), settings.layers.model_name)
    versions = [
        v
        for v in _paginate(lam, "list_versions_by_function", "Versions", FunctionName=fn.name)
        if v["Version"].isdigit() and int(v["Version"]) < int(live)
    ]
    for version in sorted(versions, key=lambda v: int(v["Version"]), reverse=True):
        earlier = find_layer(version, settings.layers.model_name)
        if earlier and earlier != live_model:
            return relink(settings, earlier, clients=clients, action="rollback")
    raise ReleaseError(
        f"no version of {fn.name} before {live} used another model layer than {live_model}; "
        "relink explicitly: make relink LAYER_ARN=... (see make releases)"
    )


def releases(settings: Settings, *, clients: Clients) -> list[dict[str, Any]]:
    """Every model layer version, newest first, marking the one the alias serves.

    Returns
    -------
    list of dict
        ``version``, ``arn``, ``created``, ``model``, ``model_version``,
        ``scikit-learn``, ``sha256`` (first 12 hex digits), ``live`` (bool).
    """
    lam, fn = clients.lambda_, settings.function
    live_arn = None
    live_version = get_alias_version(lam, fn.name, fn.alias) if get_configuration(lam, fn.name) else None
    if live_version:
        live_arn = find_layer(get_configuration(lam, fn.name, live_version), settings.layers.model_name)
    rows = []
    for layer in _paginate(lam, "list_layer_versions", "LayerVersions", LayerName=settings.layers.model_name):
        _, fields = parse_description(layer.get("Description"))
        rows.append(
            {
                "version": layer["Version"],
                "arn": layer["LayerVersionArn"],
                "created": str(layer.get("CreatedDate", ""))[:19],
                "model": fields.get("name", "?"),
                "model_version": fields.get("version", "?"),
                "scikit-learn": fields.get("scikit-learn", "?"),
                "sha256": fields.get("sha256", "?")[:12],
                "live": layer["LayerVersionArn"] == live_arn,
            }
        )
    return sorted(rows, key=lambda row: row["version"], reverse=True)


def format_releases(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`releases`; the live row is marked ``*``."""
    if not rows:
        return "no model layer versions published yet (make publish-model-layer)"
    columns = ("live", "version", "model", "model_version", "scikit-learn", "sha256", "created", "arn")
    cells = [[("*" if row["live"] else "") if c == "live" else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


# --------------------------------------------------------------------------- deploy


@dataclass
class DeployResult:
    """What :func:`deploy` changed; empty lists mean nothing needed changing."""

    function_changes: list[str]
    version: str | None
    mapping_changes: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.function_changes or self.version or self.mapping_changes)


def _latest_layer_version(lam: Any, name: str) -> str | None:
    versions = list(_paginate(lam, "list_layer_versions", "LayerVersions", LayerName=name))
    return max(versions, key=lambda v: v["Version"])["LayerVersionArn"] if versions else None


def _desired_configuration(settings: Settings, layers: list[str]) -> dict[str, Any]:
    fn = settings.function
    return {
        "Runtime": fn.runtime,
        "Role": fn.role_arn,
        "Handler": fn.handler,
        "MemorySize": fn.memory_mb,
        "Timeout": fn.timeout_s,
        "Environment": {"Variables": dict(fn.environment)},
        "Layers": layers,
    }


def _configuration_diff(config: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    current = {
        "Runtime": config.get("Runtime"),
        "Role": config.get("Role"),
        "Handler": config.get("Handler"),
        "MemorySize": config.get("MemorySize"),
        "Timeout": config.get("Timeout"),
        "Environment": {"Variables": (config.get("Environment") or {}).get("Variables", {})},
        "Layers": layer_arns(config),
    }
    return [f"{key}: {current[key]!r} -> {desired[key]!r}" for key in desired if current[key] != desired[key]]


def _code_diff(config: dict[str, Any], code_sha: str, arch: str) -> list[str]:
    changes = []
    if config.get("CodeSha256") != code_sha:
        changes.append(f"code: {config.get('CodeSha256')} -> {code_sha}")
    if (config.get("Architectures") or ["x86_64"]) != [arch]:
        changes.append(f"Architectures: {config.get('Architectures')} -> {[arch]}")
    return changes


def _mapping_options(source: EventSource) -> dict[str, Any]:
    return {
        "BatchSize": source.batch_size,
        "MaximumBatchingWindowInSeconds": source.maximum_batching_window_s,
        "ParallelizationFactor": source.parallelization_factor,
        "BisectBatchOnFunctionError": source.bisect_batch_on_function_error,
        "MaximumRetryAttempts": source.maximum_retry_attempts,
        "MaximumRecordAgeInSeconds": source.maximum_record_age_s,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": source.on_failure_destination_arn}},
        "Enabled": source.enabled,
    }


def _mapping_diff(mapping: dict[str, Any], options: dict[str, Any]) -> list[str]:
    current = {key: mapping.get(key) for key in options}
    current["Enabled"] = mapping.get("State") in ("Enabled", "Enabling", "Creating")
    destination = (mapping.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
    current["DestinationConfig"] = {"OnFailure": {"Destination": destination}}
    return [f"{key}: {current[key]!r} -> {options[key]!r}" for key in options if current[key] != options[key]]


def _wait_mapping_settled(lam: Any, uuid: str, attempts: int = 30) -> None:
    """Lambda refuses to update a mapping while it is Creating/Updating/Enabling/Disabling."""
    for _ in range(attempts):
        state = lam.get_event_source_mapping(UUID=uuid).get("State")
        if state in ("Enabled", "Disabled"):
            return
        _sleep(2)
    raise ReleaseError(f"event source mapping {uuid} stayed in state {state}; run `make deploy` again later")


def deploy_mappings(settings: Settings, alias_arn: str, *, clients: Clients) -> tuple[list[str], list[str]]:
    """Create or update one event source mapping per ``[[event_sources]]`` entry.

    Mappings invoke the alias; only mappings of (stream, alias) are managed, and a
    mapping is only updated when an option differs. ``StartingPosition`` cannot be
    changed on an existing mapping: a difference is reported, not applied.

    Returns
    -------
    tuple of list of str
        The changes made, and warnings.
    """
    lam = clients.lambda_
    changes, warnings = [], []
    for source in settings.event_sources:
        options = _mapping_options(source)
        existing = list(
            _paginate(
                lam,
                "list_event_source_mappings",
                "EventSourceMappings",
                EventSourceArn=source.source_arn,
                FunctionName=alias_arn,
            )
        )
        if not existing:
            extra: dict[str, Any] = {"StartingPosition": source.starting_position}
            if source.starting_position_timestamp is not None:
                extra["StartingPositionTimestamp"] = source.starting_position_timestamp
            created = lam.create_event_source_mapping(
                EventSourceArn=source.source_arn, FunctionName=alias_arn, **extra, **options
            )
            changes.append(f"created mapping {created['UUID']}: {source.source_arn} -> {alias_arn}")
            continue
        if len(existing) > 1:
            warnings.append(
                f"{len(existing)} mappings from {source.source_arn} to {alias_arn}; updating "
                f"{existing[0]['UUID']} only. Delete the others: each delivers every record"
            )
        mapping = existing[0]
        if mapping.get("StartingPosition") not in (None, source.starting_position):
            warnings.append(
                f"mapping {mapping['UUID']} starts at {mapping['StartingPosition']}, deploy.toml says "
                f"{source.starting_position}; Lambda cannot change that on an existing mapping (delete it to recreate)"
            )
        diff = _mapping_diff(mapping, options)
        if diff:
            _wait_mapping_settled(lam, mapping["UUID"])
            lam.update_event_source_mapping(UUID=mapping["UUID"], FunctionName=alias_arn, **options)
            changes.append(f"updated mapping {mapping['UUID']} ({source.source_arn}): " + "; ".join(diff))
    return changes, warnings


def deploy(
    settings: Settings,
    function_zip: Path = DEFAULT_FUNCTION_ZIP,
    deps_layer_arn: str | None = None,
    model_layer_arn: str | None = None,
    *,
    clients: Clients,
) -> DeployResult:
    """Create or update the function, its alias and its event source mappings. Idempotent.

    Parameters
    ----------
    settings : Settings
    function_zip : Path
        The function code (``make function-zip``).
    deps_layer_arn : str, optional
        Default: the newest version of ``[layers] dependencies_name``.
    model_layer_arn : str, optional
        Default: the model layer the function already has (releases move it, not
        deploy), else the newest version of ``[layers] model_name``.
    clients : Clients

    Returns
    -------
    DeployResult
        Nothing is created, updated or published when the function, the alias's
        version and the mappings already match: a second run makes no change.

    Raises
    ------
    ReleaseError
        If a layer is missing or does not fit, or an update fails.
    """
    lam, fn = clients.lambda_, settings.function
    function_zip = Path(function_zip)
    if not function_zip.is_file():
        raise ReleaseError(f"{function_zip} does not exist; build it with `make function-zip`")
    code_sha = code_sha256(function_zip)
    config = get_configuration(lam, fn.name)

    model_arn = model_layer_arn or find_layer(config, settings.layers.model_name)
    model_arn = model_arn or _latest_layer_version(lam, settings.layers.model_name)
    deps_arn = deps_layer_arn or _latest_layer_version(lam, settings.layers.dependencies_name)
    if deps_arn is None:
        raise ReleaseError(f"no {settings.layers.dependencies_name} layer published yet: run `make publish-deps-layer`")
    if model_arn is None:
        raise ReleaseError(f"no {settings.layers.model_name} layer published yet: run `make publish-model-layer`")
    # Check both layers against the function as it will be (runtime, architecture, region).
    target = {"FunctionName": fn.name, "Runtime": fn.runtime, "Architectures": [fn.architecture]}
    _, deps = check_layer(settings, target, LayerArn.parse(deps_arn), kind="deps", lam=lam)
    _, model = check_layer(settings, target, LayerArn.parse(model_arn), kind="model", lam=lam)
    problems = library_mismatches(model, deps)
    if problems:
        raise ReleaseError(
            f"model layer {model_arn} cannot run on dependencies layer {deps_arn}: " + "; ".join(problems)
        )

    layers = replace_layers(
        layer_arns(config), {settings.layers.dependencies_name: deps_arn, settings.layers.model_name: model_arn}
    )
    desired = _desired_configuration(settings, layers)
    code_key = f"functions/{fn.name}/{sha256_hex(function_zip)}.zip"  # only used for zips over 50 MB
    changes: list[str] = []
    if config is None:
        code = _code_location(
            function_zip,
            settings.layers.artifact_bucket,
            code_key,
            clients.s3,
            "function zip",
        )
        lam.create_function(
            FunctionName=fn.name,
            Code=code,
            Architectures=[fn.architecture],
            Description="stream inference (tools/release.py deploy)",
            Publish=False,
            **desired,
        )
        wait_active(lam, fn.name)
        changes.append(f"created function {fn.name}")
    else:
        wait_updated(lam, fn.name)
        code_changes = _code_diff(config, code_sha, fn.architecture)
        if code_changes:
            code = _code_location(
                function_zip,
                settings.layers.artifact_bucket,
                code_key,
                clients.s3,
                "function zip",
            )
            call_with_retry(
                lam.update_function_code, lam, fn.name, FunctionName=fn.name, Architectures=[fn.architecture], **code
            )
            wait_updated(lam, fn.name)
            changes += code_changes
        config_changes = _configuration_diff(config, desired)
        if config_changes:
            call_with_retry(lam.update_function_configuration, lam, fn.name, FunctionName=fn.name, **desired)
            wait_updated(lam, fn.name)
            changes += config_changes

    live = get_alias_version(lam, fn.name, fn.alias)
    live_config = get_configuration(lam, fn.name, live) if live else None
    stale = live_config is None or bool(
        _code_diff(live_config, code_sha, fn.architecture) or _configuration_diff(live_config, desired)
    )
    version = None
    if changes or stale:
        version, previous, previous_model = _publish_and_point(
            settings, clients, action="deploy", model_arn=model_arn, model=model
        )
        append_history(
            settings.history.file,
            Release(
                "deploy",
                fn.name,
                fn.alias,
                version,
                model_arn,
                model.get("name"),
                model.get("version"),
                previous,
                previous_model,
            ),
        )
    function_arn = (get_configuration(lam, fn.name) or {})["FunctionArn"]
    mapping_changes, warnings = deploy_mappings(settings, f"{function_arn}:{fn.alias}", clients=clients)
    return DeployResult(changes, version, mapping_changes, warnings)


# --------------------------------------------------------------------------- CLI


def _print_release(release: Release) -> None:
    if not release.changed:
        print(
            f"{release.function}:{release.alias} already serves {release.model_layer_arn} (version {release.version})"
        )
        return
    print(
        f"{release.function}:{release.alias} -> version {release.version}: model {release.model_name} "
        f"{release.model_version} ({release.model_layer_arn}); was version {release.previous_version} "
        f"({release.previous_model_layer_arn})"
    )


def main(argv: list[str] | None = None, clients: Clients | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.release", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, help="settings file (default: $DEPLOY_SETTINGS or deploy.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish-deps-layer", help="publish the dependencies layer zip")
    p.add_argument("--zip", type=Path, default=DEFAULT_DEPS_ZIP)
    p = sub.add_parser("publish-model-layer", help="publish the model layer zip and release it")
    p.add_argument("--zip", type=Path, default=DEFAULT_MODEL_ZIP)
    p = sub.add_parser("relink", help="switch the model layer to exactly this layer version")
    p.add_argument("--layer-arn", required=True)
    sub.add_parser("rollback", help="relink to the previously live model layer")
    sub.add_parser("releases", help="list model layer versions, marking the live one")
    p = sub.add_parser("deploy", help="create or update the function, alias and event source mappings")
    p.add_argument("--function-zip", type=Path, default=DEFAULT_FUNCTION_ZIP)
    p.add_argument("--deps-layer-arn", help="default: newest dependencies layer version")
    p.add_argument("--model-layer-arn", help="default: the model layer the function has, else the newest")
    args = parser.parse_args(argv)

    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    try:
        settings = load_settings(args.settings)
        clients = clients or Clients.from_session()
        if args.command == "publish-deps-layer":
            result = publish_deps_layer(settings, args.zip, clients=clients)
            print(f"{'already published as' if result.reused else 'published'} {result.layer_arn}")
            print("attach it with `make deploy` (it attaches the newest dependencies layer version)")
        elif args.command == "publish-model-layer":
            result = publish_model_layer(settings, args.zip, clients=clients)
            print(f"{'already published as' if result.reused else 'published'} {result.layer_arn}")
            if result.release is None:
                print(f"function {settings.function.name} does not exist yet: `make deploy` attaches this layer")
            else:
                _print_release(result.release)
        elif args.command == "relink":
            _print_release(relink(settings, args.layer_arn, clients=clients))
        elif args.command == "rollback":
            _print_release(rollback(settings, clients=clients))
        elif args.command == "releases":
            print(format_releases(releases(settings, clients=clients)))
        elif args.command == "deploy":
            result = deploy(settings, args.function_zip, args.deps_layer_arn, args.model_layer_arn, clients=clients)
            for line in result.function_changes + result.mapping_changes:
                print(f"  {line}")
            for line in result.warnings:
                print(f"warning: {line}", file=sys.stderr)
            if result.version:
                print(f"{settings.function.name}:{settings.function.alias} -> version {result.version}")
            if not result.changed:
                print(f"{settings.function.name} is up to date; nothing changed")
    except (ReleaseError, SettingsError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    except NoRegionError:
        print(
            f"{args.command}: no AWS region configured; set AWS_DEFAULT_REGION, or region in your AWS profile",
            file=sys.stderr,
        )
        return 2
    except NoCredentialsError:
        print(f"{args.command}: no AWS credentials found; set AWS_PROFILE or run `aws configure`", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"{args.command}: AWS refused: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
