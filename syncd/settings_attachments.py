"""``[attachments]`` and a kind's ``[kinds.<name>.attachments]``: files for DDAttachment
components (contract §17), where syncd may read them from, and DingTalk's limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from syncd.ports.attachments import MAX_FILE_SIZE, MAX_FILES


class AttachmentSource(BaseModel):
    """A DDAttachment component's files: the payload path holding them.

    The value there is a list (or one) of ``{name, content_base64}``, ``{name, path}`` or
    ``{name, url}``; or a ``bytea`` column's value (base64, or PostgreSQL's ``\\x`` hex as
    ``to_jsonb`` writes it), named by the payload path ``name_field``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(min_length=1, description="payload path of the file(s)")
    name_field: str | None = Field(
        default=None, description="payload path of the file name, for a bare bytea value"
    )


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
