"""The README's configuration example shows the defaults, and its contents list its
sections."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from syncd.settings import Settings, load_settings
from syncd.settings_kinds import KindSettings
from tests.unit.test_doc_links import anchor

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: Shown values that have no meaningful default, and why.
NO_DEFAULT = {
    "database.dsn": "where the database is: every installation has its own",
    "dingtalk.app_key": "the DingTalk app's own key",
    "dingtalk.app_secret_file": "a path to the app's secret, which has no default",
}
#: Values of the example kind that are examples (the mapping to one's own template).
KIND_EXAMPLES = {
    "process_code": "the DingTalk template's own code",
    "correlation_field": "a component of the example template",
    "form": "the example template's components",
    "approvers": "example users",
    "cc": "example users",
    "write_back": "the example business table",
}


def example() -> dict[str, Any]:
    section = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return tomllib.loads(section.split("```toml\n", 1)[1].split("\n```", 1)[0])


def leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for every value that is not a table."""
    found: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            found |= leaves(value, f"{prefix}{key}.")
        else:
            found[f"{prefix}{key}"] = value
    return found


def plain(value: Any) -> Any:
    secret = getattr(value, "get_secret_value", None)
    value = secret() if secret else value
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def at(settings: Any, path: str) -> Any:
    for part in path.split("."):
        settings = getattr(settings, part)
    return plain(settings)


@pytest.fixture
def no_syncd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SYNCD_")]:
        monkeypatch.delenv(name)


def test_every_value_the_configuration_example_shows_is_the_default(
    tmp_path: Path, no_syncd_environment: None
) -> None:
    data = example()
    kinds = data.pop("kinds")
    shown = leaves(data)
    assert set(NO_DEFAULT) <= set(shown)
    secret = tmp_path / "app_secret"
    secret.write_text("s3cret\n")
    config = tmp_path / "syncd.toml"
    text = README.split("```toml\n", 1)[1].split("\n```", 1)[0]
    config.write_text(text.replace(shown["dingtalk.app_secret_file"], str(secret)))
    loaded, defaults = load_settings(config), Settings()  # the real loader, and defaults
    differs = {
        path: (value, at(defaults, path))
        for path, value in shown.items()
        if path not in NO_DEFAULT and not path.endswith("_file")
        if at(loaded, path) != value or value != at(defaults, path)
    }
    assert differs == {}
    assert loaded.dingtalk.monthly_quota > 0  # the quota alert can fire by default
    # the example kind: what is not an example of one's own template is the default
    [(name, kind)] = kinds.items()
    for key in kind:
        if key in KIND_EXAMPLES:
            continue
        default = KindSettings.model_fields[key].default
        assert plain(getattr(loaded.kinds[name], key)) == plain(default), key


def test_the_contents_list_every_section_in_order() -> None:
    contents = README.split("\n## Contents\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- \[([^\]]+)\]\(#([^)]+)\)$", contents, re.M)
    headings = [h for h in re.findall(r"^## (.+)$", README.split("\n## Contents\n", 1)[1], re.M)]
    assert [title for title, _ in listed] == headings
    assert [target for _, target in listed] == [anchor(h) for h in headings]
