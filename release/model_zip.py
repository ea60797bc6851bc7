"""Verify a model layer zip before it is published: its manifest, and every artifact's sha256."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from inference.manifest import MANIFEST_NAME, Manifest, ManifestError, listed_files, sha256_bytes, validate_manifest

from layers.model_layer import LAYER_PREFIX
from release.errors import ReleaseError


def verify_model_zip(zip_path: Path, prefix: str = LAYER_PREFIX) -> Manifest:
    """Check a model layer zip: a valid manifest, every artifact's sha256 equal to it, and
    nothing else in it.

    Anything else would be mounted under ``/opt`` unverified; a ``python/`` folder, for
    one, is on the function's import path, where its code runs without any pickle.

    Parameters
    ----------
    zip_path : Path
        The layer zip; its files sit under ``model/`` (``/opt/model`` on Lambda).
    prefix : str
        The folder its files sit under: ``candidate/`` for a candidate model layer.

    Returns
    -------
    Manifest
        The validated manifest.

    Raises
    ------
    ReleaseError
        On a missing or invalid manifest, a missing artifact, a sha256 mismatch or a
        file the manifest does not list.
    """
    manifest_member = prefix + MANIFEST_NAME
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = set(zf.namelist())
            if manifest_member not in names:
                raise ReleaseError(f"{zip_path} has no {manifest_member}: build it with `make model-layer`")
            try:
                manifest = validate_manifest(json.loads(zf.read(manifest_member)))
            except (ManifestError, json.JSONDecodeError) as exc:
                raise ReleaseError(f"{zip_path}: {exc}") from None
            for file, sha256 in listed_files(manifest):  # the artifacts and the golden predictions
                member = prefix + file
                if member not in names:
                    raise ReleaseError(f"{zip_path}: the manifest lists {file}, which is not in the zip")
                actual = sha256_bytes(zf.read(member))
                if actual != sha256:
                    raise ReleaseError(
                        f"{zip_path}: {file} has sha256 {actual} but the manifest says {sha256}; "
                        "refusing to publish an artifact nobody verified. Rebuild with `make model-layer`"
                    )
            listed = {manifest_member} | {prefix + file for file, _ in listed_files(manifest)}
            extra = sorted(name for name in names - listed if not name.endswith("/"))
            if extra:
                raise ReleaseError(
                    f"{zip_path} holds {len(extra)} file(s) its manifest does not list ({', '.join(extra[:5])}): "
                    "everything in a model layer must be verified; rebuild it with `make model-layer`"
                )
    except (zipfile.BadZipFile, FileNotFoundError) as exc:
        raise ReleaseError(f"{zip_path}: not a readable zip ({exc}); build it with `make model-layer`") from None
    return manifest
