"""The alert rules load and pass their unit tests (``promtool test rules``).

promtool comes from Debian's ``prometheus`` package. When it is not on the PATH, the
test takes the binary out of that package (``apt-get download`` and ``dpkg-deb``; about
two seconds, and no Prometheus server gets installed or started) into pytest's cache. It
skips, saying why, only where that cannot be done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
MEMBER = "./usr/bin/promtool"


def _apt(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["apt-get", "-qq", *args], cwd=cwd, capture_output=True, timeout=300)


def _extract(deb: Path, target: Path) -> None:
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as p:
        assert p.stdout is not None
        with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
            for member in tar:
                if member.name == MEMBER:
                    source = tar.extractfile(member)
                    assert source is not None
                    target.write_bytes(source.read())
                    target.chmod(0o755)
                    break


def _fetch(folder: Path) -> str | None:
    """Take promtool out of Debian's prometheus package; the reason when impossible."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return "this is not a Debian-like system (no apt-get or dpkg-deb)"
    if os.geteuid() != 0:
        return "reading Debian's package lists needs root"
    if _apt("download", "prometheus", cwd=folder).returncode != 0:
        _apt("update", cwd=folder)  # stale or missing package lists
        done = _apt("download", "prometheus", cwd=folder)
        if done.returncode != 0:
            return f"apt-get download prometheus failed: {done.stderr.decode().strip()}"
    [deb] = folder.glob("prometheus_*.deb")
    _extract(deb, folder / "promtool")
    deb.unlink()
    return None


@pytest.fixture(scope="session")
def promtool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if found := shutil.which("promtool"):
        return found
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    folder = Path(cache.mkdir("promtool")) if cache else tmp_path_factory.mktemp("promtool")
    binary = folder / "promtool"
    if not binary.exists():
        reason = _fetch(folder)
        if reason is not None:
            pytest.skip(
                f"promtool is missing and cannot be installed here ({reason}); "
                "install Debian's prometheus package (apt-get install prometheus) to run "
                "the alert-rule tests"
            )
    return str(binary)


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(600)
def test_alert_rules_pass_their_unit_tests(promtool):
    checked = promtool_run(promtool, "check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool_run(promtool, "test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_compose_prometheus_config_is_valid(promtool):
    checked = promtool_run(promtool, "check", "config", "--syntax-only", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
