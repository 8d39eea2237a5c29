"""``syncd config show``: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import SecretStr

from syncd.commands.common import out, settings_from

MASK = "********"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("config", help="show the effective configuration")
    actions = parser.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", help="print the effective configuration as TOML, secrets masked"
    )
    show.set_defaults(handler=run_show)


async def run_show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    out(render_toml(_masked(settings.model_dump())))
    return 0


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _key(name: str) -> str:
    bare = name.replace("_", "").replace("-", "").isalnum() and name.isascii()
    return name if bare else json.dumps(name, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    return json.dumps(str(value), ensure_ascii=False)


def render_toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML for nested dicts: a section's scalars first, then each non-empty dict as a table."""
    lines = [
        f"{_key(k)} = {_scalar(v)}" for k, v in data.items() if not (isinstance(v, dict) and v)
    ]
    parts = ["\n".join(lines)] if lines else []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            name = f"{prefix}.{_key(key)}" if prefix else _key(key)
            parts.append(f"[{name}]\n" + render_toml(value, name))
    return "\n\n".join(p.strip("\n") for p in parts if p.strip()) + "\n"
