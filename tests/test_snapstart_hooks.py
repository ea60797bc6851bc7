"""SnapStart's runtime hooks in process (inference.snapstart): the warm-up before the snapshot, the renewal after restore.

The same hooks run for real in the local twin's snapshot-and-clone environments in
tests/test_snapstart_twin.py.
"""

from __future__ import annotations

import json
import random
import shutil

import pytest
from inference import snapstart
from inference.app import App


def _app(model_dir, **env):
    return App.from_env({"MODEL_DIR": str(model_dir), **env})


def test_before_snapshot_scores_the_golden_records_through_the_batch_path(text_model_dir, tabular_model_dir):
    golden = json.loads((text_model_dir / "golden.json").read_text())
    assert snapstart.before_snapshot(_app(text_model_dir)) == len(golden["records"]) > 0
    assert snapstart.before_snapshot(_app(tabular_model_dir)) > 0


def test_without_golden_records_one_synthetic_record_warms_the_model(text_model_dir, tmp_path):
    folder = shutil.copytree(text_model_dir, tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["golden"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "golden.json").unlink()
    app = _app(folder)
    assert snapstart.warm_up_records(app) == [{"text": "warm-up"}]
    assert snapstart.before_snapshot(app) == 1


def test_a_tampered_golden_file_fails_the_snapshot(text_model_dir, tmp_path):
    folder = shutil.copytree(text_model_dir, tmp_path / "model")
    app = _app(folder)  # loads: the golden file is not an artifact of the pipeline
    (folder / "golden.json").write_text(json.dumps({"records": [{"text": "swapped"}], "results": []}))
    with pytest.raises(snapstart.WarmUpError, match="does not match the manifest's sha256"):
        snapstart.before_snapshot(app)


def test_golden_records_the_model_cannot_score_fail_the_snapshot(text_model_dir, tmp_path):
    folder = shutil.copytree(text_model_dir, tmp_path / "model")
    manifest = json.loads((folder / "manifest.json").read_text())
    data = json.dumps({"records": [{"text": "fine"}, {"no_text": 1}], "results": []}).encode()
    (folder / "golden.json").write_bytes(data)
    from inference.manifest import sha256_bytes

    manifest["golden"]["sha256"] = sha256_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(snapstart.WarmUpError, match="scored 1 of 2 records"):
        snapstart.before_snapshot(_app(folder))


def test_after_restore_renews_clients_and_seeds(text_model_dir, monkeypatch):
    import boto3
    import numpy as np

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    app = _app(text_model_dir, RESULTS_TABLE="results", QUARANTINE_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/1/q")
    sink, quarantine, session = app.sink, app.quarantine, boto3.DEFAULT_SESSION
    closed = []
    for client in (sink.client, quarantine.client):  # each service's client is a class of its own
        monkeypatch.setattr(type(client), "close", lambda self: closed.append(self))
    random.seed(7)
    np.random.seed(7)
    snapshot_draws = random.random(), np.random.random()
    random.seed(7)
    np.random.seed(7)

    snapstart.after_restore(app)

    assert app.sink is not sink and app.sink.client is not sink.client and app.sink.table == "results"
    assert app.quarantine is not quarantine and app.quarantine.client is not quarantine.client
    assert boto3.DEFAULT_SESSION is not session and boto3.DEFAULT_SESSION is not None
    assert {id(c) for c in closed} == {id(sink.client), id(quarantine.client)}
    assert (random.random(), np.random.random()) != snapshot_draws


def test_register_uses_the_runtimes_registry(text_model_dir):
    from snapshot_restore_py import get_after_restore, get_before_snapshot

    app = _app(text_model_dir)
    before, after = get_before_snapshot(), get_after_restore()
    n_before, n_after = len(before), len(after)
    try:
        assert snapstart.register(app)
        assert before[n_before:] == [(snapstart.before_snapshot, (app,), {})]
        assert after[n_after:] == [(snapstart.after_restore, (app,), {})]
    finally:
        del before[n_before:], after[n_after:]
