"""Every link in the project's Markdown resolves inside the repository.

Relative links must name a file or folder that exists, and a ``#fragment`` must name a
heading of the target (GitHub's anchor rules); a Markdown file named in backticks must
exist too, so no document points at a contract that is not in the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
NAMED_DOC = re.compile(r"`([\w./-]+\.md)`")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _documents() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(ROOT / name for name in listed if (ROOT / name).is_file())


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", path.read_text()).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = anchor(match[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


DOCUMENTS = _documents()


def test_there_are_documents_to_check() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/operate.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_resolve_inside_the_repository(document: Path) -> None:
    text = FENCE.sub("", document.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        name, _, fragment = target.partition("#")
        path = (document.parent / name).resolve() if name else document
        if not path.exists() or ROOT not in (path, *path.parents):
            broken.append(f"{target}: no such file in the repository")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}: no heading #{fragment} in {path.relative_to(ROOT)}")
    for named in NAMED_DOC.findall(text):
        candidates = (document.parent / named, ROOT / named, ROOT / "docs" / named)
        if not any(candidate.exists() for candidate in candidates):
            broken.append(f"`{named}`: names a document that is not in the repository")
    assert not broken, "\n".join(broken)


def test_nothing_points_at_documents_outside_the_repository() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    outside = re.compile("ARCHITECTURE(\\.md| §)|\\.\\./" + "shared/|" + "shared" + "/dingtalk-api")
    found = [
        name
        for name in listed
        if (ROOT / name).is_file()
        and (ROOT / name).suffix in {".py", ".md", ".toml", ".sql", ".yaml", ".yml", ""}
        and outside.search((ROOT / name).read_text(errors="replace"))
    ]
    assert found == [], "these files refer to documents that are not in the repository"
