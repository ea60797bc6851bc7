"""Models too big for a layer: when the artifacts go to S3, and the model layer that is left.

Lambda allows the function and all its layers 262,144,000 bytes unzipped (docs/aws-notes.md
§3). When the function zip, the dependencies layer and the model layer add up to more, the
model's pipeline artifacts (:func:`artifact_bytes`) leave the layer: ``make check-layers``
accepts that, and ``release.model_artifacts`` uploads them to S3 and publishes
:func:`slim_model_zip`'s layer instead, which
holds the manifest (with ``artifacts_uri`` set), the golden predictions and the custom code:
every file its manifest lists, and nothing else. The function downloads the artifacts into
``/tmp`` at init and verifies each against the manifest's sha256 (``inference.remote_artifacts``).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from inference.manifest import MANIFEST_NAME, Manifest, listed_files, validate_manifest

from layers.model_layer import LAYER_PREFIX
from layers.zipping import write_zip


def read_zip_manifest(model_zip: Path) -> Manifest:
    """The validated manifest of a model layer zip."""
    with zipfile.ZipFile(model_zip) as zf:
        return validate_manifest(json.loads(zf.read(LAYER_PREFIX + MANIFEST_NAME)))


def artifact_bytes(model_zip: Path) -> int:
    """Unzipped bytes of the pipeline artifacts in a model layer zip (0 when they are in S3 already, or
    when the zip has no valid manifest or lacks an artifact: the layer checks report that)."""
    try:
        manifest = read_zip_manifest(model_zip)
        if "artifacts_uri" in manifest:
            return 0
        with zipfile.ZipFile(model_zip) as zf:
            return sum(zf.getinfo(LAYER_PREFIX + step["file"]).file_size for step in manifest["pipeline"])
    except (KeyError, ValueError, zipfile.BadZipFile):  # ManifestError and JSONDecodeError are ValueErrors
        return 0


def slim_model_zip(model_zip: Path, artifacts_uri: str, out: Path) -> Path:
    """A model layer zip whose manifest points at ``artifacts_uri``, without the artifacts.

    It holds the manifest (``artifacts_uri`` added, nothing else changed: the artifacts' sha256
    stay, for the function to verify the downloads), the golden predictions and the custom code.
    """
    manifest = dict(read_zip_manifest(model_zip))
    manifest["artifacts_uri"] = artifacts_uri
    slim = validate_manifest(manifest)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(model_zip) as zf:
        folder = Path(tmp)
        (folder / MANIFEST_NAME).write_text(json.dumps(slim, indent=2) + "\n", encoding="utf-8")
        entries = [(LAYER_PREFIX + MANIFEST_NAME, folder / MANIFEST_NAME)]
        for file, _ in listed_files(slim):
            target = folder / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(LAYER_PREFIX + file))
            entries.append((LAYER_PREFIX + file, target))
        return write_zip(out, entries)
