"""Structured JSON logs and CloudWatch Embedded Metric Format (EMF) metrics.

Logs go to stdout as one JSON object per line (Lambda ships stdout to CloudWatch
Logs). No record payload is ever logged at INFO or above.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, message, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> logging.Logger:
    """Configure the ``inference`` logger once: JSON lines on ``stream`` (stdout)."""
    logger = logging.getLogger("inference")
    if not any(getattr(h, "_inference", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(JsonFormatter())
        # Marks the handler as ours (checked above); logging.Handler declares no such attribute.
        handler._inference = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    formatter = logger.handlers[0].formatter
    if formatter is not None:
        formatter.converter = time.gmtime
    logger.setLevel(level.upper())
    return logger


#: The counters every batch reports, with their CloudWatch unit.
METRICS = {
    "RecordsIn": "Count",
    "RecordsPredicted": "Count",
    "RecordsSkipped": "Count",
    "RecordsQuarantined": "Count",
    "RecordsRetried": "Count",
    "PredictMilliseconds": "Milliseconds",
    # A candidate model in shadow (inference.shadow):
    "ShadowRecords": "Count",
    "ShadowAgreed": "Count",
    "ShadowAgreement": "Percent",
    "ShadowMeanAbsDiff": "None",
    "ShadowPredictMilliseconds": "Milliseconds",
    "ShadowLoadErrors": "Count",
    "ShadowPredictErrors": "Count",
    "ShadowWriteErrors": "Count",
    "ShadowSkipped": "Count",
    "ShadowLiveScore": "None",
    "ShadowCandidateScore": "None",
    "ShadowLiveLabelRecords": "Count",
    "ShadowCandidateLabelRecords": "Count",
}


def emf_document(
    namespace: str,
    service: str,
    values: dict[str, float] | dict[str, float | list[float]],
    properties: dict[str, Any],
    dimensions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An EMF log document: CloudWatch extracts ``values`` as metrics (dimension Service).

    Parameters
    ----------
    namespace : str
        CloudWatch namespace.
    service : str
        Value of the single ``Service`` dimension.
    values : dict
        Metric name -> value (or a list of up to 100 values); names must be keys of :data:`METRICS`.
    properties : dict
        Extra searchable fields (model name and version, request id).
    dimensions : dict, optional
        Further dimensions beside ``Service`` (one dimension set of them all).
    """
    extra = dimensions or {}
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["Service", *extra]],
                    "Metrics": [{"Name": name, "Unit": METRICS[name]} for name in values],
                }
            ],
        },
        "Service": service,
        **extra,
        **properties,
        **values,
    }


def emit_metrics(document: dict[str, Any], stream: TextIO | None = None) -> None:
    """Print an EMF document as one line on stdout, where CloudWatch picks it up."""
    print(json.dumps(document, default=str), file=stream or sys.stdout, flush=True)
