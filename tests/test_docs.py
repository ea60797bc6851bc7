"""The README and docs/ match the repository: their links resolve, the Make targets they name
exist, and the repository paths they quote in backticks are there.

Paths are checked when they start with one of the repository's top-level folders (``function/``,
``release/``, ...) and name no placeholder; generated outputs under ``build/`` are not.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")
MAKE_TARGET = re.compile(r"`make ([a-z][a-z0-9-]*[a-z0-9])\b(?!-\*)")
CODE_PATH = re.compile(r"`([a-z_]+/[A-Za-z0-9_./-]*[A-Za-z0-9_/])")
CHECKED_FOLDERS = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")} - {"build"}


def _make_targets() -> set[str]:
    rules = subprocess.run(["make", "-qp"], cwd=ROOT, capture_output=True, text=True).stdout
    return {m[1] for m in re.finditer(r"^([a-z][a-z0-9-]*):", rules, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = [
        target
        for target in LINK.findall(page.read_text())
        if "://" not in target and not target.startswith("mailto:") and not (page.parent / target).exists()
    ]
    assert broken == []


def test_every_make_target_the_docs_name_exists():
    targets = _make_targets()
    assert {"demo", "test", "deploy"} <= targets  # the reader itself works
    named = {(page.name, t) for page in PAGES for t in MAKE_TARGET.findall(page.read_text())}
    assert sorted((page, t) for page, t in named if t not in targets) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_repository_paths_the_docs_quote_exist(page):
    quoted = {m for m in CODE_PATH.findall(page.read_text()) if m.split("/")[0] in CHECKED_FOLDERS}
    missing = sorted(p for p in quoted if not any(c in p for c in "*<>{}") and not (ROOT / p).exists())
    assert missing == []
