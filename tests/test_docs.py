"""The documents stand on their own: the README is short and opens with what udarts is and how to
set it up; no document points outside the repository or at a path of the machine it was written
on; every relative link and anchor resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from markdown_recipes import REPO

DOCUMENTS = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than '-' and '_' dropped,
    spaces to '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def test_readme_is_short_and_opens_with_what_udarts_is_and_the_set_up_command():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    head = text[:text.index("## 1.")]
    assert text.startswith("# udarts\n") and "architecture search" in head
    assert 'pip install -e ".[dev]"' in head and "python -m pytest -q" in text


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_no_machine_paths_and_no_links_outside_the_repository(path):
    text = path.read_text()
    for pattern in (r"(?<![\w.])/(work|tmp|home|root|Users|mnt)/", r"\.\./shared", r"shared/data", r"PROTOCOL\.md"):
        found = [line for line in text.splitlines() if re.search(pattern, line)]
        assert not found, f"{path.name}: {pattern!r} in {found[:3]}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(path):
    broken = []
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z]+:", target):  # http(s):, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target} (no file)")
        elif not resolved.is_relative_to(REPO):
            broken.append(f"{target} (outside the repository)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{path.name}: {broken}"
