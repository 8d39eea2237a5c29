"""``syncd check``: the configuration against the database and DingTalk, before running."""

from __future__ import annotations

import argparse

from syncd.app import App
from syncd.commands.common import out, settings_from
from syncd.errors import ConfigError
from syncd.pipeline.schemas import check_forms


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
    async with App(settings) as app:  # opening checks the schema and write-backs
        out("database: schema current, write-back targets fit")
        async for name, found in check_forms(app.client, settings.kinds):
            problems += found
            if not found:
                out(f"kind {name}: form mapping fits template {settings.kinds[name].process_code}")
    if problems:
        raise ConfigError("\n".join(problems))
    return 0
