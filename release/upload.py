"""Hand a zip to Lambda: inline up to 50 MB, through S3 with a progress bar above that."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from inference.manifest import sha256_file

from release.errors import ReleaseError

#: Largest zip Lambda accepts inline (ZipFile); larger ones go through S3.
DIRECT_UPLOAD_LIMIT = 52_428_800


def base64_sha256(hex_digest: str) -> str:
    """A hex sha256 as Lambda reports ``CodeSha256``: the raw digest, base64-encoded."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def code_sha256(path: Path) -> str:
    """Base64 sha256 of a zip: how Lambda reports ``CodeSha256``."""
    return base64_sha256(sha256_file(path))


def upload_to_s3(path: Path, bucket: str, key: str, s3: Any) -> None:
    """Upload a file to ``s3://bucket/key``, showing a progress bar on a terminal.

    Raises
    ------
    ReleaseError
        If the bucket does not exist (naming the setting and the command that creates it).
    botocore.exceptions.ClientError
        If S3 refused the upload otherwise.
    """
    from boto3.exceptions import S3UploadFailedError
    from tqdm import tqdm

    size = path.stat().st_size
    with tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"upload {path.name}",
        mininterval=0.5,
        disable=None,  # no bar unless stderr is a terminal
    ) as bar:
        try:
            s3.upload_file(str(path), bucket, key, Callback=bar.update)
        except S3UploadFailedError as exc:
            cause = exc.__context__
            code = getattr(cause, "response", {}).get("Error", {}).get("Code")
            if code == "NoSuchBucket":
                raise ReleaseError(
                    f"S3 bucket {bucket!r} does not exist ([layers] artifact_bucket in deploy.toml), so {path} "
                    "cannot be uploaded; create it with `make bootstrap`, or set artifact_bucket to an existing "
                    "bucket in the function's region"
                ) from None
            if cause is not None:
                raise cause from None
            raise


def code_location(path: Path, bucket: str | None, key: str, s3: Any, what: str) -> dict[str, Any]:
    """Where Lambda takes a zip from: its bytes, or its S3 object once uploaded.

    Parameters
    ----------
    path : Path
        The zip.
    bucket : str or None
        ``[layers] artifact_bucket``; needed only for zips over :data:`DIRECT_UPLOAD_LIMIT`.
    key : str
        The S3 key to upload to.
    s3 : botocore client
    what : str
        Names the zip in the error message (``layer zip``, ``function zip``).

    Returns
    -------
    dict
        ``{"ZipFile": bytes}`` for a small zip, else ``{"S3Bucket": ..., "S3Key": ...}``.

    Raises
    ------
    ReleaseError
        If the zip is too large to send inline and no bucket is set.
    """
    size = path.stat().st_size
    if size <= DIRECT_UPLOAD_LIMIT:
        return {"ZipFile": path.read_bytes()}
    if not bucket:
        raise ReleaseError(
            f"{what} {path} is {size:,} bytes, over Lambda's {DIRECT_UPLOAD_LIMIT:,}-byte direct upload limit; "
            "set [layers] artifact_bucket in deploy.toml to an S3 bucket in the function's region"
        )
    upload_to_s3(path, bucket, key, s3)
    return {"S3Bucket": bucket, "S3Key": key}
