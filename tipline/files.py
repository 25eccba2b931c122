"""The file store: sealed attachment bytes under ``<data_dir>/files``, named at random.

Only ciphertext is written here (sealed to the tip's key by the media worker), so the store
needs no protection beyond the database's. A reference is a random token; nothing in a name
says which tip or informant a file belongs to.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from keys import new_token

_REF = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# What every Tipline process starts with (keep_files_private): no group or other bits on
# anything it, SQLite, the embedded Redis or gunicorn creates.
PRIVATE_UMASK = 0o077


def keep_files_private() -> None:
    """Set this process's umask to 077 (its children inherit it): the first thing every entry
    point does (`tipline ...`, the WSGI modules), so a copy of the data dir taken by another
    account of the machine (or a world-readable backup of it) holds nothing."""
    os.umask(PRIVATE_UMASK)


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or a quota) is full: an OSError of the file store, or
    the database's own error (SQLite "database or disk is full", PostgreSQL's 53100)."""
    for error in (exc, getattr(exc, "orig", None), exc.__cause__):
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if error is not None and getattr(error, "sqlstate", None) == "53100":
            return True
        if error is not None and "database or disk is full" in str(error):
            return True
    return False


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> FileStore:
        return cls(data_dir / "files")

    def _path(self, ref: str) -> Path:
        if not _REF.match(ref):
            raise ValueError("not a file store reference")
        return self.root / ref

    def put(self, data: bytes) -> str:
        """Write ``data`` (already sealed) and return its reference."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        ref = new_token(32)
        self.replace(ref, data)
        return ref

    def replace(self, ref: str, data: bytes) -> None:
        """Write ``data`` as ``ref`` at once: whole or not at all (a new file, or one sealed
        again to a newer key)."""
        path = self._path(ref)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except BaseException:  # a full disk, a crash of the write: no partial file stays
            tmp.unlink(missing_ok=True)
            raise

    def get(self, ref: str) -> bytes:
        return self._path(ref).read_bytes()

    def delete(self, ref: str) -> None:
        self._path(ref).unlink(missing_ok=True)
