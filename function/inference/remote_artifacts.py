"""Model artifacts kept in S3 (models too big for a layer), downloaded once per execution environment.

A manifest with ``artifacts_uri`` (``s3://bucket/prefix/``), or the function's ``MODEL_S3_URI``
environment variable (which wins), says that each pipeline artifact is the object
``<prefix><file>`` in that bucket instead of a file in the layer. :func:`fetch_artifacts`
downloads each into the function's ephemeral storage (``/tmp``, sized by ``[function]
ephemeral_storage_mb``; docs/aws-notes.md §3) under its sha256, with boto3's transfer manager
(parallel ranged GETs of :data:`CHUNK_BYTES`, :data:`CONCURRENCY` at a time), and checks every
byte against the manifest's sha256 before the file is used: a file that differs is deleted and
refused. ``/tmp`` outlives an invocation but not the execution environment, so an init that
finds a file of that sha256 already there (a re-init after a crash) hashes it and reuses it.

boto3 is imported here only, on first use: a function whose model is in its layer never loads it
for the model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .manifest import Manifest, ManifestError, sha256_file, split_s3_uri

#: Where the artifacts go: the function's ephemeral storage.
DEFAULT_CACHE_DIR = Path("/tmp/model-artifacts")
#: Part size of the ranged GETs, and the size from which a download is split into parts.
CHUNK_BYTES = 16 * 1024 * 1024
#: Parts downloaded at once.
CONCURRENCY = 10


class RemoteArtifactError(RuntimeError):
    """An artifact in S3 cannot be fetched, does not fit in ``/tmp``, or differs from the manifest."""


def s3_client() -> Any:
    """A boto3 S3 client with standard retries (imported here, on first use)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def transfer_config() -> Any:
    """boto3's transfer manager settings: ranged GETs of :data:`CHUNK_BYTES`, :data:`CONCURRENCY` at once."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=CHUNK_BYTES, multipart_chunksize=CHUNK_BYTES, max_concurrency=CONCURRENCY, use_threads=True
    )


def fetch_artifacts(
    manifest: Manifest, uri: str, cache_dir: Path = DEFAULT_CACHE_DIR, client: Any = None
) -> dict[str, Path]:
    """Download every pipeline artifact from ``uri`` into ``cache_dir``, each verified.

    Parameters
    ----------
    manifest : Manifest
        Its pipeline names the files and their sha256.
    uri : str
        ``s3://bucket/prefix/``; artifact ``file`` is the object ``prefix + file``.
    cache_dir : Path
        Where the files go, named by their sha256 (default ``/tmp/model-artifacts``).
    client : boto3 S3 client, optional
        Default: :func:`s3_client`.

    Returns
    -------
    dict
        ``file -> local path`` of each artifact, every one with the manifest's sha256.

    Raises
    ------
    RemoteArtifactError
        A malformed URI, an object that cannot be read (missing, no permission), not enough
        free space in ``cache_dir``, or an object whose sha256 is not the manifest's.
    """
    try:
        bucket, prefix = split_s3_uri(uri)
    except ManifestError as exc:
        raise RemoteArtifactError(str(exc)) from None
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for step in manifest["pipeline"]:
        target = cache_dir / step["sha256"]
        if not (target.is_file() and sha256_file(target) == step["sha256"]):
            client = client or s3_client()
            _download(client, bucket, prefix + step["file"], target, step["sha256"])
        paths[step["file"]] = target
    return paths


def _download(client: Any, bucket: str, key: str, target: Path, sha256: str) -> None:
    """``s3://bucket/key`` into ``target`` through a temporary name, renamed only once verified."""
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{bucket}/{key}"
    try:
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise RemoteArtifactError(
            f"model artifact {where} cannot be read ({code}): is it uploaded (`make publish-model-layer`), and "
            "does the function's role allow s3:GetObject on it?"
        ) from None
    free = shutil.disk_usage(target.parent).free
    if size > free:
        raise RemoteArtifactError(
            f"model artifact {where} is {size:,} bytes but {target.parent} has {free:,} free: raise [function] "
            "ephemeral_storage_mb in deploy.toml (up to 10240) and deploy again"
        )
    partial = target.with_name(f"{target.name}.part-{os.getpid()}")
    try:
        client.download_file(bucket, key, str(partial), Config=transfer_config())
        actual = sha256_file(partial)
        if actual != sha256:
            raise RemoteArtifactError(
                f"model artifact {where} does not match the manifest (sha256 {actual}, expected {sha256}): refusing "
                "to load it. Publish the model again with `make publish-model-layer`"
            )
        os.replace(partial, target)
    except (BotoCoreError, ClientError) as exc:
        raise RemoteArtifactError(f"downloading model artifact {where} failed ({type(exc).__name__}: {exc})") from None
    finally:
        partial.unlink(missing_ok=True)
