"""``[attachments]`` and a kind's ``[kinds.<name>.attachments]``: files for DDAttachment
components (contract §17), where syncd may read them from, and DingTalk's limits."""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from syncd.ports.attachments import MAX_FILE_SIZE, MAX_FILES

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class AttachmentSource(BaseModel):
    """A DDAttachment component's files: the payload path holding them, or a table of
    files joined by key.

    At ``field`` the payload holds a list (or one) of ``{name, content_base64}``,
    ``{name, path}`` or ``{name, url}``; or a ``bytea`` column's value (base64, or
    PostgreSQL's ``\\x`` hex as ``to_jsonb`` writes it), named by the payload path
    ``name_field``. With ``table`` the files are that table's rows (in syncd's PostgreSQL)
    whose ``key_column`` equals the outbox row's business key (or the payload path
    ``key``): each row one file, ``name_column`` its name, ``content_column`` (bytea) its
    bytes, ``type_column`` (optional) its type when the name has no extension; read at
    submit, in ``order_column`` order (default: the name).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str | None = Field(default=None, min_length=1, description="payload path of the file(s)")
    name_field: str | None = Field(
        default=None, description="payload path of the file name, for a bare bytea value"
    )
    table: str | None = Field(default=None, description="schema.table holding the files")
    key_column: str | None = Field(default=None, description="table column matching the key")
    key: str | None = Field(
        default=None, min_length=1, description="payload path of the key (default: business_key)"
    )
    name_column: str | None = None
    content_column: str | None = Field(default=None, description="a bytea column")
    type_column: str | None = None
    order_column: str | None = None
    required: bool = Field(
        default=True, description="table: a key with no file parks the round (false: no files)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.field is None) == (self.table is None):
            raise ValueError("set field (a payload path) or table (files joined by key), not both")
        if self.field is not None:
            table_only = [n for n in _TABLE_ONLY if getattr(self, n) is not None]
            if table_only:
                raise ValueError(f"{table_only[0]} is for table; with field, remove it")
            return self
        if self.name_field is not None:
            raise ValueError("name_field is for field; with table, set name_column")
        if not _TABLE.match(self.table or ""):
            raise ValueError(f"table {self.table!r} must be name or schema.name")
        for name in ("key_column", "name_column", "content_column"):
            if getattr(self, name) is None:
                raise ValueError(f"table {self.table}: set {name}")
        for name in ("key_column", "name_column", "content_column", "type_column", "order_column"):
            value = getattr(self, name)
            if value is not None and not _NAME.match(value):
                raise ValueError(f"{name} {value!r} must be a column name (letters, digits, _)")
        return self


_TABLE_ONLY = ("key_column", "key", "name_column", "content_column", "type_column", "order_column")


class AttachmentSettings(BaseModel):
    """[attachments]: where files may come from, and the limits they must meet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_dir: str | None = Field(
        default=None, description="files named by path must lie under this directory"
    )
    allow_hosts: list[str] = Field(
        default_factory=list, description="hosts files named by an http(s) URL may come from"
    )
    max_file_size: int = Field(default=MAX_FILE_SIZE, ge=1, le=MAX_FILE_SIZE)
    max_files: int = Field(default=MAX_FILES, ge=1, le=MAX_FILES)
    file_types: list[str] = Field(
        default_factory=list, description="allowed extensions (no dot); empty: any"
    )
    fetch_timeout: float = Field(default=30.0, gt=0, le=600)

    @field_validator("allow_hosts", "file_types")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [v.strip().lower().lstrip(".") for v in values]
