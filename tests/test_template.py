"""template.yaml: generated from deploy.toml, lint-clean as SAM and as CloudFormation, least privilege.

cfn-lint checks a SAM function's ``Events`` only through its transform, and reports what it
finds at the function's line (docs/aws-notes.md §6), so the template is also translated to plain
CloudFormation with aws-sam-translator (offline: the template names no managed policy) and that
output is linted and inspected too: the event source mappings Lambda would get, the IAM
policies, the HTTP routes.

Every check runs on the repository's deploy.toml and on a second settings file that
exercises what it does not (a DynamoDB stream, AT_TIMESTAMP, SNS and S3 on-failure
destinations, S3 results, an SQS quarantine, an alarm topic, another metrics namespace, reserved
concurrency).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from inference.app import App
from inference.quarantine import LogQuarantine
from inference.sinks import ResponseSink

from infra.template import (
    ACCESS_LOG_GROUP_ID,
    FUNCTION_ID,
    QUARANTINE_METRIC,
    TemplateError,
    build_template,
    main,
    render,
)
from release.deploy import desired_configuration, mapping_options
from release.settings import DEFAULT_PATH, ROOT, Settings, SettingsError, load_settings
from testing.events import kinesis_record

pytestmark = pytest.mark.unit

TEMPLATE = ROOT / "template.yaml"
OPENAPI = ROOT / "api" / "openapi.yaml"
#: cfn-lint rules the lint tests leave out, and why. Nothing else is ignored.
#: The runtime's Lambda lifecycle (W2531 deprecated, E2531 creation blocked, E2533 update
#: blocked) is a fact about deploy.toml's `runtime` and today's date, not about the
#: template: test_runtime_is_still_deployable checks it on its own, with cfn-lint's data,
#: so that it reads as what it is instead of hiding every other lint finding behind it.
RUNTIME_LIFECYCLE_RULES = ("W2531", "E2531", "E2533")

VARIANT_TOML = """
[function]
name = "scorer_2"
runtime = "python3.12"
architecture = "arm64"
memory_mb = 2048
timeout_s = 120
role_arn = "arn:aws:iam::210987654321:role/scorer"
alias = "prod"
reserved_concurrency = 40

[function.environment]
RESULTS_BUCKET = "scores-bucket"
RESULTS_PREFIX = "scored/"
QUARANTINE_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/210987654321/scorer-poison"
METRICS_NAMESPACE = "Scoring"

[layers]
model_name = "scorer-model"
dependencies_name = "scorer-deps"

[[event_sources]]
type = "dynamodb"
source_arn = "arn:aws:dynamodb:eu-west-1:210987654321:table/orders/stream/2026-11-21T09:00:00.000"
batch_size = 500
maximum_batching_window_s = 5
starting_position = "LATEST"
parallelization_factor = 4
bisect_batch_on_function_error = false
maximum_retry_attempts = -1
maximum_record_age_s = -1
on_failure_destination_arn = "arn:aws:sns:eu-west-1:210987654321:scorer-failures"
enabled = false

[[event_sources]]
type = "kinesis"
source_arn = "arn:aws:kinesis:eu-west-1:210987654321:stream/clicks"
starting_position = "AT_TIMESTAMP"
starting_position_timestamp = 2026-11-21T09:00:00Z
on_failure_destination_arn = "arn:aws:s3:::scorer-failures"

[[event_sources]]
type = "kinesis"
source_arn = "arn:aws:kinesis:eu-west-1:210987654321:stream/views"
on_failure_destination_arn = "arn:aws:sqs:eu-west-1:210987654321:scorer-failed"

[monitoring]
log_retention_days = 90
iterator_age_alarm_s = 60
errors_alarm_threshold = 3
quarantined_alarm_threshold = 10
alarm_topic_arn = "arn:aws:sns:eu-west-1:210987654321:oncall"
"""


class Case:
    """One settings file, its SAM template and the CloudFormation it translates to."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.text = render(settings)
        self.sam = yaml.safe_load(self.text)
        arn = settings.event_sources[0].source_arn.split(":")
        #: The account and region deploy.toml's ARNs name: where the stack is deployed.
        self.region, self.account = arn[3], arn[4]
        layer = f"arn:aws:lambda:{self.region}:{self.account}:layer"
        self.parameters = {
            "DepsLayerArn": f"{layer}:{settings.layers.dependencies_name}:7",
            "ModelLayerArn": f"{layer}:{settings.layers.model_name}:3",
        }
        self.cfn = translate(self.sam, self.region, self.parameters)
        self.resources: dict[str, Any] = self.cfn["Resources"]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    def resolve(self, value: Any) -> Any:
        """Resolve the intrinsic functions the checks meet, as CloudFormation would in this account."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            name = value["Ref"]
            pseudo = {"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::Partition": "aws"}
            return pseudo.get(name) or self.parameters.get(name) or f"<{name}>"
        if set(value) == {"Fn::GetAtt"}:
            name, attribute = value["Fn::GetAtt"]
            resource = self.resources[name]
            if resource["Type"] == "AWS::SQS::Queue" and attribute == "Arn":
                return f"arn:aws:sqs:{self.region}:{self.account}:{resource['Properties']['QueueName']}"
            return f"<{name}.{attribute}>"
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
            for name in ("AWS::Region", "AWS::AccountId", "AWS::Partition"):
                text = text.replace(f"${{{name}}}", self.resolve({"Ref": name}))
            return text
        return {k: self.resolve(v) for k, v in value.items()}


def translate(sam: dict[str, Any], region: str, parameters: dict[str, str]) -> dict[str, Any]:
    """SAM -> CloudFormation with aws-sam-translator, offline (as ``sam deploy`` would, after packaging)."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # What `sam package` puts there after uploading build/function.zip.
            resource["Properties"]["CodeUri"] = "s3://artifact-bucket/function.zip"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", region)  # the translator reads the partition from it
        # No managed policy map: the template must not name a managed policy.
        return Translator(managed_policy_map={}, sam_parser=Parser()).translate(sam, parameter_values=parameters)


def lint(text: str, region: str) -> list[str]:
    """cfn-lint findings (errors, warnings and informational) but the runtime lifecycle rules."""
    from cfnlint.api import ManualArgs, lint

    config = ManualArgs(regions=[region], include_checks=["I"], ignore_checks=list(RUNTIME_LIFECYCLE_RULES))
    return [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in lint(text, config=config)]


@pytest.fixture(scope="module", params=["deploy.toml", "variant"])
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    if request.param == "deploy.toml":
        return Case(load_settings(DEFAULT_PATH))
    path = tmp_path_factory.mktemp("settings") / "deploy.toml"
    path.write_text(VARIANT_TOML)
    return Case(load_settings(path))


@pytest.fixture(scope="module")
def repo_case() -> Case:
    return Case(load_settings(DEFAULT_PATH))


# --- generated, and in step with deploy.toml ------------------------------------------


def test_template_yaml_is_what_deploy_toml_generates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--settings", str(DEFAULT_PATH)]) == 0, capsys.readouterr().err


def test_check_fails_on_a_stale_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "template.yaml"
    stale.write_text(TEMPLATE.read_text(encoding="utf-8").replace("MemorySize: 1024", "MemorySize: 512"))
    assert main(["--check", "--settings", str(DEFAULT_PATH), "--out", str(stale)]) == 1
    assert "make template" in capsys.readouterr().err
    assert main(["--settings", str(DEFAULT_PATH), "--out", str(stale)]) == 0
    assert main(["--check", "--settings", str(DEFAULT_PATH), "--out", str(stale)]) == 0


# --- lint, both ways --------------------------------------------------------------------


def test_sam_template_lints_clean(case: Case) -> None:
    assert lint(case.text, case.region) == []


def test_translated_template_lints_clean(case: Case) -> None:
    assert "Transform" not in case.cfn
    assert not [r for r in case.resources.values() if r["Type"].startswith("AWS::Serverless::")]
    assert lint(json.dumps(case.cfn, indent=1), case.region) == []


def test_runtime_is_still_deployable(repo_case: Case) -> None:
    from cfnlint.data import AdditionalSpecs
    from cfnlint.helpers import load_resource

    runtime = repo_case.settings.function.runtime
    lifecycle = load_resource(AdditionalSpecs, "LmbdRuntimeLifecycle.json").get(runtime, {})
    today = datetime.now().strftime("%Y-%m-%d")
    assert today < lifecycle.get("create-block", "9999"), f"Lambda blocks creating {runtime} functions: {lifecycle}"
    assert today < lifecycle.get("update-block", "9999"), f"Lambda blocks updating {runtime} functions: {lifecycle}"


# --- what make deploy applies, the stack applies ---------------------------------------


def test_function_matches_make_deploy(case: Case) -> None:
    (name, function), *others = case.of_type("AWS::Lambda::Function").items()
    assert name == FUNCTION_ID and not others
    props = case.resolve(function["Properties"])
    layers = [case.parameters["DepsLayerArn"], case.parameters["ModelLayerArn"]]
    desired = desired_configuration(case.settings, layers)
    del desired["Role"]  # the stack's own least-privilege role (checked below), not deploy.toml's role_arn
    got = {key: props.get(key) for key in desired}
    got["Environment"] = props.get("Environment", {"Variables": {}})
    assert got == desired
    assert props["FunctionName"] == case.settings.function.name
    assert props["Architectures"] == [case.settings.function.architecture]
    assert props["Role"] == "<FunctionRole.Arn>"
    (alias,) = case.of_type("AWS::Lambda::Alias").values()
    assert alias["Properties"]["Name"] == case.settings.function.alias


def test_event_source_mappings_match_make_deploy(case: Case) -> None:
    mappings = {m["Properties"]["EventSourceArn"]: m for m in case.of_type("AWS::Lambda::EventSourceMapping").values()}
    assert sorted(mappings) == sorted(s.source_arn for s in case.settings.event_sources)
    (alias_id,) = case.of_type("AWS::Lambda::Alias")
    for source in case.settings.event_sources:
        expected = {
            **mapping_options(source),
            "EventSourceArn": source.source_arn,
            "FunctionName": {"Ref": alias_id},
            "StartingPosition": source.starting_position,
        }
        if source.starting_position_timestamp is not None:
            expected["StartingPositionTimestamp"] = source.starting_position_timestamp.timestamp()
        got = dict(mappings[source.source_arn]["Properties"])
        got["DestinationConfig"] = case.resolve(got["DestinationConfig"])
        assert got == expected


def test_on_failure_queues_are_created_and_kept(case: Case) -> None:
    queues = case.of_type("AWS::SQS::Queue")
    arns = {s.on_failure_destination_arn for s in case.settings.event_sources}
    wanted = {arn.rsplit(":", 1)[1] for arn in arns if arn.split(":")[2] == "sqs"}
    assert {q["Properties"]["QueueName"] for q in queues.values()} == wanted
    for queue in queues.values():
        assert (queue["DeletionPolicy"], queue["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_log_group_has_the_retention_and_comes_first(case: Case) -> None:
    groups = case.of_type("AWS::Logs::LogGroup")
    assert sorted(groups) == sorted(["LogGroup", ACCESS_LOG_GROUP_ID])
    name, group = "LogGroup", groups["LogGroup"]
    assert group["Properties"] == {
        "LogGroupName": f"/aws/lambda/{case.settings.function.name}",
        "RetentionInDays": case.settings.monitoring.log_retention_days,
    }
    assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert name in case.resources[FUNCTION_ID]["DependsOn"]


# --- least privilege --------------------------------------------------------------------


def _statements(case: Case, role: str | None = None) -> list[dict[str, Any]]:
    """The statements of every role and policy, or of one role only."""
    out = []
    for name, resource in case.resources.items():
        if role is not None and name != role:
            continue
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                out += policy["PolicyDocument"]["Statement"]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            out += resource["Properties"]["PolicyDocument"]["Statement"]
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_one_role_with_inline_policies_only(case: Case) -> None:
    roles = case.of_type("AWS::IAM::Role")
    assert sorted(roles) == ["DeploymentRole", "FunctionRole"], "SAM must not have generated a role of its own"
    for name, service in (("FunctionRole", "lambda"), ("DeploymentRole", "codedeploy")):
        role = roles[name]["Properties"]
        assert not role.get("ManagedPolicyArns"), "managed policies grant Resource '*'"
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {"Effect": "Allow", "Principal": {"Service": f"{service}.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
    assert not case.of_type("AWS::IAM::Policy") and not case.of_type("AWS::IAM::ManagedPolicy")


def test_no_wildcard_actions_or_resources(case: Case) -> None:
    statements = _statements(case)
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        for action in _as_list(statement["Action"]):
            assert "*" not in action, statement
        for resource in _as_list(case.resolve(statement["Resource"])):
            assert isinstance(resource, str) and resource != "*", statement
            # A trailing '*' only for objects under a prefix of a named S3 bucket.
            if "*" in resource:
                assert resource.index("*") == len(resource) - 1, statement
                assert resource.startswith("arn:aws:s3:::") and "/" in resource, statement


def _grants(case: Case, role: str = "FunctionRole") -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in _statements(case, role):
        for action in _as_list(statement["Action"]):
            grants.setdefault(action, set()).update(_as_list(case.resolve(statement["Resource"])))
    return grants


def test_repository_role_grants_exactly_what_the_function_uses(repo_case: Case) -> None:
    stream = repo_case.settings.event_sources[0].source_arn
    log_group = "<LogGroup.Arn>"  # arn:...:log-group:/aws/lambda/NAME:* (its log streams)
    queue = repo_case.settings.event_sources[0].on_failure_destination_arn
    table = f"arn:aws:dynamodb:{repo_case.region}:{repo_case.account}:table/{repo_case.settings.function.environment['RESULTS_TABLE']}"
    assert _grants(repo_case) == {
        "logs:CreateLogStream": {log_group},
        "logs:PutLogEvents": {log_group},
        "kinesis:DescribeStream": {stream},
        "kinesis:DescribeStreamSummary": {stream},
        "kinesis:GetRecords": {stream},
        "kinesis:GetShardIterator": {stream},
        "kinesis:ListShards": {stream},
        "sqs:SendMessage": {queue},
        "dynamodb:BatchWriteItem": {table},
        # a model too big for a layer: its artifacts, under the model layer's prefix only
        "s3:GetObject": {f"arn:aws:s3:::{repo_case.settings.layers.artifact_bucket}/models/stream-inference-model/*"},
    }


def test_variant_role_covers_its_streams_and_destinations(case: Case) -> None:
    grants = _grants(case)
    assert "cloudwatch:PutMetricData" not in grants, "metrics go out as EMF log lines"
    for source in case.settings.event_sources:
        reads = ["GetRecords", "GetShardIterator", "DescribeStream"]
        assert all(source.source_arn in grants[f"{source.type}:{action}"] for action in reads)
        destination = source.on_failure_destination_arn
        action = {"sqs": "sqs:SendMessage", "sns": "sns:Publish", "s3": "s3:PutObject"}[destination.split(":")[2]]
        assert any(r == destination or r.startswith(f"{destination}/") for r in grants[action])
    env = case.settings.function.environment
    if "RESULTS_BUCKET" in env:
        assert f"arn:aws:s3:::{env['RESULTS_BUCKET']}/{env['RESULTS_PREFIX']}*" in grants["s3:PutObject"]
    if "QUARANTINE_QUEUE_URL" in env:
        account, name = env["QUARANTINE_QUEUE_URL"].rsplit("/", 2)[1:]
        assert f"arn:aws:sqs:{case.region}:{account}:{name}" in grants["sqs:SendMessage"]


# --- HTTP: the OpenAPI routes, IAM auth only ---------------------------------------------


def test_http_api_serves_the_openapi_routes_with_iam_auth(case: Case) -> None:
    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    documented = {(method, path) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    (api,) = case.of_type("AWS::ApiGatewayV2::Api").values()
    body = api["Properties"]["Body"]
    served = {(method, path) for path, item in body["paths"].items() for method in item}
    assert served == documented
    for item in body["paths"].values():
        for operation in item.values():
            assert operation["security"] == [{"AWS_IAM": []}]
            assert operation["x-amazon-apigateway-integration"]["payloadFormatVersion"] == "2.0"
    (url,) = case.of_type("AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "AWS_IAM"
    for permission in case.of_type("AWS::Lambda::Permission").values():
        assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
        assert "FunctionUrlAuthType" not in permission["Properties"]


def test_http_api_logs_every_request_as_json_to_its_own_log_group(case: Case) -> None:
    (stage,) = case.of_type("AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": [ACCESS_LOG_GROUP_ID, "Arn"]}
    line = json.loads(settings["Format"])  # the format is a JSON object ...
    for key in ("requestId", "status", "latency", "integrationError"):
        assert line[key].startswith("$context."), key
    # ... of quoted $context variables only: API Gateway writes "-" for a missing value.
    assert all(isinstance(value, str) and value.startswith("$context.") for value in line.values())
    group = case.resources[ACCESS_LOG_GROUP_ID]
    assert group["Properties"]["RetentionInDays"] == case.settings.monitoring.log_retention_days
    assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert group["Properties"]["LogGroupName"] != case.resources["LogGroup"]["Properties"]["LogGroupName"]


def test_reserved_concurrency_is_what_make_deploy_puts(case: Case) -> None:
    (function,) = case.of_type("AWS::Lambda::Function").values()
    assert function["Properties"].get("ReservedConcurrentExecutions") == case.settings.function.reserved_concurrency


# --- alarms watch what the function emits --------------------------------------------------


def _alarm(case: Case, name: str) -> dict[str, Any]:
    return case.resolve(case.resources[name]["Properties"])


def test_lambda_alarms(case: Case) -> None:
    by_function = [{"Name": "FunctionName", "Value": case.settings.function.name}]
    monitoring = case.settings.monitoring
    iterator, errors = _alarm(case, "IteratorAgeAlarm"), _alarm(case, "ErrorsAlarm")
    assert (iterator["Namespace"], iterator["MetricName"], iterator["Dimensions"]) == (
        "AWS/Lambda",
        "IteratorAge",
        by_function,
    )
    assert iterator["Threshold"] == monitoring.iterator_age_alarm_s * 1000  # IteratorAge is in milliseconds
    assert (errors["Namespace"], errors["MetricName"], errors["Dimensions"]) == ("AWS/Lambda", "Errors", by_function)
    assert errors["Threshold"] == monitoring.errors_alarm_threshold
    topic = monitoring.alarm_topic_arn
    for alarm in case.of_type("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"].get("AlarmActions") == ([topic] if topic else None)


def test_quarantine_alarm_watches_the_metric_the_function_emits(
    case: Case, text_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    variables = case.sam["Resources"][FUNCTION_ID]["Properties"].get("Environment", {}).get("Variables", {})
    env = {**variables, "AWS_LAMBDA_FUNCTION_NAME": case.settings.function.name}
    app = App(text_model, env, ResponseSink(), LogQuarantine(), logging.getLogger("test_template"))
    poison = kinesis_record(b"\xff\xfe not UTF-8", 1)
    app.handle({"Records": [poison]})
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert emf[QUARANTINE_METRIC] == 1
    alarm = _alarm(case, "QuarantineAlarm")
    assert alarm["MetricName"] == QUARANTINE_METRIC
    assert QUARANTINE_METRIC in [m["Name"] for m in directive["Metrics"]]
    assert alarm["Namespace"] == directive["Namespace"]
    assert [[d["Name"] for d in alarm["Dimensions"]]] == directive["Dimensions"]
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"Service": emf["Service"]}
    assert alarm["Threshold"] == case.settings.monitoring.quarantined_alarm_threshold


# --- nothing sensitive -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["DB_PASSWORD", "API_KEY", "AWS_SECRET_ACCESS_KEY", "slack_token"])
def test_credentials_never_reach_the_template(repo_case: Case, key: str) -> None:
    fn = repo_case.settings.function
    settings = dataclasses.replace(
        repo_case.settings, function=dataclasses.replace(fn, environment={**fn.environment, key: "hunter2"})
    )
    with pytest.raises(TemplateError, match=f"{key} looks like a credential"):
        build_template(settings)


# --- [monitoring] validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("log_retention_days = 31", "not a CloudWatch Logs retention"),
        ('alarm_topic_arn = "arn:aws:sqs:us-east-1:123456789012:q"', "not an SNS topic ARN"),
        ("errors_alarm_threshold = 0", "out of range"),
        ("iterator_age_s = 60", "unknown key"),
    ],
)
def test_monitoring_settings_are_validated(tmp_path: Path, line: str, message: str) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8").replace("[monitoring]\n", f"[monitoring]\n{line}\n", 1)
    path = tmp_path / "deploy.toml"
    # Drop the key the bad line replaces, so that TOML does not see it twice.
    key = line.split(" =")[0]
    path.write_text("\n".join(x for x in text.splitlines() if not x.startswith(f"{key} = ") or x == line) + "\n")
    with pytest.raises(SettingsError, match=message):
        load_settings(path)
