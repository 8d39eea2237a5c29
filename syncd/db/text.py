"""Text and JSON as PostgreSQL stores them, whatever a sender put in.

PostgreSQL refuses NUL characters in ``text`` and ``jsonb`` (``\\u0000``), and JSON has no
NaN or infinities (Python's ``json`` reads and writes them). One such character in an
event or a relayed row would make the statement storing it fail every time it is tried,
and hold up what came with it. So they are stored as what they were meant to show: NUL
as U+FFFD (the replacement character), a non-finite number as its name (``"NaN"``,
``"Infinity"``, ``"-Infinity"``).
"""

from __future__ import annotations

import math
from typing import Any, overload

REPLACEMENT = "\ufffd"


@overload
def pg_text(text: str) -> str: ...
@overload
def pg_text(text: None) -> None: ...
def pg_text(text: str | None) -> str | None:
    """``text`` with NUL characters as U+FFFD."""
    return None if text is None else text.replace("\x00", REPLACEMENT)


def pg_json(value: Any) -> Any:
    """``value`` (a JSON value as Python holds it) with every text, keys included, made
    storable by :func:`pg_text`, and non-finite numbers as their names."""
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {pg_text(str(k)): pg_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [pg_json(v) for v in value]
    return value
