"""The runner: :func:`run_fuzz` drives ``lambda_function.lambda_handler`` in this
process, with the environment set as on Lambda and canary AWS credentials, through the
generated cases, checks each against the accounting oracle and the log rules
(:mod:`testing.fuzz.checks`), saves a failing case's event whole to
``build/fuzz/failures/<case>.json``, and reports counts (:func:`format_report`);
:func:`main` is ``python -m testing.fuzz``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import os
import random
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock

from testing.accounting import OUTCOMES
from testing.doubles import FakeQuarantine, FakeSink, SpyModel, failing_at
from testing.events import REGION
from testing.fuzz.cases import BOOM, CATEGORIES, Case, generate
from testing.fuzz.checks import CANARY_ENV, check, expect, leaks
from testing.fuzz.typed_model import make_typed_model
from training.tabular_model import make_tabular_model

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_MODEL = ROOT / "build" / "model"
FAILURES_DIR = ROOT / "build" / "fuzz" / "failures"
FUNCTION_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "fuzz-inference",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "LOG_LEVEL": "INFO",
    "METRICS_NAMESPACE": "StreamInferenceFuzz",
}


@dataclass
class Failure:
    case: int
    category: str
    problem: str
    saved: str


@dataclass
class FuzzReport:
    """What a fuzz run saw."""

    cases: int
    seed: int
    categories: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    empty: int = 0
    records: int = 0
    failures: list[Failure] = field(default_factory=list)
    unhandled: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


@contextlib.contextmanager
def _captured_logs(buffer: io.StringIO) -> Iterator[None]:
    """The ``inference`` logger's lines and stdout (the EMF documents) into ``buffer``."""
    logger = logging.getLogger("inference")
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler) and getattr(h, "_inference", False)]
    streams = [h.setStream(buffer) for h in handlers]
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for handler, stream in zip(handlers, streams):
            handler.setStream(stream)


def _save(directory: Path, case: Case) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{case.number}.json"
    try:
        path.write_text(json.dumps(case.event))
    except (TypeError, ValueError, RecursionError):
        path.write_text(json.dumps({"unserialisable_event_repr": repr(case.event)}))
    return str(path)


def run_fuzz(
    cases: int,
    seed: int,
    progress: bool | None = None,
    failures_dir: Path | str = FAILURES_DIR,
    model_dir: Path | str = REFERENCE_MODEL,
) -> FuzzReport:
    """Run ``cases`` generated events through ``lambda_function.lambda_handler``.

    Parameters
    ----------
    cases : int
        How many events.
    seed : int
        Seed of the generator (and of the sinks' failures): the same seed, the same run.
    progress : bool, optional
        Show a tqdm progress bar; by default from 1,000 cases on.
    failures_dir : path
        Where each failing case's event is saved, as ``<case>.json``.
    model_dir : path
        The text model (``MODEL_DIR``); the reference model by default.

    Returns
    -------
    FuzzReport
        Counts by category and outcome, and the failures (empty when all is well).
    """
    from inference.app import App
    from inference.events import UnsupportedEventError
    from inference.model import LoadedModel
    from inference.telemetry import setup_logging

    report = FuzzReport(cases, seed)
    failures_dir = Path(failures_dir)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.dict(os.environ, {**CANARY_ENV, **FUNCTION_ENV, "MODEL_DIR": str(model_dir)}),
    ):
        tabular_dir = make_tabular_model(Path(tmp) / "tabular")
        typed_dir = make_typed_model(Path(tmp) / "typed")
        setup_logging(FUNCTION_ENV["LOG_LEVEL"])  # its handler on the real stdout, before capturing
        with _captured_logs(io.StringIO()):  # init's lines are not checked
            import lambda_function

            saved_app, saved_error = lambda_function.app, lambda_function.init_error
            text_app = App.from_env(dict(os.environ))
            apps = {
                "text": text_app,
                "tabular": App.from_env({**os.environ, "MODEL_DIR": str(tabular_dir)}),
                "typed": App.from_env({**os.environ, "MODEL_DIR": str(typed_dir)}),
                # A model whose error message quotes its input, as a real one's may.
                "boom": dataclasses.replace(text_app, model=cast(LoadedModel, SpyModel(text_app.model, _has_boom))),
            }
        rng = random.Random(seed)
        numbers: Any = range(cases)
        if progress or (progress is None and cases >= 1000):
            from tqdm import tqdm

            numbers = tqdm(numbers, desc="fuzz", unit="case", file=sys.stderr)
        try:
            for number in numbers:
                case = generate(rng, number)
                report.categories[case.category] += 1
                problem = _run_case(case, apps, lambda_function, UnsupportedEventError, report)
                if problem:
                    report.failures.append(Failure(number, case.category, problem, _save(failures_dir, case)))
        finally:
            lambda_function.app, lambda_function.init_error = saved_app, saved_error
    report.seconds = time.perf_counter() - started
    return report


def _has_boom(value: Any) -> bool:
    return isinstance(value, str) and BOOM in value


def _run_case(
    case: Case, apps: dict[str, Any], module: Any, unsupported: type[BaseException], report: FuzzReport
) -> str:
    """Run one case; the problem found, or ``""``."""
    if case.check_json:
        try:
            json.loads(json.dumps(case.event))
        except RecursionError:
            raise AssertionError(f"case {case.number}: generated an event deeper than Lambda can deliver") from None
    expected = expect(case)
    app = apps[case.model]
    sink = FakeSink(failing_at(case.sink_fails)) if case.sink_fails is not None else app.sink
    quarantine = (
        FakeQuarantine(failing_at(case.quarantine_fails)) if case.quarantine_fails is not None else app.quarantine
    )
    module.app, module.init_error = dataclasses.replace(app, sink=sink, quarantine=quarantine), None
    context = SimpleNamespace(aws_request_id=f"fuzz-{report.seed}-{case.number}", function_name="fuzz-inference")
    logs = io.StringIO()
    try:
        with _captured_logs(logs), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy overflow in extreme but finite rows
            response = module.lambda_handler(case.event, context)
    except unsupported as exc:
        if expected is not None:
            report.unhandled += 1
            return f"UnsupportedEventError for a stream batch: {exc}"
        report.rejected += 1
        if leaks(str(exc)) or leaks(logs.getvalue()):
            return "a canary in the UnsupportedEventError message or the logs"
        return ""
    except Exception as exc:  # noqa: BLE001 - any other exception is what the fuzzer looks for
        from inference.batch import ModelFailure

        if expected is not None and expected.model_failure and isinstance(exc, ModelFailure):
            return ""  # the model raised on every input: the batch must fail
        report.unhandled += 1
        return f"unhandled {type(exc).__name__}: {str(exc)[:300]}"
    if expected is None:
        return f"not a stream batch, but the handler returned {str(response)[:200]}"
    if not expected.outcomes:
        report.empty += 1
    report.records += len(expected.outcomes)
    report.outcomes.update(expected.outcomes)
    text = logs.getvalue()
    try:
        problems = check(expected, response, text, sink, quarantine)
    except ValueError as exc:  # a log line that is not JSON
        problems = [f"unreadable log output: {exc}"]
    if leaks(text):
        problems.append("a canary (payload text or credential) in the logs")
    return "; ".join(problems)


def format_report(report: FuzzReport) -> str:
    """A plain-text summary: cases by category, records by outcome, failures, time."""
    lines = [f"fuzz: {report.cases} cases, seed {report.seed}, {report.seconds:.1f} s"]
    lines.append("cases by category:")
    for name in CATEGORIES:
        lines.append(f"  {name:<16} {report.categories[name]:>6}")
    lines.append(f"rejected (not a stream batch): {report.rejected}")
    lines.append(f"empty batches: {report.empty}")
    lines.append(f"records by outcome ({report.records} in checked batches):")
    for name in OUTCOMES:
        lines.append(f"  {name:<16} {report.outcomes[name]:>6}")
    lines.append(f"unhandled exceptions: {report.unhandled}")
    lines.append(f"failures: {len(report.failures)}")
    for failure in report.failures[:20]:
        lines.append(f"  case {failure.case} ({failure.category}): {failure.problem[:300]} -> {failure.saved}")
    if len(report.failures) > 20:
        lines.append(f"  ... and {len(report.failures) - 20} more")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testing.fuzz", description="Fuzz the stream handler with malformed and hostile events."
    )
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--failures-dir", type=Path, default=FAILURES_DIR)
    parser.add_argument("--model-dir", type=Path, default=REFERENCE_MODEL)
    args = parser.parse_args(argv)
    report = run_fuzz(args.cases, args.seed, failures_dir=args.failures_dir, model_dir=args.model_dir)
    print(format_report(report))
    return 0 if report.ok else 1
