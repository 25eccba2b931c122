"""Signed checkpoints: small files that pin the chain's head, to compare against later.

Anyone who can write the database can also recompute every hash after an edit; what they
cannot do is change a checkpoint an auditor exported and kept elsewhere. A checkpoint names
the head's sequence number and hash, is signed with the installation's Ed25519 audit key
(``ServiceSecrets.audit_signing_key``, generated into the data dir's secrets), and carries the
public key and its fingerprint so an auditor can pin the fingerprint once. ``verify_chain``
with a checkpoint checks that the chain still passes through the signed hash.

A checkpoint is written only over a chain that verifies: signing a broken head would launder
the tampering.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keys import VerifyKey

FORMAT = "tipline-audit-checkpoint/1"
# A restore record (tipline.audit.witness): signed like a checkpoint under its own format
# name, so a checkpoint can never be passed off as a restore or the other way round.
RESTORE_FORMAT = "tipline-audit-restore/1"
CHECKPOINT = "checkpoint"
RESTORE = "restore"
_FORMATS = {CHECKPOINT: FORMAT, RESTORE: RESTORE_FORMAT}


class CheckpointError(ValueError):
    """A checkpoint file that is malformed, unsigned, or signed by another key."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    public_key: bytes
    signature: bytes
    # RESTORE: the chain was restored from a backup; everything witnessed before this record
    # above ``since`` (the last witnessed event the restored chain still holds) was lost.
    kind: str = CHECKPOINT
    since: int | None = None

    @staticmethod
    def signed_bytes(
        seq: int, hash_: str, at: datetime, kind: str = CHECKPOINT, since: int | None = None
    ) -> bytes:
        text = f"{_FORMATS[kind]}\n{seq}\n{hash_}\n{at.astimezone(UTC).isoformat()}\n"
        if kind == RESTORE:
            text += f"{since}\n"
        return text.encode()

    @property
    def signed(self) -> bytes:
        return self.signed_bytes(self.seq, self.hash, self.at, self.kind, self.since)

    @property
    def fingerprint(self) -> str:
        return VerifyKey(self.public_key).fingerprint

    def to_json(self, indent: int | None = 1) -> str:
        data: dict[str, Any] = {
            "format": _FORMATS[self.kind],
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at.astimezone(UTC).isoformat(),
        }
        if self.kind == RESTORE:
            data["since"] = self.since
        data.update(
            key_fingerprint=self.fingerprint,
            public_key=base64.b64encode(self.public_key).decode(),
            signature=base64.b64encode(self.signature).decode(),
        )
        return json.dumps(data, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            data = json.loads(text)
            kinds = {name: kind for kind, name in _FORMATS.items()}
            if not isinstance(data, dict) or data.get("format") not in kinds:
                raise CheckpointError(f"not a {FORMAT} file")
            kind = kinds[data["format"]]
            seq, hash_ = data["seq"], data["hash"]
            if not isinstance(seq, int) or seq < 0 or not isinstance(hash_, str):
                raise CheckpointError("bad seq or hash")
            since = data.get("since") if kind == RESTORE else None
            if kind == RESTORE and (not isinstance(since, int) or not 0 <= since <= seq):
                raise CheckpointError("bad restore record")
            return cls(
                kind=kind,
                since=since,
                seq=seq,
                hash=hash_,
                at=datetime.fromisoformat(data["at"]),
                public_key=base64.b64decode(data["public_key"], validate=True),
                signature=base64.b64decode(data["signature"], validate=True),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"unreadable checkpoint ({exc.__class__.__name__})") from exc

    def check(self, trusted_key: VerifyKey | None = None) -> None:
        """Raise :class:`CheckpointError` unless signed by ``trusted_key`` (or its own key)."""
        try:
            key = VerifyKey(self.public_key)
        except ValueError as exc:
            raise CheckpointError("the checkpoint's public key is malformed") from exc
        if trusted_key is not None and key != trusted_key:
            raise CheckpointError(
                f"signed by key {key.fingerprint}, not the trusted {trusted_key.fingerprint}"
            )
        if not key.verify(self.signature, self.signed):
            raise CheckpointError("the signature does not match (file edited?)")


def load_checkpoint(source: Any, *, trusted_key: VerifyKey | None = None) -> Checkpoint:
    """A :class:`Checkpoint` from itself, a path or JSON text, with its signature checked."""
    if isinstance(source, Checkpoint):
        checkpoint = source
    else:
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise CheckpointError(f"cannot read {source}: {exc.strerror}") from exc
        checkpoint = Checkpoint.from_json(text)
    checkpoint.check(trusted_key)
    return checkpoint
