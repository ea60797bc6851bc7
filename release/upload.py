"""Hand a zip to Lambda: inline while its request fits with margin, through S3 with a progress bar above that.

Lambda documents 50 MiB (52,428,800 bytes) for a zip uploaded directly, but the limit bites on the
request, where the zip travels base64-encoded ("Request must be smaller than 69905067 bytes for the
PublishLayerVersion operation", docs/aws-notes.md §3): a zip just under 50 MiB can be refused. So a
zip goes inline only while its base64 size plus :data:`REQUEST_MARGIN_BYTES` for the rest of the
request fits in :data:`REQUEST_LIMIT_BYTES`; :data:`DIRECT_UPLOAD_LIMIT` is that zip size (about
48.5 MiB).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from inference.manifest import sha256_file

from release.errors import ReleaseError

#: The largest request body Lambda accepts for an inline zip, as its error states it (docs/aws-notes.md §3).
REQUEST_LIMIT_BYTES = 69_905_067
#: Kept free for the rest of the request (JSON, description, configuration, tags) and an unverified limit.
REQUEST_MARGIN_BYTES = 2 * 1024 * 1024


def base64_size(size: int) -> int:
    """Bytes of the base64 encoding of ``size`` bytes (padded)."""
    return 4 * ((size + 2) // 3)


#: Largest zip sent inline (ZipFile): its base64 plus the margin fit the request limit; larger ones go through S3.
DIRECT_UPLOAD_LIMIT = (REQUEST_LIMIT_BYTES - REQUEST_MARGIN_BYTES) // 4 * 3


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
            "set [layers] artifact_bucket in deploy.toml to an S3 bucket in the function's region (the zip travels "
            f"base64-encoded, {base64_size(size):,} bytes, in a request Lambda caps at {REQUEST_LIMIT_BYTES:,})"
        )
    upload_to_s3(path, bucket, key, s3)
    return {"S3Bucket": bucket, "S3Key": key}
