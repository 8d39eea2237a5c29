"""syncd's configuration: one validated ``Settings``, read once at start.

Sources, strongest first: ``SYNCD_*`` environment variables (nested keys joined with
``__``, e.g. ``SYNCD_DINGTALK__APP_KEY``), then the TOML file (``--config`` or
``SYNCD_CONFIG``), then defaults. Secrets are ``SecretStr`` and may instead be read from
a file named by the same key with ``_file`` appended (``app_secret_file``,
``SYNCD_DINGTALK__APP_SECRET_FILE``). Only ``cli.py`` and ``daemon.py`` see ``Settings``;
components receive plain values. The file format is documented in the README.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from syncd.db.connect import passwords
from syncd.db.mysql.url import url_passwords
from syncd.errors import ConfigError
from syncd.settings_attachments import AttachmentSettings
from syncd.settings_databases import BusinessDatabaseSettings, check_kinds, check_names
from syncd.settings_directory import DirectorySettings, names_people_by_directory
from syncd.settings_inbound import check_process_codes
from syncd.settings_kinds import KindSettings

KIND_NAME = r"^[a-z][a-z0-9_]{0,39}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret_files(data: Any, names: tuple[str, ...]) -> Any:
    """Replace ``<name>_file`` keys by the stripped content of the file they name."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for name in names:
        path = data.pop(f"{name}_file", None)
        if path is None:
            continue
        if data.get(name):
            raise ValueError(f"set {name} or {name}_file, not both")
        try:
            data[name] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{name}_file: cannot read {path}: {exc.strerror}") from None
    return data


class DatabaseSettings(_Section):
    """[database]: the PostgreSQL that holds the outbox and the business tables."""

    dsn: SecretStr = Field(
        default=SecretStr(""),
        description="libpq connection string or URI; may hold a password, so it is a secret",
    )
    pool_min_size: int = Field(default=1, ge=0, le=100)
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    statement_timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds")

    @model_validator(mode="before")
    @classmethod
    def _files(cls, data: Any) -> Any:
        return _read_secret_files(data, ("dsn",))

    @model_validator(mode="after")
    def _pool(self) -> Self:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not exceed pool_max_size")
        return self


class DingTalkSettings(_Section):
    """[dingtalk]: the internal app syncd acts as."""

    app_key: str = Field(default="", description="the app's AppKey / Client ID")
    app_secret: SecretStr = Field(default=SecretStr(""), description="AppSecret / Client Secret")
    corp_id: str = ""
    agent_id: int | None = None
    api_url: str = Field(default="https://api.dingtalk.com", pattern=r"^https?://")
    oapi_url: str = Field(default="https://oapi.dingtalk.com", pattern=r"^https?://")
    timeout: float = Field(default=10.0, gt=0, le=120, description="seconds per request")
    rate_per_second: float = Field(
        default=20.0, gt=0, le=20, description="DingTalk's limit per API, all replicas together"
    )
    # 40% of it: how late a call may wake after its slot; the rest: the network's jitter.
    pacing_margin: float = Field(default=0.025, ge=0.005, le=0.5, description="s added to 1 s")
    # DingTalk's figure for standard organisations; a tenant with more sets its own (a
    # value too high would let the quota alert fire only after the calls were paused).
    monthly_quota: int = Field(
        default=5000,
        ge=0,
        description="calls per month the tenant may make; 0 = no monthly quota (no alert)",
    )
    token_refresh_margin: float = Field(default=600.0, ge=0, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _files(cls, data: Any) -> Any:
        return _read_secret_files(data, ("app_secret",))


class CallbackSettings(_Section):
    """[events.callback]: encrypted HTTP event push, served on [http]."""

    enabled: bool = False
    path: str = Field(default="/dingtalk/callback", pattern=r"^/")
    token: SecretStr = SecretStr("")
    aes_key: SecretStr = SecretStr("")
    owner_key: str = Field(default="", description="defaults to dingtalk.app_key")
    max_age: float = Field(default=300.0, gt=0, description="oldest accepted timestamp, s")
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="largest accepted push body; a larger one is refused (413) unread",
    )

    @model_validator(mode="before")
    @classmethod
    def _files(cls, data: Any) -> Any:
        return _read_secret_files(data, ("token", "aes_key"))

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.enabled:
            if not self.token.get_secret_value():
                raise ValueError("token is required when enabled = true")
            key = self.aes_key.get_secret_value()
            if len(key) != 43 or not key.isalnum():
                raise ValueError("aes_key must be the 43 letters and digits set in DingTalk")
        return self


class EventSettings(_Section):
    """[events]: how results come back; polling is always on as a safety net."""

    stream: bool = True
    stream_silence_timeout: float = Field(default=90.0, gt=0, description="seconds")
    callback: CallbackSettings = CallbackSettings()


class HttpSettings(_Section):
    """[http]: metrics, health and callback endpoint."""

    host: str = "127.0.0.1"
    port: int = Field(default=9187, ge=0, le=65535)


class PipelineSettings(_Section):
    """[pipeline]: batch sizes, leases, retries and retention."""

    batch_size: int = Field(default=50, ge=1, le=1000)
    concurrency: int = Field(default=8, ge=1, le=64, description="DingTalk calls in flight")
    lease_seconds: float = Field(default=120.0, ge=5, le=3600)
    outbox_poll_interval: float = Field(default=5.0, gt=0, le=300)
    retry_base: float = Field(default=2.0, gt=0, le=600)
    retry_cap: float = Field(default=900.0, gt=0, le=86400)
    max_attempts: int = Field(default=12, ge=1, le=1000)
    unknown_grace: float = Field(
        default=60.0, ge=0, le=3600, description="wait before reconciling an unknown create, s"
    )
    retention_days: int = Field(default=30, ge=1, le=3650)


class PollingSettings(_Section):
    """[polling]: reads of instances that have been quiet too long, within a budget."""

    quiet_after: float = Field(default=600.0, ge=10, description="seconds without an event")
    max_interval: float = Field(default=21600.0, ge=60, description="seconds")
    monthly_budget: int = Field(default=1000, ge=0, description="GET calls per month")
    failed_list_interval: float = Field(default=300.0, ge=10, description="seconds")
    inbound_list_interval: float = Field(
        default=900.0, ge=1, description="seconds between inbound kinds' listings"
    )


class LogSettings(_Section):
    """[log]."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="SYNCD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    replica_name: str = Field(default="", description="defaults to host name and process id")
    database: DatabaseSettings = DatabaseSettings()
    dingtalk: DingTalkSettings = DingTalkSettings()
    events: EventSettings = EventSettings()
    http: HttpSettings = HttpSettings()
    pipeline: PipelineSettings = PipelineSettings()
    polling: PollingSettings = PollingSettings()
    log: LogSettings = LogSettings()
    databases: dict[str, BusinessDatabaseSettings] = Field(default_factory=dict)
    kinds: dict[str, KindSettings] = Field(default_factory=dict)
    directory: DirectorySettings = DirectorySettings()
    attachments: AttachmentSettings = AttachmentSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which arrives as init arguments.
        return (env_settings, init_settings)

    @field_validator("kinds")
    @classmethod
    def _kind_names(cls, kinds: dict[str, KindSettings]) -> dict[str, KindSettings]:
        import re

        for name in kinds:
            if not re.match(KIND_NAME, name):
                raise ValueError(
                    f"kind name {name!r} must be lower-case letters, digits and _ (max 40)"
                )
        return kinds

    @field_validator("databases")
    @classmethod
    def _database_names(
        cls, databases: dict[str, BusinessDatabaseSettings]
    ) -> dict[str, BusinessDatabaseSettings]:
        check_names(databases)
        return databases

    @field_validator("kinds")
    @classmethod
    def _kinds_name_declared_databases(
        cls, kinds: dict[str, KindSettings], info: ValidationInfo
    ) -> dict[str, KindSettings]:
        if "databases" in info.data:  # else its own error is reported
            check_kinds(kinds, info.data["databases"])
        check_process_codes(kinds)
        return kinds

    @model_validator(mode="after")
    def _lease_outlasts_a_create(self) -> Self:
        # A create is sent only while its answer (or its timeout, and a token fetch's)
        # can still come before the lease ends; see Timing.send_margin in the daemon.
        least = 2 * self.dingtalk.timeout + 5
        if self.pipeline.lease_seconds < least:
            raise ValueError(
                f"pipeline.lease_seconds ({self.pipeline.lease_seconds:g}) must be at least "
                f"2 × dingtalk.timeout + 5 = {least:g} seconds, so that a create is answered "
                "before its lease ends"
            )
        return self

    @property
    def directory_enabled(self) -> bool:
        """``directory.enabled``, or when unset whether a kind needs the directory."""
        enabled = self.directory.enabled
        return names_people_by_directory(self.kinds) if enabled is None else enabled

    @property
    def secrets(self) -> list[str]:
        """Every secret value that is set, so logs and errors can be checked against them."""
        values = [
            self.database.dsn,
            self.dingtalk.app_secret,
            self.events.callback.token,
            self.events.callback.aes_key,
        ]
        values += [database.dsn for database in self.databases.values()]
        found = [v.get_secret_value() for v in values if v.get_secret_value()]
        for database in self.databases.values():
            found += url_passwords(database.dsn.get_secret_value())
        return found + passwords(self.database.dsn.get_secret_value())


class _DataOnlySettings(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from_data(data: Mapping[str, Any]) -> Settings:
    """Settings from a dict alone, ignoring ``SYNCD_*`` variables (the demo builds its own)."""
    try:
        return _DataOnlySettings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None


def config_path(explicit: str | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    path = explicit or environ.get("SYNCD_CONFIG")
    return Path(path) if path else None


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate; every problem becomes a ``ConfigError`` naming key and fix."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source=path)) from None


def describe_errors(exc: ValidationError, source: Path | None = None) -> str:
    where = f" in {source}" if source else ""
    lines = [f"invalid configuration{where}:"]
    for error in exc.errors(include_url=False, include_input=True):
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  {key}: {_explain(error)}")
    return "\n".join(lines)


def _explain(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        hint = _did_you_mean(loc)
        return f"unknown setting{hint}; see the configuration reference in the README"
    if error["type"] == "missing":
        return "required, but not set"
    value = error.get("input")
    shown = "" if _is_secret(loc) or isinstance(value, dict) else f" (got {value!r})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message}{shown}"


def _is_secret(loc: list[str]) -> bool:
    return bool(loc) and loc[-1] in {"dsn", "app_secret", "token", "aes_key"}


def _did_you_mean(loc: list[str]) -> str:
    model: type[BaseModel] = Settings
    parts = loc[:-1]
    while parts:
        if model is Settings and parts[0] == "kinds":
            model, parts = KindSettings, parts[2:]
            continue
        field = model.model_fields.get(parts[0])
        candidates = typing.get_args(field.annotation) or (field.annotation,) if field else ()
        models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not models:
            return ""
        model, parts = models[0], parts[1:]
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
