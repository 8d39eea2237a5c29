"""``syncd retry``, ``syncd dismiss``, ``syncd cancel`` and ``syncd replay``: an operator's
hand on approvals. This module parses and prints; :class:`~syncd.pipeline.repair.Repair`
does the work (guarded transitions, recorded in each approval's history with the
operator, ``cli:<user>``, as actor); the daemon does the rest.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from syncd.clock import SystemClock
from syncd.commands import approvals
from syncd.commands.common import database_dsn, out, settings_from
from syncd.commands.operator import actor, when
from syncd.db import writeback
from syncd.db.admin_store import AdminStore, open_pool
from syncd.db.writeback_store import PostgresWriteBackStore
from syncd.domain import ApprovalState
from syncd.errors import ConfigError
from syncd.pipeline.repair import Moves, Repair, Which

_DSN_HELP = "database (default: database.dsn)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_retry(sub)
    _add_dismiss(sub)
    cancel = sub.add_parser(
        "cancel",
        help="cancel an approval still on its way (by default the active round of a key)",
        description="Ask for an approval to be canceled; the daemon terminates its DingTalk "
        "instance (or drops it if it was never submitted). KIND KEY names the key's active "
        "round unless --round says which. Exit 1 when it is not on its way.",
    )
    approvals.add_arguments(cancel, many=False, default_round="the active one")
    cancel.add_argument("--dsn", help=_DSN_HELP)
    cancel.set_defaults(handler=run_cancel)

    replay = sub.add_parser(
        "replay",
        help="run the write-back of finished approvals again",
        description="Write the outcome of finished approvals (approved, rejected, canceled) "
        "into the business table now, with the configured write-back: by id, KIND KEY, or "
        "every unwritten approval of a kind. Already written ones are refused unless --force.",
    )
    approvals.add_arguments(replay, many=True, default_round="the latest")
    replay.add_argument("--kind", help="with --unwritten: the approval kind")
    replay.add_argument(
        "--unwritten",
        action="store_true",
        help="every finished approval of --kind not written back yet",
    )
    replay.add_argument(
        "--force", action="store_true", help="also write approvals already written back"
    )
    replay.add_argument("--dsn", help=_DSN_HELP)
    replay.set_defaults(handler=run_replay)


def _add_retry(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    retry = sub.add_parser(
        "retry",
        help="send parked approvals (invalid, dead) back to pending, or quarantined outbox "
        "rows back to ingest",
        description="Move parked approvals back to pending: attempts reset, error cleared, "
        "due at once. By id, by KIND KEY (its latest round unless --round), or every parked "
        "approval of a kind. Approvals that are not parked are refused (exit 1). With "
        "--quarantined: send quarantined outbox rows (syncd.quarantined) back to ingest, "
        "by outbox id, or every one (of --kind).",
    )
    approvals.add_arguments(retry, many=True, default_round="the latest")
    retry.add_argument("--kind", help="with --all-parked or --quarantined: the kind")
    retry.add_argument("--all-parked", action="store_true", help="every parked approval of --kind")
    _state_option(retry)
    retry.add_argument(
        "--quarantined",
        action="store_true",
        help="quarantined outbox rows (the given outbox ids, else all) go back to ingest",
    )
    retry.add_argument("--dsn", help=_DSN_HELP)
    retry.set_defaults(handler=run_retry)


def _add_dismiss(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dismiss = sub.add_parser(
        "dismiss",
        help="close parked approvals (invalid, dead) for good, with a reason",
        description="Close parked approvals that should never be sent (a round replaced by "
        "a newer one, a request the business withdrew, a key too long to store): state "
        "dismissed, the reason in the history with you as actor. A dismissed approval is "
        "never retried, and no longer counted as parked by `syncd status --check`, "
        "syncd.parked or the parked-rows alert. By id, by KIND KEY (its latest round unless "
        "--round), or every parked approval of a kind (--superseded: only those replaced "
        "by a newer round). Approvals that are not parked are refused (exit 1).",
    )
    approvals.add_arguments(dismiss, many=True, default_round="the latest")
    dismiss.add_argument(
        "--reason", required=True, help="why (kept in the approval's history; required)"
    )
    dismiss.add_argument("--kind", help="with --all-parked or --superseded: the kind")
    dismiss.add_argument(
        "--all-parked", action="store_true", help="every parked approval of --kind"
    )
    dismiss.add_argument(
        "--superseded",
        action="store_true",
        help="every parked approval of --kind that a newer round of its key replaced",
    )
    _state_option(dismiss)
    dismiss.add_argument("--dsn", help=_DSN_HELP)
    dismiss.set_defaults(handler=run_dismiss)


def _state_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        choices=["invalid", "dead"],
        help="with --kind: only this parked state (default: both)",
    )


@asynccontextmanager
async def _repair(args: argparse.Namespace, *, replay: bool = False) -> AsyncIterator[Repair]:
    """A :class:`Repair` over the database (and, to replay, the configured write-backs)."""
    dsn = database_dsn(args)
    if not replay:
        async with open_pool(dsn) as pool:
            yield Repair(AdminStore(pool, actor=actor()), SystemClock())
        return
    settings = settings_from(args)
    kinds = settings.kinds
    writers = await writeback.build(
        dsn, {name: k.write_back for name, k in kinds.items() if k.write_back}
    )
    targets = {name: writers[name].name if name in writers else None for name in kinds}
    async with open_pool(dsn) as pool:
        yield Repair(
            AdminStore(pool, actor=actor()),
            SystemClock(),
            writeback=PostgresWriteBackStore(
                pool, writers, actor=actor(), corp_id=settings.dingtalk.corp_id
            ),
            targets=targets,
        )


def _named_or_selected(
    args: argparse.Namespace, command: str, flag: str, selecting: bool
) -> Which | None:
    """What the positional words name, or None when ``--kind KIND FLAG`` selects instead;
    never both, never neither."""
    which = approvals.which_of(args, command, many=True)
    if which is not None and (selecting or args.kind):
        raise ConfigError(
            f"{command}: give approval ids or KIND KEY, or --kind with {flag}; not both"
        )
    if which is None and not (selecting and args.kind):
        raise ConfigError(
            f"{command}: give approval ids (SELECT id FROM syncd.parked ...) or KIND KEY, "
            f"or --kind KIND {flag}"
        )
    if getattr(args, "state", None) and which is not None:
        raise ConfigError(f"{command}: --state goes with --kind and {flag}")
    return which


def _states(args: argparse.Namespace) -> list[ApprovalState]:
    return [ApprovalState(args.state)] if args.state else []


def _print_moves(moves: Moves, to: str) -> None:
    for brief in moves.moved:
        was = f"{brief.last_error_code}: {brief.last_error_message}"
        out(f"{brief.name}: {brief.state.value} -> {to} (was {was})")
    for brief in moves.already:
        out(f"{brief.name} was already {to}")
    for reason in moves.refused:
        out(f"refused: {reason}")


# --- retry ----------------------------------------------------------------------------


async def run_retry(args: argparse.Namespace) -> int:
    if args.quarantined:
        return await _requeue(args)
    which = _named_or_selected(args, "retry", "--all-parked", args.all_parked)
    async with _repair(args) as repair:
        if which is None:
            ids = await repair.parked(args.kind, _states(args))
        else:
            ids = await repair.named(which)
        moves = await repair.retry(ids)
    _print_moves(moves, "pending")
    if any(b.state is ApprovalState.INVALID for b in moves.moved):
        out(
            "note: an invalid approval whose payload is still wrong is parked again by the "
            "daemon with the same error; fix the business row (a new outbox row starts a new "
            "round) or the kind's form mapping, then retry"
        )
    if not moves.moved and not moves.refused:
        which_state = f"{args.state} " if args.state else "parked "
        out(f"no {which_state}approvals of kind {args.kind}; nothing to retry")
    out(f"retried {len(moves.moved)}, refused {len(moves.refused)}")
    return 1 if moves.refused else 0


async def _requeue(args: argparse.Namespace) -> int:
    """``retry --quarantined``: quarantined outbox rows go back to ingest (unconsumed)."""
    if args.all_parked or args.state:
        raise ConfigError("retry: --quarantined does not go with --all-parked or --state")
    which = approvals.which_of(args, "retry --quarantined", many=True)
    if which is not None and not which.ids:
        raise ConfigError("retry: --quarantined takes outbox ids (SELECT * FROM syncd.quarantined)")
    outbox_ids = list(which.ids) if which is not None else []
    async with open_pool(database_dsn(args)) as pool:
        rows = await AdminStore(pool, actor=actor()).requeue(outbox_ids, kind=args.kind)
    for row in rows:
        out(
            f"outbox row {row['outbox_id']} ({row['kind']} {row['business_key']}): back to "
            f"ingest (was {row['error_code']}: {row['error_message']})"
        )
    refused = sorted(set(outbox_ids) - {row["outbox_id"] for row in rows})
    for outbox_id in refused:
        out(f"refused: outbox row {outbox_id} is not quarantined (SELECT * FROM syncd.quarantined)")
    if rows:
        out(
            "note: a row whose cause is still there is quarantined again by the daemon; fix "
            "the row (UPDATE syncd.outbox) or the cause in the database first"
        )
    elif not refused:
        out("no quarantined outbox rows" + (f" of kind {args.kind}" if args.kind else ""))
    out(f"requeued {len(rows)}, refused {len(refused)}")
    return 1 if refused else 0


# --- dismiss --------------------------------------------------------------------------


async def run_dismiss(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise ConfigError("dismiss: --reason must say why (it is kept in the history)")
    selecting = args.all_parked or args.superseded
    which = _named_or_selected(args, "dismiss", "--all-parked or --superseded", selecting)
    async with _repair(args) as repair:
        if which is None:
            ids = await repair.parked(args.kind, _states(args), superseded=args.superseded)
        else:
            ids = await repair.named(which)
        moves = await repair.dismiss(ids, args.reason)
    _print_moves(moves, "dismissed")
    if which is None and not ids:
        replaced = " replaced by a newer round" if args.superseded else ""
        which_state = f"{args.state} " if args.state else "parked "
        out(f"no {which_state}approvals of kind {args.kind}{replaced}; nothing to dismiss")
    out(
        f"dismissed {len(moves.moved)}, already dismissed {len(moves.already)}, "
        f"refused {len(moves.refused)}"
    )
    return 1 if moves.refused else 0


# --- cancel ---------------------------------------------------------------------------


async def run_cancel(args: argparse.Namespace) -> int:
    which = approvals.which_of(args, "cancel", many=False)
    if which is None:
        raise ConfigError("cancel: name the approval: ID, or KIND KEY [--round N]")
    async with _repair(args) as repair:
        request = await repair.cancel(which)
    a = request.approval
    name = f"{a.kind} {a.business_key} round {a.round} (approval {a.id}, {a.state.value})"
    if request.requested_before is not None:
        out(f"cancel of {name} was already requested at {when(request.requested_before)}")
    elif a.state is ApprovalState.PENDING:
        out(f"cancel requested for {name}: never submitted, the daemon drops it")
    else:
        instance = f" instance {a.instance_id}" if a.instance_id else " its instance"
        out(f"cancel requested for {name}: the daemon terminates{instance} in DingTalk")
    return 0


# --- replay ---------------------------------------------------------------------------


async def run_replay(args: argparse.Namespace) -> int:
    which = _named_or_selected(args, "replay", "--unwritten", args.unwritten)
    async with _repair(args, replay=True) as repair:
        ids = await (repair.unwritten(args.kind) if which is None else repair.named(which))
        if not ids:
            out(f"every finished approval of kind {args.kind} is written back; nothing to replay")
            return 0
        result = await repair.replay(ids, force=args.force)
    for reason in result.refused:
        out(f"refused: {reason}")
    for done in result.done:
        name = done.approval.name
        if done.error:
            out(
                f"{name}: write-back to {done.target} failed: {done.error} "
                "(it shows in syncd.unwritten; the daemon retries it)"
            )
        else:
            again = " again" if done.again else ""
            out(f"{name}, {done.approval.state.value}: written back{again} to {done.target}")
    out(f"replayed {len(ids) - result.failed}, refused or failed {result.failed}")
    return 1 if result.failed else 0
