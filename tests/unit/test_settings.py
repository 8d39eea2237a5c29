from __future__ import annotations

import pytest

from syncd.db.connect import passwords
from syncd.errors import ConfigError
from syncd.settings import Settings, load_settings

GOOD = """
[database]
dsn = "postgresql://syncd:pg-pass-123@db/app"

[dingtalk]
app_key = "dingkey"
app_secret = "app-secret-456"

[kinds.leave]
process_code = "PROC-LEAVE"
originator = "applicant"
correlation_field = "Request No."

[kinds.leave.form]
"Leave type" = "leave_type"
'["Start","End"]' = { fields = ["start", "end"] }
"Reason" = { template = "{reason} ({days} days)" }
"Items" = { field = "items", columns = { "Name" = "name" } }

[kinds.leave.write_back]
table = "app.leave_request"
key_column = "id"
columns = { approval_status = "status", dingtalk_id = "instance_id" }
status_map = { approved = "APPROVED" }
"""


def write(tmp_path, text):
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


def test_good_file_loads_with_typed_values(tmp_path):
    settings = load_settings(write(tmp_path, GOOD))
    kind = settings.kinds["leave"]
    assert kind.originator.field == "applicant"
    assert kind.form['["Start","End"]'].fields == ["start", "end"]
    assert kind.form["Reason"].paths() == ["reason", "days"]
    assert kind.write_back is not None and kind.write_back.columns["dingtalk_id"] == "instance_id"
    assert settings.dingtalk.app_secret.get_secret_value() == "app-secret-456"
    assert "app-secret-456" not in repr(settings)


def test_environment_overrides_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCD_DINGTALK__APP_KEY", "from-env")
    monkeypatch.setenv("SYNCD_PIPELINE__BATCH_SIZE", "7")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.dingtalk.app_key == "from-env"
    assert settings.dingtalk.app_secret.get_secret_value() == "app-secret-456"
    assert settings.pipeline.batch_size == 7


def test_secrets_from_files(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text("from-a-file\n")
    monkeypatch.setenv("SYNCD_DINGTALK__APP_SECRET_FILE", str(tmp_path / "secret"))
    settings = load_settings(write(tmp_path, GOOD.replace('app_secret = "app-secret-456"', "")))
    assert settings.dingtalk.app_secret.get_secret_value() == "from-a-file"


def test_missing_secret_file_is_named(tmp_path):
    text = GOOD.replace('app_secret = "app-secret-456"', 'app_secret_file = "/nope/secret"')
    with pytest.raises(ConfigError, match=r"dingtalk: .*app_secret_file: cannot read /nope"):
        load_settings(write(tmp_path, text))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('app_key = "dingkey"', 'app_key = "dingkey"\nrate_per_secnd = 3'),
            "dingtalk.rate_per_secnd: unknown setting \\(did you mean 'rate_per_second'\\?\\)",
        ),
        (
            ('app_key = "dingkey"', 'app_key = "dingkey"\nrate_per_second = 50'),
            r"dingtalk.rate_per_second: Input should be less than or equal to 20 \(got 50\)",
        ),
        (
            ("key_column", "key_colum"),
            r"kinds.leave.write_back.key_colum: unknown setting "
            r"\(did you mean 'key_column'\?\)",
        ),
        (('"instance_id"', '"instance"'), "columns.dingtalk_id = 'instance': expected one of"),
        (('process_code = "PROC-LEAVE"', ""), "kinds.leave.process_code: required, but not set"),
        (
            ("[kinds.leave.form]", '[kinds.Bad]\nprocess_code = "X"\n[kinds.leave.form]'),
            "kind name 'Bad' must be lower-case",
        ),
        (
            ('originator = "applicant"', 'originator = { field = "a", value = 1 }'),
            "set exactly one of field, fields, template, value or column",
        ),
        (('"{reason} ({days} days)"', '"{reason!r}"'), "not a payload path"),
    ],
)
def test_bad_values_name_key_value_and_expectation(tmp_path, change, expected):
    old, new = change
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    with pytest.raises(ConfigError, match=expected):
        load_settings(write(tmp_path, text))


def test_secret_values_are_not_echoed_in_errors(tmp_path):
    text = GOOD.replace(
        "[kinds.leave]",
        '[events.callback]\nenabled = true\ntoken = "tok-secret-789"\n'
        'aes_key = "short-secret-aes"\n\n[kinds.leave]',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert "aes_key must be the 43 letters" in str(info.value)
    assert "short-secret-aes" not in str(info.value)
    assert "tok-secret-789" not in str(info.value)


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(write(tmp_path, "[database\n"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("dsn", "forms"),
    [
        ("postgresql://syncd:p%40ss-w0rd@db/app", ["p%40ss-w0rd", "p@ss-w0rd"]),
        ("host=db user=syncd password='pa ss\\'wd' dbname=app", ["'pa", "pa ss'wd"]),
        ("host=db user=syncd dbname=app", []),
        ("postgresql://syncd@db/app", []),
    ],
)
def test_every_form_of_the_dsn_password_is_a_secret(dsn, forms):
    settings = Settings(database={"dsn": dsn})
    assert passwords(dsn) == sorted(forms)
    assert set(forms) <= set(settings.secrets)
