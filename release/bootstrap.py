"""Create what a first ``make deploy`` needs and does not find yet: ``make bootstrap``.

Reads ``deploy.toml``, checks each prerequisite below in the account and region of your
credentials, lists what exists and what it would create, asks on a terminal (``--yes``
skips the question; without a terminal and without ``--yes`` it creates nothing and says
so), creates what is missing and prints each ARN. It never changes what exists (an existing
role whose inline policy differs from what ``deploy.toml`` needs gets a warning): a second
run creates nothing.

============================  =====================================  ==========================================
prerequisite                  named by                               created as
============================  =====================================  ==========================================
IAM role                      ``[function] role_arn``                trusted by lambda.amazonaws.com; inline policy
                                                                     ``least-privilege`` from :mod:`release.role_policy`
                                                                     (the grants ``template.yaml`` gives its role)
log group                     ``/aws/lambda/<[function] name>``      retention ``[monitoring] log_retention_days``
                                                                     (the role may write to it, not create it)
S3 bucket                     ``[layers] artifact_bucket``           in the region of your credentials
on-failure destination        ``on_failure_destination_arn``         SQS queue (14 days' retention, SSE), SNS topic
                                                                     or S3 bucket
results / quarantine          ``RESULTS_TABLE``, ``RESULTS_STREAM``, DynamoDB table (partition key ``record_id``,
                              ``RESULTS_BUCKET``,                    string; on demand), Kinesis stream (1 shard),
                              ``QUARANTINE_QUEUE_URL``,              S3 bucket, SQS queue
                              ``QUARANTINE_BUCKET``
source stream                 ``[[event_sources]] source_arn``       only with ``--create-streams``: an empty Kinesis
                                                                     stream (1 shard). A DynamoDB stream's label is
                                                                     chosen by AWS, so it is never created here
============================  =====================================  ==========================================

A new IAM role can take a few seconds to reach Lambda; the ``make deploy`` right after retries
``CreateFunction`` meanwhile (:func:`release.deploy.create_function_when_role_ready`).

Usage::

    python -m release.bootstrap [--yes] [--create-streams] [--settings deploy.toml]
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release.role_policy import (
    POLICY_NAME,
    LiteralArns,
    PolicyError,
    QueueUrl,
    policy_document,
    role_statements,
    trust_policy,
)
from release.settings import Settings, SettingsError, load_settings

#: SQS keeps messages at most 14 days: the on-failure queue holds the only trace of records Lambda gave up on.
QUEUE_RETENTION_S = 1209600
#: Shards of a Kinesis stream created here (the cheapest: add shards when the load needs them).
STREAM_SHARDS = 1


class BootstrapError(RuntimeError):
    """Bootstrap cannot go ahead; the message says why and what to change."""


@dataclass(frozen=True)
class BootstrapClients:
    """The boto3 clients bootstrap uses, one per service."""

    iam: Any
    sts: Any
    s3: Any
    sqs: Any
    sns: Any
    logs: Any
    dynamodb: Any
    dynamodbstreams: Any
    kinesis: Any

    @classmethod
    def from_session(cls, session: Any = None) -> BootstrapClients:
        """Clients from a boto3 session (default: credentials, region and endpoint the usual way)."""
        import boto3
        from botocore.config import Config

        session = session or boto3.Session()
        config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60)
        names = ("iam", "sts", "s3", "sqs", "sns", "logs", "dynamodb", "dynamodbstreams", "kinesis")
        return cls(*(session.client(name, config=config) for name in names))


@dataclass(frozen=True)
class Target:
    """Where bootstrap creates: the partition, region and account of the credentials."""

    partition: str
    region: str
    account: str


@dataclass(frozen=True)
class Prerequisite:
    """One thing ``make deploy`` (or the function) needs.

    Attributes
    ----------
    kind : str
        e.g. ``"IAM role"``, ``"SQS queue"``.
    name : str
        Its name.
    setting : str
        Where ``deploy.toml`` names it.
    arn : str
        Its ARN (as it is, or as it will be).
    exists : bool
    create : callable or None
        Creates it and returns its ARN; ``None`` when bootstrap does not create it.
    why_not : str
        For ``create=None``: what to do instead.
    warning : str
        Something about an existing one that ``make deploy`` or the function will trip on.
    """

    kind: str
    name: str
    setting: str
    arn: str
    exists: bool
    create: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    why_not: str = ""
    warning: str = ""


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _exists(call: Callable[..., Any], missing: tuple[str, ...], **kwargs: Any) -> bool:
    """True if ``call(**kwargs)`` succeeds, False if it fails with one of the ``missing`` error codes."""
    try:
        call(**kwargs)
    except Exception as exc:
        if _code(exc) in missing:
            return False
        raise
    return True


def _inline_policy(iam: Any, role: str) -> Any:
    """The role's inline policy :data:`~release.role_policy.POLICY_NAME` as a dict; ``None`` if it has none."""
    try:
        document = iam.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
    except Exception as exc:
        if _code(exc) == "NoSuchEntity":
            return None
        raise
    return json.loads(urllib.parse.unquote(document)) if isinstance(document, str) else document


def caller_target(clients: BootstrapClients) -> Target:
    """The partition and account of the credentials (``GetCallerIdentity``) and the clients' region."""
    identity = clients.sts.get_caller_identity()
    return Target(str(identity["Arn"]).split(":")[1], str(clients.sts.meta.region_name), str(identity["Account"]))


def _check_placement(settings: Settings, target: Target) -> None:
    """Every ARN in ``deploy.toml`` must be in ``target``'s account (and region): bootstrap creates nowhere else."""
    named = [("[function] role_arn", settings.function.role_arn)]
    for i, source in enumerate(settings.event_sources, 1):
        named.append((f"[[event_sources]] #{i} source_arn", source.source_arn))
        named.append((f"[[event_sources]] #{i} on_failure_destination_arn", source.on_failure_destination_arn))
    problems = []
    for key, arn in named:
        parts = arn.split(":")
        region, account = parts[3], parts[4]
        if account and account != target.account:
            problems.append(f"{key} is in account {account}")
        elif region and region != target.region:
            problems.append(f"{key} is in region {region}")
    queue_url = settings.function.environment.get("QUARANTINE_QUEUE_URL")
    if queue_url:
        url = QueueUrl.parse(queue_url)
        if (url.account, url.region) != (target.account, target.region):
            problems.append(f"QUARANTINE_QUEUE_URL is in account {url.account}, region {url.region}")
    if problems:
        raise BootstrapError(
            f"your credentials are for account {target.account}, region {target.region}, and bootstrap creates only "
            f"there, but {settings.path}: " + "; ".join(problems) + ". Fix those settings, or use credentials "
            "(AWS_PROFILE) and a region (AWS_DEFAULT_REGION) of the account and region they name"
        )


class _Planner:
    """Builds the list of prerequisites, checking each one's existence once."""

    def __init__(self, settings: Settings, clients: BootstrapClients, target: Target) -> None:
        self.settings, self.clients, self.target = settings, clients, target
        self.items: list[Prerequisite] = []

    def add(self, item: Prerequisite) -> None:
        if not any((i.kind, i.name) == (item.kind, item.name) for i in self.items):
            self.items.append(item)

    def known(self, kind: str, name: str) -> bool:
        return any((i.kind, i.name) == (kind, name) for i in self.items)

    # --- one method per kind of resource ---------------------------------------------------

    def role(self) -> None:
        fn, iam, t = self.settings.function, self.clients.iam, self.target
        path_and_name = fn.role_arn.split(":role/", 1)[1]
        name = path_and_name.rsplit("/", 1)[-1]
        path = "/" + path_and_name[: -len(name)] if "/" in path_and_name else "/"
        policy = policy_document(role_statements(self.settings, LiteralArns(t.partition, t.region, t.account, fn.name)))

        def create() -> str:
            arn = iam.create_role(
                RoleName=name,
                Path=path,
                AssumeRolePolicyDocument=json.dumps(trust_policy()),
                Description=f"Execution role of {fn.name}: only what it reads and writes (make bootstrap)",
            )["Role"]["Arn"]
            iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
            iam.get_waiter("role_exists").wait(RoleName=name)
            return str(arn)

        exists = _exists(iam.get_role, ("NoSuchEntity",), RoleName=name)
        warning = ""
        if exists and _inline_policy(iam, name) != policy:
            warning = (
                f"role {name} exists, and its inline policy {POLICY_NAME!r} is not the one {self.settings.path} "
                "needs (missing, or for other streams or destinations); bootstrap never changes an existing role: "
                "compare it with FunctionRole in template.yaml (make template)"
            )
        self.add(Prerequisite("IAM role", name, "[function] role_arn", fn.role_arn, exists, create, warning=warning))

    def log_group(self) -> None:
        fn, logs, t = self.settings.function, self.clients.logs, self.target
        name = f"/aws/lambda/{fn.name}"
        arn = f"arn:{t.partition}:logs:{t.region}:{t.account}:log-group:{name}"
        groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
        retention = self.settings.monitoring.log_retention_days

        def create() -> str:
            logs.create_log_group(logGroupName=name)
            logs.put_retention_policy(logGroupName=name, retentionInDays=retention)
            return arn

        exists = any(g.get("logGroupName") == name for g in groups)
        self.add(Prerequisite("log group", name, "[function] name", arn, exists, create))

    def bucket(self, name: str, setting: str) -> None:
        if self.known("S3 bucket", name):
            return
        s3, region = self.clients.s3, self.target.region
        try:
            exists = _exists(s3.head_bucket, ("404", "NoSuchBucket", "NotFound"), Bucket=name)
        except Exception as exc:
            if _code(exc) in ("403", "AccessDenied", "Forbidden"):
                raise BootstrapError(
                    f"S3 bucket {name} ({setting}) exists but is not yours to use (bucket names are global): "
                    f"choose another name in {self.settings.path}"
                ) from None
            raise
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}

        def create() -> str:
            s3.create_bucket(Bucket=name, **location)
            return f"arn:{self.target.partition}:s3:::{name}"

        self.add(Prerequisite("S3 bucket", name, setting, f"arn:{self.target.partition}:s3:::{name}", exists, create))

    def queue(self, name: str, setting: str) -> None:
        sqs, t = self.clients.sqs, self.target
        attributes = {"MessageRetentionPeriod": str(QUEUE_RETENTION_S), "SqsManagedSseEnabled": "true"}
        if name.endswith(".fifo"):
            attributes["FifoQueue"] = "true"
        arn = f"arn:{t.partition}:sqs:{t.region}:{t.account}:{name}"

        def create() -> str:
            sqs.create_queue(QueueName=name, Attributes=attributes)
            return arn

        missing = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
        exists = _exists(sqs.get_queue_url, missing, QueueName=name, QueueOwnerAWSAccountId=t.account)
        self.add(Prerequisite("SQS queue", name, setting, arn, exists, create))

    def topic(self, arn: str, setting: str) -> None:
        sns = self.clients.sns
        name = arn.rsplit(":", 1)[1]

        def create() -> str:
            return str(sns.create_topic(Name=name)["TopicArn"])

        exists = _exists(sns.get_topic_attributes, ("NotFound",), TopicArn=arn)
        self.add(Prerequisite("SNS topic", name, setting, arn, exists, create))

    def destination(self, arn: str, setting: str) -> None:
        service = arn.split(":")[2]
        if service == "sqs":
            self.queue(arn.rsplit(":", 1)[1], setting)
        elif service == "sns":
            self.topic(arn, setting)
        else:
            self.bucket(arn.split(":::", 1)[1], setting)

    def table(self, name: str, setting: str) -> None:
        ddb, t = self.clients.dynamodb, self.target

        def create() -> str:
            arn = ddb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "record_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "record_id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )["TableDescription"]["TableArn"]
            ddb.get_waiter("table_exists").wait(TableName=name)
            return str(arn)

        arn = f"arn:{t.partition}:dynamodb:{t.region}:{t.account}:table/{name}"
        exists = _exists(ddb.describe_table, ("ResourceNotFoundException",), TableName=name)
        self.add(Prerequisite("DynamoDB table", name, setting, arn, exists, create))

    def kinesis_stream(self, name: str, setting: str, create_it: bool) -> None:
        kinesis, t = self.clients.kinesis, self.target

        def create() -> str:
            kinesis.create_stream(StreamName=name, ShardCount=STREAM_SHARDS)
            kinesis.get_waiter("stream_exists").wait(StreamName=name)
            return str(kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"])

        arn = f"arn:{t.partition}:kinesis:{t.region}:{t.account}:stream/{name}"
        exists = _exists(kinesis.describe_stream_summary, ("ResourceNotFoundException",), StreamName=name)
        why_not = "" if create_it else "the stream is your data: create it, or pass --create-streams for an empty one"
        self.add(Prerequisite("Kinesis stream", name, setting, arn, exists, create if create_it else None, why_not))

    def dynamodb_stream(self, arn: str, setting: str) -> None:
        streams = self.clients.dynamodbstreams
        exists = _exists(streams.describe_stream, ("ResourceNotFoundException",), StreamArn=arn)
        table = arn.split(":table/", 1)[1].split("/", 1)[0]
        why_not = (
            f"AWS chooses a stream's label: enable a stream on table {table} yourself "
            "and put its LatestStreamArn in source_arn"
        )
        self.add(Prerequisite("DynamoDB stream", arn.split(":table/", 1)[1], setting, arn, exists, None, why_not))


def plan(settings: Settings, clients: BootstrapClients, *, create_streams: bool = False) -> list[Prerequisite]:
    """What ``make deploy`` needs, each checked for existence (nothing is created).

    Parameters
    ----------
    settings : Settings
    clients : BootstrapClients
    create_streams : bool
        Also offer to create missing Kinesis source streams (normally they exist: they are the data).

    Returns
    -------
    list of Prerequisite
        In the order they would be created: the role first (it takes longest to propagate).

    Raises
    ------
    BootstrapError
        If ``deploy.toml`` names another account or region than the credentials', or an
        S3 bucket name another account owns.
    PolicyError
        If ``QUARANTINE_QUEUE_URL`` is not a queue URL.
    """
    target = caller_target(clients)
    _check_placement(settings, target)
    planner = _Planner(settings, clients, target)
    planner.role()
    planner.log_group()
    if settings.layers.artifact_bucket:
        planner.bucket(settings.layers.artifact_bucket, "[layers] artifact_bucket")
    for i, source in enumerate(settings.event_sources, 1):
        planner.destination(source.on_failure_destination_arn, f"[[event_sources]] #{i} on_failure_destination_arn")
    env = settings.function.environment
    if env.get("RESULTS_TABLE"):
        planner.table(env["RESULTS_TABLE"], "RESULTS_TABLE")
    if env.get("SHADOW_RESULTS_TABLE"):
        planner.table(env["SHADOW_RESULTS_TABLE"], "SHADOW_RESULTS_TABLE")
    if env.get("RESULTS_STREAM"):
        planner.kinesis_stream(env["RESULTS_STREAM"], "RESULTS_STREAM", create_it=True)
    for key in ("RESULTS_BUCKET", "QUARANTINE_BUCKET"):
        if env.get(key):
            planner.bucket(env[key], key)
    if env.get("QUARANTINE_QUEUE_URL"):
        planner.queue(QueueUrl.parse(env["QUARANTINE_QUEUE_URL"]).name, "QUARANTINE_QUEUE_URL")
    for i, source in enumerate(settings.event_sources, 1):
        setting = f"[[event_sources]] #{i} source_arn"
        if source.type == "kinesis":
            planner.kinesis_stream(source.stream_arn.rsplit("/", 1)[1], setting, create_it=create_streams)
        else:
            planner.dynamodb_stream(source.source_arn, setting)
    return planner.items


def format_plan(items: list[Prerequisite]) -> str:
    """One line per prerequisite: ``exists``, ``create`` or ``missing`` (bootstrap will not create it)."""
    lines = []
    for item in items:
        state = "exists" if item.exists else "create" if item.create else "missing"
        line = f"  {state:8} {item.kind} {item.name}  ({item.setting})"
        if not item.exists and item.create is None:
            line += f": {item.why_not}"
        lines.append(line)
    return "\n".join(lines)


def create_missing(items: list[Prerequisite]) -> list[tuple[Prerequisite, str]]:
    """Create every prerequisite that is missing and that bootstrap creates, in order.

    Returns
    -------
    list of (Prerequisite, str)
        What was created and its ARN.
    """
    created = []
    for item in items:
        if not item.exists and item.create is not None:
            created.append((item, item.create()))
    return created


def _terminal_ask(question: str) -> bool:
    return input(question).strip().lower() in ("y", "yes")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release.bootstrap", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, help="settings file (default: $DEPLOY_SETTINGS or deploy.toml)")
    parser.add_argument("--yes", action="store_true", help="create without asking (needed without a terminal)")
    parser.add_argument(
        "--create-streams", action="store_true", help="also create missing Kinesis source streams (empty, 1 shard)"
    )
    return parser


def main(
    argv: list[str] | None = None,
    clients: BootstrapClients | None = None,
    ask: Callable[[str], bool] | None = None,
) -> int:
    """Command line entry point; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Default: ``sys.argv[1:]``.
    clients : BootstrapClients, optional
        Default: clients from the usual boto3 session.
    ask : callable, optional
        Asks the yes/no question; default: on the terminal if stdin is one, else refuse.

    Returns
    -------
    int
        0 when everything bootstrap creates exists (afterwards), 2 when it refuses (settings,
        placement, no confirmation), 1 when AWS refuses or cannot be reached.
    """
    args = _parser().parse_args(argv)

    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        settings = load_settings(args.settings)
        clients = clients or BootstrapClients.from_session()
        items = plan(settings, clients, create_streams=args.create_streams)
        todo = [i for i in items if not i.exists and i.create is not None]
        print(f"bootstrap: what {settings.path} needs")
        print(format_plan(items))
        if todo:
            question = f"create {len(todo)} resource(s)? [y/N] "
            if not args.yes:
                if ask is None and not sys.stdin.isatty():
                    print(
                        f"bootstrap: {len(todo)} resource(s) to create, and no terminal to confirm on; "
                        "created nothing. Run again with --yes (make bootstrap YES=1) to create them",
                        file=sys.stderr,
                    )
                    return 2
                if not (ask or _terminal_ask)(question):
                    print("bootstrap: created nothing")
                    return 2
            for item, arn in create_missing(items):
                print(f"created {item.kind} {item.name}: {arn}")
            if any(i.kind == "IAM role" for i in todo):
                print("a new IAM role can take ~10 s to reach Lambda: the first `make deploy` waits for it")
        else:
            print("bootstrap: nothing to create")
        for item in items:
            if not item.exists and item.create is None:
                print(f"warning: {item.kind} {item.name} does not exist; make deploy needs it", file=sys.stderr)
            if item.warning:
                print(f"warning: {item.warning}", file=sys.stderr)
    except (BootstrapError, SettingsError, PolicyError) as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 2
    except NoRegionError:
        print(
            "bootstrap: no AWS region configured; set AWS_DEFAULT_REGION, or region in your AWS profile",
            file=sys.stderr,
        )
        return 2
    except NoCredentialsError:
        print("bootstrap: no AWS credentials found; set AWS_PROFILE or run `aws configure`", file=sys.stderr)
        return 2
    except EndpointConnectionError as exc:
        print(f"bootstrap: cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"bootstrap: AWS refused: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
