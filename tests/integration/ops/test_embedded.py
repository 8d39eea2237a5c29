"""The embedded server starts from a private folder, and says why when it cannot.

As root (as in CI), PostgreSQL runs as an unprivileged user, who cannot reach binaries
inside a virtual environment in root's home (mode 700): the server must still start,
without opening the private folder to everyone.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import psycopg
import pytest

from syncd.embedded import EmbeddedPostgres, EmbeddedServerError, bin_dir


@pytest.fixture
def private_install(tmp_path: Path) -> Path:
    """The wheel's files as a virtual environment in a private home holds them."""
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    package = bin_dir().parent.parent
    site = private / "venv" / "site-packages"
    shutil.copytree(package, site / package.name, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    return site / package.name / "pginstall" / "bin"


def test_starts_from_binaries_in_a_private_folder(private_install: Path) -> None:
    server = EmbeddedPostgres(bin_path=private_install)
    try:
        with psycopg.connect(server.start()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        server.close()
    assert stat.S_IMODE(private_install.parents[4].stat().st_mode) == 0o700
    assert not server.root.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_a_data_directory_in_a_private_folder_is_kept_and_found_again(tmp_path: Path) -> None:
    """As root, the server's files go where its user can reach them, linked from the
    directory asked for; a kept server starts again from there; the folder stays private."""
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    first = EmbeddedPostgres(private / "pg", keep=True)
    try:
        with psycopg.connect(first.start(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
        first.stop()
        assert (private / "pg" / "server").is_symlink()
        assert not first.home.is_relative_to(private)
        again = EmbeddedPostgres(private / "pg", port=first.port)
        with psycopg.connect(again.start()) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]
        again.close()
        assert not first.home.exists() and not (private / "pg").exists()
    finally:
        first.keep = False
        first.close()
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_a_binary_that_cannot_run_is_a_clear_error(tmp_path: Path) -> None:
    install = tmp_path / "pginstall"
    shutil.copytree(bin_dir().parent, install, symlinks=True)
    (install / "bin" / "initdb").chmod(0o600)
    server = EmbeddedPostgres(bin_path=install / "bin")
    try:
        with pytest.raises(EmbeddedServerError, match="initdb"):
            server.start()
    finally:
        server.close()
