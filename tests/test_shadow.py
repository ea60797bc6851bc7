"""inference.shadow in process: the comparison, the candidate beside the live model, and its isolation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from inference.app import App
from inference.batch import process_batch
from inference.model import LoadedModel, load_model
from inference.quarantine import LogQuarantine
from inference.shadow import Shadow, compare_results, load_shadow, quantiles, shadow_documents

from testing.doubles import FakeQuarantine, FakeSink, SpyModel, failing_at
from testing.events import kinesis_event, kinesis_record
from tests.helpers import make_text_model

pytestmark = pytest.mark.unit

TEXTS = ["wonderful moving film", "boring and dull plot", "a brilliant funny story", "awful lifeless acting"]


@pytest.fixture(scope="module")
def candidate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model of the same task and input as the conftest's ``text_model``."""
    return make_text_model(tmp_path_factory.mktemp("candidate"), name="test-sentiment", version="0.0.2")


@pytest.fixture(scope="module")
def candidate(candidate_dir: Path) -> LoadedModel:
    return load_model(candidate_dir)


def batch_event() -> dict:
    """Four good records and one that is not JSON (quarantined by the live path, never shadowed)."""
    event = kinesis_event(TEXTS)
    event["Records"].insert(2, kinesis_record(b"not json", 99))
    return event


def test_agreement_counts_equal_labels_and_distributions():
    live = [{"label": "fresh"}, {"label": "rotten"}, {"label": "fresh"}, {"label": "fresh"}]
    cand = [{"label": "fresh"}, {"label": "fresh"}, {"label": "fresh"}, {"label": "rotten"}]
    out = compare_results("classifier", live, cand)
    assert (out.records, out.agreed, out.agreement) == (4, 2, 0.5)
    assert out.live_labels == {"fresh": 3, "rotten": 1} and out.candidate_labels == {"fresh": 3, "rotten": 1}
    assert out.mean_abs_diff is None


def test_regressors_get_the_mean_absolute_difference_and_no_agreement():
    out = compare_results("regressor", [{"value": 1.0}, {"value": [1.0, 3.0]}], [{"value": 1.5}, {"value": [2.0, 1.0]}])
    assert out.agreed is None and out.mean_abs_diff == pytest.approx((0.5 + 1.5) / 2)


def test_outlier_detectors_get_both_and_clusterers_agree_by_cluster():
    out = compare_results("outlier_detector", [{"label": 1, "score": 0.2}], [{"label": -1, "score": -0.3}])
    assert (out.agreed, out.mean_abs_diff) == (0, pytest.approx(0.5))
    assert compare_results("clusterer", [{"cluster": 2}], [{"cluster": 2}]).agreement == 1.0


def test_quantiles_keep_the_extremes_and_at_most_the_count():
    values = [float(v) for v in range(1000)]
    picked = quantiles(values, 20)
    assert len(picked) == 20 and picked[0] == 0.0 and picked[-1] == 999.0 and picked == sorted(picked)
    assert quantiles([3.0, 1.0], 20) == [1.0, 3.0]


def test_the_candidate_scores_what_the_live_model_wrote_and_its_results_go_to_the_shadow_sink(text_model, candidate):
    live_sink, shadow_sink = FakeSink(), FakeSink()
    spy = SpyModel(candidate)
    response, report = process_batch(
        batch_event(), text_model, live_sink, FakeQuarantine(), shadow=Shadow(spy, shadow_sink)
    )
    assert response == {"batchItemFailures": []}
    assert spy.calls == [TEXTS]  # one vectorised call on the decoded inputs of the records predicted
    assert set(shadow_sink.store) == set(live_sink.store)  # the same records, keyed by record_id
    assert {item.model_version for item in shadow_sink.store.values()} == {"0.0.2"}
    expected = [r["label"] for r in candidate.predict(spy.calls[0]).results()]
    assert [shadow_sink.kept[i].outputs["label"] for i in sorted(shadow_sink.kept)] == expected
    comparison = report.shadow.comparison
    live_labels = [live_sink.kept[i].outputs["label"] for i in sorted(live_sink.kept)]
    assert comparison.records == 4
    assert comparison.agreed == sum(a == b for a, b in zip(live_labels, expected))


def test_a_candidate_that_raises_changes_nothing_live_and_is_counted(text_model, candidate, inference_logs):
    baseline_sink = FakeSink()
    baseline, _ = process_batch(batch_event(), text_model, baseline_sink, FakeQuarantine())
    live_sink, shadow_sink = FakeSink(), FakeSink()
    raising = SpyModel(candidate, fail_if=lambda value: True)
    response, report = process_batch(
        batch_event(), text_model, live_sink, FakeQuarantine(), shadow=Shadow(raising, shadow_sink)
    )
    assert response == baseline
    assert {k: v.outputs for k, v in live_sink.store.items()} == {k: v.outputs for k, v in baseline_sink.store.items()}
    assert len(raising.calls) == 1  # never bisected or retried
    assert shadow_sink.calls == [] and report.shadow.predict_errors == 1 and report.shadow.comparison is None
    assert "shadow candidate raised" in inference_logs.text


def test_a_failed_shadow_write_is_counted_never_retried(text_model, candidate):
    response, report = process_batch(
        batch_event(), text_model, FakeSink(), FakeQuarantine(), shadow=Shadow(candidate, FakeSink(failing_at({0, 1})))
    )
    assert response == {"batchItemFailures": []}
    assert report.shadow.write_errors == 2 and report.counts()["RecordsRetried"] == 0


def test_records_reported_for_retry_are_not_shadowed(text_model, candidate):
    shadow_sink = FakeSink()
    response, report = process_batch(
        batch_event(), text_model, FakeSink(failing_at({3})), FakeQuarantine(), shadow=Shadow(candidate, shadow_sink)
    )
    assert response["batchItemFailures"]  # from record 3 on
    assert sorted(shadow_sink.kept) == [0, 1]


def test_no_candidate_folder_means_no_shadow(text_model, tmp_path):
    assert load_shadow({"CANDIDATE_MODEL_DIR": str(tmp_path / "absent")}, text_model) is None


def test_a_candidate_that_fails_to_load_is_counted_on_every_batch(text_model, candidate_dir, tmp_path, inference_logs):
    tampered = tmp_path / "candidate"
    shutil.copytree(candidate_dir, tampered)
    (tampered / "classifier.joblib").write_bytes(b"not the artifact")
    shadow = load_shadow({"CANDIDATE_MODEL_DIR": str(tampered)}, text_model)
    assert shadow is not None and shadow.candidate is None and "does not match the manifest" in shadow.load_error
    assert "shadow candidate not loaded" in inference_logs.text
    baseline, _ = process_batch(batch_event(), text_model, FakeSink(), FakeQuarantine())
    response, report = process_batch(batch_event(), text_model, FakeSink(), FakeQuarantine(), shadow=shadow)
    assert response == baseline and report.shadow.load_errors == 1


def test_a_candidate_of_another_input_contract_is_refused(text_model, tabular_model_dir):
    shadow = load_shadow({"CANDIDATE_MODEL_DIR": str(tabular_model_dir)}, text_model)
    assert shadow is not None and shadow.candidate is None and "live model's inputs" in shadow.load_error


def test_the_app_emits_the_shadow_metrics_beside_the_live_ones(text_model_dir, candidate_dir, capsys):
    env = {"MODEL_DIR": str(text_model_dir), "CANDIDATE_MODEL_DIR": str(candidate_dir)}
    app = App.from_env(env)
    response = app.handle(kinesis_event(TEXTS))
    assert set(response["predictions"]) and all("label" in p for p in response["predictions"].values())
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    shadow = next(d for d in documents if "ShadowRecords" in d)
    assert shadow["ShadowRecords"] == 4 and shadow["candidate_version"] == "0.0.2"
    assert 0 <= shadow["ShadowAgreement"] <= 100 and len(shadow["ShadowLiveScore"]) == 4
    labels = {d["Label"]: d for d in documents if "Label" in d}
    assert sum(d["ShadowLiveLabelRecords"] for d in labels.values()) == 4
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "Label"]] for d in labels.values())


def test_shadow_documents_without_a_candidate_count_the_load_error():
    (document,) = shadow_documents(Shadow(None, None, "boom").report(), "ns", "svc", {})
    assert document["ShadowLoadErrors"] == 1 and "ShadowRecords" not in document


def test_a_function_without_a_candidate_has_no_shadow(text_model_dir, tmp_path):
    app = App.from_env({"MODEL_DIR": str(text_model_dir), "CANDIDATE_MODEL_DIR": str(tmp_path / "none")})
    assert app.shadow is None
    _, report = process_batch(kinesis_event(TEXTS), app.model, FakeSink(), LogQuarantine())
    assert report.shadow is None


def test_with_too_little_time_left_the_candidate_is_skipped(text_model, candidate):
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 500

    spy, shadow_sink = SpyModel(candidate), FakeSink()
    response, report = process_batch(
        batch_event(), text_model, FakeSink(), FakeQuarantine(), shadow=Shadow(spy, shadow_sink), context=Context()
    )
    assert response == {"batchItemFailures": []}
    assert spy.calls == [] and shadow_sink.calls == [] and report.shadow.skipped == 4
