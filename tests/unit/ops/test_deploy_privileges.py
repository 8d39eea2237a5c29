"""Every deploy path keeps the schema owner's credentials away from the daemon, binds the
demo's admin surfaces to this machine only, and installs only hash-pinned packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
OWNER, DAEMON = "syncd_owner", "syncd_daemon"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def compose_secret(name: str) -> str:
    path = DEPLOY / str(compose()["secrets"][name]["file"])
    return path.read_text(encoding="utf-8").strip()


def dsn_user(dsn: str) -> str:
    return urlsplit(dsn).username or ""


def manifests() -> list[dict[str, Any]]:
    paths = sorted(K8S.glob("*.yaml"))
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text())]


def one(kind: str, name: str) -> dict[str, Any]:
    [found] = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_compose_publishes_ports_on_this_machine_only():
    services = compose()["services"]
    published = {name: s.get("ports", []) for name, s in services.items()}
    assert published["simulator"] and published["grafana"]
    wide = {n: p for n, ports in published.items() for p in ports if not p.startswith("127.0.0.1:")}
    assert wide == {}
    assert "ports" not in services["postgres"]


def test_compose_grafana_has_no_default_admin_login():
    grafana = compose()["services"]["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # only the __FILE form
    secret_path = env["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    [secret] = grafana["secrets"]
    assert secret_path == f"/run/secrets/{secret}"
    assert compose_secret(secret) not in ("", "admin")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_compose_migrates_as_the_owner_and_runs_as_the_daemon():
    services = compose()["services"]
    postgres = services["postgres"]["environment"]
    migrate, syncd = services["migrate"], services["syncd"]
    assert migrate["command"] == ["migrate", "--grants"]
    [owner_secret] = migrate["secrets"]
    assert migrate["environment"]["SYNCD_DATABASE__DSN_FILE"] == f"/run/secrets/{owner_secret}"
    assert migrate["environment"]["SYNCD_CONFIG"] == ""
    assert dsn_user(compose_secret(owner_secret)) == OWNER
    config = tomllib.loads((DEPLOY / "compose" / "syncd.toml").read_text(encoding="utf-8"))
    daemon_secret = config["database"]["dsn_file"].removeprefix("/run/secrets/")
    assert daemon_secret in syncd["secrets"] and owner_secret not in syncd["secrets"]
    assert dsn_user(compose_secret(daemon_secret)) == DAEMON
    assert postgres["POSTGRES_USER"] not in (OWNER, DAEMON, "app")  # the superuser: init only
    init = [v.split(":")[1] for v in services["postgres"]["volumes"] if "initdb.d" in v]
    assert [Path(p).name for p in init] == ["10-roles.sql", "20-passwords.sh", "30-app.sql"]
    volumes = {v.split(":")[1]: v.split(":")[0] for v in services["postgres"]["volumes"]}
    assert (DEPLOY / volumes["/docker-entrypoint-initdb.d/10-roles.sql"]).samefile(
        DEPLOY / "sql" / "roles.sql"
    )
    app_sql = (DEPLOY / "compose" / "init.sql").read_text(encoding="utf-8")
    assert "IN ROLE syncd_application" in app_sql and "SUPERUSER" not in app_sql


def test_kubernetes_migration_job_and_daemon_use_different_secrets():
    job = one("Job", "syncd-migrate")["spec"]["template"]["spec"]
    deployment = one("Deployment", "syncd")["spec"]["template"]["spec"]
    job_secrets = {v["secret"]["secretName"] for v in job["volumes"] if "secret" in v}
    daemon_secrets = {v["secret"]["secretName"] for v in deployment["volumes"] if "secret" in v}
    assert job_secrets == {"syncd-owner"} and daemon_secrets == {"syncd"}
    [migrate] = job["containers"]
    assert migrate["args"] == ["migrate", "--grants"]
    env = env_of(migrate)
    [mount] = migrate["volumeMounts"]
    assert env["SYNCD_DATABASE__DSN_FILE"] == f"{mount['mountPath']}/dsn"
    assert env["SYNCD_CONFIG"] == ""
    assert dsn_user(one("Secret", "syncd-owner")["stringData"]["dsn"]) == OWNER
    assert dsn_user(one("Secret", "syncd")["stringData"]["dsn"]) == DAEMON
    configmap = one("ConfigMap", "syncd")["data"]["syncd.toml"]
    [daemon] = deployment["containers"]
    mounts = {m["name"]: m["mountPath"] for m in daemon["volumeMounts"]}
    assert tomllib.loads(configmap)["database"]["dsn_file"] == f"{mounts['secrets']}/dsn"


def test_systemd_migrates_in_a_unit_of_its_own_with_the_owners_credential():
    daemon = (DEPLOY / "systemd" / "syncd.service").read_text()
    migrate = (DEPLOY / "systemd" / "syncd-migrate.service").read_text()
    assert "migrate" not in "".join(re.findall(r"^Exec\w*=.*$", daemon, re.M))
    assert (
        "Requires=syncd-migrate.service" in daemon
        and "syncd-migrate.service" in (re.search(r"^After=.*$", daemon, re.M) or [""])[0]
    )
    assert "ExecStart=/opt/syncd/bin/syncd migrate --grants" in migrate
    credential = re.compile(r"^LoadCredential=(\w+):(\S+)$", re.M)
    [(owner_name, owner_file)] = credential.findall(migrate)
    [(daemon_name, daemon_file)] = credential.findall(daemon)
    assert owner_file != daemon_file
    assert f"SYNCD_DATABASE__DSN_FILE=%d/{owner_name}" in migrate
    assert f"SYNCD_DATABASE__DSN_FILE=%d/{daemon_name}" in daemon


LOCKS = ROOT / "requirements"


def pins(name: str) -> dict[str, str]:
    text = (LOCKS / name).read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2].strip())
    found = {}
    for entry in entries:
        match = re.match(r"([a-z0-9._-]+)==(\S+)", entry)
        assert match, f"{name}: not a pinned requirement: {entry.splitlines()[0]}"
        assert "--hash=sha256:" in entry, f"{name}: {match[1]} has no hash"
        found[match[1]] = match[2]
    return found


def test_lock_files_pin_every_package_with_hashes_and_agree():
    runtime, build, ci = pins("runtime.txt"), pins("build.txt"), pins("ci.txt")
    assert {"psycopg", "pydantic", "httpx"} <= set(runtime) and "hatchling" in build
    assert {n: v for n, v in ci.items() if n in runtime} == runtime
    assert {n: v for n, v in ci.items() if n in build} == build
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    direct = {re.split(r"[\[<>=!~ ]", d)[0].lower() for d in pyproject["project"]["dependencies"]}
    assert direct <= set(runtime)


def test_image_pins_its_base_by_digest_and_installs_by_hash():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert bases and all(re.fullmatch(r"[\w./:-]+@sha256:[0-9a-f]{64}", b) for b in bases)
    installs = re.findall(r"pip (?:install|wheel)[^\n&]*", dockerfile)
    for command in installs:
        local = "--no-index" in command or "--no-build-isolation" in command
        assert "--require-hashes" in command or local, command
    assert "requirements/runtime.txt" in dockerfile and "requirements/build.txt" in dockerfile
