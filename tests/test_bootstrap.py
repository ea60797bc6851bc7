"""``make bootstrap`` (release.bootstrap) against moto in process: what it lists, asks, creates and leaves alone.

The same module runs over HTTP against a moto server in tests/test_first_deploy.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.template import build_template
from release.bootstrap import BootstrapClients, main, plan
from release.settings import DEFAULT_PATH, Settings, load_settings

pytestmark = pytest.mark.aws

ACCOUNT = "123456789012"

#: Every kind of destination bootstrap knows, in eu-west-1 (not moto's default region).
VARIANT_TOML = f"""
[function]
name = "scorer_2"
role_arn = "arn:aws:iam::{ACCOUNT}:role/service/scorer"

[function.environment]
RESULTS_BUCKET = "scores-bucket"
RESULTS_PREFIX = "scored/"
QUARANTINE_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/scorer-poison"

[layers]
model_name = "scorer-model"
dependencies_name = "scorer-deps"

[[event_sources]]
type = "dynamodb"
source_arn = "arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/orders/stream/2026-11-21T09:00:00.000"
on_failure_destination_arn = "arn:aws:sns:eu-west-1:{ACCOUNT}:scorer-failures"

[[event_sources]]
type = "kinesis"
source_arn = "arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/clicks"
on_failure_destination_arn = "arn:aws:s3:::scorer-failures"

[[event_sources]]
type = "kinesis"
source_arn = "arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/views"
on_failure_destination_arn = "arn:aws:sqs:eu-west-1:{ACCOUNT}:scorer-failed"

[monitoring]
log_retention_days = 90
"""


def _clients(region: str) -> BootstrapClients:
    import boto3

    return BootstrapClients.from_session(boto3.Session(region_name=region))


@pytest.fixture
def repo_settings(tmp_path: Path) -> Settings:
    """The repository's deploy.toml, with its history file moved into tmp_path."""
    text = DEFAULT_PATH.read_text(encoding="utf-8").replace('file = "build/releases.jsonl"', 'file = "releases.jsonl"')
    path = tmp_path / "deploy.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


@pytest.fixture
def variant_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "variant.toml"
    path.write_text(VARIANT_TOML, encoding="utf-8")
    return load_settings(path)


def _resolve(value: Any, template: dict[str, Any], region: str) -> Any:
    """The template's references spelled out as CloudFormation would in ``region`` of ACCOUNT."""
    if isinstance(value, list):
        return [_resolve(v, template, region) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::GetAtt" in value:
        name, _ = value["Fn::GetAtt"]
        resource = template["Resources"][name]
        if resource["Type"] == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{resource['Properties']['LogGroupName']}:*"
        assert resource["Type"] == "AWS::SQS::Queue"
        return f"arn:aws:sqs:{region}:{ACCOUNT}:{resource['Properties']['QueueName']}"
    if "Fn::Sub" in value:
        pseudo = {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": ACCOUNT}
        text = value["Fn::Sub"]
        for name, spelled in pseudo.items():
            text = text.replace(f"${{{name}}}", spelled)
        return text
    return {k: _resolve(v, template, region) for k, v in value.items()}


def _run(argv: list[str], settings: Settings, region: str, **kwargs: Any) -> int:
    return main([*argv, "--settings", str(settings.path)], clients=_clients(region), **kwargs)


@pytest.mark.parametrize(("which", "region"), [("repo", "us-east-1"), ("variant", "eu-west-1")])
def test_creates_what_is_missing_with_the_templates_role_policy_then_nothing(
    mocked_aws, repo_settings, variant_settings, which, region, capsys
):
    import boto3

    settings = repo_settings if which == "repo" else variant_settings
    assert _run(["--yes", "--create-streams"], settings, region) == 0
    out = capsys.readouterr().out

    iam = boto3.client("iam")
    role_name = settings.function.role_arn.rsplit("/", 1)[1]
    role = iam.get_role(RoleName=role_name)["Role"]
    assert role["Arn"] == settings.function.role_arn
    assert f"created IAM role {role_name}: {settings.function.role_arn}" in out
    template = build_template(settings)
    stack_role = template["Resources"]["FunctionRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"] == stack_role["AssumeRolePolicyDocument"]
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["least-privilege"]
    assert not iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    created_policy = iam.get_role_policy(RoleName=role_name, PolicyName="least-privilege")["PolicyDocument"]
    assert created_policy == _resolve(stack_role["Policies"][0]["PolicyDocument"], template, region)

    logs = boto3.client("logs", region_name=region)
    (group,) = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{settings.function.name}")["logGroups"]
    assert group["retentionInDays"] == settings.monitoring.log_retention_days
    sqs = boto3.client("sqs", region_name=region)
    s3 = boto3.client("s3", region_name=region)
    if which == "repo":
        bucket = settings.layers.artifact_bucket
        assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None  # us-east-1
        url = sqs.get_queue_url(QueueName="stream-inference-failures")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["MessageRetentionPeriod"] == "1209600"
        table = boto3.client("dynamodb", region_name=region).describe_table(TableName="stream-inference-results")
        assert table["Table"]["KeySchema"] == [{"AttributeName": "record_id", "KeyType": "HASH"}]
        summary = boto3.client("kinesis", region_name=region).describe_stream_summary(StreamName="reviews")
        assert summary["StreamDescriptionSummary"]["StreamARN"] == settings.event_sources[0].source_arn
    else:
        for bucket in ("scores-bucket", "scorer-failures"):
            assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == region
        for queue in ("scorer-failed", "scorer-poison"):
            sqs.get_queue_url(QueueName=queue)
        boto3.client("sns", region_name=region).get_topic_attributes(
            TopicArn=f"arn:aws:sns:{region}:{ACCOUNT}:scorer-failures"
        )
        streams = boto3.client("kinesis", region_name=region).list_streams()["StreamNames"]
        assert sorted(streams) == ["clicks", "views"]
        # A DynamoDB stream's label is AWS's to choose: reported, never created.
        assert "missing  DynamoDB stream orders/stream/2026-11-21T09:00:00.000" in out
        assert boto3.client("dynamodb", region_name=region).list_tables()["TableNames"] == []

    assert _run(["--yes", "--create-streams"], settings, region) == 0
    again = capsys.readouterr()
    assert "created" not in again.out and "nothing to create" in again.out
    assert "create  " not in again.out and "warning: role" not in again.err


def test_refuses_without_a_terminal_unless_yes(mocked_aws, repo_settings, capsys):
    import boto3

    assert _run([], repo_settings, "us-east-1") == 2  # pytest's stdin is no terminal
    captured = capsys.readouterr()
    assert "  create   IAM role stream-inference-role  ([function] role_arn)" in captured.out
    assert "no terminal to confirm on; created nothing. Run again with --yes" in captured.err
    assert boto3.client("iam").list_roles()["Roles"] == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def test_asks_and_creates_only_on_yes(mocked_aws, repo_settings, capsys):
    import boto3

    questions: list[str] = []

    def answer(reply: bool):
        def ask(question: str) -> bool:
            questions.append(question)
            return reply

        return ask

    assert _run([], repo_settings, "us-east-1", ask=answer(False)) == 2
    assert boto3.client("iam").list_roles()["Roles"] == []
    assert _run([], repo_settings, "us-east-1", ask=answer(True)) == 0
    # Role, log group, bucket, queue, table; the stream only with --create-streams.
    assert questions == ["create 5 resource(s)? [y/N] "] * 2
    assert [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]] == ["stream-inference-role"]
    captured = capsys.readouterr()
    assert "missing  Kinesis stream reviews" in captured.out and "--create-streams" in captured.out
    assert "warning: Kinesis stream reviews does not exist; make deploy needs it" in captured.err
    assert boto3.client("kinesis").list_streams()["StreamNames"] == []


def test_plan_lists_without_creating(mocked_aws, repo_settings):
    import boto3

    boto3.client("s3").create_bucket(Bucket=repo_settings.layers.artifact_bucket)
    items = plan(repo_settings, _clients("us-east-1"), create_streams=True)
    assert {(i.kind, i.exists) for i in items} == {
        ("IAM role", False),
        ("log group", False),
        ("S3 bucket", True),
        ("SQS queue", False),
        ("DynamoDB table", False),
        ("Kinesis stream", False),
    }
    assert boto3.client("iam").list_roles()["Roles"] == []


def test_an_existing_role_is_left_alone_but_a_policy_it_lacks_is_reported(mocked_aws, repo_settings, capsys):
    import boto3

    iam = boto3.client("iam")
    iam.create_role(RoleName="stream-inference-role", AssumeRolePolicyDocument=json.dumps({"Statement": []}))
    assert _run(["--yes"], repo_settings, "us-east-1") == 0
    err = capsys.readouterr().err
    assert "warning: role stream-inference-role exists, and its inline policy 'least-privilege' is not" in err
    assert iam.list_role_policies(RoleName="stream-inference-role")["PolicyNames"] == []


def test_settings_in_another_account_or_region_are_refused(mocked_aws, tmp_path, capsys):
    import boto3

    text = VARIANT_TOML.replace(f"arn:aws:iam::{ACCOUNT}:", "arn:aws:iam::210987654321:")
    path = tmp_path / "other.toml"
    path.write_text(text, encoding="utf-8")
    settings = load_settings(path)
    assert _run(["--yes"], settings, "eu-west-1") == 2
    assert "[function] role_arn is in account 210987654321" in capsys.readouterr().err
    assert _run(["--yes"], load_settings(tmp_path / "other.toml"), "us-east-1") == 2
    err = capsys.readouterr().err
    assert "your credentials are for account 123456789012, region us-east-1" in err
    assert "[[event_sources]] #1 source_arn is in region eu-west-1" in err
    assert boto3.client("iam").list_roles()["Roles"] == []
