"""The twin's AWS endpoint on 127.0.0.1: stock moto's server in a process of its own, for the demo and the tests.

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
* The server is a child process (:class:`localtwin.moto_server.MotoServer` running
  :mod:`localtwin.endpoint`: moto's own WSGI application, metered per operation), so it
  has a core and an interpreter lock of its own, apart from the mapping, the runtime's
  glue and the function's workers. Each :class:`EmbeddedAWS` has its own server and so
  its own state, which ends with it.
* ``fast_moto=True`` (the demo's and the soak's ``--fast-moto``, the only switch) starts
  that process with :mod:`localtwin.moto_speedups` applied: moto's private internals
  replaced there, and only there, by code that gives the same answers. Everything else
  runs stock moto.
* :meth:`EmbeddedAWS.meter` reads what the server spent on each operation so far
  (:mod:`localtwin.replay.meter`), and its process id gives its CPU time.
* Clients are made with ``account_id_endpoint_mode="disabled"`` (and
  :meth:`EmbeddedAWS.environment` sets ``AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled`` for
  child processes): newer botocore otherwise sends DynamoDB (Streams) calls to an
  account-based endpoint that moto does not serve (docs/aws-notes.md §6).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.utils import parse_timestamp

from localtwin.moto_server import MotoServer
from localtwin.replay.meter import EndpointReading, read_meter
from testing.events import REGION

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # noqa: S105 - fake credentials for the local endpoint
_KINESIS_PUT_LIMIT = 500


def _utc_timestamp(value: Any) -> datetime:
    """Parse a response timestamp; epoch numbers become UTC datetimes (the same instant)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed: datetime = parse_timestamp(value)
    return parsed


class EmbeddedAWS:
    """moto's server in a child process on a free local port, as a context manager.

    Parameters
    ----------
    region : str
        Region of the clients this object makes.
    port : int, optional
        A free port is chosen when omitted.
    fast_moto : bool
        Start the server with :mod:`localtwin.moto_speedups` applied (demo and soak only).
    """

    def __init__(self, region: str = REGION, port: int | None = None, fast_moto: bool = False) -> None:
        self.region = region
        self.port = port
        self.fast_moto = fast_moto
        self._server: MotoServer | None = None
        self._session: boto3.session.Session | None = None

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> EmbeddedAWS:
        """Start the server process and wait until it answers (idempotent); return ``self``."""
        if self._server is not None:
            return self
        args = ["--fast-moto"] if self.fast_moto else []
        self._server = MotoServer(self.port, module="localtwin.endpoint", args=args).start()
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
        """Stop the server process (idempotent); its state is gone."""
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> EmbeddedAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("EmbeddedAWS is not running; use it as a context manager or call start()")
        return self._server.url

    @property
    def pid(self) -> int:
        """The server process's id (for its CPU time: :func:`localtwin.runtime.metering.cpu_seconds`)."""
        if self._server is None or self._server.process is None:
            raise RuntimeError("EmbeddedAWS is not running; use it as a context manager or call start()")
        return self._server.process.pid

    def meter(self) -> EndpointReading:
        """What the server has spent on each operation so far, and its CPU seconds."""
        return read_meter(self.endpoint_url)

    # --- clients ---------------------------------------------------------------------

    def client(self, service_name: str, endpoint_url: str | None = None, **config: Any) -> Any:
        """A boto3 client for ``service_name`` on the embedded endpoint.

        Parameters
        ----------
        service_name : str
            ``"kinesis"``, ``"dynamodb"``, ``"dynamodbstreams"``, ``"sqs"``, ...
        endpoint_url : str, optional
            Another URL in front of this endpoint (e.g. :class:`localtwin.faults.SinkFaults`'s proxy).
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
        own_url = self.endpoint_url  # raises when stopped
        assert self._session is not None
        endpoint_url = endpoint_url or own_url
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
                arn: str = summary["StreamARN"]
                return arn
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

    def create_table(
        self, name: str, key: str = "id", key_type: str = "S", stream_view_type: str | None = None
    ) -> dict[str, Any]:
        """Create an on-demand table with a partition key; return its description.

        Parameters
        ----------
        name : str
            Table name.
        key, key_type : str
            The partition key's name and type (``S``, ``N`` or ``B``).
        stream_view_type : str, optional
            Give the table a DynamoDB stream of this view: ``NEW_AND_OLD_IMAGES``,
            ``NEW_IMAGE``, ``OLD_IMAGE`` or ``KEYS_ONLY``.
        """
        dynamodb = self.client("dynamodb")
        stream = {"StreamEnabled": True, "StreamViewType": stream_view_type} if stream_view_type else None
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": key_type}],
            BillingMode="PAY_PER_REQUEST",
            **({"StreamSpecification": stream} if stream else {}),
        )
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        table: dict[str, Any] = dynamodb.describe_table(TableName=name)["Table"]
        return table

    def create_table_with_stream(
        self, name: str, key: str = "id", key_type: str = "S", view_type: str = "NEW_AND_OLD_IMAGES"
    ) -> str:
        """:meth:`create_table` with a DynamoDB stream; return the stream's ARN."""
        stream_arn: str = self.create_table(name, key, key_type, view_type)["LatestStreamArn"]
        return stream_arn

    def create_queue(self, name: str) -> tuple[str, str]:
        """Create an SQS queue; return ``(queue_url, queue_arn)``."""
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def receive_all(self, queue_url: str) -> list[str]:
        """Receive and delete every message now in the queue; return their bodies."""
        sqs = self.client("sqs")
        bodies: list[str] = []
        while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies
