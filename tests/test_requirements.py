"""One set of pins: requirements.txt, Pipfile, the venv, and the model's manifest agree."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from inference.manifest import TRACKED_LIBRARIES

from layers.deps_layer import BuildError, extra_sections, runtime_pins
from release.settings import DEFAULT_PATH, load_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[(?P<extras>[^\]]*)\])?==(?P<version>[^\s;#]+)$")

Pin = tuple[str, frozenset[str]]  # (version, extras)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_txt() -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = REQUIREMENT.match(line)
        assert match, f"requirements.txt: {raw!r} is not an exact pin (name[extras]==version)"
        name = canonical(match["name"])
        assert name not in pins, f"requirements.txt pins {name} twice"
        extras = frozenset(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
        pins[name] = (match["version"], extras)
    return pins


def pipfile() -> dict[str, dict]:
    return tomllib.loads((ROOT / "Pipfile").read_text())


def pipfile_section(section: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    for name, spec in pipfile().get(section, {}).items():
        if isinstance(spec, str):
            version, extras = spec, []
        else:
            version, extras = spec.get("version", "*"), spec.get("extras", [])
        assert version.startswith("=="), f"Pipfile [{section}] {name} = {spec!r} is not an exact pin"
        pins[canonical(name)] = (version[2:], frozenset(extras))
    return pins


def test_requirements_and_pipfile_pin_the_same_versions():
    sections = ["packages", "dev-packages", *(f"extra-{name}" for name in extra_sections())]
    combined: dict[str, Pin] = {}
    for section in sections:
        pins = pipfile_section(section)
        assert not set(pins) & set(combined), f"[{section}] pins a package another section pins"
        combined.update(pins)
    txt = requirements_txt()

    assert sorted(txt) == sorted(combined)
    differing = {name: (txt[name], combined[name]) for name in txt if txt[name] != combined[name]}
    assert differing == {}


def test_pipfile_python_is_the_runtime_and_the_venv_python():
    # The pins are chosen for deploy.toml's runtime, whose Python trains the model and compiles the layer.
    python = pipfile()["requires"]["python_version"]
    assert load_settings(DEFAULT_PATH).function.runtime == f"python{python}"
    assert "{}.{}".format(*sys.version_info[:2]) == python


def test_runtime_packages_cover_the_libraries_a_manifest_tracks():
    runtime = set(pipfile_section("packages"))
    assert {canonical(lib) for lib in TRACKED_LIBRARIES if lib != "python"} <= runtime


def test_the_layer_pins_are_what_the_venv_has_installed():
    pinned = dict(pin.split("==") for pin in runtime_pins())  # what make deps-layer installs
    assert {canonical(name) for name in pinned} == set(pipfile_section("packages"))
    assert {name: metadata.version(name) for name in pinned} == pinned


def test_every_extra_is_pinned_installed_and_named_by_its_section():
    assert {"pandas", "lightgbm"} <= set(extra_sections())
    for name in extra_sections():
        with_extra = dict(pin.split("==") for pin in runtime_pins(extras=[name]))
        section = pipfile_section(f"extra-{name}")
        assert canonical(name) in section
        assert {canonical(n) for n in with_extra} == set(pipfile_section("packages")) | set(section)
        assert {n: metadata.version(n) for n in with_extra} == with_extra


def test_an_unknown_extra_is_refused_naming_the_sections():
    with pytest.raises(BuildError, match=r"EXTRAS=xgboost.*\[extra-pandas\]"):
        runtime_pins(extras=["xgboost"])


def test_reference_model_was_built_with_the_runtime_pins(reference_model):
    path = reference_model / "manifest.json"
    libraries = json.loads(path.read_text())["libraries"]
    pinned = pipfile_section("packages")
    for lib in TRACKED_LIBRARIES:
        if lib != "python":
            assert libraries[lib] == pinned[canonical(lib)][0], lib
    assert libraries["python"].startswith(pipfile()["requires"]["python_version"] + ".")
