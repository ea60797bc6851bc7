"""The CloudWatch alarms a canary watches: created for its version, read, deleted after the decision.

Lambda publishes its invocation metrics of an alias with the dimensions ``FunctionName``,
``Resource`` (``NAME:ALIAS``) and, per version the alias ran, ``ExecutedVersion``; the function's
own counters go out as EMF with the dimension ``Service`` (:mod:`inference.telemetry`). A canary of
version N on the alias watches three alarms, each put with ``PutMetricAlarm`` (idempotent: putting
one again overwrites it) and named ``NAME-canary-vN-...``:

``errors``           ``AWS/Lambda`` ``Errors`` of version N through the alias (``ExecutedVersion``), sum
                     per minute, at ``[monitoring] errors_alarm_threshold``: the new version's failed
                     invocations only.
``iterator-age``     ``AWS/Lambda`` ``IteratorAge`` of the alias, maximum per minute, over
                     ``[monitoring] iterator_age_alarm_s``: the stream falling behind while the canary runs.
``quarantine-rate``  metric math ``100 * RecordsQuarantined / RecordsIn`` of the service, per minute, over
                     :data:`QUARANTINE_RATE_PERCENT`. The function's EMF carries no version dimension, so
                     this watches the whole service while the canary runs (a rate: a steady trickle of
                     poison records does not trip it, a version that quarantines what it should score does).

Missing data is not breaching: a minute without invocations keeps an alarm ``OK``. CloudWatch
evaluates the alarms; the canary only reads their state (``DescribeAlarms``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from release.aws import paginate
from release.settings import Settings

#: Quarantined records, in % of the records in, above which the canary rolls back.
QUARANTINE_RATE_PERCENT = 5.0
#: Seconds per evaluation period of the canary's alarms.
PERIOD_S = 60
#: The metric namespace of the function's EMF counters unless ``METRICS_NAMESPACE`` names another.
DEFAULT_NAMESPACE = "StreamInference"


@dataclass(frozen=True)
class AlarmState:
    """One alarm as ``DescribeAlarms`` returns it: its name, ``OK`` / ``ALARM`` / ``INSUFFICIENT_DATA``, why."""

    name: str
    state: str
    reason: str


def alarm_prefix(settings: Settings) -> str:
    """The name every canary alarm of the function starts with."""
    return f"{settings.function.name}-canary-v"


def canary_alarms(settings: Settings, version: str) -> list[dict[str, Any]]:
    """The ``PutMetricAlarm`` requests of a canary of ``version`` (module docstring)."""
    fn, mon = settings.function, settings.monitoring
    namespace = fn.environment.get("METRICS_NAMESPACE", DEFAULT_NAMESPACE)
    alias = [{"Name": "FunctionName", "Value": fn.name}, {"Name": "Resource", "Value": f"{fn.name}:{fn.alias}"}]
    name = f"{alarm_prefix(settings)}{version}"
    common = {"EvaluationPeriods": 1, "TreatMissingData": "notBreaching", "ActionsEnabled": False}

    def service(metric: str) -> dict[str, Any]:
        return {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": "Service", "Value": fn.name}],
            },
            "Period": PERIOD_S,
            "Stat": "Sum",
        }

    return [
        {
            "AlarmName": f"{name}-errors",
            "AlarmDescription": f"canary: version {version} of {fn.name} failed invocations through {fn.alias}",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [*alias, {"Name": "ExecutedVersion", "Value": version}],
            "Statistic": "Sum",
            "Period": PERIOD_S,
            "Threshold": float(mon.errors_alarm_threshold),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            **common,
        },
        {
            "AlarmName": f"{name}-iterator-age",
            "AlarmDescription": f"canary of version {version}: {fn.name}:{fn.alias} falls behind its streams",
            "Namespace": "AWS/Lambda",
            "MetricName": "IteratorAge",
            "Dimensions": alias,
            "Statistic": "Maximum",
            "Period": PERIOD_S,
            "Threshold": float(mon.iterator_age_alarm_s * 1000),
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            "AlarmName": f"{name}-quarantine-rate",
            "AlarmDescription": f"canary of version {version}: {fn.name} quarantines over {QUARANTINE_RATE_PERCENT:g} %",
            "Metrics": [
                {"Id": "quarantined", "MetricStat": service("RecordsQuarantined"), "ReturnData": False},
                {"Id": "records", "MetricStat": service("RecordsIn"), "ReturnData": False},
                {
                    "Id": "rate",
                    "Expression": "100 * quarantined / records",
                    "Label": "quarantined %",
                    "ReturnData": True,
                },
            ],
            "Threshold": QUARANTINE_RATE_PERCENT,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
    ]


def put_alarms(cloudwatch: Any, alarms: list[dict[str, Any]]) -> None:
    """Create each alarm that does not exist yet; one that exists keeps its state (a re-run sees what fired)."""
    names = [alarm["AlarmName"] for alarm in alarms]
    existing = {state.name for state in alarm_states(cloudwatch, names)}
    for alarm in alarms:
        if alarm["AlarmName"] not in existing:
            cloudwatch.put_metric_alarm(**alarm)


def alarm_states(cloudwatch: Any, names: list[str]) -> list[AlarmState]:
    """The state of each named alarm that exists, in the order named."""
    found = {
        a["AlarmName"]: AlarmState(a["AlarmName"], a["StateValue"], a.get("StateReason", ""))
        for a in paginate(cloudwatch, "describe_alarms", "MetricAlarms", AlarmNames=names)
    }
    return [found[name] for name in names if name in found]


def version_invocations(settings: Settings, cloudwatch: Any, version: str, start: float, end: float) -> float:
    """How often the alias ran ``version`` between ``start`` and ``end`` (epoch seconds): ``Invocations``, summed."""
    from datetime import UTC, datetime

    fn = settings.function
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "FunctionName", "Value": fn.name},
            {"Name": "Resource", "Value": f"{fn.name}:{fn.alias}"},
            {"Name": "ExecutedVersion", "Value": version},
        ],
        StartTime=datetime.fromtimestamp(start - PERIOD_S, UTC),
        EndTime=datetime.fromtimestamp(end + PERIOD_S, UTC),
        Period=PERIOD_S,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(point.get("Sum", 0.0) for point in points))


def delete_canary_alarms(settings: Settings, cloudwatch: Any) -> list[str]:
    """Delete every canary alarm of the function (any version); returns their names."""
    names = [
        a["AlarmName"]
        for a in paginate(cloudwatch, "describe_alarms", "MetricAlarms", AlarmNamePrefix=alarm_prefix(settings))
    ]
    for start in range(0, len(names), 100):  # DeleteAlarms takes at most 100 names
        cloudwatch.delete_alarms(AlarmNames=names[start : start + 100])
    return names
