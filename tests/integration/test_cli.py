from __future__ import annotations

import os
import shlex
import subprocess
import sys

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.cli import main
from syncd.commands.config import render_toml
from syncd.settings import KIND_NAME
from tests.integration.commands.conftest import config_data


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_migrate_check_dry_run_and_apply(capsys, empty_database):
    code, out, _ = run(capsys, "migrate", "--check", "--dsn", empty_database)
    assert code == 1 and "pending: 0001_initial" in out
    code, out, _ = run(capsys, "migrate", "--dry-run", "--dsn", empty_database)
    assert code == 0 and "CREATE TABLE syncd.outbox" in out
    code, out, _ = run(capsys, "migrate", "--dsn", empty_database)
    assert code == 0 and "applied 0001_initial" in out
    code, out, _ = run(capsys, "migrate", "--dsn", empty_database)
    assert code == 0 and "the schema is current" in out
    code, out, _ = run(capsys, "migrate", "--check", "--dsn", empty_database)
    assert code == 0 and "pending: none" in out
    code, out, _ = run(capsys, "migrate", "--dry-run", "--dsn", empty_database)
    assert "nothing to run" in out


def test_dsn_from_environment(capsys, empty_database, monkeypatch):
    monkeypatch.setenv("SYNCD_DATABASE__DSN", empty_database)
    code, out, _ = run(capsys, "migrate", "--check")
    assert code == 1 and "pending: 0001_initial" in out


def test_missing_dsn_is_a_configuration_error(capsys):
    code, _, err = run(capsys, "migrate")
    assert code == 2 and "database.dsn is not set" in err


def test_unreachable_database_fails_with_exit_1_and_no_password(capsys):
    dsn = "postgresql://u:hunter2-secret@127.0.0.1:1/db?connect_timeout=2"
    code, _, err = run(capsys, "migrate", "--check", "--dsn", dsn)
    assert code == 1 and "cannot connect to PostgreSQL" in err
    assert "hunter2-secret" not in err


@pytest.fixture
def app_db(database):
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE leave (id int PRIMARY KEY, status text)")
    return database


def test_capture_commands(capsys, app_db):
    target = ["--kind", "leave", "--table", "leave", "--dsn", app_db]
    code, out, _ = run(capsys, "capture", "sql", *target, "--key", "id", "--when", "NEW.status='s'")
    assert code == 0 and "CREATE TRIGGER" in out
    code, out, _ = run(capsys, "capture", "list", "--dsn", app_db)
    assert "no capture triggers installed" in out
    code, out, _ = run(capsys, "capture", "add", *target, "--key", "id", "--when", "NEW.status='s'")
    assert code == 0 and "installed" in out
    code, out, _ = run(capsys, "capture", "list", "--dsn", app_db)
    assert "leave: public.leave key=id when=NEW.status='s'" in out
    code, out, _ = run(capsys, "capture", "remove", *target)
    assert code == 0
    code, out, _ = run(capsys, "capture", "list", "--dsn", app_db)
    assert "no capture triggers installed" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--table", "nope", "--key", "id"], "table 'nope' does not exist"),
        (["--table", "leave", "--key", "idx"], "column 'idx' does not exist in public.leave"),
        (["--table", "leave", "--key", "id", "--when", "NEW.x"], "is not a valid condition"),
    ],
)
def test_capture_errors_exit_2(capsys, app_db, args, message):
    code, _, err = run(capsys, "capture", "add", "--kind", "leave", "--dsn", app_db, *args)
    assert code == 2 and message in err


def test_capture_bad_kind_name_exits_2(capsys, app_db):
    code, _, err = run(
        capsys,
        "capture",
        "add",
        "--kind",
        "Leave!",
        "--table",
        "leave",
        "--key",
        "id",
        "--dsn",
        app_db,
    )
    assert code == 2 and "--kind 'Leave!'" in err


def test_config_show_masks_secrets(capsys, tmp_path, monkeypatch):
    path = tmp_path / "syncd.toml"
    path.write_text(
        '[database]\ndsn = "postgresql://a:pg-secret-1@h/db"\n'
        '[dingtalk]\napp_key = "k"\napp_secret = "app-secret-2"\n'
    )
    monkeypatch.setenv("SYNCD_EVENTS__CALLBACK__TOKEN", "cb-token-3")
    code, out, err = run(capsys, "--config", str(path), "config", "show")
    assert code == 0
    assert 'app_key = "k"' in out and 'app_secret = "********"' in out
    for secret in ("pg-secret-1", "app-secret-2", "cb-token-3"):
        assert secret not in out + err


def test_invalid_config_exits_2_naming_the_key(capsys, tmp_path):
    path = tmp_path / "syncd.toml"
    path.write_text("[pipeline]\nbatch_size = 0\n")
    code, _, err = run(capsys, "--config", str(path), "config", "show")
    assert code == 2
    assert "pipeline.batch_size: Input should be greater than or equal to 1 (got 0)" in err


def test_usage_error_exits_2():
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "migrate", "--bogus"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_python_dash_m_version():
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("syncd ")


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["retry", "--help"], ["config", "show"], ["migrate", "--dry-run"]],
)
def test_a_closed_pipe_ends_the_command_quietly_with_141(argv, empty_database):
    """The reader is gone before the command writes: no traceback, exit 141 (SIGPIPE's)."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "SYNCD_DATABASE__DSN": empty_database}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "syncd", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write)
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""


def test_migrate_dry_run_into_head(empty_database):
    syncd = [sys.executable, "-m", "syncd", "migrate", "--dry-run", "--dsn", empty_database]
    command = " ".join(map(shlex.quote, syncd))
    result = subprocess.run(
        ["sh", "-c", f"{command} | head -1"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "-- migration 0001_initial\n"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


@pytest.fixture
def leave_config(tmp_path, app_db):
    path = tmp_path / "syncd.toml"
    path.write_text(render_toml(config_data(app_db)), encoding="utf-8")
    return str(path)


def test_capture_add_refuses_a_kind_the_configuration_does_not_have(capsys, app_db, leave_config):
    target = ["--table", "leave", "--key", "id", "--dsn", app_db]
    code, _, err = run(
        capsys, "--config", leave_config, "capture", "add", "--kind", "leav", *target
    )
    assert code == 2
    assert "--kind 'leav' is not a kind of the configuration (it has leave)" in err
    assert "did you mean 'leave'?" in err and "unknown_kind" in err and "--force" in err
    code, out, err = run(
        capsys, "--config", leave_config, "capture", "sql", "--kind", "leav", *target
    )
    assert code == 0 and "CREATE TRIGGER" in out and "did you mean 'leave'?" in err
    code, out, _ = run(
        capsys, "capture", "add", "--kind", "leav", *target, "--config", leave_config, "--force"
    )
    assert code == 0 and "installed" in out
    code, out, err = run(
        capsys, "capture", "add", "--kind", "leave", *target, "--config", leave_config
    )
    assert code == 0 and "installed" in out and "not a kind" not in err


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.from_regex(KIND_NAME, fullmatch=True).filter(lambda k: k != "leave"))
def test_capture_add_accepts_no_kind_but_the_configured_ones(capsys, leave_config, kind):
    """Refused before any database is reached (the DSN leads nowhere)."""
    code, _, err = run(
        capsys,
        "--config",
        leave_config,
        "capture",
        "add",
        "--kind",
        kind,
        "--table",
        "t",
        "--key",
        "id",
        "--dsn",
        "postgresql://nobody@127.0.0.1:1/none",
    )
    assert code == 2 and f"--kind {kind!r} is not a kind of the configuration" in err
