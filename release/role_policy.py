"""The function's execution role: its trust policy and its least-privilege inline policy, built in one place.

Two readers express the same grants: ``infra/template.py`` writes them into ``template.yaml``
(with CloudFormation references, e.g. ``Fn::GetAtt LogGroup.Arn``), and ``make bootstrap``
(:mod:`release.bootstrap`) creates the role with them (with the ARNs spelled out). The
statements, their order, actions and scoping come from :func:`role_statements` for both; only
the spelling of an ARN differs, supplied by a :class:`ResourceArns`.

The grants: write to the function's own log group; read the configured Kinesis / DynamoDB
streams; send to the on-failure destinations (SQS queue, SNS topic, S3 bucket); write to the
``RESULTS_*`` / ``SHADOW_RESULTS_*`` / ``QUARANTINE_*`` destinations in ``[function.environment]``. No wildcard
actions, no ``Resource: "*"``; the only trailing ``*`` is on S3 objects under a named prefix
and on the log group's log streams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from release.model_artifacts import artifact_prefix
from release.settings import Settings

#: The inline policy's name, in the template and on a role ``make bootstrap`` creates.
POLICY_NAME = "least-privilege"

#: Lambda's documented list for a Kinesis mapping, without kinesis:ListStreams (it takes only
#: Resource "*"); an enhanced fan-out consumer also needs :data:`KINESIS_CONSUMER_READ` on the consumer.
KINESIS_READ = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
]
#: On an enhanced fan-out consumer ARN (``.../stream/NAME/consumer/C:N``), besides the stream reads.
KINESIS_CONSUMER_READ = ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"]
DYNAMODB_STREAM_READ = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
]

QUEUE_URL = re.compile(
    r"^https://(?:sqs\.)?(?P<region>[a-z0-9-]+)\.(?:queue\.)?amazonaws\.com(?:\.cn)?/(?P<account>\d{12})/(?P<name>[\w-]+)$"
)


class PolicyError(ValueError):
    """``deploy.toml`` names a destination the policy cannot scope."""


@dataclass(frozen=True)
class QueueUrl:
    """The parts of an SQS queue URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``)."""

    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, url: str, key: str = "QUARANTINE_QUEUE_URL") -> QueueUrl:
        """Raises :class:`PolicyError` naming ``key`` if ``url`` is not an SQS queue URL."""
        match = QUEUE_URL.match(url)
        if not match:
            raise PolicyError(
                f"{key} = {url!r} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
            )
        return cls(match["region"], match["account"], match["name"])


class ResourceArns(Protocol):
    """How one reader spells the ARNs the policy scopes to (a string, or a CloudFormation reference)."""

    def log_group(self) -> Any:
        """The function's log group ``/aws/lambda/NAME`` (``...:log-group:/aws/lambda/NAME:*``)."""
        ...

    def on_failure_queue(self, arn: str) -> Any:
        """The SQS queue ``on_failure_destination_arn = arn`` names."""
        ...

    def in_account(self, service: str, resource: str) -> Any:
        """``arn:PARTITION:service:REGION:ACCOUNT:resource`` in the function's region and account."""
        ...

    def s3_objects(self, bucket: str, prefix: str) -> Any:
        """The objects under ``prefix`` in ``bucket`` (``arn:PARTITION:s3:::bucket/prefix*``)."""
        ...

    def queue(self, url: QueueUrl) -> Any:
        """The queue a queue URL names (in the URL's region and account)."""
        ...


def trust_policy() -> dict[str, Any]:
    """Who may assume the role: Lambda, nothing else (a new dict each call)."""
    principal = {"Service": "lambda.amazonaws.com"}
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
    }


def statement(sid: str, actions: list[str], resources: list[Any]) -> dict[str, Any]:
    """One ``Allow`` statement."""
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _on_failure_statements(settings: Settings, arns: ResourceArns) -> list[dict[str, Any]]:
    destinations = list(dict.fromkeys(s.on_failure_destination_arn for s in settings.event_sources))
    queues = [arns.on_failure_queue(d) for d in destinations if d.split(":")[2] == "sqs"]
    topics = [d for d in destinations if d.split(":")[2] == "sns"]
    buckets = [d for d in destinations if d.split(":")[2] == "s3"]
    out = []
    if queues:
        out.append(statement("SendToOnFailureQueue", ["sqs:SendMessage"], queues))
    if topics:
        out.append(statement("PublishToOnFailureTopic", ["sns:Publish"], topics))
    if buckets:
        # Lambda writes the invocation record as an object and lists the bucket first.
        out.append(statement("ListOnFailureBucket", ["s3:ListBucket"], buckets))
        out.append(statement("WriteOnFailureBucket", ["s3:PutObject"], [f"{b}/*" for b in buckets]))
    return out


def _sink_statements(env: dict[str, str], arns: ResourceArns) -> list[dict[str, Any]]:
    """Write access to the results and quarantine destinations the environment names, and no more."""
    out = []
    if env.get("RESULTS_TABLE"):
        table = arns.in_account("dynamodb", f"table/{env['RESULTS_TABLE']}")
        out.append(statement("WriteResultsTable", ["dynamodb:BatchWriteItem"], [table]))
    if env.get("RESULTS_STREAM"):
        stream = arns.in_account("kinesis", f"stream/{env['RESULTS_STREAM']}")
        out.append(statement("WriteResultsStream", ["kinesis:PutRecords"], [stream]))
    if env.get("RESULTS_BUCKET"):
        objects = arns.s3_objects(env["RESULTS_BUCKET"], env.get("RESULTS_PREFIX", "predictions/"))
        out.append(statement("WriteResultsBucket", ["s3:PutObject"], [objects]))
    if env.get("SHADOW_RESULTS_TABLE"):  # a candidate model's results in shadow (inference.shadow)
        table = arns.in_account("dynamodb", f"table/{env['SHADOW_RESULTS_TABLE']}")
        out.append(statement("WriteShadowResultsTable", ["dynamodb:BatchWriteItem"], [table]))
    if env.get("SHADOW_RESULTS_STREAM"):
        stream = arns.in_account("kinesis", f"stream/{env['SHADOW_RESULTS_STREAM']}")
        out.append(statement("WriteShadowResultsStream", ["kinesis:PutRecords"], [stream]))
    if env.get("SHADOW_RESULTS_BUCKET"):
        objects = arns.s3_objects(env["SHADOW_RESULTS_BUCKET"], env.get("SHADOW_RESULTS_PREFIX", "shadow/"))
        out.append(statement("WriteShadowResultsBucket", ["s3:PutObject"], [objects]))
    if env.get("QUARANTINE_QUEUE_URL"):
        queue = arns.queue(QueueUrl.parse(env["QUARANTINE_QUEUE_URL"]))
        out.append(statement("SendToQuarantineQueue", ["sqs:SendMessage"], [queue]))
    if env.get("QUARANTINE_BUCKET"):
        objects = arns.s3_objects(env["QUARANTINE_BUCKET"], env.get("QUARANTINE_PREFIX", "quarantine/"))
        out.append(statement("WriteQuarantineBucket", ["s3:PutObject"], [objects]))
    return out


def role_statements(settings: Settings, arns: ResourceArns) -> list[dict[str, Any]]:
    """The statements of the execution role's inline policy, in a fixed order.

    Parameters
    ----------
    settings : Settings
        Validated ``deploy.toml``: the streams, on-failure destinations and environment.
    arns : ResourceArns
        How to spell each ARN.

    Returns
    -------
    list of dict
        Logs, stream reads, on-failure destinations, results / quarantine writes, then reads of
        the model artifacts in ``[layers] artifact_bucket`` (``models/<model_name>/*`` only).

    Raises
    ------
    PolicyError
        If ``QUARANTINE_QUEUE_URL`` is not a queue URL.
    """
    kinesis = [s.stream_arn for s in settings.event_sources if s.type == "kinesis"]
    consumers = [s.consumer_arn for s in settings.event_sources if s.consumer_arn]
    dynamodb = [s.source_arn for s in settings.event_sources if s.type == "dynamodb"]
    statements = [statement("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [arns.log_group()])]
    if kinesis:
        statements.append(statement("ReadKinesisStreams", list(KINESIS_READ), kinesis))
    if consumers:
        statements.append(statement("ReadKinesisConsumers", list(KINESIS_CONSUMER_READ), consumers))
    if dynamodb:
        statements.append(statement("ReadDynamoDBStreams", list(DYNAMODB_STREAM_READ), dynamodb))
    statements += _on_failure_statements(settings, arns)
    statements += _sink_statements(settings.function.environment, arns)
    if settings.layers.artifact_bucket:
        # A model too big for a layer is read from here at init (release.model_artifacts).
        objects = arns.s3_objects(settings.layers.artifact_bucket, artifact_prefix(settings))
        statements.append(statement("ReadModelArtifacts", ["s3:GetObject"], [objects]))
    return statements


def policy_document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """An IAM policy document holding ``statements``."""
    return {"Version": "2012-10-17", "Statement": statements}


@dataclass(frozen=True)
class LiteralArns:
    """ARNs spelled out, for a role created through the IAM API (``make bootstrap``).

    Parameters
    ----------
    partition, region, account : str
        Where the function runs (``aws``, ``us-east-1``, ``123456789012``).
    function_name : str
        Its log group is ``/aws/lambda/<function_name>``.
    """

    partition: str
    region: str
    account: str
    function_name: str

    def log_group(self) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/lambda/{self.function_name}:*"

    def on_failure_queue(self, arn: str) -> str:
        return arn

    def in_account(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    def s3_objects(self, bucket: str, prefix: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}/{prefix}*"

    def queue(self, url: QueueUrl) -> str:
        return f"arn:{self.partition}:sqs:{url.region}:{url.account}:{url.name}"
