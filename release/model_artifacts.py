"""Publishing a model too big for a layer: its artifacts to S3, a model layer with just the manifest.

:func:`placement` adds up what the function would carry unzipped (function zip, dependencies
layer, model layer) against Lambda's 262,144,000 bytes (docs/aws-notes.md §3). Over it,
:func:`move_artifacts_to_s3` uploads each pipeline artifact of the model layer zip to
``s3://<[layers] artifact_bucket>/<versioned prefix><file>`` with boto3's transfer manager
(multipart) and writes the layer to publish instead (:func:`layers.remote_model.slim_model_zip`):
the manifest with ``artifacts_uri``, the golden predictions and the custom code.

The prefix is ``models/<[layers] model_name>/<model name>/<model version>/<first 16 hex digits of
the full zip's sha256>/``: a new package never overwrites the objects a published layer points
at, and publishing the same zip again uploads to the same keys and writes the same slim zip, so
it is reused. The execution role may read ``models/<[layers] model_name>/*`` only
(:func:`artifact_prefix`, ``release.role_policy``).
"""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.manifest import sha256_file

from layers.checks import UNZIPPED_LIMIT, unzipped_size
from layers.model_layer import LAYER_PREFIX
from layers.remote_model import artifact_bytes, read_zip_manifest, slim_model_zip
from release.errors import ReleaseError
from release.settings import Settings
from release.upload import upload_to_s3


@dataclass(frozen=True)
class Placement:
    """Where a model's artifacts go, and the sizes (bytes, unzipped) that decided it."""

    #: Function zip + dependencies layer + model layer, as packaged.
    total: int
    #: The model's pipeline artifacts, inside the model layer.
    artifacts: int
    limit: int

    @property
    def in_s3(self) -> bool:
        """The artifacts would push the function over the limit: they go to S3."""
        return self.total > self.limit

    @property
    def fits(self) -> bool:
        """The function fits, once the artifacts are out of the layer when they must be."""
        return self.total - (self.artifacts if self.in_s3 else 0) <= self.limit


def placement(function_zip: Path, deps_zip: Path, model_zip: Path, limit: int = UNZIPPED_LIMIT) -> Placement:
    """Whether the model's artifacts fit in its layer (:class:`Placement`); ``limit`` is Lambda's by default."""
    total = sum(unzipped_size(Path(path)) for path in (function_zip, deps_zip, model_zip))
    return Placement(total, artifact_bytes(model_zip), limit)


def artifact_prefix(settings: Settings) -> str:
    """The key prefix of every model's artifacts in the artifact bucket (what the role may read)."""
    return f"models/{settings.layers.model_name}/"


def versioned_prefix(settings: Settings, model_zip: Path) -> str:
    """``models/<layer name>/<model name>/<version>/<zip sha256[:16]>/`` for this model layer zip."""
    manifest = read_zip_manifest(model_zip)
    return f"{artifact_prefix(settings)}{manifest['name']}/{manifest['version']}/{sha256_file(model_zip)[:16]}/"


def move_artifacts_to_s3(settings: Settings, model_zip: Path, s3: Any, out: Path | None = None) -> tuple[str, Path]:
    """Upload the pipeline artifacts of ``model_zip`` and write the model layer zip that points at them.

    Parameters
    ----------
    settings : Settings
        ``[layers] artifact_bucket`` receives the artifacts.
    model_zip : Path
        The verified model layer zip, artifacts included.
    s3 : boto3 S3 client
    out : Path, optional
        Where the slim zip goes (default: beside ``model_zip``, ``<stem>-s3.zip``).

    Returns
    -------
    (uri, slim zip)
        ``s3://bucket/prefix/`` of the artifacts, and the zip to publish.

    Raises
    ------
    ReleaseError
        No ``[layers] artifact_bucket`` is set.
    """
    bucket = settings.layers.artifact_bucket
    if not bucket:
        raise ReleaseError(
            f"the model's artifacts must go to S3 (they would push {settings.function.name} over Lambda's "
            f"{UNZIPPED_LIMIT:,} bytes unzipped), but [layers] artifact_bucket is not set in deploy.toml: set it "
            "to a bucket in the function's region"
        )
    prefix = versioned_prefix(settings, model_zip)
    manifest = read_zip_manifest(model_zip)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(model_zip) as zf:
        for step in manifest["pipeline"]:
            local = Path(tmp) / step["file"]
            with zf.open(LAYER_PREFIX + step["file"]) as src, open(local, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            upload_to_s3(local, bucket, prefix + step["file"], s3)  # the transfer manager: multipart
            local.unlink()
    uri = f"s3://{bucket}/{prefix}"
    out = out or Path(model_zip).with_name(f"{Path(model_zip).stem}-s3.zip")
    return uri, slim_model_zip(model_zip, uri, out)
