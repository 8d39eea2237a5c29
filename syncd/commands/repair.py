"""``syncd retry``, ``syncd cancel`` and ``syncd replay``: an operator's hand on approvals.

Each change is a guarded transition in the database, recorded in the approval's
history with the operator (``cli:<user>``) as actor; the daemon does the rest.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from syncd.commands.common import database_dsn, out, settings_from
from syncd.commands.operator import actor, utcnow, when
from syncd.db import writeback
from syncd.db.admin_store import AdminStore, Row, open_pool
from syncd.db.writeback_store import PostgresWriteBackStore
from syncd.domain import FINISHED, ApprovalState
from syncd.errors import ConfigError, SyncdError
from syncd.settings import Settings

#: How long a replay keeps the daemon's own write-back retry away from the approval.
HOLD = timedelta(minutes=5)
#: When the daemon retries a replay whose write-back failed.
RETRY_AFTER = timedelta(minutes=5)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    retry = sub.add_parser(
        "retry",
        help="send parked approvals (invalid, dead) back to pending, or quarantined outbox "
        "rows back to ingest",
        description="Move parked approvals back to pending: attempts reset, error cleared, "
        "due at once. By id, or every parked approval of a kind. Approvals that are not "
        "parked are refused (exit 1). With --quarantined: send quarantined outbox rows "
        "(syncd.quarantined) back to ingest, by outbox id, or every one (of --kind).",
    )
    retry.add_argument(
        "ids", nargs="*", type=int, metavar="ID", help="approval ids (with --quarantined: outbox)"
    )
    retry.add_argument("--kind", help="with --all-parked or --quarantined: the kind")
    retry.add_argument("--all-parked", action="store_true", help="every parked approval of --kind")
    retry.add_argument(
        "--state",
        choices=["invalid", "dead"],
        help="with --all-parked: only this parked state (default: both)",
    )
    retry.add_argument(
        "--quarantined",
        action="store_true",
        help="quarantined outbox rows (the given outbox ids, else all) go back to ingest",
    )
    retry.add_argument("--dsn", help="database (default: database.dsn)")
    retry.set_defaults(handler=run_retry)

    cancel = sub.add_parser(
        "cancel",
        help="cancel the active approval of a business key",
        description="Ask for the active round of KIND KEY to be canceled; the daemon "
        "terminates its DingTalk instance (or drops it if it was never submitted). "
        "Exit 1 when no round is active.",
    )
    cancel.add_argument("kind", metavar="KIND", help="approval kind")
    cancel.add_argument("key", metavar="KEY", help="business key")
    cancel.add_argument("--dsn", help="database (default: database.dsn)")
    cancel.set_defaults(handler=run_cancel)

    replay = sub.add_parser(
        "replay",
        help="run the write-back of finished approvals again",
        description="Write the outcome of finished approvals (approved, rejected, canceled) "
        "into the business table now, with the configured write-back. By id, or every "
        "unwritten approval of a kind. Already written ones are refused unless --force.",
    )
    replay.add_argument("ids", nargs="*", type=int, metavar="ID", help="approval ids")
    replay.add_argument("--kind", help="with --unwritten: the approval kind")
    replay.add_argument(
        "--unwritten",
        action="store_true",
        help="every finished approval of --kind not written back yet",
    )
    replay.add_argument(
        "--force", action="store_true", help="also write approvals already written back"
    )
    replay.add_argument("--dsn", help="database (default: database.dsn)")
    replay.set_defaults(handler=run_replay)


def _name(row: Row) -> str:
    return f"approval {row['id']} ({row['kind']} {row['business_key']} round {row['round']})"


def _by_id_or_kind(args: argparse.Namespace, flag: str, command: str) -> None:
    """Either ids, or ``--kind`` with the selecting flag; never both, never neither."""
    selecting = getattr(args, flag.lstrip("-").replace("-", "_"))
    if args.ids and (selecting or args.kind):
        raise ConfigError(f"{command}: give approval ids or --kind with {flag}, not both")
    if not args.ids and not (selecting and args.kind):
        raise ConfigError(
            f"{command}: give approval ids (SELECT id FROM syncd.approval ...) "
            f"or --kind KIND {flag}"
        )


# --- retry ----------------------------------------------------------------------------


async def run_retry(args: argparse.Namespace) -> int:
    if args.quarantined:
        return await _requeue(args)
    _by_id_or_kind(args, "--all-parked", "retry")
    if args.state and not args.all_parked:
        raise ConfigError("retry: --state goes with --kind and --all-parked")
    states = (
        [ApprovalState(args.state)] if args.state else [ApprovalState.INVALID, ApprovalState.DEAD]
    )
    now = utcnow()
    async with open_pool(database_dsn(args)) as pool:
        store = AdminStore(pool, actor=actor())
        result = await store.retry(
            now, args.ids, kind=args.kind if args.all_parked else None, states=states
        )
    for row in result.retried:
        out(
            f"{_name(row)}: {row['from_state']} -> pending "
            f"(was {row['last_error_code']}: {row['last_error_message']})"
        )
    if any(r["from_state"] == "invalid" for r in result.retried):
        out(
            "note: an invalid approval whose payload is still wrong is parked again by the "
            "daemon with the same error; fix the business row (a new outbox row starts a new "
            "round) or the kind's form mapping, then retry"
        )
    for _, reason in result.refused:
        out(f"refused: {reason}")
    if not result.retried and not result.refused:
        which = f"{args.state} " if args.state else "parked "
        out(f"no {which}approvals of kind {args.kind}; nothing to retry")
    out(f"retried {len(result.retried)}, refused {len(result.refused)}")
    return 1 if result.refused else 0


async def _requeue(args: argparse.Namespace) -> int:
    """``retry --quarantined``: quarantined outbox rows go back to ingest (unconsumed)."""
    if args.all_parked or args.state:
        raise ConfigError("retry: --quarantined does not go with --all-parked or --state")
    async with open_pool(database_dsn(args)) as pool:
        rows = await AdminStore(pool, actor=actor()).requeue(args.ids, kind=args.kind)
    for row in rows:
        out(
            f"outbox row {row['outbox_id']} ({row['kind']} {row['business_key']}): back to "
            f"ingest (was {row['error_code']}: {row['error_message']})"
        )
    refused = sorted(set(args.ids) - {row["outbox_id"] for row in rows})
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


# --- cancel ---------------------------------------------------------------------------


async def run_cancel(args: argparse.Namespace) -> int:
    now = utcnow()
    async with open_pool(database_dsn(args)) as pool:
        row = await AdminStore(pool, actor=actor()).request_cancel(args.kind, args.key, now)
    if row is None:
        raise SyncdError(
            f"no active approval for {args.kind} {args.key}, nothing to cancel: "
            f"`syncd show {args.kind} {args.key}` shows its rounds"
        )
    name = f"{args.kind} {args.key} round {row['round']} (approval {row['id']}, {row['state']})"
    if row["requested_before"] is not None:
        out(f"cancel of {name} was already requested at {when(row['requested_before'])}")
    elif row["state"] == "pending":
        out(f"cancel requested for {name}: never submitted, the daemon drops it")
    else:
        instance = f" instance {row['instance_id']}" if row["instance_id"] else " its instance"
        out(f"cancel requested for {name}: the daemon terminates{instance} in DingTalk")
    return 0


# --- replay ---------------------------------------------------------------------------


async def run_replay(args: argparse.Namespace) -> int:
    _by_id_or_kind(args, "--unwritten", "replay")
    settings = settings_from(args)
    dsn = database_dsn(args)
    configs = {name: k.write_back for name, k in settings.kinds.items() if k.write_back}
    writers = await writeback.build(dsn, configs)
    now = utcnow()
    failed = 0
    async with open_pool(dsn) as pool:
        admin = AdminStore(pool, actor=actor())
        corp_id = settings.dingtalk.corp_id
        track = PostgresWriteBackStore(pool, writers, actor=actor(), corp_id=corp_id)
        ids = list(args.ids) if args.ids else await admin.unwritten_ids(args.kind)
        if not ids:
            out(f"every finished approval of kind {args.kind} is written back; nothing to replay")
            return 0
        briefs = await admin.briefs(ids)
        for approval_id in ids:
            row = briefs.get(approval_id)
            reason = _replay_refusal(row, approval_id, settings, force=args.force)
            if reason is None and row is not None:
                held = await admin.hold_writeback(approval_id, now, now + HOLD, force=args.force)
                if held is None:
                    reason = f"{_name(row)} changed meanwhile; run the command again"
            if reason is not None:
                out(f"refused: {reason}")
                failed += 1
                continue
            assert row is not None
            error = await track.write_back(
                approval_id, utcnow(), utcnow() + RETRY_AFTER, force=args.force
            )
            target = writers[row["kind"]].name
            again = " again" if row["written_back_at"] else ""
            if error:
                failed += 1
                out(
                    f"{_name(row)}: write-back to {target} failed: {error} "
                    "(it shows in syncd.unwritten; the daemon retries it)"
                )
            else:
                out(f"{_name(row)}, {row['state']}: written back{again} to {target}")
    out(f"replayed {len(ids) - failed}, refused or failed {failed}")
    return 1 if failed else 0


def _replay_refusal(
    row: Row | None, approval_id: int, settings: Settings, *, force: bool
) -> str | None:
    if row is None:
        return f"approval {approval_id} does not exist"
    kind = settings.kinds.get(row["kind"])
    if kind is None:
        return (
            f"{_name(row)}: kind {row['kind']!r} is not in the configuration "
            "(is --config right?); nothing would be written"
        )
    if kind.write_back is None:
        return f"{_name(row)}: kind {row['kind']!r} has no write-back configured"
    if ApprovalState(row["state"]) not in FINISHED:
        return f"{_name(row)} is {row['state']}, not approved, rejected or canceled"
    if row["written_back_at"] is not None and not force:
        return (
            f"{_name(row)} was already written back at {when(row['written_back_at'])}; "
            "--force writes it again"
        )
    return None
