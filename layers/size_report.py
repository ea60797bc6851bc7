"""The dependencies layer's size next to a plain ``pip install`` of the same pins; sizes and
cold init with and without the extras (pandas, LightGBM).

The baseline is what a layer built by hand would hold: ``pip install --target`` of the
same pins for the same platform, with pip's default bytecode compilation, nothing
removed; zipped the same way as ours.

``python -m layers.size_report`` (``make layer-figures``) prints, from the built zips:
each layer's size unzipped and zipped, the total against Lambda's limit with and without
the extras layer, the dependencies layer by kind (:func:`sizes_by_kind`), and the cold init (median of fresh interpreters that see only the
function and the layers, :func:`layers.checks.smoke_run`) of the reference model on the
dependencies layer, of the LightGBM gallery model on the dependencies + extras layers,
and of ``import pandas`` from the layers.
"""

from __future__ import annotations

import subprocess
import tempfile
import zipfile
from pathlib import Path

from layers.checks import UNZIPPED_LIMIT, smoke_run, unzipped_size
from layers.deps_layer import DEFAULT_OUT, EXTRAS_OUT, pip_install_command, runtime_pins, tree_bytes
from layers.function_zip import DEFAULT_OUT as FUNCTION_ZIP
from layers.model_layer import DEFAULT_OUT as MODEL_ZIP
from layers.zipping import extract_tree, tree_entries, write_zip


def plain_install_sizes(runtime: str, arch: str) -> tuple[int, int]:
    """(unzipped, zipped) bytes of a plain install of the pins under ``python/``."""
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "layer" / "python"
        cmd = pip_install_command(site, runtime, arch, compile_bytecode=True)
        subprocess.run([*cmd, *runtime_pins()], check=True, capture_output=True)
        zipped = write_zip(Path(tmp) / "plain.zip", tree_entries(site.parent, include_bytecode=True))
        return tree_bytes(site), zipped.stat().st_size


def print_size_report(runtime: str, arch: str, layer: Path = DEFAULT_OUT) -> None:
    """Print ours against the plain install, in one table."""
    print(f"\ndependencies layer ({runtime}/{arch}) against a plain pip install of the same pins:", flush=True)
    plain_unzipped, plain_zipped = plain_install_sizes(runtime, arch)
    ours_unzipped, ours_zipped = unzipped_size(layer), layer.stat().st_size
    mb = 1e6
    print(f"  {'':<22}{'unzipped':>12}{'zipped':>12}")
    print(f"  {'plain pip install':<22}{plain_unzipped / mb:>9.1f} MB{plain_zipped / mb:>9.1f} MB")
    print(f"  {'our layer':<22}{ours_unzipped / mb:>9.1f} MB{ours_zipped / mb:>9.1f} MB")
    print(
        f"  {'saved':<22}{(plain_unzipped - ours_unzipped) / mb:>9.1f} MB{(plain_zipped - ours_zipped) / mb:>9.1f} MB"
    )
    print("  (both with bytecode for the target Python; target: our layer <= 150 MB unzipped)")


def lightgbm_model_layer(out: Path) -> Path:
    """The LightGBM gallery model packaged as a model layer at ``out`` (``layers.model_layer``)."""
    import joblib

    from layers.gallery import gallery_model
    from layers.model_layer import build_manifest, package_model_layer, write_manifest

    model = gallery_model("lightgbm")
    src = out.parent / "lightgbm-model"
    src.mkdir(parents=True, exist_ok=True)
    joblib.dump(model.artifacts[0], src / "model.joblib")
    write_manifest(
        src, build_manifest(src, name="lightgbm", version="1", pipeline=["model.joblib"], features=model.features)
    )
    return package_model_layer(src, out)[0]


_IMPORT_PANDAS = (
    "import sys, time; sys.path[:0] = [sys.argv[1] + '/python']; started = time.perf_counter(); "
    "cpu = time.process_time(); import pandas; print(time.perf_counter() - started, time.process_time() - cpu)"
)


def median_init(function_zip: Path, layers: list[Path], repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds to import the function and load the model from the layers, fresh
    interpreters. CPU time (the process's, from its start) is the steadier figure on a shared machine."""
    with tempfile.TemporaryDirectory() as tmp:
        task, opt = extract_tree(function_zip, layers, Path(tmp))
        runs = [smoke_run(task, opt) for _ in range(repeat)]
    wall = sorted(run["init_s"] for run in runs)[repeat // 2]
    return wall, sorted(run["init_cpu_s"] for run in runs)[repeat // 2]


def median_pandas_import(layers: list[Path], repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``import pandas`` (after nothing else) from the layers alone."""
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        opt = Path(tmp) / "opt"
        extract_tree(FUNCTION_ZIP, layers, Path(tmp))
        runs = [
            subprocess.run(
                [sys.executable, "-I", "-S", "-c", _IMPORT_PANDAS, str(opt)], check=True, capture_output=True, text=True
            ).stdout.split()
            for _ in range(repeat)
        ]
    return sorted(float(w) for w, _ in runs)[repeat // 2], sorted(float(c) for _, c in runs)[repeat // 2]


#: Issue 12's target for the dependencies layer without pandas, unzipped.
TRIMMED_TARGET = 120_000_000


def sizes_by_kind(layer: Path) -> dict[str, int]:
    """Unzipped bytes of a layer zip by kind: ``vendored libraries`` (``*.libs/``, ``lib/``),
    ``extension modules``, ``bytecode``, ``sources`` and ``other`` (data, metadata)."""
    kinds = dict.fromkeys(("vendored libraries", "extension modules", "bytecode", "sources", "other"), 0)
    with zipfile.ZipFile(layer) as zf:
        for info in zf.infolist():
            name = info.filename
            if ".libs/" in name or name.startswith("lib/"):
                kind = "vendored libraries"
            elif name.endswith(".so") or ".so." in name:
                kind = "extension modules"
            elif name.endswith(".pyc"):
                kind = "bytecode"
            elif name.endswith(".py"):
                kind = "sources"
            else:
                kind = "other"
            kinds[kind] += info.file_size
    return kinds


def print_kinds(layer: Path) -> None:
    """What the layer holds by kind, and what stays without sources against the 120 MB target."""
    mb = 1e6
    kinds = sizes_by_kind(layer)
    print(f"\n{layer.name} by kind (unzipped):")
    for kind, size in kinds.items():
        print(f"  {kind:<22}{size / mb:>9.1f} MB")
    floor = kinds["vendored libraries"] + kinds["extension modules"] + kinds["bytecode"]
    print(
        f"  binaries + bytecode   {floor / mb:>9.1f} MB: what SOURCES=0 cannot remove "
        f"(target {TRIMMED_TARGET / mb:.0f} MB unzipped without pandas)"
    )


def print_extras_figures(deps: Path = DEFAULT_OUT, extras: Path = EXTRAS_OUT, repeat: int = 5) -> None:
    """Sizes and cold init with and without the extras layer (module docstring)."""
    mb = 1e6
    sizes = {z: (unzipped_size(z), z.stat().st_size) for z in (FUNCTION_ZIP, deps, extras, MODEL_ZIP)}
    print("\nlayer sizes (unzipped / zipped):")
    for zip_path, (unzipped, zipped) in sizes.items():
        print(f"  {zip_path.name:<22}{unzipped / mb:>9.1f} MB{zipped / mb:>9.1f} MB")
    base = sizes[FUNCTION_ZIP][0] + sizes[deps][0] + sizes[MODEL_ZIP][0]
    for label, total in (("without extras", base), ("with the extras", base + sizes[extras][0])):
        print(
            f"  function + layers {label:<16}{total / mb:>7.1f} MB unzipped; margin {(UNZIPPED_LIMIT - total) / mb:.1f} MB"
        )
    print_kinds(deps)
    with tempfile.TemporaryDirectory() as tmp:
        lightgbm_layer = lightgbm_model_layer(Path(tmp) / "lightgbm-layer.zip")
        reference = median_init(FUNCTION_ZIP, [deps, MODEL_ZIP], repeat)
        with_extras = median_init(FUNCTION_ZIP, [deps, extras, MODEL_ZIP], repeat)
        lightgbm = median_init(FUNCTION_ZIP, [deps, extras, lightgbm_layer], repeat)
    pandas = median_pandas_import([deps, extras], repeat)
    print(f"\ncold init from the built layers (median of {repeat} fresh interpreters; import + load, no predict):")
    print(f"  {'':<48}{'wall':>8}{'CPU':>10}")
    for label, (wall, cpu) in (
        ("reference model, dependencies layer", reference),
        ("reference model, + extras layer attached", with_extras),
        ("LightGBM model, dependencies + extras layers", lightgbm),
        ("import pandas alone from the layers", pandas),
    ):
        print(f"  {label:<48}{wall * 1000:>5.0f} ms{cpu * 1000:>7.0f} ms")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from layers.deps_layer import DEFAULT_ARCH, DEFAULT_RUNTIME

    parser = argparse.ArgumentParser(description="Layer sizes and cold init, with and without the extras.")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME)
    parser.add_argument("--arch", default=DEFAULT_ARCH)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plain", action="store_true", help="also compare with a plain pip install (slow)")
    args = parser.parse_args(argv)
    missing = [str(z) for z in (FUNCTION_ZIP, DEFAULT_OUT, EXTRAS_OUT, MODEL_ZIP) if not z.is_file()]
    if missing:
        print(f"size-report: missing {', '.join(missing)}: run make function-zip deps-layer extras-layer model-layer")
        return 2
    if args.plain:
        print_size_report(args.runtime, args.arch)
    print_extras_figures(repeat=args.repeat)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
