"""Generate ``template.yaml`` (AWS SAM) from ``deploy.toml``, so the two cannot drift.

The template describes what ``make deploy`` applies (the function, its ``live`` alias and
one event source mapping per ``[[event_sources]]`` entry, with the very options
:func:`release.deploy.mapping_options` sends) plus what only a stack can own:

* a least-privilege execution role: no wildcard actions, every resource scoped to the
  streams, the results and quarantine destinations, the on-failure queue and the log group
  (its statements come from :mod:`release.role_policy`, which ``make bootstrap`` uses too);
* the on-failure SQS queue(s) named in ``on_failure_destination_arn``;
* the log group ``/aws/lambda/NAME`` with ``[monitoring] log_retention_days``;
* alarms on Lambda's ``IteratorAge`` and ``Errors``, on the quarantine metric the
  function writes as EMF (``RecordsQuarantined``, dimension ``Service``) and on messages
  in the on-failure queue;
* gradual deployments of a new version (SAM's ``DeploymentPreference``, CodeDeploy:
  :data:`DEPLOYMENT_PREFERENCE`, rolled back by the alarms above) and CodeDeploy's role,
  scoped to the alias and those alarms;
* an HTTP API (``GET /models``, ``GET /models/{name}/metadata``,
  ``POST /models/{name}/predict``) and a function URL, both with IAM auth; the HTTP API logs
  every request as one JSON line (:data:`ACCESS_LOG_FORMAT`) to its own log group, kept for
  ``[monitoring] log_retention_days``;
* ``[function] reserved_concurrency`` as the function's ``ReservedConcurrentExecutions``
  (what ``make deploy`` puts with ``PutFunctionConcurrency``).

Both layers are parameters holding layer *version* ARNs (``DepsLayerArn``,
``ModelLayerArn``): layers are published by ``make publish-deps-layer`` /
``make publish-model-layer``, which check them and write the descriptions that
relink / deploy compare; a layer published by CloudFormation would skip both.

Usage::

    python -m infra.template            # write template.yaml from deploy.toml
    python -m infra.template --check    # exit 1 if template.yaml is not what deploy.toml generates
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from release.deploy import mapping_options
from release.role_policy import POLICY_NAME, PolicyError, QueueUrl, policy_document, role_statements, trust_policy
from release.settings import ROOT, EventSource, Settings, load_settings

DEFAULT_OUT = ROOT / "template.yaml"
#: Where ``sam deploy`` finds the code; ``make function-zip`` builds it.
CODE_URI = "build/function.zip"
#: ``function/inference/app.py``'s default for ``METRICS_NAMESPACE``.
DEFAULT_METRICS_NAMESPACE = "StreamInference"
#: The EMF metric counting poison records (``function/inference/batch.py``).
QUARANTINE_METRIC = "RecordsQuarantined"
#: The HTTP routes of ``api/openapi.yaml`` (method, path).
HTTP_ROUTES = (
    ("ListModels", "GET", "/models"),
    ("ModelMetadata", "GET", "/models/{name}/metadata"),
    ("Predict", "POST", "/models/{name}/predict"),
)
FUNCTION_ID = "Function"
ACCESS_LOG_GROUP_ID = "HttpApiAccessLogGroup"
#: One JSON object per HTTP API request (``$context`` variables of HTTP APIs). Every value is quoted:
#: a variable with no value is written as ``-``, which would not be JSON unquoted.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "sourceIp": "$context.identity.sourceIp",
    "caller": "$context.identity.userArn",
    "responseLength": "$context.responseLength",
    "latency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integrationErrorMessage",
    "error": "$context.error.message",
}
HEADER = """\
# GENERATED from deploy.toml by `make template` (python -m infra.template). Do not edit:
# change deploy.toml (or infra/template.py) and regenerate; `make test` fails on a difference.
#
# Deploy:  make function-zip && sam deploy --guided \\
#            --parameter-overrides DepsLayerArn=arn:...:layer:NAME:N ModelLayerArn=arn:...:layer:NAME:N
"""

Json = dict[str, Any]

#: Environment variable names that suggest a credential: the template (and the Lambda console) shows them in clear.
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY|ACCESS_KEY", re.IGNORECASE)


class TemplateError(ValueError):
    """``deploy.toml`` holds something the template cannot express."""


def _ref(name: str) -> Json:
    return {"Ref": name}


def _getatt(resource: str, attribute: str) -> Json:
    return {"Fn::GetAtt": [resource, attribute]}


def _sub(text: str) -> Json:
    return {"Fn::Sub": text}


def _literal(text: str) -> str:
    """``text`` made safe inside ``Fn::Sub`` (``${`` becomes the literal ``${!``)."""
    return text.replace("${", "${!")


def _camel(name: str) -> str:
    """``stream-inference_failures.fifo`` -> ``StreamInferenceFailuresFifo`` (a logical-id part)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _unique(base: str, used: set[str]) -> str:
    name, n = base, 2
    while name in used:
        name, n = f"{base}{n}", n + 1
    used.add(name)
    return name


def _stream_name(source: EventSource) -> str:
    if source.type == "kinesis":
        return source.stream_arn.rsplit("/", 1)[1]
    return source.source_arn.split(":table/", 1)[1].split("/", 1)[0]


class _Destinations:
    """On-failure destinations: SQS queues are created here; SNS topics and S3 buckets are referenced."""

    def __init__(self, used_ids: set[str]) -> None:
        self.used_ids = used_ids
        self.queues: dict[str, str] = {}  # destination ARN -> queue logical id

    def value(self, arn: str) -> Any:
        """What the event source mapping's ``OnFailure.Destination`` holds for ``arn``."""
        service = arn.split(":")[2]
        if service == "sqs":
            if arn not in self.queues:
                self.queues[arn] = _unique("OnFailureQueue", self.used_ids)
            return _getatt(self.queues[arn], "Arn")
        return arn

    def resources(self) -> Json:
        out: Json = {}
        for arn, logical_id in self.queues.items():
            out[logical_id] = {
                "Type": "AWS::SQS::Queue",
                # It holds the only trace of records Lambda gave up on: keep it whatever happens to the stack.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "QueueName": arn.rsplit(":", 1)[1],
                    "MessageRetentionPeriod": 1209600,
                    "SqsManagedSseEnabled": True,
                },
            }
        return out


def _event_source(source: EventSource, destinations: _Destinations) -> Json:
    """A SAM ``Kinesis`` / ``DynamoDB`` event with every option ``make deploy`` applies."""
    options = mapping_options(source)
    on_failure = options["DestinationConfig"]["OnFailure"]
    options["DestinationConfig"] = {"OnFailure": {"Destination": destinations.value(on_failure["Destination"])}}
    properties: Json = {"Stream": source.source_arn, "StartingPosition": source.starting_position}
    if source.starting_position_timestamp is not None:
        stamp = source.starting_position_timestamp.timestamp()
        properties["StartingPositionTimestamp"] = int(stamp) if stamp.is_integer() else stamp
    return {"Type": "Kinesis" if source.type == "kinesis" else "DynamoDB", "Properties": {**properties, **options}}


class _TemplateArns:
    """The policy's ARNs as CloudFormation references (:class:`release.role_policy.ResourceArns`)."""

    def __init__(self, destinations: _Destinations) -> None:
        self.destinations = destinations

    def log_group(self) -> Json:
        return _getatt("LogGroup", "Arn")

    def on_failure_queue(self, arn: str) -> Json:
        return _getatt(self.destinations.queues[arn], "Arn")

    def in_account(self, service: str, resource: str) -> Json:
        return _sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{_literal(resource)}")

    def s3_objects(self, bucket: str, prefix: str) -> Json:
        return _sub(f"arn:${{AWS::Partition}}:s3:::{_literal(bucket)}/{_literal(prefix)}*")

    def queue(self, url: QueueUrl) -> Json:
        return _sub(f"arn:${{AWS::Partition}}:sqs:{url.region}:{url.account}:{url.name}")


def _role(settings: Settings, destinations: _Destinations) -> Json:
    try:
        statements = role_statements(settings, _TemplateArns(destinations))
    except PolicyError as exc:
        raise TemplateError(str(exc)) from None
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"Execution role of {settings.function.name}: only what it reads and writes",
            "AssumeRolePolicyDocument": trust_policy(),
            "Policies": [{"PolicyName": POLICY_NAME, "PolicyDocument": policy_document(statements)}],
        },
    }


def _function(settings: Settings, events: Json) -> Json:
    fn = settings.function
    properties: Json = {
        "FunctionName": fn.name,
        "Description": "stream inference (SAM template generated from deploy.toml)",
        "CodeUri": CODE_URI,
        "Handler": fn.handler,
        "Runtime": fn.runtime,
        "Architectures": [fn.architecture],
        "MemorySize": fn.memory_mb,
        "Timeout": fn.timeout_s,
        "EphemeralStorage": {"Size": fn.ephemeral_storage_mb},
        "Role": _getatt("FunctionRole", "Arn"),
        # The order make deploy gives a new function (release.arns.replace_layers).
        "Layers": [_ref("DepsLayerArn"), _ref("ModelLayerArn")],
        "AutoPublishAlias": fn.alias,
        # SnapStart: each version AutoPublishAlias publishes is snapshotted after init (docs/snapstart.md).
        "SnapStart": {"ApplyOn": fn.snap_start},
        "DeploymentPreference": _deployment_preference(settings),
        "FunctionUrlConfig": {"AuthType": "AWS_IAM"},
        "Events": events,
    }
    if fn.environment:
        properties["Environment"] = {"Variables": dict(fn.environment)}
    if fn.reserved_concurrency is not None:
        properties["ReservedConcurrentExecutions"] = fn.reserved_concurrency
    # The log group must exist (with its retention) before Lambda would create one without.
    return {"Type": "AWS::Serverless::Function", "DependsOn": ["LogGroup"], "Properties": properties}


#: SAM's gradual deployment of a new version (CodeDeploy): 10 % of invocations for 30 minutes, then all,
#: rolled back by CodeDeploy if an alarm of :func:`_deployment_alarms` fires meanwhile. The stack's
#: counterpart of ``make publish-model-layer STRATEGY=canary PERCENT=10 MINUTES=30`` (release.canary).
DEPLOYMENT_PREFERENCE = "Canary10Percent30Minutes"
#: The role CodeDeploy assumes to shift the alias and read the alarms.
DEPLOYMENT_ROLE_ID = "DeploymentRole"


def _deployment_alarms(settings: Settings) -> list[str]:
    """The alarms that stop a stack deployment (logical ids of :func:`_alarms`)."""
    return (["IteratorAgeAlarm"] if settings.event_sources else []) + ["ErrorsAlarm", "QuarantineAlarm"]


def _deployment_preference(settings: Settings) -> Json:
    return {
        "Type": DEPLOYMENT_PREFERENCE,
        "Alarms": [_ref(alarm) for alarm in _deployment_alarms(settings)],
        "Role": _getatt(DEPLOYMENT_ROLE_ID, "Arn"),
    }


def _deployment_role(settings: Settings) -> Json:
    """CodeDeploy's role: what AWSCodeDeployRoleForLambda grants that a deployment without hooks uses, scoped.

    The alias's reads and moves on the function, and ``DescribeAlarms`` on the deployment's alarms (alarm
    ARNs scope it: docs/aws-notes.md §3). No SNS (no triggers), no hooks, no S3.
    """
    fn = settings.function
    function = _TemplateArns(_Destinations(set())).in_account("lambda", f"function:{fn.name}")
    alias = _TemplateArns(_Destinations(set())).in_account("lambda", f"function:{fn.name}:{fn.alias}")
    statements = [
        {
            "Sid": "ShiftTheAlias",
            "Effect": "Allow",
            "Action": ["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetProvisionedConcurrencyConfig"],
            "Resource": [function, alias],
        },
        {
            "Sid": "ReadTheAlarms",
            "Effect": "Allow",
            "Action": ["cloudwatch:DescribeAlarms"],
            "Resource": [_getatt(alarm, "Arn") for alarm in _deployment_alarms(settings)],
        },
    ]
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"CodeDeploy's role for {fn.name}'s gradual deployments: the alias and its alarms only",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "codedeploy.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [{"PolicyName": POLICY_NAME, "PolicyDocument": policy_document(statements)}],
        },
    }


def _alarm(settings: Settings, description: str, metric: Json, threshold: float, operator: str) -> Json:
    topic = settings.monitoring.alarm_topic_arn
    actions = {"AlarmActions": [topic], "OKActions": [topic]} if topic else {}
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            **metric,
            "Threshold": threshold,
            "ComparisonOperator": operator,
            "TreatMissingData": "notBreaching",
            **actions,
        },
    }


def _alarms(settings: Settings, queues: list[str]) -> Json:
    name, mon = settings.function.name, settings.monitoring
    namespace = settings.function.environment.get("METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE)
    by_function = [{"Name": "FunctionName", "Value": name}]
    out: Json = {}
    if settings.event_sources:
        out["IteratorAgeAlarm"] = _alarm(
            settings,
            f"{name} is falling behind its streams: records over {mon.iterator_age_alarm_s} s old when read",
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "IteratorAge",
                "Dimensions": by_function,
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 5,
            },
            mon.iterator_age_alarm_s * 1000,
            "GreaterThanThreshold",
        )
    out["ErrorsAlarm"] = _alarm(
        settings,
        f"{name} invocations failed (each failed stream batch is retried, then bisected)",
        {
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": by_function,
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
        },
        mon.errors_alarm_threshold,
        "GreaterThanOrEqualToThreshold",
    )
    out["QuarantineAlarm"] = _alarm(
        settings,
        f"{name} quarantined poison records (logged with their reason; never scored)",
        {
            "Namespace": namespace,
            "MetricName": QUARANTINE_METRIC,
            "Dimensions": [{"Name": "Service", "Value": name}],
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
        },
        mon.quarantined_alarm_threshold,
        "GreaterThanOrEqualToThreshold",
    )
    for queue in queues:
        out[f"{queue}Alarm"] = _alarm(
            settings,
            f"Lambda gave up on stream records of {name}: their descriptions are in this queue",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": _getatt(queue, "QueueName")}],
                "Statistic": "Maximum",
                "Period": 300,
                "EvaluationPeriods": 1,
            },
            1,
            "GreaterThanOrEqualToThreshold",
        )
    return out


def _access_log_group(settings: Settings) -> Json:
    """The HTTP API's access log group, with the function's retention (``[monitoring] log_retention_days``)."""
    return {
        "Type": "AWS::Logs::LogGroup",
        # The record of who asked for what; kept like the function's logs.
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "LogGroupName": f"/aws/apigateway/{settings.function.name}-http-api",
            "RetentionInDays": settings.monitoring.log_retention_days,
        },
    }


def _http_api(settings: Settings) -> Json:
    """The HTTP API: IAM auth on every route, an access log line per request in its own log group."""
    return {
        "Type": "AWS::Serverless::HttpApi",
        "Properties": {
            "Description": f"Synchronous predictions from {settings.function.name} (api/openapi.yaml); "
            "SigV4-signed requests only",
            "FailOnWarnings": True,
            "Auth": {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"},
            "AccessLogSettings": {
                "DestinationArn": _getatt(ACCESS_LOG_GROUP_ID, "Arn"),
                "Format": json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")),
            },
        },
    }


def _layer_parameter(kind: str, name: str, make_target: str) -> Json:
    return {
        "Type": "String",
        "Description": f"Version ARN of the {kind} layer {name} (published and checked by make {make_target})",
        "AllowedPattern": f"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{{12}}:layer:{name}:[0-9]+$",
        "ConstraintDescription": f"a version ARN of layer {name}: arn:aws:lambda:REGION:ACCOUNT:layer:{name}:N",
    }


def build_template(settings: Settings) -> Json:
    """The SAM template for ``settings``, as a plain dict (long-form intrinsic functions).

    Parameters
    ----------
    settings : Settings
        Validated ``deploy.toml``.

    Returns
    -------
    dict
        The template, ready for ``yaml.safe_dump``.

    Raises
    ------
    TemplateError
        If an environment variable looks like a credential, or names a destination the
        template cannot scope.
    """
    fn = settings.function
    secrets = sorted(key for key in fn.environment if _SECRET_NAME.search(key))
    if secrets:
        raise TemplateError(
            f"[function.environment] {', '.join(secrets)} looks like a credential; environment variables are stored "
            "and shown in clear (template, console, GetFunctionConfiguration). Keep it in Secrets Manager or SSM "
            "Parameter Store and read it at run time"
        )
    used_ids = {FUNCTION_ID, "FunctionRole", DEPLOYMENT_ROLE_ID, "LogGroup", "HttpApi", "DepsLayerArn", "ModelLayerArn"}
    used_ids.add(ACCESS_LOG_GROUP_ID)
    destinations = _Destinations(used_ids)
    events: Json = {}
    event_ids: set[str] = set()
    for source in settings.event_sources:
        base = ("Kinesis" if source.type == "kinesis" else "DynamoDB") + _camel(_stream_name(source))
        events[_unique(base, event_ids)] = _event_source(source, destinations)
    for event_id, method, path in HTTP_ROUTES:
        events[_unique(f"Http{event_id}", event_ids)] = {
            "Type": "HttpApi",
            "Properties": {"ApiId": _ref("HttpApi"), "Method": method, "Path": path},
        }
    layers = settings.layers
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": f"{fn.name}: stream inference on AWS Lambda (generated from deploy.toml)",
        "Parameters": {
            "DepsLayerArn": _layer_parameter("dependencies", layers.dependencies_name, "publish-deps-layer"),
            "ModelLayerArn": _layer_parameter("model", layers.model_name, "publish-model-layer; make releases"),
        },
        "Resources": {
            FUNCTION_ID: _function(settings, events),
            "FunctionRole": _role(settings, destinations),
            DEPLOYMENT_ROLE_ID: _deployment_role(settings),
            "LogGroup": {
                "Type": "AWS::Logs::LogGroup",
                # Logs are the record of what was scored and quarantined; their retention bounds the cost.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "LogGroupName": f"/aws/lambda/{fn.name}",
                    "RetentionInDays": settings.monitoring.log_retention_days,
                },
            },
            **destinations.resources(),
            "HttpApi": _http_api(settings),
            ACCESS_LOG_GROUP_ID: _access_log_group(settings),
            **_alarms(settings, list(destinations.queues.values())),
        },
        "Outputs": {
            "FunctionAliasArn": {"Description": "The alias the mappings invoke", "Value": _ref(f"{FUNCTION_ID}.Alias")},
            "HttpApiUrl": {
                "Description": "HTTP API base URL (AWS_IAM auth)",
                "Value": _sub("https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"),
            },
            "FunctionUrl": {
                "Description": "Function URL of the alias (AWS_IAM auth)",
                "Value": _getatt(f"{FUNCTION_ID}Url", "FunctionUrl"),
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block-style YAML without anchors: a value used twice is written out twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(settings: Settings) -> str:
    """``template.yaml``'s text for ``settings``: the header, then the template as YAML."""
    template = build_template(settings)
    body = yaml.dump(template, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
    return HEADER + "\n" + body


def main(argv: list[str] | None = None) -> int:
    """Write ``template.yaml``, or with ``--check`` report whether it is up to date (exit 1 if not)."""
    parser = argparse.ArgumentParser(prog="python -m infra.template", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings file (default: $DEPLOY_SETTINGS, deploy.toml)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="template to write or check")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the file differs")
    args = parser.parse_args(argv)
    settings = load_settings(args.settings)
    text = render(settings)
    if not args.check:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} from {settings.path}")
        return 0
    current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
    if current == text:
        print(f"{args.out} matches {settings.path}")
        return 0
    diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(args.out), "generated", lineterm="")
    print("\n".join(list(diff)[:60]), file=sys.stderr)
    print(f"{args.out} differs from what {settings.path} generates: run `make template`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
