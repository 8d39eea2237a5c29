"""The declarations of DingTalk calls and event channels, against each other and the docs."""

from __future__ import annotations

import re
from pathlib import Path

from syncd.dingtalk import endpoints as ep
from syncd.domain import CHANNELS

GUIDE = (Path(__file__).resolve().parents[3] / "docs" / "operate.md").read_text("utf-8")


def _listed(label: str) -> list[str]:
    """The values the operations guide's *Label values* table lists for a label (on every
    metric with it), in order."""
    match = re.search(rf"^\| `{label}` \| every (?:other )?metric with it \| (.*) \|$", GUIDE, re.M)
    assert match, f"docs/operate.md lists no values of {label}"
    return [v for v in re.findall(r"`([a-z_]+)`", match.group(1)) if v != "other"]


def test_each_call_is_declared_once_by_every_key() -> None:
    for key in (
        lambda e: e.name,
        lambda e: e.api,
        lambda e: (e.method, e.path),
    ):
        keys = [key(e) for e in ep.ENDPOINTS]
        assert len(set(keys)) == len(keys)
    assert all(e.path.startswith("/") and e.name.isidentifier() for e in ep.ENDPOINTS)


def test_the_operations_guide_lists_the_declared_label_values() -> None:
    assert sorted(_listed("call")) == sorted(e.name for e in ep.ENDPOINTS)
    assert sorted(_listed("outcome")) == sorted(ep.OUTCOMES)
    assert _listed("channel") == list(CHANNELS)
