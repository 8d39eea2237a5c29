from __future__ import annotations

import io
import json
import logging

from syncd.logging import setup_logging


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
