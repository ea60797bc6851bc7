"""Shadow in the local twin: ``make demo STRATEGY=shadow`` end to end, and a candidate that raises on
every batch or fails to load never touching the live results.

Small replays (one shard, a few hundred records) of the same ingest: without a candidate (the
baseline), with the reference model itself as the candidate (which must agree on every record),
with one whose classifier expects other features (it raises on every batch) and with one whose
artifact was swapped after hashing (it fails to load). Every run must account for every record
exactly once, with live results identical to the baseline's.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

import localtwin.demo as demo
from layers.model_layer import package_model_layer
from layers.zipping import write_zip
from localtwin.replay.results import read_csv
from localtwin.replay.run import ReplayOptions, ReplayResult, run_replay
from tests.helpers import make_text_model

pytestmark = [pytest.mark.twin, pytest.mark.slow]

RECORDS = 300


def candidate_layer(folder: Path, out: Path) -> Path:
    """A candidate layer zip of ``folder`` (manifest + the files it lists), unchecked, under ``candidate/``."""
    manifest = json.loads((folder / "manifest.json").read_text())
    files = ["manifest.json"] + [step["file"] for step in manifest["pipeline"]]
    return write_zip(out, [(f"candidate/{name}", folder / name) for name in files])


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory, reference_model: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("candidates")
    same, _ = package_model_layer(reference_model, out / "same.zip", "candidate")
    # Raises on every batch: the reference preprocessors, then a classifier fitted on another vocabulary.
    small = make_text_model(out / "small")
    raising = out / "raising"
    shutil.copytree(reference_model, raising)
    shutil.copy(small / "classifier.joblib", raising / "classifier.joblib")
    manifest = json.loads((raising / "manifest.json").read_text())
    manifest.pop("golden")
    small_manifest = json.loads((small / "manifest.json").read_text())
    manifest["pipeline"][-1]["sha256"] = small_manifest["pipeline"][-1]["sha256"]
    manifest["version"] = "9.9.9-raises"
    (raising / "manifest.json").write_text(json.dumps(manifest))
    # Fails to load: an artifact that is not the one the manifest lists.
    tampered = out / "tampered"
    shutil.copytree(reference_model, tampered)
    (tampered / "classifier.joblib").write_bytes(b"swapped after hashing")
    return {
        "same": same,
        "raising": candidate_layer(raising, out / "raising.zip"),
        "tampered": candidate_layer(tampered, out / "tampered.zip"),
    }


def options(zips: tuple[Path, list[Path], Path], name: str, candidate: Path | None) -> ReplayOptions:
    function_zip, layers, workdir = zips
    return ReplayOptions(
        records=RECORDS,
        shards=1,
        poison_share=0.05,
        function_zip=function_zip,
        layer_zips=tuple(layers),
        out_dir=workdir.parent / f"shadow-{name}",
        suffix=f"-{uuid.uuid4().hex[:8]}",
        candidate_zip=candidate,
    )


def live_results(result: ReplayResult) -> dict[str, tuple[str, str, str]]:
    """record id -> what the live model wrote (the source ARN names this run's stream, so it is left out)."""
    rows = read_csv(result.csv_path)
    assert len(rows) == len({row["record_id"] for row in rows}) == result.expected["predicted"]
    return {row["record_id"]: (row["label"], row["probability"], row["model_version"]) for row in rows}


@pytest.fixture(scope="module")
def baseline(zips) -> dict[str, tuple[str, str, str]]:
    result = run_replay(options(zips, "none", None))
    assert result.ok and result.shadow_csv_path is None and result.function.shadow["ShadowRecords"] == 0
    return live_results(result)


def test_demo_with_a_candidate_in_shadow_prints_the_agreement_report(zips, candidates, baseline, monkeypatch, capsys):
    runs: list[ReplayResult] = []

    def with_these_zips(opts: ReplayOptions, *args: object, **kwargs: object) -> ReplayResult:
        ours = options(zips, "same", candidates["same"])
        runs.append(run_replay(replace(ours, candidate_zip=opts.candidate_zip), *args, **kwargs))  # type: ignore[arg-type]
        return runs[-1]

    monkeypatch.setattr(demo, "run_replay", with_these_zips)
    assert demo.main(["--records", str(RECORDS), "--candidate", str(candidates["same"])]) == 0
    [result] = runs
    assert result.ok and live_results(result) == baseline
    shadow = {row["record_id"]: row for row in read_csv(result.shadow_csv_path)}
    assert set(shadow) == set(baseline)  # one shadow result per record predicted
    assert all(shadow[rid]["label"] == baseline[rid][0] for rid in baseline)  # the same model agrees
    out = capsys.readouterr().out
    assert f"agreement      100.00% ({len(baseline):,} of {len(baseline):,}" in out
    assert result.function.shadow["ShadowRecords"] == len(baseline)
    assert (Path(result.options.out_dir) / "compare.png").stat().st_size > 0


@pytest.mark.parametrize(("name", "counter"), [("raising", "ShadowPredictErrors"), ("tampered", "ShadowLoadErrors")])
def test_a_failing_candidate_never_changes_the_live_results(zips, candidates, baseline, name, counter):
    result = run_replay(options(zips, name, candidates[name]))
    assert result.ok and result.problems == [] and result.lost == 0
    assert result.stats.retries == 0 and result.function.metrics["RecordsRetried"] == 0  # never retried for it
    assert live_results(result) == baseline  # every record predicted once, as without a candidate
    assert result.function.shadow[counter] == result.stats.batches > 0  # counted on every batch
    assert result.function.shadow["ShadowRecords"] == 0 and read_csv(result.shadow_csv_path) == []
