"""No module of syncd grows past 400 lines: a module that big holds more than one idea,
and the next change to it is the one that gets reviewed badly. Split along its seams."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 400


def test_no_module_is_over_the_limit() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for path in (ROOT / "syncd").rglob("*.py")
    }
    assert len(sizes) > 50
    assert {name: lines for name, lines in sizes.items() if lines > LIMIT} == {}
