"""Shadow scoring: a candidate model beside the live one, compared on every batch, never served.

When a candidate model layer is attached (its files under ``/opt/candidate``, the model layer's
layout with its own manifest; ``CANDIDATE_MODEL_DIR`` names another folder), every batch is
predicted by the live model first, its results written and returned as always, and then by
the candidate: one vectorised call on the same decoded inputs, for the records whose live
result was written (the records reported for retry are shadowed when they come back).

The candidate's results go to the shadow destination, one of ``SHADOW_RESULTS_TABLE``,
``SHADOW_RESULTS_STREAM`` or ``SHADOW_RESULTS_BUCKET`` (``SHADOW_RESULTS_PREFIX``, default
``shadow/``): the same sinks and the same documents as the results (:mod:`inference.sinks`),
with the candidate's ``model_name`` and ``model_version``, keyed by ``record_id``. With none
set they are only compared. The comparison goes to EMF metrics (:func:`shadow_metrics`):
records scored, agreement with the live model (by ``label``, or ``cluster``: classifiers,
outlier detectors, clusterers), the mean absolute difference of ``value`` (regressors) or
``score`` (outlier detectors), each model's label counts and score quantiles, the candidate's
predict time and its errors.

**Isolation.** The candidate never changes what the live model serves, writes or retries.
A candidate that fails to load (a missing or tampered artifact, other library versions, an
input contract or task other than the live model's, a bad ``SHADOW_*`` setting) is logged
once at init and counted on every batch (``ShadowLoadErrors``); one that raises on a batch is
logged and counted (``ShadowPredictErrors``) and that batch has no shadow results; a failed
shadow write is logged and counted (``ShadowWriteErrors``). None of them is ever in
``batchItemFailures``, and the candidate is never bisected or retried. With too little time
left in the invocation (under ``SHADOW_MIN_REMAINING_MS``, default 1000, or three times the
live model's predict time) the candidate is skipped for the batch (``ShadowSkipped``), so a
slow candidate cannot time the batch out.

A function without a candidate folder does none of this: :func:`load_shadow` returns ``None``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .manifest import Task
from .model import LoadedModel, load_model
from .sinks import DynamoDBSink, KinesisSink, ResultItem, ResultSink, S3Sink
from .telemetry import emf_document

logger = logging.getLogger("inference")

DEFAULT_CANDIDATE_DIR = "/opt/candidate"
#: The shadow destination's variables, at most one set.
SHADOW_SINKS = ("SHADOW_RESULTS_TABLE", "SHADOW_RESULTS_STREAM", "SHADOW_RESULTS_BUCKET")
#: The result field compared for agreement, per task (regressors have none).
LABEL_FIELD: dict[Task, str] = {"classifier": "label", "outlier_detector": "label", "clusterer": "cluster"}
#: The numeric result field whose distribution is reported, per task (a classifier's: the winning
#: class's probability).
SCORE_FIELD: dict[Task, str] = {"regressor": "value", "outlier_detector": "score", "classifier": "probability"}
#: The tasks whose score field's mean absolute difference is reported.
DIFFERENCE_TASKS: tuple[Task, ...] = ("regressor", "outlier_detector")
#: Score quantiles per model and batch in the EMF document (EMF takes up to 100 values per metric).
SCORE_QUANTILES = 20


def make_shadow_sink(env: Mapping[str, str]) -> ResultSink | None:
    """The shadow destination the environment names, ``None`` when it names none.

    Raises
    ------
    ValueError
        More than one ``SHADOW_RESULTS_*`` destination is set.
    """
    chosen = [name for name in SHADOW_SINKS if env.get(name)]
    if len(chosen) > 1:
        raise ValueError(f"set at most one of {', '.join(SHADOW_SINKS)}; found {', '.join(chosen)}")
    if not chosen:
        return None
    name = chosen[0]
    if name == "SHADOW_RESULTS_TABLE":
        return DynamoDBSink(env[name])
    if name == "SHADOW_RESULTS_STREAM":
        return KinesisSink(env[name])
    return S3Sink(env[name], env.get("SHADOW_RESULTS_PREFIX", "shadow/"))


@dataclass
class Comparison:
    """The candidate's results beside the live ones, for the same records.

    Attributes
    ----------
    records : int
        Records both models scored.
    agreed : int or None
        Records whose label (or cluster) is the same; ``None`` for a regressor.
    abs_diff_sum : float or None
        Sum over records of the absolute difference of the score field (:data:`SCORE_FIELD`;
        a multi-output value: the mean over its outputs) for the :data:`DIFFERENCE_TASKS`;
        ``None`` for the others.
    live_labels, candidate_labels : Counter
        Label (or cluster) counts of each model, keyed by ``str(label)``.
    live_scores, candidate_scores : list of float
        The score field of each model, per record.
    """

    records: int = 0
    agreed: int | None = None
    abs_diff_sum: float | None = None
    live_labels: Counter[str] = field(default_factory=Counter)
    candidate_labels: Counter[str] = field(default_factory=Counter)
    live_scores: list[float] = field(default_factory=list)
    candidate_scores: list[float] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        """Share of records with the same label, 0-1 (``None``: no labels, or no records)."""
        return self.agreed / self.records if self.agreed is not None and self.records else None

    @property
    def mean_abs_diff(self) -> float | None:
        """Mean absolute difference of the score field (``None``: no scores, or no records)."""
        return self.abs_diff_sum / self.records if self.abs_diff_sum is not None and self.records else None


def _number(value: Any) -> float | None:
    """A result's score as one float: a list (multi-output regressor) by its mean."""
    if isinstance(value, list):
        return sum(float(v) for v in value) / len(value) if value else None
    return None if value is None else float(value)


def _abs_diff(live: Any, candidate: Any) -> float | None:
    if isinstance(live, list) and isinstance(candidate, list) and len(live) == len(candidate) and live:
        return sum(abs(float(a) - float(b)) for a, b in zip(live, candidate)) / len(live)
    a, b = _number(live), _number(candidate)
    return None if a is None or b is None else abs(a - b)


def compare_results(
    task: Task, live: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]]
) -> Comparison:
    """Compare two models' results for the same records, record by record.

    Parameters
    ----------
    task : str
        The models' task (both have the same).
    live, candidate : sequence of dict
        One result per record (:meth:`inference.model.Predictions.results`, or a sink's
        document), in the same order.

    Raises
    ------
    ValueError
        The two sequences differ in length.
    """
    if len(live) != len(candidate):
        raise ValueError(f"{len(live)} live results but {len(candidate)} candidate results")
    out = Comparison(records=len(live))
    label, score = LABEL_FIELD.get(task), SCORE_FIELD.get(task)
    if label is not None:
        out.agreed = 0
        for a, b in zip(live, candidate):
            out.live_labels[str(a.get(label))] += 1
            out.candidate_labels[str(b.get(label))] += 1
            out.agreed += a.get(label) == b.get(label)
    if score is not None:
        diffs = [_abs_diff(a.get(score), b.get(score)) for a, b in zip(live, candidate)]
        if task in DIFFERENCE_TASKS and diffs and all(d is not None for d in diffs):
            out.abs_diff_sum = float(sum(d for d in diffs if d is not None))
        out.live_scores = [s for s in (_number(a.get(score)) for a in live) if s is not None]
        out.candidate_scores = [s for s in (_number(b.get(score)) for b in candidate) if s is not None]
    return out


def quantiles(values: Sequence[float], count: int = SCORE_QUANTILES) -> list[float]:
    """``count`` evenly spaced order statistics of ``values`` (all of them when fewer), smallest first."""
    ordered = sorted(values)
    if len(ordered) <= count:
        return ordered
    return [ordered[round(i * (len(ordered) - 1) / (count - 1))] for i in range(count)]


@dataclass
class ShadowReport:
    """What the candidate did on one batch (:func:`shadow_metrics` turns it into EMF values)."""

    candidate_name: str
    candidate_version: str
    task: Task | None = None
    comparison: Comparison | None = None
    predict_ms: float = 0.0
    load_errors: int = 0
    predict_errors: int = 0
    write_errors: int = 0
    skipped: int = 0


def shadow_metrics(report: ShadowReport) -> dict[str, float]:
    """The EMF values of one batch's shadow (names in :data:`inference.telemetry.METRICS`)."""
    values: dict[str, float] = {
        "ShadowLoadErrors": report.load_errors,
        "ShadowPredictErrors": report.predict_errors,
        "ShadowWriteErrors": report.write_errors,
        "ShadowSkipped": report.skipped,
    }
    comparison = report.comparison
    if comparison is None:
        return values
    values["ShadowRecords"] = comparison.records
    values["ShadowPredictMilliseconds"] = round(report.predict_ms, 3)
    if comparison.agreed is not None:
        values["ShadowAgreed"] = comparison.agreed
        if comparison.agreement is not None:
            values["ShadowAgreement"] = round(100 * comparison.agreement, 3)
    if comparison.mean_abs_diff is not None:
        values["ShadowMeanAbsDiff"] = comparison.mean_abs_diff
    return values


def shadow_documents(
    report: ShadowReport, namespace: str, service: str, properties: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The EMF documents of one batch's shadow.

    One with :func:`shadow_metrics` and up to :data:`SCORE_QUANTILES` quantiles of each model's
    scores (``ShadowLiveScore``, ``ShadowCandidateScore``; CloudWatch's percentiles of them
    approximate the distribution), and one per label (dimension ``Label``) with each model's
    count of it (``ShadowLiveLabelRecords``, ``ShadowCandidateLabelRecords``).
    """
    props = {**properties, "candidate_name": report.candidate_name, "candidate_version": report.candidate_version}
    values: dict[str, float | list[float]] = dict(shadow_metrics(report))
    comparison = report.comparison
    if comparison is not None and comparison.live_scores and comparison.candidate_scores:
        values["ShadowLiveScore"] = quantiles(comparison.live_scores)
        values["ShadowCandidateScore"] = quantiles(comparison.candidate_scores)
    documents = [emf_document(namespace, service, values, props)]
    if comparison is not None:
        for label in sorted(comparison.live_labels.keys() | comparison.candidate_labels.keys()):
            counts: dict[str, float] = {
                "ShadowLiveLabelRecords": comparison.live_labels[label],
                "ShadowCandidateLabelRecords": comparison.candidate_labels[label],
            }
            documents.append(emf_document(namespace, service, counts, props, {"Label": label}))
    return documents


class Shadow:
    """The candidate model of one execution environment, and where its results go.

    Parameters
    ----------
    candidate : LoadedModel or None
        ``None`` when it failed to load (``load_error`` says why).
    sink : ResultSink or None
        The shadow destination; ``None``: compare only.
    load_error : str, optional
    min_remaining_ms : float
        Skip the candidate when the invocation has less time left than this.
    """

    def __init__(
        self,
        candidate: LoadedModel | None,
        sink: ResultSink | None,
        load_error: str | None = None,
        min_remaining_ms: float = 1000.0,
    ) -> None:
        self.candidate, self.sink, self.load_error = candidate, sink, load_error
        self.min_remaining_ms = min_remaining_ms

    def report(self) -> ShadowReport:
        """An empty report naming the candidate."""
        if self.candidate is None:
            return ShadowReport("?", "?", load_errors=1)
        return ShadowReport(self.candidate.name, self.candidate.version, self.candidate.task)

    def run(
        self, items: list[ResultItem], inputs: list[Any], live_predict_ms: float = 0.0, context: Any = None
    ) -> ShadowReport:
        """Score ``inputs`` with the candidate, compare with the live ``items``, write the shadow results.

        Never raises: every failure is logged and counted in the report (module docstring).

        Parameters
        ----------
        items : list of ResultItem
            The live results written for this batch.
        inputs : list
            The decoded inputs of ``items``, in the same order.
        live_predict_ms : float
            The live model's predict time on the batch (for the time budget).
        context : Lambda context, optional
            Its ``get_remaining_time_in_millis()`` bounds the candidate (module docstring).
        """
        report = self.report()
        candidate = self.candidate
        if candidate is None or not items:
            return report
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if remaining is not None and remaining() < max(self.min_remaining_ms, 3 * live_predict_ms):
            report.skipped = len(items)
            logger.warning("shadow skipped: too little time left", extra={"records": len(items)})
            return report
        started = time.perf_counter()
        try:
            results = candidate.predict(inputs).results()
        except Exception as exc:
            report.predict_errors = 1
            logger.error(
                "shadow candidate raised",
                extra={"candidate_version": candidate.version, "error": f"{type(exc).__name__}: {str(exc)[:200]}"},
            )
            return report
        finally:
            report.predict_ms = (time.perf_counter() - started) * 1000
        try:
            report.comparison = compare_results(candidate.task, [item.outputs for item in items], results)
        except Exception as exc:  # a result the comparison cannot read: the candidate's fault
            report.predict_errors = 1
            logger.error("shadow comparison failed", extra={"error": repr(exc)[:300]})
            return report
        if self.sink is not None:
            shadow_items = [
                ResultItem(
                    item.index,
                    item.record_id,
                    item.sequence_number,
                    item.source_arn,
                    outcome,
                    candidate.name,
                    candidate.version,
                )
                for item, outcome in zip(items, results)
            ]
            try:
                failed = self.sink.write(shadow_items)
            except Exception as exc:
                failed = {item.index for item in shadow_items}
                logger.error("shadow results write raised", extra={"error": repr(exc)[:300]})
            if failed:
                report.write_errors = len(failed)
                logger.error("shadow results not written", extra={"records": len(failed)})
        return report


def load_shadow(env: Mapping[str, str], live: LoadedModel) -> Shadow | None:
    """The candidate beside ``live``, if its folder exists; never raises.

    Returns
    -------
    Shadow or None
        ``None`` when ``CANDIDATE_MODEL_DIR`` (default ``/opt/candidate``) does not exist: no
        shadow at all. A candidate that exists but cannot serve beside ``live`` gives a
        :class:`Shadow` without a model, whose every batch counts a load error.
    """
    folder = Path(env.get("CANDIDATE_MODEL_DIR") or DEFAULT_CANDIDATE_DIR)
    if not folder.exists():
        return None
    try:
        min_remaining_ms = float(env.get("SHADOW_MIN_REMAINING_MS", "1000"))
        sink = make_shadow_sink(env)
        candidate = load_model(folder)
        if candidate.manifest["input"] != live.manifest["input"]:
            raise ValueError(
                f"the candidate reads {candidate.manifest['input']}, the live model {live.manifest['input']}: "
                "a shadow scores the live model's inputs"
            )
        if candidate.task != live.task:
            raise ValueError(f"the candidate is a {candidate.task}, the live model a {live.task}")
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        logger.error("shadow candidate not loaded; the live model serves alone", extra={"error": error})
        return Shadow(None, None, error)
    logger.info(
        "shadow candidate loaded",
        extra={"candidate_name": candidate.name, "candidate_version": candidate.version, "folder": str(folder)},
    )
    return Shadow(candidate, sink, min_remaining_ms=min_remaining_ms)
