"""A model too big for a layer: its artifacts in S3, downloaded once, every byte verified (moto).

The gallery model (a random forest on breast cancer) is packaged through ``layers.model_layer``'s
command line, then published with ``release.publish.publish_model_layer`` against moto with the
unzipped limit lowered below what function + layers add up to: the artifacts go to S3 under a
versioned prefix and the published layer holds just the manifest (and golden predictions). The
function, given that layer, downloads the artifacts into its ``/tmp`` (a test folder here),
verifies them and predicts what the model's own ``predict_proba`` gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
from inference import remote_artifacts
from inference.app import App
from inference.manifest import read_manifest, sha256_file
from inference.model import ModelLoadError, load_model
from inference.remote_artifacts import transfer_config
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier

from layers.checks import check_size, unzipped_size
from layers.model_layer import main as model_layer
from release.aws import Clients
from release.descriptions import parse_description
from release.errors import ReleaseError
from release.model_artifacts import artifact_prefix
from release.model_zip import verify_model_zip
from release.publish import publish_model_layer
from release.settings import SettingsError, load_settings
from testing.events import kinesis_record
from tests.helpers import ROOT, fake_deps_zip, write_zip

pytestmark = pytest.mark.aws

REGION = "us-east-1"
BUCKET = "model-artifacts-bucket"
ROWS = 25


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray, list[str]]:
    """(packaged folder, its layer zip, rows, the forest's own predict_proba on them, feature names)."""
    cancer = datasets.load_breast_cancer()
    features = [f"f{i}" for i in range(cancer.data.shape[1])]
    forest = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(cancer.data, cancer.target)
    folder = tmp_path_factory.mktemp("s3model") / "model"
    folder.mkdir()
    joblib.dump(forest, folder / "forest.joblib")
    out = folder.parent / "model-layer.zip"
    args = ["--src", str(folder), "--out", str(out), "--name", "cancer-forest", "--version", "2.0.0"]
    assert model_layer([*args, "--pipeline", "forest.joblib", "--features", ",".join(features)]) == 0
    rows = cancer.data[::23][:ROWS]
    return folder, out, rows, forest.predict_proba(rows), features


def settings_file(tmp: Path, bucket: str = BUCKET, **function: Any) -> Path:
    lines = [
        "[function]",
        'name = "stream-inference"',
        'role_arn = "arn:aws:iam::123456789012:role/r"',
        *(f"{key} = {value}" for key, value in function.items()),
        "[layers]",
        'model_name = "model-layer"',
        'dependencies_name = "deps-layer"',
        f'artifact_bucket = "{bucket}"',
        "[[event_sources]]",
        'type = "kinesis"',
        'source_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s"',
        'on_failure_destination_arn = "arn:aws:sqs:us-east-1:123456789012:q"',
        "[history]",
        'file = "history.jsonl"',
    ]
    path = tmp / "deploy.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def published(mocked_aws: None, model_folder: Any, tmp_path: Path) -> tuple[Any, Path, Clients, Path, Path, Path]:
    """The gallery model published with a limit just under function + layers: (result, slim zip, ...)."""
    _, layer, *_ = model_folder
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    clients = Clients.from_session(boto3.Session(region_name=REGION))
    settings = load_settings(settings_file(tmp_path))
    function_zip = write_zip(tmp_path / "function.zip", {"lambda_function.py": b"def lambda_handler(e, c): pass\n"})
    deps = fake_deps_zip(tmp_path / "deps.zip")
    total = sum(unzipped_size(z) for z in (function_zip, deps, layer))
    local = tmp_path / "layer.zip"
    local.write_bytes(layer.read_bytes())
    result = publish_model_layer(
        settings, local, clients=clients, function_zip=function_zip, deps_zip=deps, limit=total - 1
    )
    return result, local.with_name("layer-s3.zip"), clients, local, function_zip, deps


def published_sha256(clients: Clients, layer_arn: str) -> str:
    """The zip sha256 a published layer version's description records."""
    name, version = layer_arn.split(":")[-2:]
    description = clients.lambda_.get_layer_version(LayerName=name, VersionNumber=int(version))["Description"]
    return parse_description(description)[1]["sha256"]


def extract_model(zip_path: Path, to: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(to)
    return to / "model"


def kinesis_batch(rows: np.ndarray, features: list[str]) -> dict[str, Any]:
    docs = [dict(zip(features, row)) for row in rows.tolist()]
    return {"Records": [kinesis_record(json.dumps(doc), 3000 + i) for i, doc in enumerate(docs)]}


def test_over_the_limit_the_artifacts_go_to_a_versioned_prefix_and_the_layer_keeps_the_manifest(
    published: Any, model_folder: Any
) -> None:
    result, slim, clients, full, *_ = published
    folder = model_folder[0]
    manifest = read_manifest(folder)

    prefix = f"models/model-layer/cancer-forest/2.0.0/{sha256_file(full)[:16]}/"
    assert result.artifacts_uri == f"s3://{BUCKET}/{prefix}"
    stored = clients.s3.get_object(Bucket=BUCKET, Key=prefix + "forest.joblib")["Body"].read()
    assert stored == (folder / "forest.joblib").read_bytes()
    with zipfile.ZipFile(slim) as zf:
        assert sorted(zf.namelist()) == ["model/golden.json", "model/manifest.json"]
    slim_manifest = verify_model_zip(slim)  # nothing in it that its manifest does not list
    assert slim_manifest["artifacts_uri"] == result.artifacts_uri
    assert slim_manifest["pipeline"] == manifest["pipeline"]  # the sha256 the function verifies against
    assert published_sha256(clients, result.layer_arn) == sha256_file(slim)


def test_under_the_limit_the_model_stays_in_its_layer(mocked_aws: None, model_folder: Any, tmp_path: Path) -> None:
    _, layer, *_ = model_folder
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    clients = Clients.from_session(boto3.Session(region_name=REGION))
    function_zip = write_zip(tmp_path / "function.zip", {"lambda_function.py": b"pass\n"})
    deps = fake_deps_zip(tmp_path / "deps.zip")
    total = sum(unzipped_size(z) for z in (function_zip, deps, layer))

    result = publish_model_layer(
        load_settings(settings_file(tmp_path)),
        layer,
        clients=clients,
        function_zip=function_zip,
        deps_zip=deps,
        limit=total,
    )

    assert result.artifacts_uri is None
    assert clients.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert published_sha256(clients, result.layer_arn) == sha256_file(layer)


def test_without_an_artifact_bucket_publishing_a_big_model_stops_naming_the_setting(
    mocked_aws: None, model_folder: Any, tmp_path: Path
) -> None:
    _, layer, *_ = model_folder
    clients = Clients.from_session(boto3.Session(region_name=REGION))
    settings = load_settings(settings_file(tmp_path, bucket=""))
    function_zip = write_zip(tmp_path / "function.zip", {"lambda_function.py": b"pass\n"})

    with pytest.raises(ReleaseError, match=r"\[layers\] artifact_bucket is not set"):
        publish_model_layer(
            settings,
            layer,
            clients=clients,
            function_zip=function_zip,
            deps_zip=fake_deps_zip(tmp_path / "d.zip"),
            limit=1,
        )
    assert clients.lambda_.list_layers()["Layers"] == []


def test_the_function_downloads_verifies_and_predicts_what_the_model_predicts(
    published: Any, model_folder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, slim, clients, *_ = published
    _, _, rows, proba, features = model_folder
    cache = tmp_path / "tmp-storage"
    monkeypatch.setattr(remote_artifacts, "DEFAULT_CACHE_DIR", cache)  # the function's /tmp
    event = kinesis_batch(rows, features)

    response = App.from_env({"MODEL_DIR": str(extract_model(slim, tmp_path / "opt"))}).handle(event)

    assert response["batchItemFailures"] == []
    got = [response["predictions"][record["eventID"]] for record in event["Records"]]
    assert [g["label"] for g in got] == proba.argmax(axis=1).tolist()
    assert np.allclose([g["probability"] for g in got], proba.max(axis=1), rtol=0, atol=0)
    manifest = read_manifest(tmp_path / "opt" / "model")
    assert [p.name for p in cache.iterdir()] == [manifest["pipeline"][0]["sha256"]]


def test_downloaded_once_per_environment(published: Any, tmp_path: Path) -> None:
    result, slim, clients, *_ = published
    model_dir = extract_model(slim, tmp_path / "opt")
    load_model(model_dir, cache_dir=tmp_path / "cache")
    bucket, _, prefix = result.artifacts_uri.removeprefix("s3://").partition("/")
    clients.s3.delete_object(Bucket=bucket, Key=prefix + "forest.joblib")

    again = load_model(model_dir, cache_dir=tmp_path / "cache")  # a re-init in the same environment

    assert again.name == "cancer-forest"


def test_a_tampered_object_is_refused_and_not_kept(published: Any, tmp_path: Path) -> None:
    result, slim, clients, *_ = published
    bucket, _, prefix = result.artifacts_uri.removeprefix("s3://").partition("/")
    original = clients.s3.get_object(Bucket=bucket, Key=prefix + "forest.joblib")["Body"].read()
    clients.s3.put_object(Bucket=bucket, Key=prefix + "forest.joblib", Body=original[:-1] + b"\x00")
    cache = tmp_path / "cache"

    with pytest.raises(ModelLoadError, match=r"forest.joblib does not match the manifest .*refusing to load it"):
        load_model(extract_model(slim, tmp_path / "opt"), cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_a_missing_object_names_the_upload_and_the_permission(published: Any, tmp_path: Path) -> None:
    _, slim, *_ = published
    model_dir = extract_model(slim, tmp_path / "opt")

    with pytest.raises(ModelLoadError, match=r"cannot be read \(404\).*s3:GetObject"):
        load_model(model_dir, artifacts_uri=f"s3://{BUCKET}/elsewhere/", cache_dir=tmp_path / "cache")


def test_large_files_download_in_parallel_ranged_parts() -> None:
    config = transfer_config()
    assert config.max_request_concurrency > 1 and config.multipart_chunksize <= config.multipart_threshold


def test_the_layer_checks_accept_a_model_whose_artifacts_will_move(
    model_folder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, layer, *_ = model_folder
    zips = [write_zip(tmp_path / "function.zip", {"lambda_function.py": b"pass\n"}), fake_deps_zip(tmp_path / "d.zip")]
    zips.append(layer)
    artifacts = (model_folder[0] / "forest.joblib").stat().st_size
    monkeypatch.setattr("layers.checks.UNZIPPED_LIMIT", sum(map(unzipped_size, zips)) - artifacts // 2)

    moved = check_size(zips, artifacts)
    refused = check_size(zips)

    assert moved.ok and "go to S3 when published" in moved.detail
    assert not refused.ok


@pytest.mark.parametrize(("size", "ok"), [(511, False), (512, True), (10240, True), (10241, False)])
def test_ephemeral_storage_is_validated(tmp_path: Path, size: int, ok: bool) -> None:
    path = settings_file(tmp_path, ephemeral_storage_mb=size)
    if ok:
        assert load_settings(path).function.ephemeral_storage_mb == size
    else:
        with pytest.raises(SettingsError, match="ephemeral_storage_mb"):
            load_settings(path)


def test_the_template_sizes_tmp_and_lets_the_role_read_only_the_artifacts(tmp_path: Path) -> None:
    from infra.template import FUNCTION_ID, build_template

    settings = load_settings(settings_file(tmp_path, ephemeral_storage_mb=4096))
    resources = build_template(settings)["Resources"]

    assert resources[FUNCTION_ID]["Properties"]["EphemeralStorage"] == {"Size": 4096}
    statements = resources["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (read,) = [s for s in statements if s["Sid"] == "ReadModelArtifacts"]
    assert read["Action"] == ["s3:GetObject"]
    assert read["Resource"] == [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{BUCKET}/{artifact_prefix(settings)}*"}]


def test_a_model_in_its_layer_does_not_import_boto3_at_init(model_folder: Any) -> None:
    code = (
        "import sys; from inference.app import App; App.from_env({'MODEL_DIR': sys.argv[1]}); "
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    env = {"PYTHONPATH": f"{ROOT / 'function'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code, str(model_folder[0])], capture_output=True, text=True, env=env)
    assert proc.stdout.splitlines()[-1:] == ["[]"], proc.stderr  # after the "model loaded" log line


def test_make_deploy_asks_lambda_for_that_much_tmp(tmp_path: Path) -> None:
    from release.deploy import desired_configuration

    settings = load_settings(settings_file(tmp_path, ephemeral_storage_mb=2048))

    assert desired_configuration(settings, [])["EphemeralStorage"] == {"Size": 2048}


def test_make_publish_model_layer_says_where_the_artifacts_went(
    mocked_aws: None, model_folder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from release.cli import main

    _, layer, *_ = model_folder
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    function_zip = write_zip(tmp_path / "function.zip", {"lambda_function.py": b"pass\n"})
    deps = fake_deps_zip(tmp_path / "deps.zip")
    local = tmp_path / "layer.zip"
    local.write_bytes(layer.read_bytes())
    monkeypatch.setattr("release.publish.UNZIPPED_LIMIT", unzipped_size(local))  # lowered: the test's threshold
    argv = ["--settings", str(settings_file(tmp_path)), "publish-model-layer", "--zip", str(local)]

    status = main([*argv, "--function-zip", str(function_zip), "--deps-zip", str(deps)], clients=None)

    out = capsys.readouterr().out
    assert status == 0, out
    assert "would push the function over Lambda's 250 MB unzipped: uploaded them to s3://" + BUCKET in out
