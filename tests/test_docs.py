"""The documentation: a short README whose links resolve, and a docs site that builds strictly (a broken
link, a missing page or a reference to a name the code no longer has fails the build)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
LINK = re.compile(r"\[[^\]]+\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_every_relative_link_in_the_readme_resolves() -> None:
    targets = LINK.findall((ROOT / "README.md").read_text())
    relative = [t for t in targets if not t.startswith(("http://", "https://", "mailto:"))]
    assert relative, "the README links its docs pages"
    assert [t for t in relative if not (ROOT / t).exists()] == []


def test_every_docs_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    missing = [p for p in pages if not p.startswith("results/") and p not in config]
    assert missing == []


@pytest.mark.slow
def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[docs]' (the dev extra includes it)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "edgekd.run.pipeline.Pipeline" in api  # the API pages are rendered from the docstrings
