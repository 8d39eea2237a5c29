"""What a failed connection attempt at start means: wait (unreachable) or stop (the DSN or
the login cannot work), from the messages libpq and PostgreSQL give."""

from __future__ import annotations

import psycopg
import pytest

from syncd.db.reach import DatabaseUnreachable, check_dsn, classify
from syncd.errors import ConfigError

FAILED = 'connection failed: connection to server at "10.0.0.5", port 5432 failed: '


@pytest.mark.parametrize(
    "message",
    [
        FAILED + "Connection refused\n\tIs the server running on that host?",
        FAILED + "timeout expired",
        "failed to resolve host 'db.internal': [Errno -2] Name or service not known",
        FAILED + "FATAL:  the database system is starting up",
        FAILED + "FATAL:  the database system is shutting down",
        FAILED + "FATAL:  sorry, too many clients already",
        FAILED + "FATAL:  remaining connection slots are reserved for roles with SUPERUSER",
        FAILED + "server closed the connection unexpectedly",
    ],
)
def test_a_database_not_there_yet_is_waited_for(message):
    assert isinstance(classify(psycopg.OperationalError(message)), DatabaseUnreachable)


@pytest.mark.parametrize(
    "message",
    [
        FAILED + 'FATAL:  password authentication failed for user "syncd_daemon"',
        FAILED + 'FATAL:  role "syncd_deamon" does not exist',
        FAILED + 'FATAL:  database "syncd_prod" does not exist',
        FAILED + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "syncd_daemon"',
        FAILED + "fe_sendauth: no password supplied",
        FAILED + 'FATAL:  permission denied for database "app"',
    ],
)
def test_a_refused_login_is_a_configuration_error(message):
    found = classify(psycopg.OperationalError(message))
    assert isinstance(found, ConfigError)
    assert found.message.startswith("PostgreSQL refused the login: ")


def test_a_dsn_that_does_not_parse_names_itself_without_its_password():
    with pytest.raises(ConfigError, match="not a valid connection string") as caught:
        check_dsn("postgresql://u:s3cret-pw@[::1/db")
    assert "s3cret-pw" not in caught.value.message
