"""``syncd dev-db``: a local PostgreSQL for trying syncd on your own tables.

``start`` runs the embedded server (the ``embedded`` extra) in the background with its
data kept in a directory, creates a database, and prints the DSN and the next steps;
``status`` prints the DSN if it runs; ``stop`` stops it, keeping the data; ``stop
--remove`` deletes it. The server listens on 127.0.0.1 only and trusts local
connections: it is for trials, never for production.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import psycopg
from psycopg import sql

from syncd.commands.common import out
from syncd.embedded import EmbeddedPostgres, free_port
from syncd.errors import ConfigError, SyncdError

DATABASE = "syncd_trial"
STATE = "dev-db.json"


def default_dir() -> Path:
    """Where the data lives unless ``--dir`` says otherwise.

    Root's server runs as an unprivileged user that cannot enter root's home, so root's
    data goes under /var/tmp; everyone else's under the XDG data directory."""
    if os.name == "posix" and os.geteuid() == 0:
        return Path("/var/tmp/syncd-dev-db")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "syncd" / "dev-db"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dev-db",
        help="a local PostgreSQL for trying syncd on your own tables (start, status, stop)",
        description="Run a PostgreSQL server from the embedded extra in the background, "
        "keeping its data between starts, and print the DSN to use. For trials only: it "
        "listens on 127.0.0.1 and trusts every local connection.",
    )
    parser.add_argument("action", choices=["start", "status", "stop"])
    parser.add_argument(
        "--dir", type=Path, default=None, help=f"data directory (default: {default_dir()})"
    )
    parser.add_argument("--port", type=int, default=0, help="start: port (default: a free one)")
    parser.add_argument(
        "--remove", action="store_true", help="stop: also delete the data directory"
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    folder: Path = (args.dir or default_dir()).resolve()  # pg_ctl runs elsewhere
    state = _read_state(folder)
    if args.action == "start":
        return _start(folder, args.port or state.get("port") or free_port())
    if args.action == "status":
        server = _server(folder, state)
        if server is None or not _running(server):
            out(f"no dev-db runs from {folder}")
            return 1
        out(server.dsn(DATABASE))
        return 0
    server = _server(folder, state)
    if server is not None and _running(server):
        server.stop()
        out(f"dev-db stopped; its data stays in {folder}")
    else:
        out(f"no dev-db runs from {folder}")
    if args.remove and (folder / STATE).exists():
        shutil.rmtree(folder)
        out(f"removed {folder}")
    return 0


def _start(folder: Path, port: int) -> int:
    server = EmbeddedPostgres(folder, port=port, keep=True)
    if _running(server):
        out(f"dev-db already runs: {server.dsn(DATABASE)}")
        return 0
    try:
        server.start()
    except RuntimeError as exc:
        raise SyncdError(f"cannot start the dev-db server: {exc}") from exc
    (folder / STATE).write_text(json.dumps({"port": port}) + "\n")
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE])
        if found.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    dsn = server.dsn(DATABASE)
    where = f" --dir {folder}" if folder != default_dir().resolve() else ""
    lines = [
        f"dev-db runs on 127.0.0.1:{port}, data in {folder}",
        "",
        f"  DSN      {dsn}",
        f"  schema   syncd migrate --dsn {dsn}",
        f"  config   [database] dsn = {json.dumps(dsn)}   (or SYNCD_DATABASE__DSN)",
        f"  stop     syncd dev-db stop{where}",
    ]
    out("\n".join(lines))
    return 0


def _read_state(folder: Path) -> dict[str, int]:
    try:
        state: dict[str, int] = json.loads((folder / STATE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder / STATE} is unreadable ({exc}); remove it") from exc
    return state


def _server(folder: Path, state: dict[str, int]) -> EmbeddedPostgres | None:
    if "port" not in state:
        return None
    return EmbeddedPostgres(folder, port=state["port"], keep=True)


def _running(server: EmbeddedPostgres) -> bool:
    try:
        return server.running()
    except RuntimeError as exc:
        raise SyncdError(f"cannot ask the dev-db server how it is: {exc}") from exc
