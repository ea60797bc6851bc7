"""Invoking an alias as Lambda does: the version picked per invocation by the alias's weights, and Lambda's metrics.

An event source mapping invokes the function's alias (``make deploy`` makes it so). Lambda resolves
the alias at every invocation: its ``FunctionVersion``, and with ``RoutingConfig`` weights
(``AdditionalVersionWeights``, version -> share) another version for that share of the invocations,
at random (docs/aws-notes.md §2). :class:`AliasInvoker` does the same against the local AWS endpoint:

* each invocation reads the alias (``GetAlias``) and draws the version (a seeded ``random.Random``);
* each version runs in a local runtime of its own (:class:`localtwin.runtime.pool.LocalLambda`),
  built on first use from what the endpoint holds for that version (``GetFunctionConfiguration``
  with the version as qualifier): its layers, each found among the local ``zips`` by the sha256 its
  layer version's description records (:mod:`release.descriptions`), and its environment
  variables, with the twin's ``overrides`` (the local endpoint, credentials, the local results
  table) on top;
* each invocation publishes what Lambda publishes for an alias (``PutMetricData``, namespace
  ``AWS/Lambda``): ``Invocations`` and ``Errors`` with the dimensions ``FunctionName``,
  ``Resource`` (``NAME:ALIAS``) and ``ExecutedVersion``, and ``IteratorAge`` (the age of the batch's
  last record, as the mapping measures it) with ``FunctionName`` and ``Resource``.

CloudWatch's alarm evaluation over those metrics is :mod:`localtwin.alarms`.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference.manifest import sha256_file

from localtwin.runtime.pool import LocalLambda
from localtwin.runtime.report import InvokeResult
from localtwin.runtime.staging import extract_once
from release.descriptions import parse_description


def pick_version(version: str, weights: dict[str, float], draw: float) -> str:
    """The version an alias invocation runs: another version for its weight's share of ``draw`` in [0, 1)."""
    edge = 0.0
    for other, weight in sorted(weights.items()):
        edge += weight
        if draw < edge:
            return other
    return version


def _arrival(record: dict[str, Any]) -> float | None:
    if "kinesis" in record:
        return float(record["kinesis"]["approximateArrivalTimestamp"])
    created = (record.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    return float(created) if created is not None else None


class AliasInvoker:
    """Runs an event on the version the alias picks (module docstring); thread-safe, an ``Invoker`` for the mapping.

    Parameters
    ----------
    client_factory : callable
        ``client_factory(service) -> boto3 client`` of the endpoint (``EmbeddedAWS.client``).
    function_name, alias : str
    zips : list of Path
        The layer zips the versions may hold (found by sha256).
    function_zip : Path
        The function code every version runs (a canary changes layers, not code).
    overrides : dict of str to str
        Environment variables set over each version's own (endpoint, credentials, tables).
    runtime_options : dict, optional
        Further :class:`~localtwin.runtime.pool.LocalLambda` arguments (memory, timeout, log, ...).
    workdir : Path
        Each version's zips are extracted under ``workdir/<layers hash>`` (reused while the same).
    seed : int
        Seeds the draws.
    clock : callable
        Epoch seconds, for ``IteratorAge``.
    """

    def __init__(
        self,
        client_factory: Callable[[str], Any],
        function_name: str,
        alias: str,
        *,
        zips: list[Path],
        function_zip: Path,
        overrides: dict[str, str],
        workdir: Path,
        runtime_options: dict[str, Any] | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lam, self.cloudwatch = client_factory("lambda"), client_factory("cloudwatch")
        self.function_name, self.alias = function_name, alias
        self.zips = {sha256_file(path): Path(path) for path in zips}
        self.function_zip, self.overrides = Path(function_zip), dict(overrides)
        self.workdir, self.runtime_options = Path(workdir), dict(runtime_options or {})
        self._rng, self._clock = random.Random(seed), clock
        self._lock = threading.Lock()
        self._runtimes: dict[str, LocalLambda] = {}
        #: ``(version, failed)`` per invocation, in order.
        self.executed: list[tuple[str, bool]] = []

    def runtime(self, version: str) -> LocalLambda:
        """The local runtime of ``version``, started on first use from its configuration in the endpoint."""
        with self._lock:
            found = self._runtimes.get(version)
            if found is not None:
                return found
            config = self.lam.get_function_configuration(FunctionName=self.function_name, Qualifier=version)
            zips = [self._zip_of(layer["Arn"]) for layer in config.get("Layers", [])]
            runtime = LocalLambda(
                self.function_zip,
                zips,
                environment={**(config.get("Environment") or {}).get("Variables", {}), **self.overrides},
                function_name=self.function_name,
                workdir=self._workdir(zips),
                **self.runtime_options,
            )
            self._runtimes[version] = runtime
            return runtime

    def _workdir(self, zips: list[Path]) -> Path:
        return self.workdir / hashlib.sha256("|".join(map(str, zips)).encode()).hexdigest()[:12]

    def stage(self, zips: list[Path]) -> None:
        """Extract the function with these layers ahead of a version that will hold them (its cold start then
        only initialises, as on Lambda, where a published version is made ready before it is ``Active``)."""
        extract_once(self.function_zip, zips, self._workdir(zips))

    def _zip_of(self, arn: str) -> Path:
        """The local zip a layer version was published from (its description's sha256)."""
        name, number = arn.rsplit(":", 2)[-2:]
        layer = self.lam.get_layer_version(LayerName=name, VersionNumber=int(number))
        sha = parse_description(layer.get("Description"))[1].get("sha256")
        if sha not in self.zips:
            raise KeyError(f"layer version {arn} (sha256 {sha}) is none of the twin's zips")
        return self.zips[sha]

    def invoke(self, event: dict[str, Any]) -> InvokeResult:
        """Resolve the alias, draw the version, run the event there, publish Lambda's metrics."""
        alias = self.lam.get_alias(FunctionName=self.function_name, Name=self.alias)
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        with self._lock:
            draw = self._rng.random()
        version = pick_version(str(alias["FunctionVersion"]), {str(k): float(v) for k, v in weights.items()}, draw)
        arrivals = [a for a in (_arrival(r) for r in event.get("Records", [])) if a is not None]
        result = self.runtime(version).invoke(event)
        failed = result.error is not None
        with self._lock:
            self.executed.append((version, failed))
        by_alias = [
            {"Name": "FunctionName", "Value": self.function_name},
            {"Name": "Resource", "Value": f"{self.function_name}:{self.alias}"},
        ]
        by_version = [*by_alias, {"Name": "ExecutedVersion", "Value": version}]
        data = [
            {"MetricName": "Invocations", "Dimensions": by_version, "Value": 1.0, "Unit": "Count"},
            {"MetricName": "Errors", "Dimensions": by_version, "Value": float(failed), "Unit": "Count"},
        ]
        if arrivals:
            age_ms = max(0.0, (self._clock() - arrivals[-1]) * 1000)
            data.append({"MetricName": "IteratorAge", "Dimensions": by_alias, "Value": age_ms, "Unit": "Milliseconds"})
        self.cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)
        result.executed_version = version
        return result

    def counts(self) -> Counter[tuple[str, bool]]:
        """Invocations per ``(version, failed)``."""
        with self._lock:
            return Counter(self.executed)

    def close(self) -> None:
        """Stop every version's runtime."""
        with self._lock:
            runtimes, self._runtimes = list(self._runtimes.values()), {}
        for runtime in runtimes:
            runtime.close()

    def __enter__(self) -> AliasInvoker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
