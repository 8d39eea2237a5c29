"""``syncd check``: the configuration against the database and DingTalk, before running.

Exit 2 names each configuration problem (a template DingTalk does not give for a
process code, a form mapping that does not fit, a write-back target); exit 1 when the
check could not be made: the database or DingTalk unreachable, or DingTalk refusing
the app's credentials (then no template was read, and no process code is blamed).
Each business database a kind names is checked first (reachable, syncd's tables current,
every grant syncd's user needs: :mod:`syncd.db.mysql.verify`).
"""

from __future__ import annotations

import argparse

from syncd.app import App
from syncd.commands.common import out, settings_from
from syncd.errors import (
    ConfigError,
    DingTalkAuthError,
    DingTalkError,
    DingTalkQuotaExhausted,
    SyncdError,
)
from syncd.pipeline.schemas import check_forms
from syncd.settings import Settings

#: What DingTalk's refusal codes mean for the one who runs ``syncd check``.
_REFUSALS = {
    "Forbidden.AccessDenied.AccessTokenPermissionDenied": (
        "the app lacks a permission this API needs: grant the app the workflow (approval) "
        "permissions in the DingTalk developer console"
    ),
    "Forbidden.AccessDenied.IpNotInWhiteList": (
        "this machine's public address is not in the app's IP allow-list "
        "(DingTalk developer console)"
    ),
}
_CREDENTIALS = (
    "DingTalk refused the app's credentials: check dingtalk.app_key and dingtalk.app_secret "
    "(the app's AppKey and AppSecret; SYNCD_DINGTALK__APP_SECRET or dingtalk.app_secret_file)"
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check",
        help="check the configuration against the database and DingTalk",
        description="Check that each business database is reachable, current and granted "
        "what syncd needs, that the schema is current, every write-back table, column and "
        "procedure exists and fits, and every kind's form mapping fits its DingTalk "
        "template. Exit 2 names each configuration problem; exit 1 when the database or "
        "DingTalk cannot be reached or DingTalk refuses the app's credentials.",
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    problems: list[str] = []
    await _business_databases(settings)
    async with App(settings) as app:  # opening checks the schema and write-backs
        out("database: schema current, write-back targets fit")
        try:
            async for name, found in check_forms(app.client, settings.kinds):
                problems += found
                if not found:
                    process_code = settings.kinds[name].process_code
                    out(f"kind {name}: form mapping fits template {process_code}")
        except DingTalkError as exc:
            raise SyncdError(f"{_cause(exc)}; no template was checked ({exc})") from exc
    if problems:
        raise ConfigError("\n".join(problems))
    return 0


async def _business_databases(settings: Settings) -> None:
    """Each business database a kind names, before the App opens (which stops at the
    first problem): every problem found is named; exit 2 for any, else 1 if one of them
    could not be reached."""
    from syncd.db.business import check_all

    checks = await check_all(settings)
    for check in checks:
        if check.fine:
            version = f" ({check.version})" if check.version else ""
            out(
                f"business database {check.name}: reachable, syncd's tables current{version}, "
                "grants complete"
            )
    problems = [p for c in checks for p in c.problems]
    unreachable = [c.unreachable for c in checks if c.unreachable]
    if problems:
        raise ConfigError("\n".join(problems + unreachable))
    if unreachable:
        raise SyncdError("\n".join(unreachable) + "; nothing else was checked")


def _cause(exc: DingTalkError) -> str:
    if isinstance(exc, DingTalkAuthError):
        refusal = _REFUSALS.get(exc.code)
        return f"DingTalk refused the call: {refusal}" if refusal else _CREDENTIALS
    if isinstance(exc, DingTalkQuotaExhausted):
        return "DingTalk's monthly call quota is used up (it resets at the next month)"
    return "DingTalk cannot be reached or is failing for now; try again later"
