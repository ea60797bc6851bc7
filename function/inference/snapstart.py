"""SnapStart's runtime hooks: what runs before Lambda snapshots an initialised environment, and after each restore.

With ``[function] snap_start = "PublishedVersions"`` (docs/snapstart.md) Lambda runs the init
once, when a version is published, calls the *before snapshot* hooks, snapshots the
environment's memory and disk, and serves every later cold start by restoring that
snapshot and calling the *after restore* hooks (which, with the restore, must finish in
10 s). Lambda's Python runtime ships the hook registry, ``snapshot_restore_py``; the
runtime client (``awslambdaric``) calls the hooks only when ``AWS_LAMBDA_INITIALIZATION_TYPE``
is ``snap-start``, so on an on-demand init registering them changes nothing.

:func:`before_snapshot`
    The model was loaded and verified (sha256, library versions, task) by
    :meth:`inference.app.App.from_env`. Score one warm-up batch through the whole batch
    path, into the response and nowhere else: the model layer's golden records
    (manifest ``golden``, checked against its sha256) as a Kinesis batch, or, without
    them, one synthetic input. Every lazy import and first-call cost of load and predict
    is paid then, inside the snapshot. A batch that does not score every record raises
    :class:`WarmUpError`: the version fails instead of going live.
:func:`after_restore`
    Renew what must not be shared between environments restored from one snapshot: the
    boto3 default session (credentials, connection pools) and every client of the sinks
    and the quarantine (the old clients' connections are closed), and the random seeds
    (``random``, and numpy's global generator if it was imported). The function holds
    nothing else time-based or unique from init: timestamps and request ids are taken per
    call.

Outside Lambda's runtime (tests, notebooks) ``snapshot_restore_py`` may be missing: then
:func:`register` registers nothing, and the hooks are plain functions to call.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .manifest import sha256_bytes

if TYPE_CHECKING:
    from .app import App

logger = logging.getLogger("inference")

#: Source ARN of the warm-up batch (never written anywhere: the batch goes to the response).
WARM_UP_SOURCE = "arn:aws:kinesis:us-east-1:000000000000:stream/snapstart-warm-up"


class WarmUpError(RuntimeError):
    """The warm-up batch before the snapshot did not score every record: the version must not go live."""


def _registry() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """Lambda runtime's ``(register_before_snapshot, register_after_restore)``, ``None`` without it."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot  # type: ignore[import-untyped]
    except ImportError:  # not Lambda's runtime (nor the local twin's): nobody would call the hooks
        return None
    return register_before_snapshot, register_after_restore


def register(app: App) -> bool:
    """Register :func:`before_snapshot` and :func:`after_restore` for ``app``; ``False`` without the runtime's registry."""
    registry = _registry()
    if registry is None:
        return False
    register_before_snapshot, register_after_restore = registry
    register_before_snapshot(before_snapshot, app)
    register_after_restore(after_restore, app)
    return True


def warm_up_records(app: App) -> list[Any]:
    """The payloads of the warm-up batch: the model layer's golden records, else one synthetic record.

    Raises
    ------
    WarmUpError
        The manifest lists a golden file that is missing or does not match its sha256.
    """
    manifest = app.model.manifest
    golden = manifest.get("golden")
    if golden is not None:
        path = Path(app.env.get("MODEL_DIR", "/opt/model")) / golden["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise WarmUpError(f"golden file {path} cannot be read ({exc.strerror}): rebuild the model layer") from None
        if sha256_bytes(data) != golden["sha256"]:
            raise WarmUpError(f"golden file {path} does not match the manifest's sha256: rebuild the model layer")
        records: list[Any] = json.loads(data)["records"]
        return records
    contract = manifest["input"]
    if contract["kind"] == "text":
        return [{contract["field"]: "warm-up"}]
    return [dict.fromkeys(contract["features"], 0.0)]


def warm_up_event(records: list[Any]) -> dict[str, Any]:
    """A Kinesis batch carrying ``records`` as JSON payloads, as Lambda would deliver them."""
    return {
        "Records": [
            {
                "kinesis": {
                    "partitionKey": "warm-up",
                    "kinesisSchemaVersion": "1.0",
                    "data": base64.b64encode(json.dumps(record).encode()).decode(),
                    "sequenceNumber": str(n),
                    "approximateArrivalTimestamp": 0.0,
                },
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:{n}",
                "eventVersion": "1.0",
                "eventName": "aws:kinesis:record",
                "eventSourceARN": WARM_UP_SOURCE,
                "awsRegion": "us-east-1",
            }
            for n, record in enumerate(records)
        ]
    }


def before_snapshot(app: App) -> int:
    """Score the warm-up batch through the batch path, into the response only; return how many records.

    Raises
    ------
    WarmUpError
        A record was not predicted (quarantined, skipped or to retry).
    """
    from .batch import process_batch
    from .quarantine import LogQuarantine
    from .sinks import ResponseSink

    records = warm_up_records(app)
    _, report = process_batch(warm_up_event(records), app.model, ResponseSink(), LogQuarantine(), app.payload)
    if len(report.predicted) != len(records):
        raise WarmUpError(
            f"the warm-up batch scored {len(report.predicted)} of {len(records)} records "
            f"({report.counts()}): the model layer's golden records no longer fit the model"
        )
    logger.info("snapshot: model warmed up", extra={"warm_up_records": len(records), "model_name": app.model.name})
    return len(records)


def _close_client(holder: Any) -> None:
    """Close the connections of a sink's or quarantine's boto3 client, if it has one."""
    client = getattr(holder, "client", None)
    close = getattr(client, "close", None)
    if callable(close):
        close()


def after_restore(app: App) -> None:
    """Renew the boto3 session and clients, and reseed the random generators (module docstring)."""
    from .app import make_quarantine, make_sink

    old = (app.sink, app.quarantine)
    if "boto3" in sys.modules:  # a function with no AWS destination never imports it
        import boto3

        boto3.setup_default_session()
    app.sink, app.quarantine = make_sink(app.env), make_quarantine(app.env)
    for holder in old:
        _close_client(holder)
    random.seed()  # from os.urandom: each restored environment draws its own numbers
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    logger.info("restored from snapshot: clients and seeds renewed", extra={"model_name": app.model.name})
