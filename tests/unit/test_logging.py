from __future__ import annotations

import io
import json
import logging
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.domain import ApprovalRef, ApprovalState
from syncd.logging import add_secrets, approval_fields, setup_logging


def test_json_lines_carry_action_and_ids_and_never_secrets():
    stream = io.StringIO()
    setup_logging(fmt="json", secrets=["s3cret-value"], stream=stream)
    logging.getLogger("syncd.test").info(
        "approval created", extra={"action": "push_created", "approval_id": 7}
    )
    logging.getLogger("syncd.test").warning("bad token %s", "s3cret-value")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["action"] == "push_created" and first["approval_id"] == 7
    assert first["message"] == "approval created" and first["level"] == "info"
    assert "s3cret-value" not in stream.getvalue() and second["message"] == "bad token ***"


def test_text_format_is_readable():
    stream = io.StringIO()
    setup_logging(fmt="text", stream=stream)
    logging.getLogger("syncd.test").info("hello", extra={"action": "daemon_start"})
    assert "INFO    hello  action=daemon_start" in stream.getvalue()


_RESERVED = {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}
_FIELD = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(lambda n: n not in _RESERVED)


@given(
    st.dictionaries(_FIELD, st.none() | st.integers() | st.text("ab1", max_size=8), max_size=6),
)
@settings(max_examples=50, deadline=None)
def test_text_format_leaves_out_empty_fields(fields: dict[str, Any]):
    """``approval finished ... error=None`` for a success: an empty field is left out of
    a text line, kept (as null) in JSON."""
    text, json_stream = io.StringIO(), io.StringIO()
    for fmt, stream in (("text", text), ("json", json_stream)):
        setup_logging(fmt=fmt, stream=stream)
        logging.getLogger("syncd.test").info("approval finished", extra=fields)
    shown = text.getvalue().splitlines()[0].partition("approval finished")[2]
    for name, value in fields.items():
        assert (f" {name}=" in f" {shown}") is (value is not None), name
    assert json.loads(json_stream.getvalue())  # every field, null included
    assert set(fields) <= set(json.loads(json_stream.getvalue()))


def test_approval_fields_name_one_approval_the_same_way_everywhere():
    ref = ApprovalRef(7, "leave", "1042", 1, ApprovalState.RUNNING, None, None)
    assert approval_fields(ref) == {"approval_id": 7, "kind": "leave", "business_key": "1042"}


# --- secrets are masked before a record is encoded -----------------------------------------

#: Secrets JSON has to escape: quotes, backslashes, control characters, and mixes of them.
_ESCAPED = st.text(alphabet=st.sampled_from('"\\\n\t\x01'), min_size=1, max_size=4)
_SECRETS = st.builds(
    lambda head, special, tail: head + special + tail,
    st.text(min_size=2, max_size=12),
    _ESCAPED,
    st.text(min_size=1, max_size=12),
)


def _strings(value: Any) -> list[str]:
    """Every string in a decoded JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _log_everywhere(secret: str) -> None:
    """The secret in the message, an argument, extra fields (plain, nested, an object) and
    a traceback."""
    log = logging.getLogger("syncd.test")
    log.warning("token is %s!", secret, extra={"action": "a", "dsn": f"x{secret}y"})
    log.warning(
        f"inline {secret}",  # noqa: G004 - a message built by mistake must be masked too
        extra={"action": "b", "body": {"k": [secret, {"deep": secret}], secret: 1}},
    )
    try:
        raise ValueError(f"cannot connect with {secret}")
    except ValueError as exc:
        log.exception("failed", extra={"action": "c", "cause": exc})


@settings(max_examples=200, deadline=None)
@given(secret=_SECRETS, fmt=st.sampled_from(["json", "text"]))
def test_secrets_with_quotes_and_backslashes_are_masked_in_every_field(secret: str, fmt: str):
    stream = io.StringIO()
    setup_logging(fmt=fmt, secrets=[secret], stream=stream)
    _log_everywhere(secret)
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    if fmt == "json":
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert len(lines) == 3
        for entry in lines:
            assert not [s for s in _strings(entry) if secret in s or escaped in s], entry
        assert lines[0]["message"].startswith("token is ") and lines[0]["dsn"].startswith("x")
        assert "ValueError" in lines[2]["error"]
    else:
        assert secret not in stream.getvalue() and escaped not in stream.getvalue()
        assert "ValueError: cannot connect with" in stream.getvalue()


def test_a_json_escaped_secret_in_a_logged_document_is_masked():
    secret = 'pa"ss\\word'
    stream = io.StringIO()
    setup_logging(fmt="json", secrets=[secret], stream=stream)
    body = json.dumps({"appSecret": secret})  # e.g. a request body quoted in an error
    logging.getLogger("syncd.test").error("refused: %s", body, extra={"action": "x"})
    [entry] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["message"] == 'refused: {"appSecret": "***"}'


def test_add_secrets_masks_a_password_learned_after_setup():
    stream = io.StringIO()
    setup_logging(fmt="json", stream=stream)
    add_secrets(["late-secret"])
    logging.getLogger("syncd.test").info("using late-secret", extra={"action": "x"})
    assert "late-secret" not in stream.getvalue() and "using ***" in stream.getvalue()
