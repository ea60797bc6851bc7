"""Wiring the function from its environment: model, sinks, quarantine, telemetry.

Environment variables (all optional but ``MODEL_DIR`` has a default):

==========================  ===========================================================
``MODEL_DIR``               model layer directory (default ``/opt/model``)
``MODEL_S3_URI``            ``s3://bucket/prefix/`` of the artifacts (overrides the manifest's ``artifacts_uri``)
``RESULTS_TABLE``           DynamoDB table for results (partition key ``record_id``, S)
``RESULTS_STREAM``          Kinesis stream for results
``RESULTS_BUCKET``          S3 bucket for results, one object per batch
``RESULTS_PREFIX``          key prefix in ``RESULTS_BUCKET`` (default ``predictions/``)
``QUARANTINE_QUEUE_URL``    SQS queue for poison records
``QUARANTINE_BUCKET``       S3 bucket for poison records, one object per record
``QUARANTINE_PREFIX``       key prefix in ``QUARANTINE_BUCKET`` (default ``quarantine/``)
``METRICS_NAMESPACE``       CloudWatch namespace for EMF metrics (default ``StreamInference``)
``LOG_LEVEL``               ``DEBUG``, ``INFO`` (default), ``WARNING``, ``ERROR``, ``CRITICAL``
``PAYLOAD_COMPRESSION``     ``auto`` (default, gunzip data starting ``1f 8b``) or ``none``
``RESULT_KEYS``             what of its record each result carries as ``key``: ``keys``, ``partition_key``,
                            ``field:NAME``, comma-separated (:mod:`inference.result_keys`)
``CANDIDATE_MODEL_DIR``     a candidate model in shadow (default ``/opt/candidate``, used if it exists)
``SHADOW_RESULTS_TABLE``    the candidate's results: DynamoDB table (or ``_STREAM``, ``_BUCKET``)
==========================  ===========================================================

At most one ``RESULTS_*`` destination and one ``QUARANTINE_*`` destination may be set.
With no results destination the predictions are returned in the response. A candidate model
never changes them (:mod:`inference.shadow`: ``SHADOW_RESULTS_STREAM``, ``SHADOW_RESULTS_BUCKET``,
``SHADOW_RESULTS_PREFIX``, ``SHADOW_MIN_REMAINING_MS``).
``PAYLOAD_MAX_DECOMPRESSED_BYTES`` caps one payload's decompressed size (default 1048576,
:mod:`inference.payload`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .batch import process_batch
from .events import StreamResponse
from .model import LoadedModel, load_model
from .payload import PayloadOptions, options_from_env
from .quarantine import LogQuarantine, Quarantine, S3Quarantine, SQSQuarantine
from .result_keys import ResultKeys, result_keys_from_env
from .shadow import Shadow, load_shadow, shadow_documents
from .sinks import DynamoDBSink, KinesisSink, ResponseSink, ResultSink, S3Sink
from .telemetry import emf_document, emit_metrics, setup_logging

DEFAULT_MODEL_DIR = "/opt/model"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """The function's environment variables are invalid or contradict each other."""


def _only_one(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    chosen = [name for name in names if env.get(name)]
    if len(chosen) > 1:
        raise ConfigError(f"set at most one of {', '.join(names)}; found {', '.join(chosen)}")
    return chosen[0] if chosen else None


def make_sink(env: Mapping[str, str]) -> ResultSink:
    """The results sink the environment asks for (a fresh one per batch for the response)."""
    name = _only_one(env, ("RESULTS_TABLE", "RESULTS_STREAM", "RESULTS_BUCKET"))
    if name == "RESULTS_TABLE":
        return DynamoDBSink(env[name])
    if name == "RESULTS_STREAM":
        return KinesisSink(env[name])
    if name == "RESULTS_BUCKET":
        return S3Sink(env[name], env.get("RESULTS_PREFIX", "predictions/"))
    return ResponseSink()


def make_quarantine(env: Mapping[str, str]) -> Quarantine:
    name = _only_one(env, ("QUARANTINE_QUEUE_URL", "QUARANTINE_BUCKET"))
    if name == "QUARANTINE_QUEUE_URL":
        return SQSQuarantine(env[name])
    if name == "QUARANTINE_BUCKET":
        return S3Quarantine(env[name], env.get("QUARANTINE_PREFIX", "quarantine/"))
    return LogQuarantine()


@dataclass
class App:
    """Everything one execution environment keeps between invocations."""

    model: LoadedModel
    env: Mapping[str, str]
    sink: ResultSink
    quarantine: Quarantine
    logger: logging.Logger
    payload: PayloadOptions = PayloadOptions()
    result_keys: ResultKeys = ResultKeys()
    #: The candidate model in shadow, when one is attached (:mod:`inference.shadow`).
    shadow: Shadow | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> App:
        """Load and verify the model, and build the sinks; raises if anything is wrong."""
        env = os.environ if env is None else env
        level = env.get("LOG_LEVEL", "INFO").upper()
        if level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
        logger = setup_logging(level)
        sink = make_sink(env)
        quarantine = make_quarantine(env)
        try:
            payload = options_from_env(env)
            result_keys = result_keys_from_env(env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        model = load_model(env.get("MODEL_DIR", DEFAULT_MODEL_DIR), env.get("MODEL_S3_URI") or None)
        logger.info("model loaded", extra={"model_name": model.name, "model_version": model.version})
        return cls(model, env, sink, quarantine, logger, payload, result_keys, load_shadow(env, model))

    def handle(self, event: Any, context: Any = None) -> StreamResponse:
        """Score one stream event; log a summary and emit metrics."""
        sink = ResponseSink() if isinstance(self.sink, ResponseSink) else self.sink
        response, report = process_batch(
            event, self.model, sink, self.quarantine, self.payload, self.result_keys, self.shadow, context
        )
        request_id = getattr(context, "aws_request_id", None)
        counts = report.counts()
        self.logger.info(
            "batch scored",
            extra={
                **counts,
                "predict_ms": round(report.predict_ms, 3),
                "predict_calls": report.predict_calls,
                "request_id": request_id,
            },
        )
        namespace = self.env.get("METRICS_NAMESPACE", "StreamInference")
        service = self.env.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        properties = {"model_name": self.model.name, "model_version": self.model.version, "request_id": request_id}
        emit_metrics(
            emf_document(namespace, service, {**counts, "PredictMilliseconds": round(report.predict_ms, 3)}, properties)
        )
        if report.shadow is not None:
            for document in shadow_documents(report.shadow, namespace, service, properties):
                emit_metrics(document)
        return response
