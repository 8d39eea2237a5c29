"""Attachments back into a directory (``syncd.ports.attachments_back.FileDirectory``):
``<directory>/<kind>/<business_key>/<fileId>-<name>`` with a ``.json`` sidecar of the
file's metadata. Each is written to a temporary file in the same directory, fsynced and
renamed over its final name (then the directory is fsynced): a reader never sees half a
file, and writing the same file again after a crash replaces it by the same name."""

from __future__ import annotations

import asyncio
import json
import os
import re
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

from syncd.ports.attachments_back import FetchItem, FileBack

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
#: Bytes of a name part (file systems take 255 per name; room for the id and ".json").
_MAX_PART = 180


def safe_part(text: str, fallback: str = "_") -> str:
    """``text`` as one safe path component: no separators, control characters or
    characters Windows refuses, not ``.`` or ``..``, no leading dot, at most
    ``_MAX_PART`` bytes of UTF-8."""
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip().lstrip(".")
    encoded = cleaned.encode()[:_MAX_PART]
    cleaned = encoded.decode(errors="ignore").strip()
    return cleaned or fallback


def file_path(base: Path, item: FetchItem, file: FileBack) -> Path:
    """Where a file of a round goes (the same path every time for the same file)."""
    folder = base / safe_part(item.kind) / safe_part(item.business_key)
    return folder / f"{safe_part(file.file_id)}-{safe_part(file.name, 'file')}"


class Directory:
    def __init__(self, base: str) -> None:
        self.base = Path(base)

    async def save(self, item: FetchItem, file: FileBack, chunks: AsyncIterator[bytes]) -> str:
        target = file_path(self.base, item, file)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.part")
        handle = await asyncio.to_thread(temp.open, "wb")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(_sync, handle)
        except BaseException:
            handle.close()
            temp.unlink(missing_ok=True)
            raise
        handle.close()
        meta = {**file.metadata(), "kind": item.kind, "business_key": item.business_key}
        sidecar = json.dumps(meta, ensure_ascii=False, indent=2).encode()
        await asyncio.to_thread(_commit, temp, target, sidecar)
        return str(target)


def _sync(handle: object) -> None:
    handle.flush()  # type: ignore[attr-defined]
    os.fsync(handle.fileno())  # type: ignore[attr-defined]


def _commit(temp: Path, target: Path, sidecar: bytes) -> None:
    """The file renamed into place, then its sidecar (also atomically), then the directory
    fsynced so that both renames survive a crash."""
    os.replace(temp, target)
    meta_temp = target.with_name(f".{target.name}.json.part")
    with meta_temp.open("wb") as handle:
        handle.write(sidecar)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(meta_temp, target.with_name(target.name + ".json"))
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
