"""``syncd dev-db``: start prints a DSN that works, status finds it, stop keeps the data."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from syncd.cli import main


@pytest.mark.parametrize("relative", [False, True])
def test_start_status_stop_and_start_again(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    relative: bool,
):
    folder = tmp_path / "dev-db"
    if relative:  # `--dir ./dev-db`: the server runs in another directory, yet finds it
        monkeypatch.chdir(tmp_path)
        folder = Path("dev-db")
    try:
        assert main(["dev-db", "start", "--dir", str(folder)]) == 0
        started = capsys.readouterr().out
        dsn = re.search(r"DSN +(\S+)", started)
        assert dsn is not None, started
        with psycopg.connect(dsn[1], autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        assert main(["dev-db", "status", "--dir", str(folder)]) == 0
        assert capsys.readouterr().out.strip() == dsn[1]
        assert main(["dev-db", "start", "--dir", str(folder)]) == 0  # already runs: same DSN
        assert dsn[1] in capsys.readouterr().out

        assert main(["dev-db", "stop", "--dir", str(folder)]) == 0
        assert "stopped" in capsys.readouterr().out
        assert main(["dev-db", "status", "--dir", str(folder)]) == 1

        assert main(["dev-db", "start", "--dir", str(folder)]) == 0
        assert dsn[1] in capsys.readouterr().out  # the same port again
        with psycopg.connect(dsn[1]) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]
    finally:
        main(["dev-db", "stop", "--remove", "--dir", str(folder)])
    assert not folder.exists()
