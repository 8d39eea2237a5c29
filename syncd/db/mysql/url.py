"""A business database's DSN: checked, made a SQLAlchemy URL, its password found.

``[databases.<name>] dsn`` is a URL: ``mysql://user:password@host:3306/database`` (or
``mariadb://…``), the database named in the path; query parameters pass to the driver
(``?ssl=…``). It is a secret: nothing here puts the DSN or its password into a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = ("mysql", "mariadb")
#: Schemes named back in an error (what else could be there is not repeated: it may be
#: a password written in the wrong place).
_KNOWN = frozenset(
    {"postgres", "postgresql", "sqlserver", "mssql", "oracle", "dm", "kingbase", "sqlite"}
)
#: A session time zone MySQL and MariaDB take without time zone tables: an offset.
TIME_ZONE = re.compile(r"^[+-](0\d|1[0-4]):[0-5]\d$")


def check_dsn(dsn: str) -> str:
    """``dsn`` if it is a ``mysql://`` or ``mariadb://`` URL naming a database; else a
    ``ValueError`` that says what is wrong without repeating the DSN."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        raise ValueError("is not a URL: write mysql://user:password@host:3306/database") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        got = f" (got {scheme}://)" if scheme in _KNOWN else ""
        raise ValueError(
            f"only mysql:// and mariadb:// business databases are supported{got}; write "
            "mysql://user:password@host:3306/database (syncd's own PostgreSQL is [database])"
        )
    if not parts.hostname:
        raise ValueError("names no host: write mysql://user:password@host:3306/database")
    if not parts.path.strip("/"):
        raise ValueError(
            "names no database: put it in the URL's path, mysql://user:password@host:3306/erp"
        )
    return dsn


def url_passwords(dsn: str) -> list[str]:
    """The password of a URL DSN as written (maybe percent-encoded) and as decoded."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return []
    if not password:
        return []
    return sorted({password, unquote(password)})


@dataclass(frozen=True)
class MySQLDatabase:
    """One ``[databases.<name>]`` as plain values."""

    name: str
    dsn: str
    pool_max_size: int = 4
    connect_timeout: float = 10.0
    #: The longest one write-back may take (its statements and commit), seconds.
    statement_timeout: float = 30.0
    #: ``innodb_lock_wait_timeout`` of syncd's sessions, whole seconds.
    lock_timeout: int = 5
    #: syncd's session ``time_zone``: the zone of the times it writes into ``DATETIME``
    #: columns (``TIMESTAMP`` columns hold the instant whatever it is).
    time_zone: str = "+00:00"


def require_driver() -> None:
    """Raise ``ConfigError`` unless the ``mysql`` extra (greenlet, asyncmy) is installed."""
    from importlib.util import find_spec

    from syncd.errors import ConfigError

    for package in ("greenlet", "asyncmy"):
        if find_spec(package) is None:
            raise ConfigError(
                f"business databases need the mysql extra ({package} is missing): "
                "pip install 'syncd[mysql]'"
            )
