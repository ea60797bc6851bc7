"""An embedded AWS endpoint on 127.0.0.1: moto's server, for the demo and the tests.

Kinesis, DynamoDB (with Streams), SQS, S3 and the rest of moto's services answer on
one local HTTP endpoint, reached with ordinary boto3 clients (fake credentials,
``us-east-1``). Nothing here needs an AWS account, Docker or the network.

Usage::

    with EmbeddedAWS() as aws:
        stream_arn = aws.create_kinesis_stream("reviews", shards=4)
        kinesis = aws.client("kinesis")
        ...

Notes
-----
* moto's server runs in this process (a thread), so its state is process-wide: two
  :class:`EmbeddedAWS` instances, or ``moto.mock_aws``, see the same resources. Use
  unique names.
* moto's Kinesis and DynamoDB Streams reads are slow at demo scale (O(N²) walks of a
  shard, a generic serialiser costing ~1 ms per stream record). While an
  :class:`EmbeddedAWS` runs (unless ``fast_moto=False``), :func:`speed_up_moto`
  replaces those code paths with ones that give the same answers; the last instance
  to stop puts moto's own code back (:func:`restore_moto`).
* Clients are made with ``account_id_endpoint_mode="disabled"`` (and
  :meth:`EmbeddedAWS.environment` sets ``AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled`` for
  child processes): newer botocore otherwise sends DynamoDB (Streams) calls to an
  account-based endpoint that moto does not serve (REFERENCE.md §6).
"""

from __future__ import annotations

import base64
import calendar
import json
import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.utils import parse_timestamp

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # noqa: S105 - fake credentials for the local endpoint
_KINESIS_PUT_LIMIT = 500


def _utc_timestamp(value: Any) -> datetime:
    """Parse a response timestamp; epoch numbers become UTC datetimes (the same instant)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return parse_timestamp(value)


#: moto functions replaced by :func:`speed_up_moto`: ``(class, name) -> original``.
MOTO_ORIGINALS: dict[tuple[type, str], Any] = {}


def _json_time(value: datetime) -> int | float:
    """Epoch seconds truncated to the millisecond, as moto's serialiser writes them."""
    utc = value.astimezone(UTC) if value.tzinfo else value
    seconds = calendar.timegm(utc.timetuple())
    return seconds + (utc.microsecond // 1000) / 1000.0 if utc.microsecond else seconds


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _json_time(value)
    if isinstance(value, bytes | bytearray):  # B / BS attribute values
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _kinesis_get_records_json(self: Any) -> str:
    """``KinesisResponse.get_records`` answered with plain ``json.dumps``."""
    next_iterator, records, millis_behind = self.kinesis_backend.get_records(
        self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
    )
    out = []
    for record in records:
        item = record.to_json()
        item["Data"] = base64.b64encode(item["Data"]).decode()
        item["ApproximateArrivalTimestamp"] = _json_time(item["ApproximateArrivalTimestamp"])
        out.append(item)
    return json.dumps({"NextShardIterator": next_iterator, "Records": out, "MillisBehindLatest": millis_behind})


def _streams_get_records_json(self: Any) -> str:
    """``DynamoDBStreamsHandler.get_records`` answered with plain ``json.dumps``."""
    limit = self._get_param("Limit")
    result = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
    return json.dumps(result, default=_json_default)


def _kinesis_get_max_sequence_number(self: Any) -> int:
    return next(reversed(self.records)) if self.records else 0


def _kinesis_shard_get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    records = self.records
    last = int(last_sequence_id)
    if not records:
        return [], last, 0
    first, newest = next(iter(records)), next(reversed(records))
    if newest - first + 1 != len(records):  # not consecutive: moto's own walk
        return MOTO_ORIGINALS[(type(self), "get_records")](self, last_sequence_id, limit)
    if last >= newest:
        return [], last, 0
    start = max(0, last - first + 1)
    results = list(islice(records.values(), start, None if limit is None else start + limit))
    behind = records[newest].created_at - results[-1].created_at
    return results, results[-1].sequence_number, int(behind * 1000)


def speed_up_moto() -> bool:
    """Make moto's Kinesis and DynamoDB Streams reads scale; the answers stay the same.

    moto 5.x keeps a Kinesis shard's records in an ordered dict keyed by consecutive
    integer sequence numbers, but finds the newest key with ``list(keys)[-1]`` on every
    put and walks from the first record on every GetRecords (O(N²) for N records), and
    it serialises every GetRecords answer member by member through its generic
    model-driven serialiser (about 1 ms per DynamoDB stream record). The replacements
    look up the start directly and answer GetRecords with ``json.dumps`` (both services
    use the JSON protocol). Idempotent; returns whether the patch is in place (False,
    changing nothing, on a moto that lacks the methods).
    """
    try:
        from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
        from moto.kinesis.models import Shard
        from moto.kinesis.responses import KinesisResponse
    except ImportError:  # pragma: no cover - moto is pinned
        return False
    patches = {
        (Shard, "get_max_sequence_number"): _kinesis_get_max_sequence_number,
        (Shard, "get_records"): _kinesis_shard_get_records,
        (KinesisResponse, "get_records"): _kinesis_get_records_json,
        (DynamoDBStreamsHandler, "get_records"): _streams_get_records_json,
    }
    if not all(hasattr(owner, name) for owner, name in patches):
        return False
    for (owner, name), replacement in patches.items():
        if (owner, name) not in MOTO_ORIGINALS:
            MOTO_ORIGINALS[(owner, name)] = getattr(owner, name)
            setattr(owner, name, replacement)
    return True


def restore_moto() -> None:
    """Undo :func:`speed_up_moto`."""
    for (owner, name), original in list(MOTO_ORIGINALS.items()):
        setattr(owner, name, original)
        del MOTO_ORIGINALS[(owner, name)]


_fast_users = 0
_fast_lock = threading.Lock()


class EmbeddedAWS:
    """moto's server on a free local port, as a context manager.

    Parameters
    ----------
    region : str
        Region of the clients this object makes.
    host : str
        Interface to listen on (loopback only by default).
    port : int
        0 picks a free port.
    quiet : bool
        Silence werkzeug's per-request access log (it goes to stderr otherwise).
    fast_moto : bool
        Apply :func:`speed_up_moto`.
    """

    def __init__(
        self,
        region: str = REGION,
        host: str = "127.0.0.1",
        port: int = 0,
        quiet: bool = True,
        fast_moto: bool = True,
    ) -> None:
        self.region = region
        self.host = host
        self.port = port
        self.quiet = quiet
        self.fast_moto = fast_moto
        self._fast = False
        self._server: Any = None
        self._endpoint_url: str | None = None
        self._session: boto3.session.Session | None = None

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> EmbeddedAWS:
        """Start the server (idempotent) and return ``self``."""
        if self._server is not None:
            return self
        from moto.server import ThreadedMotoServer

        if self.fast_moto:
            global _fast_users
            with _fast_lock:
                self._fast = speed_up_moto()
                _fast_users += self._fast
        if self.quiet:
            werkzeug = logging.getLogger("werkzeug")
            if werkzeug.level == logging.NOTSET or werkzeug.level < logging.WARNING:
                werkzeug.setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._endpoint_url = f"http://{host}:{port}"
        core = botocore.session.Session()
        # Epoch timestamps as UTC datetimes: botocore's default converts each to the local
        # zone with dateutil, half the client-side cost of a 1,000-record GetRecords.
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_utc_timestamp)
        self._session = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=self.region,
            botocore_session=core,
        )
        return self

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        global _fast_users
        if self._server is not None:
            self._server.stop()
            with _fast_lock:
                _fast_users -= self._fast
                if self._fast and _fast_users == 0:
                    restore_moto()
            self._fast = False
        self._server = None
        self._endpoint_url = None

    def __enter__(self) -> EmbeddedAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._endpoint_url is None:
            raise RuntimeError("EmbeddedAWS is not running; use it as a context manager or call start()")
        return self._endpoint_url

    # --- clients ---------------------------------------------------------------------

    def client(self, service_name: str, **config: Any) -> Any:
        """A boto3 client for ``service_name`` on the embedded endpoint.

        Parameters
        ----------
        service_name : str
            ``"kinesis"``, ``"dynamodb"``, ``"dynamodbstreams"``, ``"sqs"``, ...
        **config
            Extra ``botocore.config.Config`` options (merged over the defaults:
            standard retries, 50 pooled connections, account-based endpoints off).
        """
        options: dict[str, Any] = {
            "retries": {"mode": "standard", "max_attempts": 5},
            "max_pool_connections": 50,
            "account_id_endpoint_mode": "disabled",
        }
        options.update(config)
        endpoint_url = self.endpoint_url  # raises when stopped
        assert self._session is not None
        return self._session.client(service_name, endpoint_url=endpoint_url, config=Config(**options))

    def environment(self) -> dict[str, str]:
        """Environment variables that point a child process's boto3 at this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }

    # --- resources -------------------------------------------------------------------

    def create_kinesis_stream(self, name: str, shards: int = 1, timeout_s: float = 30.0) -> str:
        """Create a provisioned Kinesis stream, wait until ACTIVE, return its ARN."""
        kinesis = self.client("kinesis")
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        deadline = time.monotonic() + timeout_s
        while True:
            summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            if summary["StreamStatus"] == "ACTIVE":
                return summary["StreamARN"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kinesis stream {name} is {summary['StreamStatus']} after {timeout_s} s")
            time.sleep(0.05)

    def put_kinesis_records(self, stream_arn: str, records: Iterable[tuple[str, bytes]]) -> int:
        """Write ``(partition_key, data)`` pairs in order, 500 per PutRecords call.

        Records PutRecords reports as failed (throttled) are written again, so every
        record lands; order is kept per partition key. Returns how many were written.
        """
        kinesis = self.client("kinesis")
        written = 0
        chunk: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal written, chunk
            pending = chunk
            for attempt in range(10):
                response = kinesis.put_records(StreamARN=stream_arn, Records=pending)
                failed = [entry for entry, result in zip(pending, response["Records"]) if "ErrorCode" in result]
                written += len(pending) - len(failed)
                if not failed:
                    break
                pending = failed
                time.sleep(0.05 * 2**attempt)
            else:
                raise RuntimeError(f"{len(pending)} records were still throttled after 10 PutRecords attempts")
            chunk = []

        for key, data in records:
            chunk.append({"PartitionKey": key, "Data": data})
            if len(chunk) == _KINESIS_PUT_LIMIT:
                flush()
        if chunk:
            flush()
        return written

    def create_table_with_stream(
        self,
        name: str,
        key: str = "id",
        key_type: str = "S",
        view_type: str = "NEW_AND_OLD_IMAGES",
    ) -> str:
        """Create an on-demand table with a DynamoDB stream; return the stream's ARN.

        Parameters
        ----------
        name : str
            Table name.
        key, key_type : str
            The partition key's name and type (``S``, ``N`` or ``B``).
        view_type : str
            ``NEW_AND_OLD_IMAGES``, ``NEW_IMAGE``, ``OLD_IMAGE`` or ``KEYS_ONLY``.
        """
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": key_type}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
        )
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        return dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]

    def create_queue(self, name: str) -> tuple[str, str]:
        """Create an SQS queue; return ``(queue_url, queue_arn)``."""
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def receive_all(self, queue_url: str, wait_s: float = 0.0) -> list[str]:
        """Receive and delete every message now in the queue; return their bodies.

        Parameters
        ----------
        queue_url : str
        wait_s : float
            Keep polling this long for messages that are still on their way.
        """
        sqs = self.client("sqs")
        bodies: list[str] = []
        deadline = time.monotonic() + wait_s
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            for message in messages:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if not messages:
                if time.monotonic() >= deadline:
                    return bodies
                time.sleep(0.05)
