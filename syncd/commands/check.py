"""``syncd check``: the configuration against the database and DingTalk, before running."""

from __future__ import annotations

import argparse

from syncd.commands.common import out, settings_from
from syncd.daemon import Daemon
from syncd.errors import ConfigError, DingTalkError
from syncd.pipeline.mapping import check_form


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check",
        help="check the configuration against the database and DingTalk",
        description="Check that the schema is current, every write-back table, column and "
        "procedure exists and fits, and every kind's form mapping fits its DingTalk template.",
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    problems: list[str] = []
    async with Daemon(settings) as daemon:  # opening checks the schema and write-backs
        out("database: schema current, write-back targets fit")
        for name, kind in settings.kinds.items():
            try:
                schema = await daemon.client.get_form_schema(kind.process_code)
            except DingTalkError as exc:
                problems.append(f"[kinds.{name}] process_code {kind.process_code!r}: {exc}")
                continue
            found = check_form(name, kind, schema)
            problems += found
            if not found:
                out(f"kind {name}: form mapping fits template {kind.process_code}")
    if problems:
        raise ConfigError("\n".join(problems))
    return 0
