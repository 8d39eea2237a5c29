"""A non-editable install finds its SQL files (the wheel maps sql/ into the package)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_install_ships_sql_files(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "syncd" / "sql" / "schema.sql").is_file()
    # syncd's footprint in a MySQL business database (`syncd migrate --database`)
    assert (target / "syncd" / "sql" / "mysql" / "migrations" / "0001_initial.sql").is_file()
    shipped = target / "syncd" / "sql" / "least_privilege.sql"  # for `migrate --grants`
    assert shipped.read_bytes() == (ROOT / "deploy" / "sql" / "least_privilege.sql").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import syncd.db.queries as q, syncd.db.migrations as m;"
        "print(q.sql_dir()); print(len(q.QUERIES)); print(len(m.load_migrations()));"
        "print(m.default_grants())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    where, count, migrations, grants = result.stdout.split()
    assert where.startswith(str(target)) and int(count) > 5 and int(migrations) >= 1
    assert grants == str(shipped)
