"""``[databases.<name>]`` and ``[kinds.<kind>] database``: the configuration boundary of
business databases, over generated names, DSNs, passwords and time zones."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.cli import main
from syncd.commands.config import _masked, render_toml
from syncd.errors import ConfigError
from syncd.settings import Settings, load_settings, settings_from_data

NAMES = st.from_regex(r"\A[a-z][a-z0-9_]{0,39}\Z").filter(lambda n: n not in ("syncd", "other"))
PASSWORDS = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x10FFFF, exclude_categories=["Cs"]),
    min_size=6,
    max_size=30,
).filter(lambda p: p.strip() == p)
HOSTS = st.sampled_from(["db", "10.0.0.7", "mysql.internal", "[::1]"])
SCHEMES = st.sampled_from(["mysql", "mariadb", "MySQL"])


def dsn(scheme: str, password: str, host: str, database: str = "erp") -> str:
    return f"{scheme}://syncd:{quote(password, safe='')}@{host}:3306/{database}"


#: A password of the same kind, to show that a message says nothing of the one drawn (a
#: drawn password may well be a word of the message: "mysql:", "databa").
OTHER_PASSWORD = "Zq9~other~pw"


def refusal(url: str) -> str:
    """The configuration error a DSN of ``[databases.erp]`` gets."""
    with pytest.raises(ConfigError) as info:
        settings_from_data({"databases": {"erp": {"dsn": url}}})
    return str(info.value)


def kinds(database: str | None) -> dict[str, object]:
    return {"leave": {"process_code": "PROC-1", "database": database}}


@given(name=NAMES, scheme=SCHEMES, password=PASSWORDS, host=HOSTS)
def test_a_declared_database_loads_and_its_password_stays_secret(name, scheme, password, host):
    url = dsn(scheme, password, host)
    loaded = settings_from_data({"databases": {name: {"dsn": url}}, "kinds": kinds(name)})
    assert loaded.kinds["leave"].database == name
    assert loaded.databases[name].plain(name).dsn == url
    assert {url, password, quote(password, safe="")} <= set(loaded.secrets)
    shown = render_toml(_masked(loaded.model_dump()))
    assert f"[databases.{name}]" in shown
    # A password that happens to be a piece of the rest (``proces`` of ``process_code``)
    # shows nothing: compare with the same configuration under another password.
    other = settings_from_data(
        {"databases": {name: {"dsn": dsn(scheme, "~", host)}}, "kinds": kinds(name)}
    )
    rest = render_toml(_masked(other.model_dump()))
    for secret in (url, password, quote(password, safe="")):
        assert secret not in shown or secret in rest
    assert password not in repr(loaded) or password in repr(other)


@given(
    scheme=st.sampled_from(["postgresql", "postgres", "sqlserver", "oracle", "http", "jdbc"]),
    password=PASSWORDS,
    host=HOSTS,
)
def test_other_schemes_are_refused_without_echoing_the_dsn(scheme, password, host):
    message = refusal(dsn(scheme, password, host))
    assert "databases.erp.dsn: only mysql:// and mariadb://" in message
    # Nothing of the password: the message is the one another password gets.
    assert message == refusal(dsn(scheme, OTHER_PASSWORD, host))


@given(password=PASSWORDS, shape=st.sampled_from(["no-database", "no-host", "not-a-url"]))
def test_an_incomplete_dsn_says_what_is_missing(password, shape):
    def url(password: str) -> str:
        return {
            "no-database": dsn("mysql", password, "db", database=""),
            "no-host": f"mysql://syncd:{quote(password, safe='')}@/erp",
            "not-a-url": f"user=syncd password={password} host=db",
        }[shape]

    message = refusal(url(password))
    expected = {"no-database": "names no database", "no-host": "names no host"}
    assert expected.get(shape, "only mysql:// and mariadb://") in message
    assert message == refusal(url(OTHER_PASSWORD))  # nothing of the password in it


@given(declared=st.lists(NAMES, max_size=3, unique=True), wanted=NAMES)
def test_a_kind_naming_an_undeclared_database_is_refused_naming_the_fix(declared, wanted):
    databases = {name: {"dsn": dsn("mysql", "pw-123456", "db")} for name in declared}
    data = {"databases": databases, "kinds": kinds(wanted)}
    if wanted in declared:
        assert settings_from_data(data).kinds["leave"].database == wanted
        return
    with pytest.raises(ConfigError) as info:
        settings_from_data(data)
    assert f"[kinds.leave] database = '{wanted}', but no [databases.{wanted}]" in str(info.value)
    assert f"add [databases.{wanted}]" in str(info.value)


@given(name=st.text(string.ascii_letters + string.digits + "_-. ", min_size=1, max_size=45))
def test_database_names_are_lower_case_identifiers(name):
    data = {"databases": {name: {"dsn": dsn("mysql", "pw-123456", "db")}}}
    valid = name[0].islower() and name[0].isascii() and len(name) <= 40
    valid = valid and all(c in string.ascii_lowercase + string.digits + "_" for c in name)
    if valid:
        assert name in settings_from_data(data).databases
    else:
        with pytest.raises(ConfigError, match="must be lower-case letters, digits and _"):
            settings_from_data(data)


@settings(max_examples=50)
@given(hours=st.integers(-20, 20), minutes=st.integers(0, 70), sign=st.sampled_from("+-"))
def test_the_session_time_zone_is_an_offset(hours, minutes, sign):
    zone = f"{sign}{abs(hours):02d}:{minutes:02d}"
    data = {"databases": {"erp": {"dsn": dsn("mysql", "pw-123456", "db"), "time_zone": zone}}}
    if abs(hours) <= 14 and minutes <= 59:
        assert settings_from_data(data).databases["erp"].time_zone == zone
    else:
        with pytest.raises(ConfigError, match="must be an offset like"):
            settings_from_data(data)


def test_utc_is_the_default_and_a_name_for_zero():
    data = {"databases": {"erp": {"dsn": dsn("mysql", "pw-123456", "db"), "time_zone": "utc"}}}
    assert settings_from_data(data).databases["erp"].time_zone == "+00:00"
    data["databases"]["erp"].pop("time_zone")
    assert settings_from_data(data).databases["erp"].time_zone == "+00:00"


def test_the_dsn_from_a_file_or_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "erp.dsn"
    secret.write_text(dsn("mariadb", "from-a-file", "db") + "\n")
    config = tmp_path / "syncd.toml"
    config.write_text(f'[databases.erp]\ndsn_file = "{secret}"\n')
    loaded = load_settings(config)
    assert loaded.databases["erp"].dsn.get_secret_value().endswith("@db:3306/erp")
    monkeypatch.setenv("SYNCD_DATABASES__HR__DSN", dsn("mysql", "from-env-1", "hr-db"))
    assert "from-env-1" in Settings().secrets


def test_undeclared_database_exits_2_at_start(tmp_path, capsys):
    config = tmp_path / "syncd.toml"
    config.write_text('[kinds.leave]\nprocess_code = "P"\ndatabase = "erp"\n')
    assert main(["--config", str(config), "config", "show"]) == 2
    assert "no [databases.erp] is declared" in capsys.readouterr().err
