"""Checks that run before anything ships (``make check-layers``; publishing runs them too).

1. Function zip + all layers fit Lambda's 262,144,000-byte unzipped limit (margin shown).
2. Every ELF file in the dependencies layer (and an extras layer) is built for ``ARCH``,
   needs no GLIBC newer than the runtime's Amazon Linux provides, every extension
   module's CPython tag is the runtime's, and every shared library it needs is found in
   the layers or Lambda's image, never only on this machine (:mod:`layers.elf`).
3. Every library version the model manifest records (numpy / scipy / scikit-learn /
   joblib, and any other its pickles name: lightgbm, pandas) equals the layers'.
4. Where this interpreter is the runtime's Python on the layer's architecture: import
   and predict in a fresh interpreter that sees only the function and the layers. The
   batch is the model layer's golden records (:mod:`layers.golden`), and every result
   must equal the one packaging recorded (floats within the documented tolerance); a
   layer whose manifest lists no golden predictions gets synthetic inputs, only checked
   to score.

Usage: ``python -m layers.checks [--runtime python3.12] [--arch x86_64] [--extras-layer ZIP]``
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from inference.events import KinesisStreamEvent, KinesisStreamRecord
from inference.manifest import sha256_bytes

from layers.deps_layer import (
    ARCH_TAG,
    DEFAULT_ARCH,
    DEFAULT_RUNTIME,
    RUNTIME_GLIBC,
    RUNTIME_IMAGE_LIBRARIES,
    python_version,
)
from layers.deps_layer import (
    DEFAULT_OUT as DEPS_ZIP,
)
from layers.deps_zip import layer_versions
from layers.elf import dynamic_entries, unresolved_libraries
from layers.function_zip import DEFAULT_OUT as FUNCTION_ZIP
from layers.golden import GOLDEN_ATOL, GOLDEN_RTOL, GoldenError, compare
from layers.model_layer import DEFAULT_OUT as MODEL_ZIP
from layers.remote_model import artifact_bytes
from layers.zipping import extract_tree

UNZIPPED_LIMIT = 262_144_000
#: ELF e_machine names, as pyelftools reports them, per Lambda architecture.
ELF_MACHINE = {"x86_64": "EM_X86_64", "arm64": "EM_AARCH64"}
_EXT_TAG = re.compile(r"\.cpython-(\d+)-([a-z0-9_]+)-linux-gnu\.so$")
_GLIBC = re.compile(r"^GLIBC_(\d+)\.(\d+)")


@dataclass
class Finding:
    """One check's verdict; ``detail`` says what was found and, on failure, what to change."""

    check: str
    ok: bool
    detail: str


def unzipped_size(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(info.file_size for info in zf.infolist())


def check_size(zips: list[Path], movable: int = 0) -> Finding:
    """Function + layers under Lambda's unzipped limit; over it, ``movable`` bytes (the model's
    artifacts) leave the model layer for S3 when it is published (:mod:`layers.remote_model`)."""
    total = sum(unzipped_size(z) for z in zips)
    margin = UNZIPPED_LIMIT - total
    detail = f"{total:,} of {UNZIPPED_LIMIT:,} bytes unzipped; margin {margin:,} bytes ({margin / 1e6:.1f} MB)"
    if margin < 0 and margin + movable >= 0:
        return Finding("size", True, detail + f": the model's {movable:,} bytes of artifacts go to S3 when published")
    if margin < 0:
        detail += ": slim the dependencies layer or move artifacts out of the model layer"
    return Finding("size", margin >= 0, detail)


def _elf_requirements(data: bytes) -> tuple[str, tuple[int, int] | None]:
    """(e_machine, highest GLIBC version required) of an ELF image."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection

    elf = ELFFile(io.BytesIO(data))
    highest = None
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    match = _GLIBC.match(aux.name)
                    if match:
                        version = (int(match[1]), int(match[2]))
                        highest = max(highest or version, version)
    return elf["e_machine"], highest


def check_binaries(deps_zip: Path, runtime: str, arch: str) -> list[Finding]:
    """Architecture, GLIBC and CPython tag of every ELF file in the layer."""
    want_machine = ELF_MACHINE[arch]
    glibc = RUNTIME_GLIBC[runtime]
    tag = python_version(runtime).replace(".", "")
    wrong_arch, too_new, wrong_tag = [], [], []
    count = 0
    newest = (0, 0)
    with zipfile.ZipFile(deps_zip) as zf:
        for info in zf.infolist():
            if not re.search(r"\.so(\.[0-9.]+)?$", info.filename):
                continue
            data = zf.read(info)
            if data[:4] != b"\x7fELF":
                continue
            count += 1
            machine, needs = _elf_requirements(data)
            if machine != want_machine:
                wrong_arch.append(f"{info.filename} ({machine})")
            if needs and needs > glibc:
                too_new.append(f"{info.filename} (GLIBC_{needs[0]}.{needs[1]})")
            newest = max(newest, needs or (0, 0))
            match = _EXT_TAG.search(info.filename)
            if match and (match[1] != tag or match[2] != ARCH_TAG[arch]):
                wrong_tag.append(f"{info.filename} (cpython-{match[1]}-{match[2]})")

    def listed(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")

    return [
        Finding(
            "architecture",
            not wrong_arch,
            f"{count} ELF files, all {arch}"
            if not wrong_arch
            else f"not {arch}: {listed(wrong_arch)}; rebuild with make deps-layer ARCH={arch}",
        ),
        Finding(
            "glibc",
            not too_new,
            f"highest GLIBC required {newest[0]}.{newest[1]} <= {glibc[0]}.{glibc[1]} ({runtime})"
            if not too_new
            else f"need a newer glibc than {runtime}'s {glibc[0]}.{glibc[1]}: {listed(too_new)}; pin releases "
            f"with manylinux wheels for glibc <= {glibc[0]}.{glibc[1]}, or target a python3.12+ runtime",
        ),
        Finding(
            "python-tag",
            not wrong_tag,
            f"every extension module is cpython-{tag}-{ARCH_TAG[arch]}"
            if not wrong_tag
            else f"built for another Python: {listed(wrong_tag)}; rebuild with make deps-layer RUNTIME={runtime}",
        ),
    ]


def check_libraries(layer_zips: list[Path]) -> Finding:
    """Every shared library the layers' binaries need is in the layers or Lambda's image."""
    files: list[str] = []
    binaries = {}
    for layer in layer_zips:
        with zipfile.ZipFile(layer) as zf:
            for info in zf.infolist():
                files.append(info.filename)
                if re.search(r"\.so(\.[0-9.]+)?$", info.filename):
                    data = zf.read(info)
                    if data[:4] == b"\x7fELF":
                        binaries[info.filename] = dynamic_entries(data)
    missing = unresolved_libraries(binaries, files, RUNTIME_IMAGE_LIBRARIES)
    if missing:
        listed = "; ".join(f"{lib} (needed by {paths[0]})" for lib, paths in sorted(missing.items()))
        return Finding(
            "libraries",
            False,
            f"not in the layers nor in Lambda's image: {listed}: ship it in the layer's lib/ "
            "(layers/deps_layer.py BUNDLED_COPIES), then make deps-layer",
        )
    return Finding("libraries", True, f"every library {len(binaries)} ELF files need is in the layers or the image")


def check_model_versions(model_zip: Path, deps_zip: Path, extra_zips: list[Path] | None = None) -> Finding:
    """The manifest's library versions equal the dependencies (and extras) layers'."""
    with zipfile.ZipFile(model_zip) as zf:
        manifest = json.loads(zf.read("model/manifest.json"))
    have = layer_versions(deps_zip)
    for extra in extra_zips or []:
        have.update(layer_versions(extra))
    diffs = [
        f"{lib} {want} (model) vs {have.get(lib, 'absent')} (layer)"
        for lib, want in manifest["libraries"].items()
        if lib != "python" and have.get(lib) != want
    ]
    if diffs:
        return Finding(
            "model-versions",
            False,
            "; ".join(diffs) + ": retrain the model with requirements.txt, or rebuild the layer from the same pins",
        )
    libs = ", ".join(f"{k} {v}" for k, v in manifest["libraries"].items() if k != "python")
    return Finding("model-versions", True, f"model and layer agree: {libs}")


_SMOKE = r"""
import json, sys, time
started = time.perf_counter()
sys.path[:0] = [sys.argv[1], sys.argv[2] + "/python"]
import lambda_function
init = time.perf_counter() - started
init_cpu = time.process_time()
event = json.loads(sys.argv[3])
response = lambda_function.lambda_handler(event, None)
assert not response["batchItemFailures"], response
results = [response["predictions"].get(record["eventID"]) for record in event["Records"]]
print(json.dumps({"init_s": init, "init_cpu_s": init_cpu, "results": results,
                  "outside": sorted({m.__file__.split("/site-packages/")[0] for m in list(sys.modules.values())
                                     if getattr(m, "__file__", None) and "site-packages" in m.__file__})}))
"""


#: Inputs of the smoke test's batch for a text model (any text scores; the check is that it does).
SMOKE_TEXTS = ("A warm, funny and beautifully acted film.", "Tedious, overlong and badly written.")


def read_golden(model_dir: Path) -> dict | None:
    """The model layer's golden document (records and results), or ``None`` if its manifest lists none.

    Raises
    ------
    GoldenError
        The golden file is missing or differs from the manifest's sha256.
    """
    entry = json.loads((model_dir / "manifest.json").read_text()).get("golden")
    if entry is None:
        return None
    try:
        data = (model_dir / entry["file"]).read_bytes()
    except FileNotFoundError:
        raise GoldenError(f"the manifest lists {entry['file']}, which is not in the model layer") from None
    if sha256_bytes(data) != entry["sha256"]:
        raise GoldenError(f"{entry['file']} does not match the manifest's sha256: rebuild with `make model-layer`")
    golden: dict = json.loads(data)
    return golden


def smoke_event(manifest_path: Path) -> KinesisStreamEvent:
    """A Kinesis batch of the model layer's golden records (:func:`read_golden`).

    Without golden predictions: two records the manifest accepts, :data:`SMOKE_TEXTS` in a
    text model's field, ``0`` for every feature of a tabular model (the smoke test then
    proves the layers import and predict, not what).
    """
    golden = read_golden(manifest_path.parent)
    contract = json.loads(manifest_path.read_text())["input"]
    payloads: list[dict[str, object]]
    if golden is not None:
        payloads = golden["records"]
    elif contract["kind"] == "text":
        payloads = [{contract["field"]: text} for text in SMOKE_TEXTS]
    else:
        payloads = [dict.fromkeys(contract["features"], 0) for _ in SMOKE_TEXTS]
    records: list[KinesisStreamRecord] = []
    for n, payload in enumerate(payloads, start=1):
        sequence = f"4954511524349098501828006771497314458218006259324420096{n}"
        records.append(
            {
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/smoke-test",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/smoke-test",
                "awsRegion": "us-east-1",
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "data": base64.b64encode(json.dumps(payload).encode()).decode(),
                    "sequenceNumber": sequence,
                    "partitionKey": "smoke-test",
                    "approximateArrivalTimestamp": 1700000000.0,
                },
            }
        )
    return {"Records": records}


def smoke_run(task: Path, opt: Path, drop_bytecode: bool = False) -> dict:
    """Import the function and predict a sample batch in a fresh, isolated interpreter.

    ``-I -S``: no user site, no site-packages, no PYTHONPATH; only the stdlib, the
    function and ``opt/python`` (plus ``opt/model`` through ``MODEL_DIR``). With
    ``drop_bytecode`` the interpreter neither reads nor writes ``.pyc`` outside the
    stdlib's, as on a layer shipped without bytecode (``/opt`` is read-only).
    """
    env = {
        "MODEL_DIR": str(opt / "model"),
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LD_LIBRARY_PATH": str(opt / "lib"),
    }
    if drop_bytecode:
        for pyc_dir in opt.rglob("__pycache__"):
            for pyc in pyc_dir.iterdir():
                pyc.unlink()
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _SMOKE,
            str(task),
            str(opt),
            json.dumps(smoke_event(opt / "model" / "manifest.json")),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(smoke_failure(proc.stderr))
    return json.loads(proc.stdout.strip().splitlines()[-1])


_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")


def smoke_failure(stderr: str) -> str:
    """What the smoke test's failure says: its last line, and where a module was missing
    (``scipy.stats``, which the trimmed layer leaves out), the fix: an untrimmed layer."""
    message = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    missing = _MISSING_MODULE.search(stderr)
    if missing:
        message += (
            f"; the model needs {missing[1]}, which the layers do not have: the trimmed dependencies layer "
            "keeps only what the gallery models' load + predict import (layers/trim.py, docs/layers.md), so "
            "rebuild it with every module: make deps-layer TRIM=0"
        )
    return message


def check_smoke(function_zip: Path, layers: list[Path], runtime: str, arch: str) -> Finding:
    """Import-and-predict from the layers alone, where this machine can run them."""
    local = "{}.{}".format(*sys.version_info[:2])
    if local != python_version(runtime) or platform.machine() != ARCH_TAG[arch]:
        return Finding(
            "smoke-test",
            True,
            f"skipped: this machine runs Python {local} on {platform.machine()}, not {runtime}/{arch}",
        )
    with tempfile.TemporaryDirectory() as tmp:
        task, opt = extract_tree(function_zip, layers, Path(tmp))
        try:
            golden = read_golden(opt / "model")
            result = smoke_run(task, opt)
        except (RuntimeError, GoldenError) as exc:
            return Finding("smoke-test", False, f"import-and-predict from the layers failed: {exc}")
    outside = [p for p in result["outside"] if not p.startswith(tmp)]
    if outside:
        return Finding("smoke-test", False, f"modules were imported from outside the layers: {outside}")
    scored = sum(r is not None for r in result["results"])
    if golden is None:
        return Finding(
            "smoke-test",
            True,
            f"imported and predicted {scored} records from the layers alone (no golden predictions in the "
            "manifest: rebuild it with `make model-layer` to have them checked)",
        )
    problems = compare(golden["results"], result["results"])
    if problems:
        return Finding(
            "smoke-test",
            False,
            f"{len(problems)} golden result(s) differ from what packaging recorded (floats within "
            f"{GOLDEN_ATOL:g} + {GOLDEN_RTOL:g} x |value|): {'; '.join(problems[:3])}; the dependencies layer's "
            "numerics differ from the packaging environment's: rebuild it from the same pins (make deps-layer), "
            "or repackage the model in the environment the layer was built from",
        )
    return Finding(
        "smoke-test", True, f"the layers alone reproduce all {len(golden['results'])} golden predictions of the model"
    )


def cold_init_figures(function_zip: Path, layers: list[Path], repeat: int = 5) -> tuple[float, float]:
    """Median init seconds from the layers as built, and with their bytecode removed."""
    with tempfile.TemporaryDirectory() as tmp:
        task, opt = extract_tree(function_zip, layers, Path(tmp))
        with_pyc = sorted(smoke_run(task, opt)["init_s"] for _ in range(repeat))
        without = sorted(smoke_run(task, opt, drop_bytecode=True)["init_s"] for _ in range(repeat))
    return with_pyc[repeat // 2], without[repeat // 2]


def run_checks(
    runtime: str = DEFAULT_RUNTIME,
    arch: str = DEFAULT_ARCH,
    function_zip: Path = FUNCTION_ZIP,
    deps_zip: Path = DEPS_ZIP,
    model_zip: Path = MODEL_ZIP,
    extra_zips: list[Path] | None = None,
) -> list[Finding]:
    """Every check, in order; missing zips are reported as failures naming the make target.

    ``extra_zips`` are layers attached between the dependencies and the model layer (an
    extras layer: ``make extras-layer``).
    """
    extra_zips = list(extra_zips or [])
    inputs = [(function_zip, "function-zip"), (deps_zip, "deps-layer"), (model_zip, "model-layer")]
    inputs += [(extra, "extras-layer") for extra in extra_zips]
    missing = [f"{path} (make {target})" for path, target in inputs if not Path(path).is_file()]
    if missing:
        return [Finding("inputs", False, "missing: " + ", ".join(missing))]
    broken = [f"{path} (make {target}; `make` rebuilds it)" for path, target in inputs if not zipfile.is_zipfile(path)]
    if broken:
        return [Finding("inputs", False, "not a readable zip (truncated or corrupt): " + ", ".join(broken))]
    return [
        check_size([function_zip, deps_zip, *extra_zips, model_zip], artifact_bytes(model_zip)),
        *[finding for layer in [deps_zip, *extra_zips] for finding in check_binaries(layer, runtime, arch)],
        check_libraries([deps_zip, *extra_zips]),
        check_model_versions(model_zip, deps_zip, extra_zips),
        check_smoke(function_zip, [deps_zip, *extra_zips, model_zip], runtime, arch),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the function zip and layers before publishing.")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME)
    parser.add_argument("--arch", default=DEFAULT_ARCH, choices=sorted(ARCH_TAG))
    parser.add_argument("--figures", action="store_true", help="also measure cold init with and without bytecode")
    parser.add_argument(
        "--extras-layer", type=Path, action="append", default=[], help="a layer attached after the dependencies layer"
    )
    parser.add_argument("--model-layer", type=Path, default=MODEL_ZIP, help=f"default {MODEL_ZIP}")
    args = parser.parse_args(argv)
    findings = run_checks(args.runtime, args.arch, model_zip=args.model_layer, extra_zips=args.extras_layer)
    for f in findings:
        print(f"  [{'ok' if f.ok else 'FAIL'}] {f.check:<15} {f.detail}")
    if not all(f.ok for f in findings):
        print("check-layers: fix the failures above before publishing", file=sys.stderr)
        return 1
    if args.figures:
        from layers.size_report import print_size_report

        print_size_report(args.runtime, args.arch)
        started = time.perf_counter()
        with_pyc, without = cold_init_figures(FUNCTION_ZIP, [DEPS_ZIP, MODEL_ZIP])
        print(
            f"\ncold init of the reference model from the built layers (median of 5 fresh interpreters):\n"
            f"  with bytecode     {with_pyc * 1000:8.0f} ms\n"
            f"  without bytecode  {without * 1000:8.0f} ms   ({without / with_pyc:.2f}x)"
            f"   [measured in {time.perf_counter() - started:.0f} s]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
