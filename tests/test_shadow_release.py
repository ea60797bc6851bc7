"""Shadow rollouts against moto's Lambda (release.shadow): attach a candidate, promote or reject it."""

# ruff: noqa: F811 - the moto fixtures imported from tests.test_release are the tests' parameters
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from release.cli import main
from release.deploy import deploy
from release.descriptions import parse_description
from release.errors import ReleaseError
from release.history import read_history
from release.publish import publish_deps_layer, publish_model_layer
from release.relink import rollback
from release.shadow import promote, publish_shadow, reject
from release.state import FunctionState
from tests.helpers import write_zip
from tests.test_release import aws, clients, env, model_zip  # noqa: F401 - the moto fixtures

pytestmark = pytest.mark.aws


def candidate_zip(model: Path) -> Path:
    """The model layer zip ``model`` with its files under ``candidate/``."""
    with zipfile.ZipFile(model) as zf:
        files = {"candidate/" + name.removeprefix("model/"): zf.read(name) for name in zf.namelist()}
    return write_zip(model.with_name(model.stem + "-candidate.zip"), files)


def deployed(env) -> tuple[str, str]:
    """Both layers published, the function deployed with model 1.0.0: (deps ARN, model ARN)."""
    s, c = env["settings"], env["clients"]
    deps = publish_deps_layer(s, env["deps_zip"], clients=c).layer_arn
    model = publish_model_layer(s, model_zip(env["tmp"], "1.0.0"), clients=c).layer_arn
    deploy(s, env["function_zip"], clients=c)
    return deps, model


def live_layers(lam) -> list[str]:
    config = lam.get_function_configuration(FunctionName="stream-inference", Qualifier="live")
    return [layer["Arn"] for layer in config["Layers"]]


def shadow(env, version: str = "2.0.0"):
    model = model_zip(env["tmp"], version)
    return publish_shadow(env["settings"], model, candidate_zip(model), clients=env["clients"])


def test_shadow_attaches_the_candidate_then_promote_releases_its_model_and_rollback_undoes_it(env):
    lam, s, c = env["clients"].lambda_, env["settings"], env["clients"]
    deps, v1 = deployed(env)

    candidate, release = shadow(env)

    assert candidate.endswith(":layer:model-layer-candidate:1") and release.changed
    assert live_layers(lam) == [deps, v1, candidate]  # the live model is untouched
    kind, fields = parse_description(
        lam.get_layer_version(LayerName="model-layer-candidate", VersionNumber=1)["Description"]
    )
    assert (kind, fields["version"], fields["promote"]) == ("candidate", "2.0.0", "2")
    assert lam.get_layer_version(LayerName="model-layer", VersionNumber=2)["Description"].startswith("model ")
    assert read_history(s.history.file)[-1]["action"] == "shadow"
    again_candidate, again = shadow(env)
    assert again_candidate == candidate and not again.changed

    promoted = promote(s, clients=c)

    assert live_layers(lam) == [deps, promoted.model_layer_arn] and promoted.model_layer_arn.endswith(":model-layer:2")
    tags = lam.list_tags(Resource=lam.get_function_configuration(FunctionName="stream-inference")["FunctionArn"])
    assert tags["Tags"]["model-version"] == "2.0.0" and tags["Tags"]["release-action"] == "promote"
    assert not FunctionState.read(s, c).unfinished
    rollback(s, clients=c)
    assert live_layers(lam) == [deps, v1]


def test_reject_detaches_the_candidate_and_keeps_the_live_model(env):
    lam, s, c = env["clients"].lambda_, env["settings"], env["clients"]
    deps, v1 = deployed(env)
    shadow(env)
    assert reject(s, clients=c).changed and live_layers(lam) == [deps, v1]
    assert not reject(s, clients=c).changed  # nothing attached: nothing to do
    with pytest.raises(ReleaseError, match="no candidate attached"):
        promote(s, clients=c)


def test_an_interrupted_shadow_is_reported_finished_by_its_rerun_or_undone_by_abort(env, capsys):
    lam, s, c = env["clients"].lambda_, env["settings"], env["clients"]
    deps, v1 = deployed(env)

    class Dead(Exception):
        pass

    def update_alias(**kwargs):
        raise Dead("connection lost")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lam, "update_alias", update_alias)
        with pytest.raises(Dead):
            shadow(env)
    assert live_layers(lam) == [deps, v1]
    argv = ["--settings", str(env["toml"])]
    assert main([*argv, "reject"], clients=c) == 2
    err = capsys.readouterr().err
    assert "unfinished shadow" in err and "make publish-model-layer STRATEGY=shadow" in err
    assert main([*argv, "abort"], clients=c) == 0
    assert live_layers(lam) == [deps, v1] and not FunctionState.read(s, c).unfinished

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lam, "update_alias", update_alias)
        with pytest.raises(Dead):
            shadow(env)
    model = model_zip(env["tmp"], "2.0.0")
    cli = [*argv, "publish-model-layer", "--strategy", "shadow", "--zip", str(model)]
    assert main([*cli, "--candidate-zip", str(candidate_zip(model))], clients=c) == 0
    assert live_layers(lam)[-1].endswith(":model-layer-candidate:1") and not FunctionState.read(s, c).unfinished
    assert main([*argv, "promote"], clients=c) == 0
    assert live_layers(lam) == [deps, v1.rsplit(":", 1)[0] + ":2"]


def test_a_candidate_zip_of_another_model_is_refused(env):
    deployed(env)
    other = candidate_zip(model_zip(env["tmp"], "3.0.0"))
    with pytest.raises(ReleaseError, match="different models"):
        publish_shadow(env["settings"], model_zip(env["tmp"], "2.0.0"), other, clients=env["clients"])
