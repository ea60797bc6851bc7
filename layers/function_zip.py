"""Build the function zip: ``lambda_function.py`` and the ``inference`` package only.

Usage: ``python -m layers.function_zip [--out build/function.zip]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from layers.zipping import tree_entries, write_zip

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_DIR = ROOT / "function"
DEFAULT_OUT = ROOT / "build" / "function.zip"


def build_function_zip(out: Path = DEFAULT_OUT) -> Path:
    """Zip ``function/`` (sources only) into ``out``."""
    entries = [(n, p) for n, p in tree_entries(FUNCTION_DIR) if n.endswith(".py")]
    return write_zip(out, entries)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    out = build_function_zip(args.out)
    print(f"function zip: {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
