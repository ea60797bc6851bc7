"""The GitHub Actions workflows in .github/workflows/: actionlint-clean, and safe by construction.

* actionlint (the ``actionlint`` command that requirements.txt installs into the virtualenv) reports
  nothing, with .github/actionlint.yaml naming the repository variables the workflows may read;
* every ``make`` target a workflow runs exists in the Makefile;
* no secret is referenced and no access key is passed: AWS credentials come only from OIDC role
  assumption (``role-to-assume: ${{ vars.AWS_ROLE_ARN }}``), in jobs that may request an ID token;
* every action is pinned by a full commit SHA;
* pull requests run the tests and the layer checks without AWS; a tag packages, checks, publishes in
  shadow, and promotes only behind the ``production`` environment, one release at a time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT_CONFIG = ROOT / ".github" / "actionlint.yaml"
#: The actionlint command requirements.txt installs beside this interpreter.
ACTIONLINT = Path(sys.executable).parent / "actionlint"
CONFIGURE_AWS = "aws-actions/configure-aws-credentials"
MAKE_TARGET = re.compile(r"(?:^|[;&|]\s*|\n\s*)make\s+((?:[A-Z_]+=\S*\s+)*)([a-z][a-z0-9-]*)")


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job_id, step) for job_id, job in workflow["jobs"].items() for step in job.get("steps", [])]


def make_targets_run(workflow: dict[str, Any]) -> list[str]:
    """The ``make`` targets the ``run:`` steps of ``workflow`` name, in order."""
    return [m[2] for _, step in steps(workflow) for m in MAKE_TARGET.finditer(step.get("run", ""))]


def makefile_targets() -> set[str]:
    """The rules the Makefile defines (``name:`` at the start of a line; ``name :=`` is a variable)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m[1] for m in re.finditer(r"^([a-z][a-z0-9-]*)\s*:(?!=)", text, re.M)}


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.is_file(), f"{ACTIONLINT} is missing: run `make venv` (requirements.txt pins actionlint)"
    command = [str(ACTIONLINT), "-no-color", "-config-file", str(ACTIONLINT_CONFIG), *map(str, paths)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict[str, Any]]:
    assert WORKFLOWS, "no workflow in .github/workflows/"
    return {path.name: load(path) for path in WORKFLOWS}


# --- actionlint ---------------------------------------------------------------------------------


def test_workflows_lint_clean() -> None:
    result = actionlint(*WORKFLOWS)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("${{ vars.AWS_ROLE_ARN }}", "${{ vars.AWS_ROLE }}", 'undefined configuration variable "aws_role"'),
        ("    runs-on: ubuntu-24.04\n", "", '"runs-on" section is missing'),
        ("needs: shadow", "needs: publish", 'needs job "publish" which does not exist'),
    ],
)
def test_actionlint_reports_a_broken_workflow(tmp_path: Path, old: str, new: str, message: str) -> None:
    """The lint above can fail: a misspelt repository variable, a job without runner, a wrong ``needs``."""
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace(old, new, 1))
    result = actionlint(broken)
    assert result.returncode == 1 and message in result.stdout, result.stdout


# --- what the workflows run ------------------------------------------------------------------------


def test_every_make_target_a_workflow_runs_exists(workflows: dict[str, dict[str, Any]]) -> None:
    named = {(name, target) for name, workflow in workflows.items() for target in make_targets_run(workflow)}
    assert named, "the workflows run no make target"
    missing = sorted((name, target) for name, target in named if target not in makefile_targets())
    assert missing == [], "targets the workflows run but the Makefile lacks"


def test_no_secret_or_access_key_is_referenced() -> None:
    for path in WORKFLOWS:
        text = path.read_text(encoding="utf-8")
        assert "secrets." not in text and "secrets[" not in text, path.name
        assert not re.search(r"aws-(access-key-id|secret-access-key|session-token)\s*:", text), path.name
        assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)", text), path.name
        assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), path.name


def test_aws_credentials_only_by_oidc_from_repository_variables(workflows: dict[str, dict[str, Any]]) -> None:
    used = 0
    for workflow in workflows.values():
        for job_id, job in workflow["jobs"].items():
            configure = [s for s in job.get("steps", []) if s.get("uses", "").startswith(f"{CONFIGURE_AWS}@")]
            permissions = {**workflow.get("permissions", {}), **job.get("permissions", {})}
            assert workflow.get("permissions", {}).get("id-token") != "write", "ID tokens only where needed"
            if not configure:
                assert permissions.get("id-token") != "write", job_id
                continue
            used += 1
            assert permissions.get("id-token") == "write", job_id
            for step in configure:
                assert step["with"] == {
                    "role-to-assume": "${{ vars.AWS_ROLE_ARN }}",
                    "aws-region": "${{ vars.AWS_REGION }}",
                    "role-session-name": step["with"]["role-session-name"],
                }, job_id
            assert job.get("environment"), f"{job_id}: the role's trust policy names the environment"
    assert used, "no job assumes the AWS role"


def test_every_action_is_pinned_by_commit_sha() -> None:
    uses = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", re.M)
    for path in WORKFLOWS:
        for action, comment in uses.findall(path.read_text(encoding="utf-8")):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}", action), f"{path.name}: {action}"
            assert re.search(r"#\s*v\d+", comment), f"{path.name}: {action} needs a '# vX.Y.Z' comment"


# --- the two flows -----------------------------------------------------------------------------------


def test_pull_requests_run_the_tests_and_the_layer_checks(workflows: dict[str, dict[str, Any]]) -> None:
    (ci,) = [w for w in workflows.values() if "pull_request" in w["on"]]
    assert make_targets_run(ci) == ["test", "check-layers"]
    assert not any(s.get("uses", "").startswith(CONFIGURE_AWS) for _, s in steps(ci)), "tests need no AWS"


def test_a_tag_packages_checks_publishes_in_shadow_then_promotes_on_approval(
    workflows: dict[str, dict[str, Any]],
) -> None:
    (release,) = [w for w in workflows.values() if "push" in w["on"]]
    assert release["on"] == {"push": {"tags": ["v*"]}}
    assert release["concurrency"]["cancel-in-progress"] is False  # a release is never cancelled half-way
    assert "${{" not in release["concurrency"]["group"], "one group for every tag: two releases never overlap"
    jobs = release["jobs"]
    (publishing,) = [j for j in jobs.values() if j.get("environment") != "production"]
    (promoting,) = [j for j in jobs.values() if j.get("environment") == "production"]
    runs = [s["run"] for s in publishing["steps"] if "run" in s]
    assert [r for r in runs if r.startswith("make ")] == [
        "make model-layer",
        "make check-layers",
        "make publish-model-layer STRATEGY=shadow",
    ]
    publisher_id = next(job_id for job_id, j in jobs.items() if j is publishing)
    assert promoting["needs"] == publisher_id
    assert [m for m in make_targets_run({"jobs": {"p": promoting}})] == ["promote"]
    # Credentials are asked for only after the package is built and checked.
    order = [s.get("uses", s.get("run", "")) for s in publishing["steps"]]
    aws_at = next(i for i, s in enumerate(order) if s.startswith(CONFIGURE_AWS))
    assert aws_at > order.index("make check-layers")
