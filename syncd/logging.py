"""Log formatting: JSON lines in production, readable text on a terminal.

Modules log a short constant message with ``extra={"action": ..., ids...}``; this module
only decides how records look and makes sure no configured secret is ever printed. It is
set up once, by the CLI. A line about one approval carries :func:`approval_fields`
(``approval_id``, ``kind`` and ``business_key``), and a line about one outbox row
its ``outbox_id``, ``kind`` and ``business_key``: one search finds a request's lines.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)


class Approval(Protocol):
    """Anything that names one approval (``ApprovalRef``, ``SubmitItem``, ...)."""

    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def business_key(self) -> str: ...


def approval_fields(approval: Approval) -> dict[str, Any]:
    """The fields every log line about one approval carries."""
    return {
        "approval_id": approval.id,
        "kind": approval.kind,
        "business_key": approval.business_key,
    }


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields a record carries."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _error_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """The traceback of a record: already rendered (and redacted) or rendered now."""
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_fields(record))
        if (error := _error_text(self, record)) is not None:
            entry["error"] = error
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in record_fields(record).items() if v is not None)
        line = f"{when} {record.levelname:<7} {record.getMessage()}"
        if fields:
            line = f"{line}  {fields}"
        if (error := _error_text(self, record)) is not None:
            line = f"{line}\n{error}"
        return line


_PLAIN = (bool, int, float, type(None))


class Redactor:
    """Replaces every known secret by ``***`` in text and in the values of a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        found = set(self.secrets) | {s for s in secrets if len(s) >= 4}
        # and as JSON writes them (a logged request body, an error quoting a JSON document)
        found |= {json.dumps(s, ensure_ascii=False)[1:-1] for s in found}
        self.secrets = sorted(found, key=len, reverse=True)

    def text(self, text: str) -> str:
        # Until none is left: a mask may complete another occurrence ("aa***" → "a***"
        # for the secret "a***"); each pass shortens the text, so this ends.
        masked = True
        while masked:
            masked = False
            for secret in self.secrets:
                if secret in text:
                    text, masked = text.replace(secret, "***"), True
        return text

    def value(self, value: Any, depth: int = 0) -> Any:
        """``value`` with secrets masked: strings, containers of them, anything else as
        its ``str`` (which is how the formatters would print it)."""
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, str):
            return self.text(value)
        if depth < 8 and isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v, depth + 1) for k, v in value.items()}
        if depth < 8 and isinstance(value, list | tuple | set | frozenset):
            return [self.value(v, depth + 1) for v in value]
        return self.text(str(value))

    def record(self, record: logging.LogRecord, formatter: logging.Formatter) -> logging.LogRecord:
        """A copy of ``record`` with the message, every extra field and the traceback
        already rendered and masked, so no encoding (JSON escapes ``"`` and ``\\``) can
        hide a secret from the mask."""
        clean = copy.copy(record)
        clean.msg, clean.args = self.text(record.getMessage()), None
        for key, value in record_fields(record).items():
            setattr(clean, key, self.value(value))
        error = _error_text(formatter, record)
        clean.exc_info, clean.exc_text = None, self.text(error) if error else None
        if record.stack_info:
            clean.stack_info = self.text(record.stack_info)
        return clean


class RedactingHandler(logging.StreamHandler[TextIO]):
    """Writes records with every known secret replaced by ``***`` in each field, before
    the formatter encodes the record (masking the encoded line instead would miss a
    secret JSON escaped, and could break the line's structure)."""

    def __init__(self, stream: TextIO, secrets: Iterable[str]) -> None:
        super().__init__(stream)
        self.redactor = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        formatter = self.formatter or logging.Formatter()
        return formatter.format(self.redactor.record(record, formatter))


def add_secrets(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` too in every line the root logger's handlers write from now on
    (a password given on the command line, known only after logging was set up)."""
    values = list(secrets)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RedactingHandler):
            handler.redactor.add(values)


def setup_logging(
    level: str = "INFO",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> RedactingHandler:
    """Route every log record to ``stream`` (stderr) in the chosen format."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    handler = RedactingHandler(out, secrets)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access", "websockets", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
