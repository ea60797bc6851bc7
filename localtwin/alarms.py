"""CloudWatch's alarm evaluation, for the local endpoint: moto stores alarms and metrics but never evaluates them.

:class:`AlarmEvaluator` does what CloudWatch does for a metric alarm, every ``interval_s`` (CloudWatch:
about once a minute), for the alarms whose names start with ``prefix``:

* it reads the alarm (``DescribeAlarms``) and the metric's statistic over the last
  ``EvaluationPeriods`` periods (``GetMetricStatistics``, the alarm's namespace, name, dimensions,
  period and statistic);
* a period with no datapoint is missing data, treated as the alarm's ``TreatMissingData`` says
  (``notBreaching``, ``breaching``, ``ignore``; ``missing`` keeps the state); the alarm goes to
  ``ALARM`` when every evaluated period breaches its threshold (``ComparisonOperator``), to ``OK``
  otherwise;
* it changes the state only when it differs (``SetAlarmState``, with a reason in CloudWatch's words).

Metric-math alarms (``Metrics`` with an ``Expression``) are evaluated for expressions of the form
``100 * a / b`` (a rate of two metrics), the form :mod:`release.alarms` puts. ``DatapointsToAlarm``
(M of N) is read as N of N.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}
_RATE = re.compile(r"^\s*100\s*\*\s*(\w+)\s*/\s*(\w+)\s*$")


class AlarmEvaluator:
    """Evaluate the endpoint's metric alarms named ``prefix...`` (module docstring), in a thread or on call.

    Parameters
    ----------
    cloudwatch : botocore client
        Of the local endpoint.
    prefix : str
        Only alarms whose name starts with it.
    interval_s : float
        Seconds between two evaluations in the thread.
    clock : callable
        Epoch seconds.
    """

    def __init__(
        self, cloudwatch: Any, prefix: str, interval_s: float = 0.2, clock: Callable[[], float] = time.time
    ) -> None:
        self.cloudwatch, self.prefix, self.interval_s, self.clock = cloudwatch, prefix, interval_s, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: ``(alarm name, new state)`` for every change made, in order.
        self.changes: list[tuple[str, str]] = []

    def _statistic(self, metric: dict[str, Any], period: int, stat: str, periods: int) -> list[float | None]:
        """The statistic of each of the last ``periods`` periods, oldest first; ``None`` where no data."""
        end = datetime.fromtimestamp(int(self.clock()) + 1, UTC)  # through the current second, whole seconds
        values: list[float | None] = []
        for n in range(periods, 0, -1):
            start = end - timedelta(seconds=period * n)
            points = self.cloudwatch.get_metric_statistics(
                Namespace=metric["Namespace"],
                MetricName=metric["MetricName"],
                Dimensions=metric.get("Dimensions", []),
                StartTime=start,
                EndTime=start + timedelta(seconds=period),
                Period=period,
                Statistics=[stat],
            )["Datapoints"]
            found = [float(p[stat]) for p in points if stat in p]
            if not found:
                values.append(None)
            elif stat == "Maximum":
                values.append(max(found))
            elif stat == "Minimum":
                values.append(min(found))
            elif stat == "Sum":
                values.append(sum(found))
            else:
                values.append(found[-1])
        return values

    def _values(self, alarm: dict[str, Any]) -> list[float | None]:
        periods = int(alarm.get("EvaluationPeriods", 1))
        if alarm.get("Metrics"):
            stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
            expression = next((m["Expression"] for m in alarm["Metrics"] if m.get("Expression")), "")
            rate = _RATE.match(expression)
            if rate is None or rate[1] not in stats or rate[2] not in stats:
                return [None] * periods
            top, bottom = (
                self._statistic(stats[i]["Metric"], int(stats[i]["Period"]), stats[i]["Stat"], periods)
                for i in rate.groups()
            )
            return [100 * a / b if a is not None and b else None for a, b in zip(top, bottom, strict=True)]
        metric = {
            "Namespace": alarm["Namespace"],
            "MetricName": alarm["MetricName"],
            "Dimensions": alarm.get("Dimensions"),
        }
        return self._statistic(metric, int(alarm["Period"]), alarm["Statistic"], periods)

    def evaluate(self) -> None:
        """Evaluate every alarm named ``prefix...`` once, changing the states that differ."""
        pages = self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=self.prefix)
        for alarm in (a for page in pages for a in page.get("MetricAlarms", [])):
            values = self._values(alarm)
            missing = alarm.get("TreatMissingData", "missing")
            compare = _COMPARE[alarm["ComparisonOperator"]]
            threshold = float(alarm["Threshold"])
            judged = [
                compare(v, threshold) if v is not None else {"breaching": True, "notBreaching": False}.get(missing)
                for v in values
            ]
            judged = [j for j in judged if j is not None]
            if not judged:
                continue  # missing data kept (or ignored): the state stays
            state = "ALARM" if all(judged) else "OK"
            if state == alarm["StateValue"]:
                continue
            shown = ", ".join("-" if v is None else f"{v:g}" for v in values)
            verb = "" if state == "ALARM" else "not "
            reason = f"Threshold {verb}Crossed: [{shown}] {verb}{alarm['ComparisonOperator']} {threshold:g}"
            self.cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason[:1023])
            self.changes.append((alarm["AlarmName"], state))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.evaluate()
            except Exception:  # noqa: BLE001 - an evaluation that fails is tried again, as CloudWatch would
                log.exception("alarm evaluation failed")

    def start(self) -> AlarmEvaluator:
        self._thread = threading.Thread(target=self._loop, name="alarm-evaluator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> AlarmEvaluator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
