"""A throwaway MariaDB or MySQL server from the binaries installed on this machine.

The test suite runs its MySQL-family tests against one (when ``SYNCD_TEST_MYSQL_DSN``
names no server of yours). It needs a server binary, ``mariadbd`` (Debian and Ubuntu:
``apt-get install mariadb-server``; the service it installs is not used) or MySQL's
``mysqld``: the data directory is made afresh in a temporary directory
(``mariadb-install-db``, or ``mysqld --initialize-insecure``), the server listens on
127.0.0.1 on a free port and on a socket of its own, with binary logging off and the
time zone given, and is stopped (killed if it does not stop) and removed at the end.
It can be killed and started again on the same port and data, which fault tests need.
As root it runs as root (``--user=root``): the data directory is its own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from functools import cached_property
from pathlib import Path
from types import TracebackType

from syncd.embedded import EmbeddedServerError, free_port

#: Where distributions put the server binaries, besides the PATH.
_SEARCH = ("/usr/sbin", "/usr/libexec", "/usr/local/mysql/bin", "/usr/local/sbin")
HOW_TO_GET_ONE = (
    "install a MariaDB or MySQL server binary (Debian/Ubuntu: apt-get install "
    "mariadb-server; the service it starts is not needed)"
)


def find_binary(*names: str) -> Path | None:
    """The first of ``names`` on the PATH or in the usual sbin folders."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH])
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return Path(found)
    return None


def server_binary() -> Path:
    """``mariadbd`` or ``mysqld``, or an error saying how to get one."""
    found = find_binary("mariadbd", "mysqld")
    if found is None:
        raise EmbeddedServerError(f"no mariadbd or mysqld found: {HOW_TO_GET_ONE}")
    return found


class LocalMySQL:
    """Start with ``start()`` (or ``with``), connect with ``url()``, end with ``close()``.

    ``time_zone`` is the server's default (``--default-time-zone``): tests give it one
    that is not UTC, so that a session relying on it would show.
    """

    def __init__(self, *, time_zone: str = "+00:00", timeout: float = 60.0) -> None:
        self.binary = server_binary()
        self.time_zone = time_zone
        self.timeout = timeout
        self.root = Path(tempfile.mkdtemp(prefix="syncd-mysql-"))
        self.data = self.root / "data"
        self.socket = self.root / "mysql.sock"
        self.port = 0
        self.password = secrets.token_hex(12)
        self._process: subprocess.Popen[bytes] | None = None
        self._initialized = False

    @cached_property
    def mariadb(self) -> bool:
        if "mariadb" in self.binary.name:
            return True
        done = subprocess.run(
            [str(self.binary), "--version"], capture_output=True, text=True, check=False
        )
        return "MariaDB" in done.stdout

    def url(self, database: str = "") -> str:
        """``mysql://`` URL of the server's administrator (all privileges, grant option)."""
        return f"mysql://syncd_admin:{self.password}@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> LocalMySQL:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Initialise the data directory (first time) and start the server; return when
        it accepts connections."""
        if not self._initialized:
            self._initialize()
        self.port = self.port or free_port()
        log = (self.root / "server.log").open("ab")
        self._process = subprocess.Popen(
            self._server_args(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()
        if not self._initialized:
            self._bootstrap()
            self._initialized = True

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def _initialize(self) -> None:
        if self.mariadb:
            install = find_binary("mariadb-install-db", "mysql_install_db")
            if install is None:
                raise EmbeddedServerError(f"mariadb-install-db is missing: {HOW_TO_GET_ONE}")
            args = [
                str(install),
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *self._as_root(),
            ]
        else:
            args = [
                str(self.binary),
                "--no-defaults",
                "--initialize-insecure",
                f"--datadir={self.data}",
                *self._as_root(),
            ]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise EmbeddedServerError(
                f"initialising a MySQL data directory failed ({' '.join(args[:1])}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )

    def _server_args(self) -> list[str]:
        args = [
            str(self.binary),
            "--no-defaults",
            f"--datadir={self.data}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.root / 'server.pid'}",
            "--skip-name-resolve",
            "--skip-log-bin",
            f"--default-time-zone={self.time_zone}",
            "--innodb-buffer-pool-size=64M",
            # a commit reaches the OS, not the disk: safe against a killed server (what
            # fault tests do), and fast
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=300",
            *self._as_root(),
        ]
        if not self.mariadb:
            args.append("--mysqlx=OFF")
        return args

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmbeddedServerError(f"the MySQL server exited at start: {self._log_tail()}")
            if self.socket.exists() and _accepts(self.port):
                return
            time.sleep(0.05)
        raise EmbeddedServerError(f"the MySQL server did not start in time: {self._log_tail()}")

    def _bootstrap(self) -> None:
        """The administrator ``syncd_admin`` over TCP, made as root over the socket."""
        client = find_binary("mariadb", "mysql")
        if client is None:
            raise EmbeddedServerError(f"the mysql command-line client is missing: {HOW_TO_GET_ONE}")
        statements = "".join(
            f"CREATE USER 'syncd_admin'@'{host}' IDENTIFIED BY '{self.password}';"
            f"GRANT ALL ON *.* TO 'syncd_admin'@'{host}' WITH GRANT OPTION;"
            for host in ("127.0.0.1", "localhost")
        )
        args = [str(client), "--no-defaults", f"--socket={self.socket}", "-uroot", "-e"]
        done = subprocess.run([*args, statements], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise EmbeddedServerError(f"setting up the MySQL server failed: {done.stderr.strip()}")

    def _log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """``kill -9`` the server (the data stays; ``start()`` brings it back)."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def stop(self) -> None:
        """Stop the server (killed if it has not stopped within the timeout)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
