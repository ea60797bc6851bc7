"""Build the dependencies layer (numpy, scipy, scikit-learn, joblib) for Lambda's Linux.

The pins are ``Pipfile``'s ``[packages]``: the same set that trains the model, so the
layer serves the exact versions that pickled it. With a reachable Docker engine the
layer is built inside ``public.ecr.aws/sam/build-<runtime>`` (the successor of the old
lambci image); without one, with cross-platform pip: ``--platform`` with every
manylinux tag the runtime's glibc accepts listed explicitly, ``--implementation cp``,
``--python-version`` and ``--only-binary=:all:``.

Extra libraries are Pipfile's ``[extra-NAME]`` sections (pipenv custom categories, mirrored
in ``requirements.txt``): ``--extras pandas,lightgbm`` (``make deps-layer EXTRAS=...``) adds
their pins to the layer; ``--only-extras`` writes a layer of the extras alone (installed and
traced with the base pins, zipped without them), to attach after the dependencies layer.
A shared library that an extra's binaries need and that Lambda's image lacks is shipped
in the layer's ``lib/`` (``/opt/lib``, on Lambda's ``LD_LIBRARY_PATH``): LightGBM's
``libgomp.so.1`` is scikit-learn's own bundled copy (docs/aws-notes.md §3).

Then it slims only what is proven unneeded (test suites outside numpy, C headers and
sources, type stubs, console scripts), trims the modules no supported model can import
(:mod:`layers.trim`; ``--no-trim``, ``make deps-layer TRIM=0``, keeps them), precompiles bytecode for the target Python when
the local interpreter is that Python (Lambda's ``/opt`` is read-only, so a layer without
bytecode compiles at every cold start), and zips ``python/…``. The packages' own extension
modules are stripped of symbols when this machine has a ``strip`` for the layer's
architecture; ``*.libs/`` never is. ``layers.checks`` then proves the result loads.

Usage: ``python -m layers.deps_layer [--runtime python3.12] [--arch x86_64] [--extras pandas,lightgbm]
[--only-extras] [--no-trim] [--out ZIP]``; ``--print-pins`` prints what would be installed.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from layers.trim import TrimError

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
DEFAULT_OUT = BUILD / "layers" / "deps-layer.zip"
#: The layer of the extras alone (``--only-extras``; ``make extras-layer``).
EXTRAS_OUT = BUILD / "layers" / "extras-layer.zip"
#: Pipfile sections ``[extra-NAME]`` hold the optional runtime libraries.
EXTRA_PREFIX = "extra-"
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
#: numpy 2.2's numpy.testing imported numpy._core.tests._natype (docs/aws-notes.md §3): numpy's
#: test suites are left to the trim (layers/trim.py), which removes them when nothing imports them.
KEEP_TESTS_IN = {"numpy"}
#: Files that no import ever reads: build inputs and type stubs.
UNNEEDED_SUFFIXES = {".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp", ".pyi"}
UNNEEDED_DIRS = ("bin", "numpy/_core/include", "numpy/_pyinstaller", "numpy/distutils")
#: Packages whose own extension modules may be stripped of symbols. Never ``*.libs/``:
#: stripping the vendored libraries breaks import (docs/aws-notes.md §3).
STRIP_PACKAGES = ("numpy", "scipy", "sklearn")
#: Shared libraries Lambda's Amazon Linux 2023 image provides to a layer's binaries: glibc's,
#: the GCC runtime the manylinux policy assumes, and zlib (CPython's own zlib module needs it).
#: Anything else a binary needs must be in the layers (docs/aws-notes.md §3).
RUNTIME_IMAGE_LIBRARIES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libz.so.1",
    }
)
#: Libraries an extra needs that the runtime image lacks -> a copy bundled in another wheel of
#: the layer (glob under ``python/``), shipped as ``lib/NAME``.
BUNDLED_COPIES = {"libgomp.so.1": "scikit_learn.libs/libgomp-*.so*"}


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
    extras: list[str] = field(default_factory=list)
    #: Bytes the trim removed (:mod:`layers.trim`); ``None`` when not trimmed.
    trimmed_bytes: int | None = None
    #: Libraries copied into ``lib/`` (``libgomp.so.1``).
    shipped_libraries: list[str] = field(default_factory=list)


def extra_sections(pipfile: Path = ROOT / "Pipfile") -> list[str]:
    """The extras Pipfile offers: ``NAME`` for every ``[extra-NAME]`` section."""
    return [s.removeprefix(EXTRA_PREFIX) for s in tomllib.loads(pipfile.read_text()) if s.startswith(EXTRA_PREFIX)]


def _pins(section: dict) -> list[str]:
    return [f"{name}{spec if isinstance(spec, str) else spec['version']}" for name, spec in section.items()]


def runtime_pins(pipfile: Path = ROOT / "Pipfile", extras: Sequence[str] = ()) -> list[str]:
    """``name==version`` for every package in Pipfile's ``[packages]`` (the runtime set), then each extra's.

    Raises
    ------
    BuildError
        An extra has no ``[extra-NAME]`` section; the message lists the sections there are.
    """
    data = tomllib.loads(pipfile.read_text())
    unknown = [name for name in extras if EXTRA_PREFIX + name not in data]
    if unknown:
        offered = ", ".join(f"[{EXTRA_PREFIX}{name}]" for name in extra_sections(pipfile)) or "none"
        raise BuildError(
            f"EXTRAS={','.join(unknown)}: Pipfile has no [{EXTRA_PREFIX}{unknown[0]}] section (it has {offered}); "
            "add one with the library's pins and mirror them in requirements.txt (docs/layers.md)"
        )
    return _pins(data["packages"]) + [pin for name in extras for pin in _pins(data[EXTRA_PREFIX + name])]


def extra_pins(pipfile: Path = ROOT / "Pipfile", extras: Sequence[str] = ()) -> list[str]:
    """The pins the extras add to ``[packages]``."""
    base = set(runtime_pins(pipfile))
    return [pin for pin in runtime_pins(pipfile, extras) if pin not in base]


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


def installed_top_names(site: Path, pins: Sequence[str]) -> set[str]:
    """The top-level entries of ``site`` (packages, modules, ``*.dist-info``, ``*.libs``) the pinned
    distributions installed, from their ``RECORD``."""
    wanted = {re.sub(r"[-_.]+", "_", pin.split("==")[0]).lower() for pin in pins}
    names: set[str] = set()
    for info in site.glob("*.dist-info"):
        project = info.name.removesuffix(".dist-info").rpartition("-")[0]
        if re.sub(r"[-_.]+", "_", project).lower() not in wanted:
            continue
        names.add(info.name)
        for line in (info / "RECORD").read_text().splitlines():
            first = line.split(",")[0].split("/")[0]
            if first and first not in ("..", "__pycache__"):
                names.add(first)
    return names


def import_names(top_names: set[str]) -> list[str]:
    """Importable names among :func:`installed_top_names` (``pandas``, ``dateutil``, ``six``)."""
    names = {n.removesuffix(".py") for n in top_names if not n.endswith((".dist-info", ".libs", ".pth"))}
    return sorted(n for n in names if n.isidentifier())


def ship_needed_libraries(staging: Path) -> list[str]:
    """Copy into ``staging/lib`` what the layer's binaries need and neither they nor Lambda's image have.

    Raises
    ------
    BuildError
        A needed library has no copy listed in :data:`BUNDLED_COPIES`.
    """
    from layers.elf import dynamic_entries, unresolved_libraries

    files = [p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()]
    binaries = {}
    for name in files:
        if re.search(r"\.so(\.[0-9.]+)?$", name):
            data = (staging / name).read_bytes()
            if data[:4] == b"\x7fELF":
                binaries[name] = dynamic_entries(data)
    missing = unresolved_libraries(binaries, files, RUNTIME_IMAGE_LIBRARIES)
    shipped = []
    for library, needers in sorted(missing.items()):
        copies = sorted((staging / "python").glob(BUNDLED_COPIES.get(library, "/nothing")))
        if not copies:
            raise BuildError(
                f"{needers[0]} needs {library}, which neither the layer nor Lambda's image has: add a copy to "
                "BUNDLED_COPIES in layers/deps_layer.py (a wheel that bundles it), or drop the extra"
            )
        (staging / "lib").mkdir(exist_ok=True)
        shutil.copyfile(copies[0], staging / "lib" / library)
        shipped.append(library)
    return shipped


def drop_sources(site: Path) -> int:
    """Replace every ``.py`` that has bytecode by that bytecode, where the source was (``x.pyc``).

    Python imports such a module sourceless; tracebacks then show no source lines. Returns
    the bytes of source removed.
    """
    removed = 0
    for source in list(site.rglob("*.py")):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
        if pyc.is_file():
            removed += source.stat().st_size
            pyc.replace(source.with_suffix(".pyc"))
            source.unlink()
    return removed


def build_deps_layer(
    runtime: str = DEFAULT_RUNTIME,
    arch: str = DEFAULT_ARCH,
    out: Path = DEFAULT_OUT,
    use_docker: bool | None = None,
    extras: Sequence[str] = (),
    trim: bool = True,
    only_extras: bool = False,
    sources: bool = True,
) -> BuildReport:
    """Install, slim, trim, compile and zip the dependencies layer; return the sizes.

    With ``only_extras`` the zip holds only what the extras add (their distributions and
    ``lib/``), for a layer attached after a dependencies layer built from the same pins.
    Without ``sources`` the layer holds bytecode only where it has bytecode (:func:`drop_sources`).
    """
    from layers.zipping import tree_entries, write_zip

    if only_extras and not extras:
        raise BuildError("an extras layer needs EXTRAS=name,... (Pipfile's [extra-NAME] sections)")
    pins = runtime_pins(extras=extras)
    staging = BUILD / "deps" / f"{Path(out).stem}-{runtime}-{arch}"
    site = staging / "python"
    shutil.rmtree(staging, ignore_errors=True)
    docker = docker_available() if use_docker is None else use_docker
    method = f"docker ({BUILD_IMAGE.format(runtime=runtime)})" if docker else "cross-platform pip"
    print(f"deps layer: installing {len(pins)} pins for {runtime}/{arch} with {method} ...", file=sys.stderr)
    (install_with_docker if docker else install_with_pip)(site, runtime, arch, pins)
    plain = tree_bytes(site)
    slim(site)
    shipped = ship_needed_libraries(staging)
    extra_names = installed_top_names(site, extra_pins(extras=extras))
    trimmed = None
    if trim:
        trimmed = _trim(site, runtime, arch, extras, import_names(extra_names), out)
    strip_extensions(site, arch)
    slim_size = tree_bytes(site)
    bytecode = compile_bytecode(site, runtime)
    if bytecode and not sources:
        drop_sources(site)
    final = tree_bytes(site)
    if not bytecode:
        print(f"deps layer: this interpreter is not {runtime}; the layer ships without bytecode", file=sys.stderr)
    entries = tree_entries(staging, include_bytecode=True)
    if only_extras:
        entries = [(name, path) for name, path in entries if _is_extra(name, extra_names)]
        final = sum(path.stat().st_size for _, path in entries)
    write_zip(out, entries, progress="deps layer: zipping")
    report = BuildReport(runtime, arch, method, plain, slim_size, bytecode, final, out.stat().st_size, out)
    report.extras, report.trimmed_bytes, report.shipped_libraries = list(extras), trimmed, shipped
    return report


def _is_extra(name: str, extra_names: set[str]) -> bool:
    """Whether a zip entry (``python/pandas/...``, ``lib/libgomp.so.1``) is the extras'."""
    parts = name.split("/")
    if parts[0] == "lib":
        return True
    if parts[1] == "__pycache__":  # a top-level module's bytecode: python/__pycache__/six.cpython-312.pyc
        return parts[2].split(".")[0] + ".py" in extra_names
    return parts[1] in extra_names


def _trim(site: Path, runtime: str, arch: str, extras: Sequence[str], packages: list[str], out: Path) -> int | None:
    """:func:`layers.trim.trim` where this machine runs the layer's Python, else ``None`` (untrimmed)."""
    import platform

    from layers.trim import trim, write_report

    if "{}.{}".format(*sys.version_info[:2]) != python_version(runtime) or platform.machine() != ARCH_TAG[arch]:
        print(f"deps layer: not trimmed (tracing needs {runtime} on {arch} here)", file=sys.stderr)
        return None
    print("deps layer: tracing what the gallery models and scikit-learn import ...", file=sys.stderr)
    report = trim(site, packages, set(extras))
    write_report(report, Path(out).with_suffix(".trim.json"))
    return report.removed_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the dependencies layer zip.")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME, help=f"Lambda runtime (default {DEFAULT_RUNTIME})")
    parser.add_argument("--arch", default=DEFAULT_ARCH, choices=sorted(ARCH_TAG))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-docker", action="store_true", help="use cross-platform pip even if Docker is there")
    parser.add_argument("--extras", default="", help="Pipfile [extra-NAME] sections to add, comma-separated")
    parser.add_argument("--only-extras", action="store_true", help="zip only what the extras add (an extras layer)")
    parser.add_argument("--no-trim", action="store_true", help="keep every module (no tracing; make TRIM=0)")
    parser.add_argument(
        "--no-sources", action="store_true", help="ship bytecode instead of the sources it was compiled from"
    )
    parser.add_argument("--print-pins", action="store_true", help="print the pins and options, build nothing")
    args = parser.parse_args(argv)
    extras = [name.strip() for name in args.extras.split(",") if name.strip()]
    try:
        if args.print_pins:
            print(
                "\n".join(
                    [
                        *runtime_pins(extras=extras),
                        f"# trim={not args.no_trim} only_extras={args.only_extras} sources={not args.no_sources}",
                    ]
                )
            )
            return 0
        report = build_deps_layer(
            args.runtime,
            args.arch,
            args.out,
            use_docker=False if args.no_docker else None,
            extras=extras,
            trim=not args.no_trim,
            only_extras=args.only_extras,
            sources=not args.no_sources,
        )
    except (BuildError, TrimError) as exc:
        print(f"deps-layer: {exc}", file=sys.stderr)
        return 2
    mb = 1e6
    if report.extras:
        print(f"deps layer: extras {', '.join(report.extras)}; shipped in lib/: {report.shipped_libraries or 'none'}")
    if report.trimmed_bytes is not None:
        print(f"deps layer: trimmed {report.trimmed_bytes / mb:.1f} MB of modules nothing imports (before bytecode)")
    print(
        f"deps layer: {report.out} for {report.runtime}/{report.arch} via {report.method}: "
        f"{report.zip_bytes / mb:.1f} MB zipped, {report.final_bytes / mb:.1f} MB unzipped "
        f"({'with' if report.bytecode else 'without'} bytecode; {report.slim_bytes / mb:.1f} MB before bytecode; "
        f"plain install {report.plain_bytes / mb:.1f} MB without bytecode)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
