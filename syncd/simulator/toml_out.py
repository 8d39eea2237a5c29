"""A small TOML writer for world files (tomllib only reads)."""

from __future__ import annotations

import json
from typing import Any


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key, ensure_ascii=False)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(path: list[str], data: dict[str, Any], header: str | None, out: list[str]) -> None:
    if header is not None:
        out.extend(["", header])
    nested = []
    for key, value in data.items():
        if isinstance(value, dict) or _is_table_list(value):
            nested.append((key, value))
        else:
            out.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in nested:
        sub = [*path, _key(key)]
        if isinstance(value, dict):
            _table(sub, value, f"[{'.'.join(sub)}]", out)
        else:
            for item in value:
                _table(sub, item, f"[[{'.'.join(sub)}]]", out)


def dumps(data: dict[str, Any]) -> str:
    """TOML text for a dict of plain values, tables and lists of tables."""
    out: list[str] = []
    _table([], data, None, out)
    return "\n".join(out).strip() + "\n"
