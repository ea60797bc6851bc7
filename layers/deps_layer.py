"""Build the dependencies layer (numpy, scipy, scikit-learn, joblib) for Lambda's Linux.

The pins are ``Pipfile``'s ``[packages]``: the same set that trains the model, so the
layer serves the exact versions that pickled it. With a reachable Docker engine the
layer is built inside ``public.ecr.aws/sam/build-<runtime>`` (the successor of the old
lambci image); without one, with cross-platform pip: ``--platform`` with every
manylinux tag the runtime's glibc accepts listed explicitly, ``--implementation cp``,
``--python-version`` and ``--only-binary=:all:``.

Then it slims only what is proven unneeded (test suites outside numpy, C headers and
sources, type stubs, console scripts), precompiles bytecode for the target Python when
the local interpreter is that Python (Lambda's ``/opt`` is read-only, so a layer without
bytecode compiles at every cold start), and zips ``python/…``. The packages' own extension
modules are stripped of symbols when this machine has a ``strip`` for the layer's
architecture; ``*.libs/`` never is. ``layers.checks`` then proves the result loads.

Usage: ``python -m layers.deps_layer [--runtime python3.12] [--arch x86_64]``
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
DEFAULT_OUT = BUILD / "layers" / "deps-layer.zip"
DEFAULT_RUNTIME = "python3.12"
DEFAULT_ARCH = "x86_64"

#: Lambda Python runtimes -> the glibc of their Amazon Linux (docs/aws-notes.md §3).
RUNTIME_GLIBC = {
    "python3.10": (2, 26),
    "python3.11": (2, 26),
    "python3.12": (2, 34),
    "python3.13": (2, 34),
    "python3.14": (2, 34),
}
ARCH_TAG = {"x86_64": "x86_64", "arm64": "aarch64"}
BUILD_IMAGE = "public.ecr.aws/sam/build-{runtime}"

#: Directory names removed wherever they appear, except under ``KEEP_TESTS_IN``.
TEST_DIRS = {"tests", "test"}
#: numpy.testing imports numpy._core.tests._natype (docs/aws-notes.md §3).
KEEP_TESTS_IN = {"numpy"}
#: Files that no import ever reads: build inputs and type stubs.
UNNEEDED_SUFFIXES = {".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp", ".pyi"}
UNNEEDED_DIRS = ("bin", "numpy/_core/include", "numpy/_pyinstaller", "numpy/distutils")
#: Packages whose own extension modules may be stripped of symbols. Never ``*.libs/``:
#: stripping the vendored libraries breaks import (docs/aws-notes.md §3).
STRIP_PACKAGES = ("numpy", "scipy", "sklearn")


class BuildError(RuntimeError):
    """The layer could not be built; the message says what to change."""


@dataclass
class BuildReport:
    """Sizes (bytes) at each stage, for ``make check-layers`` and the closing figures."""

    runtime: str
    arch: str
    method: str
    plain_bytes: int
    slim_bytes: int
    bytecode: bool
    final_bytes: int
    zip_bytes: int
    out: Path


def runtime_pins(pipfile: Path = ROOT / "Pipfile") -> list[str]:
    """``name==version`` for every package in Pipfile's ``[packages]`` (the runtime set)."""
    packages = tomllib.loads(pipfile.read_text())["packages"]
    return [f"{name}{spec if isinstance(spec, str) else spec['version']}" for name, spec in packages.items()]


def python_version(runtime: str) -> str:
    """``python3.12`` -> ``3.12``, after checking the runtime is a Lambda Python runtime."""
    if runtime not in RUNTIME_GLIBC:
        raise BuildError(f"RUNTIME={runtime} is not a Lambda Python runtime; use one of {', '.join(RUNTIME_GLIBC)}")
    return runtime.removeprefix("python")


def platform_tags(runtime: str, arch: str) -> list[str]:
    """Every manylinux tag whose glibc the runtime provides, listed explicitly.

    pip does not expand ``manylinux_2_34`` to the tags below it, and given only
    ``manylinux2014`` it silently resolves older releases (docs/aws-notes.md §3).
    """
    if arch not in ARCH_TAG:
        raise BuildError(f"ARCH={arch} is not a Lambda architecture; use x86_64 or arm64")
    major, minor = RUNTIME_GLIBC[runtime]
    machine = ARCH_TAG[arch]
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
    return [*tags, f"manylinux2014_{machine}"]


def docker_available() -> bool:
    """True when ``docker info`` reaches an engine within a few seconds."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def pip_install_command(target: Path, runtime: str, arch: str, compile_bytecode: bool) -> list[str]:
    """``pip install --target`` for the runtime's Python and platform, wheels only (no pins yet)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        python_version(runtime),
        "--only-binary=:all:",
    ]
    if not compile_bytecode:
        cmd.append("--no-compile")
    for tag in platform_tags(runtime, arch):
        cmd += ["--platform", tag]
    return cmd


def install_with_pip(target: Path, runtime: str, arch: str, pins: list[str]) -> None:
    """Cross-platform install of the pins into ``target`` (no bytecode, wheels only)."""
    cmd = pip_install_command(target, runtime, arch, compile_bytecode=False)
    result = subprocess.run([*cmd, *pins], capture_output=True, text=True)
    if result.returncode != 0:
        errors = "\n".join(line for line in result.stderr.splitlines() if "is ignored" not in line)
        raise BuildError(
            f"pip could not install the pins for {runtime}/{arch}:\n{errors}\nA pin without a wheel for "
            f"{' / '.join(platform_tags(runtime, arch)[-2:])} needs another version (or another RUNTIME)"
        )


def install_with_docker(target: Path, runtime: str, arch: str, pins: list[str]) -> None:
    """Install inside the SAM build image for the runtime and architecture."""
    platform = "linux/amd64" if arch == "x86_64" else "linux/arm64"
    target.mkdir(parents=True, exist_ok=True)
    script = f"pip install --no-compile --only-binary=:all: --target /out {' '.join(pins)}"
    subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--platform",
            platform,
            "-v",
            f"{target.resolve()}:/out",
            BUILD_IMAGE.format(runtime=runtime),
            "/bin/sh",
            "-c",
            script,
        ],
        check=True,
    )


def slim(site: Path) -> None:
    """Delete what no import needs."""
    for rel in UNNEEDED_DIRS:
        if (site / rel).exists():
            shutil.rmtree(site / rel)
    for path in sorted(site.rglob("*"), reverse=True):
        if not path.exists():
            continue
        top = path.relative_to(site).parts[0]
        if path.is_dir() and path.name in TEST_DIRS and top not in KEEP_TESTS_IN:
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in UNNEEDED_SUFFIXES:
            path.unlink()


def strip_extensions(site: Path, arch: str) -> None:
    """``strip --strip-unneeded`` the packages' own extension modules.

    Done only with a ``strip`` for the layer's architecture (this machine's), and never
    inside ``*.libs/``. ``layers.checks`` smoke-tests the result.
    """
    import platform

    strip = shutil.which("strip")
    if strip is None or ARCH_TAG[arch] != platform.machine():
        return
    modules = [str(p) for pkg in STRIP_PACKAGES for p in (site / pkg).rglob("*.so")]
    for start in range(0, len(modules), 200):
        subprocess.run([strip, "--strip-unneeded", *modules[start : start + 200]], check=True)


def compile_bytecode(site: Path, runtime: str) -> bool:
    """Precompile ``.pyc`` for the target Python, if this interpreter is that Python.

    ``unchecked-hash`` pycs are used as they are, whatever the sources' timestamps
    after Lambda extracts the zip.
    """
    if "{}.{}".format(*sys.version_info[:2]) != python_version(runtime):
        return False
    from py_compile import PycInvalidationMode

    ok = compileall.compile_dir(
        str(site), quiet=2, workers=os.cpu_count() or 1, invalidation_mode=PycInvalidationMode.UNCHECKED_HASH
    )
    if not ok:
        raise BuildError(f"compiling bytecode under {site} failed")
    return True


def build_deps_layer(
    runtime: str = DEFAULT_RUNTIME, arch: str = DEFAULT_ARCH, out: Path = DEFAULT_OUT, use_docker: bool | None = None
) -> BuildReport:
    """Install, slim, compile and zip the dependencies layer; return the sizes."""
    from layers.zipping import tree_entries, write_zip

    pins = runtime_pins()
    staging = BUILD / "deps" / f"{runtime}-{arch}"
    site = staging / "python"
    shutil.rmtree(staging, ignore_errors=True)
    docker = docker_available() if use_docker is None else use_docker
    method = f"docker ({BUILD_IMAGE.format(runtime=runtime)})" if docker else "cross-platform pip"
    print(f"deps layer: installing {len(pins)} pins for {runtime}/{arch} with {method} ...", file=sys.stderr)
    (install_with_docker if docker else install_with_pip)(site, runtime, arch, pins)
    plain = tree_bytes(site)
    slim(site)
    strip_extensions(site, arch)
    slim_size = tree_bytes(site)
    bytecode = compile_bytecode(site, runtime)
    final = tree_bytes(site)
    if not bytecode:
        print(f"deps layer: this interpreter is not {runtime}; the layer ships without bytecode", file=sys.stderr)
    write_zip(out, tree_entries(staging, include_bytecode=True), progress="deps layer: zipping")
    return BuildReport(runtime, arch, method, plain, slim_size, bytecode, final, out.stat().st_size, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the dependencies layer zip.")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME, help=f"Lambda runtime (default {DEFAULT_RUNTIME})")
    parser.add_argument("--arch", default=DEFAULT_ARCH, choices=sorted(ARCH_TAG))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-docker", action="store_true", help="use cross-platform pip even if Docker is there")
    args = parser.parse_args(argv)
    try:
        report = build_deps_layer(args.runtime, args.arch, args.out, use_docker=False if args.no_docker else None)
    except BuildError as exc:
        print(f"deps-layer: {exc}", file=sys.stderr)
        return 2
    mb = 1e6
    print(
        f"deps layer: {report.out} for {report.runtime}/{report.arch} via {report.method}: "
        f"{report.zip_bytes / mb:.1f} MB zipped, {report.final_bytes / mb:.1f} MB unzipped "
        f"({'with' if report.bytecode else 'without'} bytecode; {report.slim_bytes / mb:.1f} MB before bytecode; "
        f"plain install {report.plain_bytes / mb:.1f} MB without bytecode)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
