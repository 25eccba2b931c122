"""The attacker's search of a seized copy: every envelope and wrap in the bytes, every key.

Black box about where keys live: the search starts from the bytes of the copy only (and, for
the positive control, from keys the caller says were in memory), and opens what it can:

1. Envelopes are found by their header (``keys.envelope``: ``b"TE"``, a readable format
   version, a suite id of ``keys.suites``, 4-byte key version: a key's version, or for what is
   sealed to transit the epoch's number) anywhere in any byte: database files and WAL, free
   pages, PostgreSQL heap and WAL, Redis dumps, files, logs, base64 inside any of these, and
   plaintexts already opened. Secret boxes (``keys.secret_box``: ``b"TS"``, version 1, a
   12-byte nonce, AES-256-GCM under a random 32-byte key) likewise. Argon2id wraps (``b"TW"``,
   ``keys.password``) likewise; the officers' session wraps are found base64-encoded (Redis
   sessions) or as raw values.
2. Keys: X25519 private keys given raw, base64 or hex in the secrets files, the environment,
   anywhere base64 in the copy, Redis values of key size; then every key a grant, a session
   wrap, an Argon2id wrap or a plaintext (a key in a JSON body) gives, to a fixed point. Every
   32-byte value is also a secret: a session wrap's, and a secret box's AES key.
3. Each key is tried on each envelope with the purposes and bindings of the sealing contract
   (``tipline.models.sealed_fields``), the identifiers of each binding taken from the row the
   envelope was read back from, from the bytes around it, or (for an envelope no live row
   holds: a deleted or overwritten value) from every identifier of the copied database that
   can fill that binding. Each secret is tried on each secret box the same way (its purpose
   and binding are its associated data).

An envelope of format 2 says its plaintext's length in its first bytes (``keys.envelope``:
length, plaintext, zero padding to its bucket), so its end follows from the first block of a
guess; one of format 1, or a secret box, whose end is unknown (its length is in a record header
elsewhere) is read through the AES-GCM keystream and its end found from its plaintext. A tag
that checks makes a complete opening, a readable plaintext whose tag cannot be checked (cut by
a page boundary) a partial one. Either is a finding. (A secret box's keystream does not depend
on its purpose and binding: the right key reads it even when no binding of the copy checks.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys import (
    PrivateKey,
    WrongSecret,
    open_grant,
    open_sealed,
    open_with_key,
    unwrap_from_session,
    unwrap_with_secret,
)
from keys import secret_box as box_format
from keys.envelope import _HEADER as ENVELOPE_HEADER
from keys.envelope import MAGIC, PADDED_FORMAT_VERSION, READABLE_VERSIONS, _info, padded_size
from keys.grants import GRANT_PURPOSE
from keys.password import _WRAP_HEADER, KdfCost, _derive
from keys.session import SECRET_BYTES
from keys.suites import SUITES as PRODUCT_SUITES
from tests.seizure.hpke import SUITES, TAG, first_block, keystream_open, tag_open
from tests.seizure.seize import Blob
from tipline.models.sealed_fields import (
    SEALED_FIELDS,
    Envelope,
    Grant,
    SecretBox,
    SecretWrap,
    SessionWrap,
)

HEADER = ENVELOPE_HEADER.size
LENGTH = 4  # format 2: the plaintext's length before it (big endian)
BOX_MAGIC = box_format.MAGIC + bytes([box_format.FORMAT_VERSION])
BOX_HEADER = len(BOX_MAGIC)
BOX_NONCE = 12
# The largest value read past an envelope's start when its end is unknown.
MAX_SOFT = 256 * 1024
# The largest plaintext a format-2 envelope is believed to state (a file: 64 MiB).
MAX_PLAINTEXT = 64 * 1024 * 1024
# Bytes before an envelope whose identifiers may fill its binding: its row's columns before
# it (every sealed column comes after the identifiers of its row, in both databases' layouts,
# within a few hundred bytes).
WINDOW = 512
# Argon2id wraps costlier than this are not tried (a production cost: hours for this search).
MAX_WRAP_MEMORY_KIB = 256 * 1024

PUBLIC_ID = re.compile(rb"[0-9a-hjkmnp-tv-z]{16,48}")
HEX64 = re.compile(rb"[0-9a-f]{64,128}")
RECEIPT = re.compile(rb"TL-[0-9A-Z]{4}-[0-9A-Z]{4}")
DIGITS = re.compile(rb"[0-9]{15,40}")
BASE64 = re.compile(rb"[A-Za-z0-9+/_-]{40,}={0,2}")
SESSION_WRAP_BYTES = 12 + 33 + 16
# The source of a key the caller says was held only in memory (and of all it opens).
MEMORY = "in memory: "
# The source of a secret no attacker of the copy has, given for a positive control only (an
# officer's password), and of all it opens.
CONTROL = "control only: "
PLAINTEXT = "plaintext of "  # the label of what an opening gave


# --- what the search holds ----------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A key or secret, and where the attacker got it."""

    value: bytes
    source: str


@dataclass(frozen=True)
class Opening:
    """Something the copy gave away: a field of the sealing contract opened with a key."""

    field: str  # sealed_fields name
    binding: str  # the row it belongs to
    key: str  # where the key came from
    where: str  # where the sealed value was found
    plaintext: bytes
    complete: bool  # the tag checked; False: read through the keystream, end cut off
    # An envelope's header: the version of the key it names (for transit, the epoch's number).
    key_version: int | None = None

    def describe(self) -> str:
        what = "opened" if self.complete else "partly read (keystream, no tag)"
        if len(self.plaintext) == 33 and self.plaintext[0] in PRODUCT_SUITES:
            shown = "a private key"
        else:
            shown = repr(self.plaintext[:120].decode("utf-8", "replace").replace("\n", " "))
        version = "" if self.key_version is None else f" (sealed to key version {self.key_version})"
        return (
            f"{self.field} [{self.binding}]{version} {what} with key <{self.key}>, "
            f"found in {self.where}: {shown}"
        )


@dataclass(frozen=True)
class Occurrence:
    blob: Blob
    offset: int
    hard_ends: tuple[int, ...]  # absolute ends the container gives (a length, a file's end)

    @property
    def where(self) -> str:
        return f"{self.blob.label} @ {self.offset}"


@dataclass
class Group:
    """One envelope (one ``enc``), wherever it was found."""

    header: bytes
    enc: bytes
    occurrences: list[Occurrence] = field(default_factory=list)
    opened: Opening | None = None
    live: bool = False  # read back from a row of the copied database
    local: set[str] = field(default_factory=set)  # identifiers around it
    local_ints: set[int] = field(default_factory=set)

    @property
    def version(self) -> int:
        return self.header[2]

    @property
    def key_version(self) -> int:
        return int.from_bytes(self.header[4:8], "big")


@dataclass
class Box:
    """One secret box (``keys.secret_box``; one nonce), wherever it was found."""

    nonce: bytes
    occurrences: list[Occurrence] = field(default_factory=list)
    opened: Opening | None = None
    live: bool = False
    local: set[str] = field(default_factory=set)


@dataclass
class Wrap:
    """An Argon2id wrap (``keys.password``) or a session wrap (``keys.session``)."""

    data: bytes
    where: str
    session: bool
    local: set[str] = field(default_factory=set)
    opened: Opening | None = None


@dataclass
class Identifiers:
    """What bindings are made of, by the name of the binding function's parameter."""

    by_param: dict[str, set[str]] = field(default_factory=dict)
    ints_by_kind: dict[str, set[int]] = field(default_factory=dict)
    strings: set[str] = field(default_factory=set)  # every identifier, for unknown parameters
    ints: set[int] = field(default_factory=set)

    def add(self, param: str, value: str) -> None:
        self.by_param.setdefault(param, set()).add(value)
        self.strings.add(value)


# --- the contract: what a binding is made of ---------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    name: str
    purpose: str | None
    kind: str  # "envelope", "grant", "secret_box", "secret_wrap", "session_wrap"
    binding: Any
    params: tuple[str, ...]
    stored_in: str


def contract() -> list[FieldSpec]:
    specs = []
    for sealed in SEALED_FIELDS:
        params = tuple(inspect.signature(sealed.binding).parameters)
        if isinstance(sealed, Grant):
            kind, purpose = "grant", GRANT_PURPOSE
        elif isinstance(sealed, Envelope):
            kind, purpose = "envelope", sealed.purpose
        elif isinstance(sealed, SecretBox):
            kind, purpose = "secret_box", sealed.purpose
        elif isinstance(sealed, SecretWrap):
            kind, purpose = "secret_wrap", None
        elif isinstance(sealed, SessionWrap):
            kind, purpose = "session_wrap", None
        else:  # a new mechanism: the search must learn it, not skip it
            raise AssertionError(f"the seizure search does not know {type(sealed).__name__}")
        specs.append(
            FieldSpec(sealed.name, purpose, kind, sealed.binding, params, sealed.stored_in)
        )
    return specs


# Parameter name -> the table whose ``public_id`` fills it (others: every public id).
PUBLIC_ID_TABLES = {
    "message_public_id": "messages",
    "tip_public_id": "tips",
    "attachment_public_id": "attachments",
    "officer_public_id": "officers",
}


def identifiers_of_rows(tables: dict[str, list[dict[str, Any]]]) -> Identifiers:
    """Every identifier of the copied database, sorted by the binding parameter it can fill."""
    ids = Identifiers()
    params = {p for spec in contract() for p in spec.params}
    for table, rows in tables.items():
        for row in rows:
            for column, value in row.items():
                if isinstance(value, bool):
                    continue
                if isinstance(value, int):
                    ids.ints.add(value)
                    if column == "id":
                        ids.ints_by_kind.setdefault(table, set()).add(value)
                    continue
                if not isinstance(value, str) or not value:
                    continue
                if column in params:
                    ids.add(column, value)
                if column == "public_id":
                    for param, owner in PUBLIC_ID_TABLES.items():
                        if owner == table:
                            ids.add(param, value)
                    ids.add("public_id", value)
                elif len(value) <= 128:
                    ids.strings.add(value)
    return ids


def identifiers_in(data: bytes) -> set[str]:
    """Identifier-shaped strings in raw bytes. A run longer than an identifier (a value
    written right against its neighbour, as in an SQLite record) gives its two ends."""
    found: set[str] = set()
    for pattern, size in ((PUBLIC_ID, 16), (HEX64, 64)):
        for match in pattern.finditer(data):
            run = match.group().decode()
            if size == 16 and len(run) >= 64 and re.fullmatch(r"[0-9a-f]+", run):
                continue  # a hex digest, not a public id
            found.update({run[:size], run[-size:]})
    found.update(m.group().decode() for m in RECEIPT.finditer(data))
    for match in DIGITS.finditer(data):
        run = match.group().decode()
        found.update({run} if len(run) <= 20 else {run[:19], run[-19:]})
    return found


def _shape(value: str) -> str:
    if re.fullmatch(r"[0-9a-hjkmnp-tv-z]{16}", value):
        return "public_id"
    if re.fullmatch(r"[0-9a-f]{64}", value):
        return "hex"
    if re.fullmatch(r"TL-[0-9A-Z]{4}-[0-9A-Z]{4}", value):
        return "receipt"
    if value.isdigit():
        return "digits"
    return "other"


# Which shapes may fill a parameter (unknown parameters: any).
PARAM_SHAPES = {
    "informant_alias": {"hex"},
    "dedup_key": {"hex"},
    "oa_id": {"digits"},
    "receipt_code": {"receipt"},
}


def _values_for(param: str, ids: Identifiers, local: set[str], orphan: bool) -> set[str]:
    shapes = PARAM_SHAPES.get(param, {"public_id"} if param.endswith("public_id") else None)
    values = {v for v in local if shapes is None or _shape(v) in shapes}
    if orphan:
        if param in ids.by_param:
            values |= ids.by_param[param]
        elif param.endswith("public_id"):
            values |= ids.by_param.get("public_id", set())
        else:  # a parameter this search has no table for: every identifier of the copy
            values |= {v for v in ids.strings if shapes is None or _shape(v) in shapes}
    return values


def _grant_bindings(
    spec: FieldSpec, ids: Identifiers, local_ints: set[int], orphan: bool
) -> Iterator[str]:
    """Grant links, each kind's ids from the copied tables (see :func:`_kind_ids`)."""
    from tipline.models import Holder, Subject

    for subject in Subject:
        for holder in Holder:
            for subject_id in _kind_ids(subject.value, ids, local_ints, orphan):
                for holder_id in _kind_ids(holder.value, ids, local_ints, orphan):
                    yield spec.binding(subject.value, subject_id, holder.value, holder_id)


def _kind_ids(kind: str, ids: Identifiers, local: set[int], orphan: bool) -> set[int]:
    """A row's own ids; for a deleted row, the ids of the tables named after the kind
    ("tip": tips, "transit": any "transit…" table) or, with no such table, 0 to 7."""
    if not orphan:
        return local | {0}
    tables = [t for t in ids.ints_by_kind if t.startswith(kind)]
    found = set().union(*(ids.ints_by_kind[t] for t in tables)) if tables else set(range(8))
    return local | found | {0}


def bindings(
    spec: FieldSpec, ids: Identifiers, local: set[str], local_ints: set[int], orphan: bool
) -> set[str]:
    if spec.kind == "grant":
        return set(_grant_bindings(spec, ids, local_ints, orphan))
    if not spec.params:
        return {spec.binding()}
    pools = [sorted(_values_for(p, ids, local, orphan)) for p in spec.params]
    out: set[str] = set()

    def fill(i: int, chosen: list[str]) -> None:
        if i == len(pools):
            out.add(spec.binding(*chosen))
            return
        for value in pools[i]:
            fill(i + 1, [*chosen, value])

    fill(0, [])
    return out


# --- finding sealed values in bytes -------------------------------------------------------


def _suite_ids() -> list[int]:
    return sorted(PRODUCT_SUITES)


def envelope_starts(data: bytes) -> Iterator[int]:
    for version in sorted(READABLE_VERSIONS):
        for suite in _suite_ids():
            marker = MAGIC + bytes([version, suite])
            start = data.find(marker)
            while start >= 0:
                yield start
                start = data.find(marker, start + 1)


def box_starts(data: bytes) -> Iterator[int]:
    start = data.find(BOX_MAGIC)
    while start >= 0:
        yield start
        start = data.find(BOX_MAGIC, start + 1)


def _hard_ends(blob: Blob, offset: int, minimum: int = HEADER + 32 + TAG) -> tuple[int, ...]:
    """Where the container says the value ends: a whole value, or a PostgreSQL varlena."""
    data = blob.data
    ends = []
    if blob.whole_value and offset == 0:
        ends.append(len(data))
    if not blob.label.startswith("postgresql"):
        return tuple(ends)
    if offset >= 1 and data[offset - 1] & 1 and data[offset - 1] != 1:
        end = offset - 1 + (data[offset - 1] >> 1)  # 1-byte varlena header (length included)
        if offset + minimum <= end <= len(data):
            ends.append(end)
    if offset >= 4:
        word = int.from_bytes(data[offset - 4 : offset], "little")
        if word & 3 == 0:
            end = offset - 4 + (word >> 2)  # 4-byte varlena header, uncompressed
            if offset + minimum <= end <= len(data):
                ends.append(end)
    return tuple(sorted(set(ends)))


def base64_values(data: bytes) -> Iterator[tuple[bytes, bool]]:
    """Bytes of each base64 (standard or URL-safe) run, whole (True), or of a key- or
    wrap-sized piece at either end of it (False: a run may go on into a neighbour, as a
    msgpack length byte that happens to be a letter)."""
    for match in BASE64.finditer(data):
        run = match.group()
        pieces = {run: True, run[1:]: True}
        for size in (43, 44, 84, 120):
            if len(run) > size:
                pieces.setdefault(run[:size], False)
                pieces.setdefault(run[-size:], False)
        for text, whole in pieces.items():
            bare = text.rstrip(b"=")
            padded = bare + b"=" * (-len(bare) % 4)
            for alphabet in (None, b"-_"):
                try:
                    yield base64.b64decode(padded, altchars=alphabet, validate=True), whole
                except (binascii.Error, ValueError):
                    continue


# --- the search ---------------------------------------------------------------------------


class Search:
    def __init__(
        self,
        blobs: Iterable[Blob],
        ids: Identifiers,
        tried: set[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.ids = ids
        self.specs = contract()
        self.groups: dict[bytes, Group] = {}
        self.boxes: dict[bytes, Box] = {}  # by nonce
        self.wraps: dict[bytes, Wrap] = {}
        self.keys: dict[bytes, Found] = {}  # raw 32-byte X25519 scalar -> where from
        self.secrets: dict[bytes, Found] = {}  # 32-byte secrets (session wraps, secret boxes)
        self.strings: dict[str, Found] = {}  # secrets people or configs give (Argon2id, HMAC)
        self.openings: list[Opening] = []
        self.blobs: list[Blob] = []
        self.decoded: list[Blob] = []  # base64 found in the blobs, decoded
        # (enc, key) and (box nonce, secret) pairs already tried, here or by another search
        # of the same bytes.
        self.tried: set[tuple[bytes, bytes]] = set(tried or ())
        self._wrap_tried: set[tuple[bytes, bytes | str]] = set()
        self._info_hash: dict[tuple[int, bytes], bytes] = {}
        self._seen: set[bytes] = set()
        self._deadline = 0.0
        self.guesses = 0
        self.seconds = 0.0
        for blob in blobs:
            self.add_blob(blob)

    # --- taking in bytes ------------------------------------------------------------------

    def add_blob(self, blob: Blob, decode: bool = True) -> None:
        """Take in bytes: scan them for envelopes and wraps, and base64 in them for keys,
        secrets, wraps and envelopes. Identical bytes are taken once (a row's value once per
        row: its identifiers are its binding's)."""
        fingerprint = (
            hashlib.sha256(blob.data).digest()
            + bytes([blob.whole_value])
            + (blob.label.encode() if blob.row else b"")
        )
        if fingerprint in self._seen:
            return
        self._seen.add(fingerprint)
        self.blobs.append(blob)
        self._scan_envelopes(blob)
        self._scan_boxes(blob)
        self._scan_wraps(blob)
        if blob.whole_value and blob.row is None:  # a Redis value, a file: a raw key, a wrap?
            self._take_value(blob, blob.data, True, blob.label)
        if decode:
            for n, (value, whole) in enumerate(base64_values(blob.data)):
                decoded = Blob(f"base64 #{n} in {blob.label}", value, whole_value=True)
                self._take_value(decoded, value, whole, f"base64 in {blob.label}")
                if MAGIC in value or BOX_MAGIC in value or b"TW" in value:
                    self.add_blob(decoded, decode=False)
                if not blob.label.startswith(PLAINTEXT) and len(value) >= 8:
                    self.decoded.append(decoded)

    def _take_value(self, blob: Blob, data: bytes, whole: bool, source: str) -> None:
        """A value of a key's, a secret's or a session wrap's size is one, maybe."""
        if whole and len(data) == 33 and data[0] in PRODUCT_SUITES:
            self.add_key(data, source)
        elif whole and len(data) == SECRET_BYTES:
            self.add_secret(data, source)
        elif len(data) == SESSION_WRAP_BYTES:
            self._add_wrap(data, blob.label, session=True, local=set())

    def _scan_envelopes(self, blob: Blob) -> None:
        data = blob.data
        for start in envelope_starts(data):
            suite = SUITES.get(data[start + 3])
            if suite is None:  # a suite the attacker's HPKE does not know: the self check fails
                continue
            enc = data[start + HEADER : start + HEADER + suite.params.enc_length]
            if len(enc) < suite.params.enc_length:
                continue
            group = self.groups.get(enc)
            if group is None:
                group = self.groups[enc] = Group(data[start : start + HEADER], enc)
            occurrence = Occurrence(blob, start, _hard_ends(blob, start))
            if len(group.occurrences) < 8:
                group.occurrences.append(occurrence)
            if blob.row is not None:
                group.live = True
                row = blob.row[1]
                for value in row.values():
                    if isinstance(value, str) and len(value) <= 128:
                        group.local.add(value)
                    elif isinstance(value, int) and not isinstance(value, bool):
                        group.local_ints.add(value)
            else:
                window = data[max(0, start - WINDOW) : start + HEADER + 32]
                group.local |= identifiers_in(window)

    def _scan_boxes(self, blob: Blob) -> None:
        data = blob.data
        for start in box_starts(data):
            body = start + BOX_HEADER + BOX_NONCE
            if body + TAG > len(data):
                continue
            nonce = data[start + BOX_HEADER : body]
            box = self.boxes.get(nonce)
            if box is None:
                box = self.boxes[nonce] = Box(nonce)
            occurrence = Occurrence(blob, start, _hard_ends(blob, start, body - start + TAG))
            if len(box.occurrences) < 8:
                box.occurrences.append(occurrence)
            if blob.row is not None:
                box.live = True
                row = blob.row[1]
                box.local |= {v for v in row.values() if isinstance(v, str) and len(v) <= 128}
            else:
                box.local |= identifiers_in(data[max(0, start - WINDOW) : start])

    def _scan_wraps(self, blob: Blob) -> None:
        data = blob.data
        start = data.find(b"TW\x01")
        while start >= 0:
            chunk = data[start : start + _WRAP_HEADER.size + 33 + TAG]
            if len(chunk) == _WRAP_HEADER.size + 33 + TAG:
                local: set[str] = set()
                if blob.row is not None:
                    local = {v for v in blob.row[1].values() if isinstance(v, str)}
                else:
                    local = identifiers_in(data[max(0, start - WINDOW) : start])
                self._add_wrap(chunk, f"{blob.label} @ {start}", session=False, local=local)
            start = data.find(b"TW\x01", start + 1)

    def _add_wrap(self, data: bytes, where: str, *, session: bool, local: set[str]) -> None:
        wrap = self.wraps.get(data)
        if wrap is None:
            self.wraps[data] = Wrap(data, where, session, set(local))
        else:
            wrap.local |= local

    def add_key(self, value: bytes | PrivateKey, source: str) -> None:
        raw = value.to_bytes() if isinstance(value, PrivateKey) else bytes(value)
        if len(raw) == 33 and raw[0] in PRODUCT_SUITES:
            raw = raw[1:]
        if len(raw) != 32:
            return
        self.keys.setdefault(raw, Found(raw, source))
        self.secrets.setdefault(raw, Found(raw, source))

    def add_secret(self, value: bytes, source: str) -> None:
        """A 32-byte value: a session secret, and (every 32 bytes are an X25519 scalar) a key."""
        if len(value) == SECRET_BYTES:
            self.secrets.setdefault(value, Found(value, source))
            self.keys.setdefault(value, Found(value, source))

    def add_string(self, value: str, source: str) -> None:
        """A secret a configuration or person gives (Argon2id wraps, HMAC keys)."""
        if value:
            self.strings.setdefault(value, Found(value.encode(), source))
        for decoded in _decodings(value):
            if len(decoded) in (32, 33):
                self.add_key(decoded, f"{source} (decoded)")

    # --- the fixed point --------------------------------------------------------------------

    def run(self, deadline: float = 120.0) -> None:
        started = time.monotonic()
        self._deadline = started + deadline
        while True:
            before = self._size()
            self._open_envelopes()
            self._open_boxes()
            self._open_wraps()
            if self._size() == before:
                break
            if time.monotonic() - started > deadline:
                raise AssertionError("the seizure search did not reach a fixed point in time")
        self.seconds += time.monotonic() - started

    def _size(self) -> tuple[int, ...]:
        sizes = (self.keys, self.secrets, self.groups, self.boxes, self.wraps)
        return tuple(len(held) for held in sizes)

    def _open_envelopes(self) -> None:
        for group in list(self.groups.values()):
            if group.opened is not None:
                continue
            suite = SUITES[group.header[3]]
            infos: list[tuple[FieldSpec, str, bytes]] | None = None
            for raw, found in list(self.keys.items()):
                if (group.enc, raw) in self.tried:
                    continue
                if time.monotonic() > self._deadline:
                    raise AssertionError(f"the seizure search ran out of time: {self.stats()}")
                self.tried.add((group.enc, raw))
                secret = suite.schedule_secret(raw, group.enc)
                if secret is None:
                    continue
                if infos is None:
                    infos = self._infos(group)
                opening = self._try(group, suite, secret, found, infos)
                if opening is not None:
                    group.opened = opening
                    self._learn(opening, group, found)
                    break

    def _infos(self, group: Group) -> list[tuple[FieldSpec, str, bytes]]:
        orphan = not group.live
        out = []
        suite = SUITES[group.header[3]]
        for spec in self.specs:
            if spec.kind not in ("envelope", "grant"):
                continue
            for binding in bindings(spec, self.ids, group.local, group.local_ints, orphan):
                key = (id(spec), group.header + binding.encode())
                info_hash = self._info_hash.get(key)
                if info_hash is None:
                    info_hash = suite.info_hash(_info(group.header, spec.purpose, binding))
                    self._info_hash[key] = info_hash
                out.append((spec, binding, info_hash))
        return out

    def _try(
        self,
        group: Group,
        suite: Any,
        secret: bytes,
        found: Found,
        infos: list[tuple[FieldSpec, str, bytes]],
    ) -> Opening | None:
        occurrences = _representatives(group)
        first = occurrences[0]
        start = first.offset + HEADER + 32
        ciphertext = first.blob.data[start : start + 16]
        exact = [o for o in occurrences if o.blob.whole_value and o.offset == 0]
        padded = group.version == PADDED_FORMAT_VERSION
        for spec, binding, info_hash in infos:
            self.guesses += 1
            key, nonce = suite.key_and_nonce(secret, info_hash)
            for occurrence in exact:  # a value whose end is known: one tag check settles it
                opening = self._open_exact(occurrence, spec, binding, key, nonce, found, padded)
                if opening is not None:
                    return opening
            head = first_block(key, nonce, ciphertext)
            shape, length = _padded_shape_of(head) if padded else (_shape_of(head), None)
            if shape is None:
                continue
            for occurrence in occurrences:
                if occurrence in exact:
                    continue
                opening = self._open_at(occurrence, spec, binding, key, nonce, found, shape, length)
                if opening is not None:
                    return opening
        return None

    def _open_exact(
        self,
        occ: Occurrence,
        spec: FieldSpec,
        binding: str,
        key: bytes,
        nonce: bytes,
        found: Found,
        padded: bool,
    ) -> Opening | None:
        data = occ.blob.data
        plaintext = tag_open(key, nonce, data[HEADER + 32 :])
        if plaintext is not None and padded:
            plaintext = _unframe(plaintext)
        if plaintext is None:
            return None
        return self._confirm(spec, binding, found, occ, data, plaintext)

    def _open_at(
        self,
        occ: Occurrence,
        spec: FieldSpec,
        binding: str,
        key: bytes,
        nonce: bytes,
        found: Found,
        shape: str,
        length: int | None,
    ) -> Opening | None:
        """An envelope inside other bytes whose plaintext starts like ``shape``: find its end
        (the container's length; for format 2 the length its plaintext states, padded or not;
        for format 1 a key's size, where its JSON or text ends) and check the tag.
        ``length``: the plaintext's stated length (format 2), None for format 1."""
        data = occ.blob.data
        body = occ.offset + HEADER + 32
        ends = list(occ.hard_ends)
        if length is not None:
            framed = LENGTH + length
            ends += [body + framed + TAG, body + padded_size(framed) + TAG]
        elif shape == "key":
            ends.append(body + 33 + TAG)
        for end in dict.fromkeys(ends):
            plaintext = tag_open(key, nonce, data[body:end]) if end <= len(data) else None
            if plaintext is not None and length is not None:
                plaintext = _unframe(plaintext)
            if plaintext is not None:
                return self._confirm(spec, binding, found, occ, data[occ.offset : end], plaintext)
        if shape != "text":
            return None
        if length is not None:  # cut short or overwritten: read what is left of it
            stream = keystream_open(key, nonce, data[body : body + min(LENGTH + length, MAX_SOFT)])
            text = stream[LENGTH:]
            text_end = _readable_length(text)
            if text_end >= min(24, length) and text_end >= 12:
                return Opening(
                    spec.name,
                    binding,
                    found.source,
                    occ.where,
                    text[:text_end],
                    False,
                    _key_version(data, occ.offset),
                )
            return None
        stream = keystream_open(key, nonce, data[body : body + MAX_SOFT])
        text_end = _readable_length(stream)
        for size in _candidate_lengths(stream, text_end):
            end = body + size + TAG
            if end > len(data):
                continue
            plaintext = tag_open(key, nonce, data[body:end])
            if plaintext is not None:
                return self._confirm(spec, binding, found, occ, data[occ.offset : end], plaintext)
        if text_end >= 24:
            return Opening(
                spec.name,
                binding,
                found.source,
                occ.where,
                stream[:text_end],
                False,
                _key_version(data, occ.offset),
            )
        return None

    def _confirm(
        self,
        spec: FieldSpec,
        binding: str,
        found: Found,
        occ: Occurrence,
        envelope: bytes,
        plaintext: bytes,
    ) -> Opening:
        """The product's own open agrees (no false finding from the attacker's HPKE)."""
        private = PrivateKey.from_bytes(bytes([envelope[3]]) + found.value)
        if spec.kind == "grant":
            assert open_grant(envelope, private, binding=binding).to_bytes() == plaintext
        else:
            assert spec.purpose is not None
            assert (
                open_sealed(private, envelope, purpose=spec.purpose, binding=binding) == plaintext
            )
        return Opening(
            spec.name, binding, found.source, occ.where, plaintext, True, _key_version(envelope, 0)
        )

    def _learn(self, opening: Opening, group: Group, found: Found) -> None:
        self.openings.append(opening)
        label = f"{opening.field} [{opening.binding}] opened with <{found.source}>"
        if opening.field == "KEY_GRANT" and opening.complete:
            self.add_key(opening.plaintext, label)
        self.add_blob(Blob(f"{PLAINTEXT}{label}", opening.plaintext))

    def _open_boxes(self) -> None:
        specs = [spec for spec in self.specs if spec.kind == "secret_box"]
        for box in list(self.boxes.values()):
            if box.opened is not None:
                continue
            aads: list[tuple[FieldSpec, str, bytes]] | None = None
            first = _representatives(box)[0]
            start = first.offset + BOX_HEADER + BOX_NONCE
            ciphertext = first.blob.data[start : start + 16]
            for raw, found in list(self.secrets.items()):
                if (box.nonce, raw) in self.tried:
                    continue
                if time.monotonic() > self._deadline:
                    raise AssertionError(f"the seizure search ran out of time: {self.stats()}")
                self.tried.add((box.nonce, raw))
                self.guesses += 1
                # AES-GCM's keystream depends on the key and nonce only: one block judges the
                # key; the purposes and bindings are tried on the tag.
                shape = _shape_of(first_block(raw, box.nonce, ciphertext))
                if shape is None:
                    continue
                if aads is None:
                    aads = [
                        (spec, binding, box_format._aad(spec.purpose or "", binding))
                        for spec in specs
                        for binding in bindings(spec, self.ids, box.local, set(), not box.live)
                    ]
                opening = self._open_box(box, raw, found, shape, aads)
                if opening is not None:
                    box.opened = opening
                    self.openings.append(opening)
                    label = f"{opening.field} [{opening.binding}] opened with <{found.source}>"
                    self.add_blob(Blob(f"{PLAINTEXT}{label}", opening.plaintext))
                    break

    def _open_box(
        self,
        box: Box,
        raw: bytes,
        found: Found,
        shape: str,
        aads: list[tuple[FieldSpec, str, bytes]],
    ) -> Opening | None:
        """A secret box whose plaintext starts like ``shape`` under ``raw``: find its end (the
        container's, a key's size, where its JSON or text ends), check the tag with each
        purpose and binding; a readable plaintext no tag confirms is a partial opening."""
        aead = AESGCM(raw)
        partial: Opening | None = None
        for occ in _representatives(box):
            data = occ.blob.data
            body = occ.offset + BOX_HEADER + BOX_NONCE
            ends = list(occ.hard_ends)
            text_end = 0
            stream = b""
            if shape == "key":
                ends.append(body + 33 + TAG)
            elif shape == "text":
                stream = keystream_open(raw, box.nonce, data[body : body + MAX_SOFT])
                text_end = _readable_length(stream)
                ends += [body + size + TAG for size in _candidate_lengths(stream, text_end)]
            for end in dict.fromkeys(ends):
                if end > len(data):
                    continue
                for spec, binding, aad in aads:
                    try:
                        plaintext = aead.decrypt(box.nonce, data[body:end], aad)
                    except InvalidTag:
                        continue
                    sealed = data[occ.offset : end]
                    assert spec.purpose is not None  # the product's own open agrees
                    assert (
                        open_with_key(raw, sealed, purpose=spec.purpose, binding=binding)
                        == plaintext
                    )
                    return Opening(spec.name, binding, found.source, occ.where, plaintext, True)
            if partial is None and text_end >= 24:
                names = "|".join(spec.name for spec in self.specs if spec.kind == "secret_box")
                unknown = "no purpose and binding of the copy checks its tag"
                partial = Opening(names, unknown, found.source, occ.where, stream[:text_end], False)
        return partial

    def _open_wraps(self) -> None:
        for wrap in list(self.wraps.values()):
            if wrap.opened is not None:
                continue
            if wrap.session:
                self._open_session_wrap(wrap)
            else:
                self._open_secret_wrap(wrap)

    def _wrap_bindings(self, kind: str, wrap: Wrap) -> list[tuple[FieldSpec, str]]:
        out = []
        for spec in self.specs:
            if spec.kind != kind:
                continue
            for binding in bindings(spec, self.ids, wrap.local, set(), orphan=True):
                out.append((spec, binding))
        return out

    def _open_session_wrap(self, wrap: Wrap) -> None:
        candidates = self._wrap_bindings("session_wrap", wrap)
        for raw, found in list(self.secrets.items()):
            if (wrap.data, raw) in self._wrap_tried:
                continue
            self._wrap_tried.add((wrap.data, raw))
            for spec, binding in candidates:
                try:
                    key = unwrap_from_session(wrap.data, raw, binding=binding)
                except (WrongSecret, ValueError):
                    continue
                self._wrap_opened(wrap, spec, binding, found, key)
                return

    def _open_secret_wrap(self, wrap: Wrap) -> None:
        _, _, t, m, p, salt, nonce = _WRAP_HEADER.unpack_from(wrap.data)
        if m > MAX_WRAP_MEMORY_KIB:
            return
        header = wrap.data[: _WRAP_HEADER.size]
        candidates = self._wrap_bindings("secret_wrap", wrap)
        for secret, found in list(self.strings.items()):
            if (wrap.data, secret) in self._wrap_tried:
                continue
            self._wrap_tried.add((wrap.data, secret))
            kek = _derive(secret, salt, KdfCost(t, m, p))
            for spec, binding in candidates:
                try:
                    AESGCM(kek).decrypt(
                        nonce, wrap.data[_WRAP_HEADER.size :], header + binding.encode()
                    )
                except InvalidTag:
                    continue
                key = unwrap_with_secret(wrap.data, secret, binding=binding)
                self._wrap_opened(wrap, spec, binding, found, key)
                return

    def _wrap_opened(
        self, wrap: Wrap, spec: FieldSpec, binding: str, found: Found, key: PrivateKey
    ) -> None:
        opening = Opening(spec.name, binding, found.source, wrap.where, key.to_bytes(), True)
        wrap.opened = opening
        self.openings.append(opening)
        self.add_key(key, f"{spec.name} [{binding}] opened with <{found.source}>")

    def stats(self) -> str:
        orphans = [g for g in self.groups.values() if not g.live]
        loose = [b for b in self.boxes.values() if not b.live]
        return (
            f"{len(self.groups)} envelopes ({len(orphans)} in no live row), {len(self.boxes)} "
            f"secret boxes ({len(loose)} in no live row), {len(self.wraps)} wraps, "
            f"{len(self.keys)} keys, {len(self.secrets)} secrets, {len(self.strings)} strings, "
            f"{self.guesses} guesses"
        )

    # --- questions asked of the result ------------------------------------------------------

    def every_byte(self) -> Iterator[Blob]:
        """Every byte of the copy, and every base64 value in it decoded (not what it opened)."""
        for blob in self.blobs:
            if not blob.label.startswith(PLAINTEXT):
                yield blob
        yield from self.decoded

    def unopened_live(self) -> list[Group | Box]:
        return [
            g for g in [*self.groups.values(), *self.boxes.values()] if g.live and g.opened is None
        ]


def _representatives(group: Group | Box) -> list[Occurrence]:
    """One occurrence per distinct way of ending (hard ends), longest tail first."""
    chosen: dict[tuple[int, ...], Occurrence] = {}
    for occ in sorted(group.occurrences, key=lambda o: -(len(o.blob.data) - o.offset)):
        ends = tuple(e - o for e, o in ((e, occ.offset) for e in occ.hard_ends))
        chosen.setdefault(ends, occ)
    return list(chosen.values())[:3]


# Plaintexts that are not text: a key (a grant), and files (an attachment's cleaned bytes).
BINARY_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"%PDF", b"GIF8", b"PK\x03\x04", b"RIFF")


def _shape_of(head: bytes) -> str | None:
    """What the first plaintext bytes of a guess look like; None: the guess is wrong."""
    if head[:1] and head[0] in PRODUCT_SUITES:
        return "key"
    if head.startswith(BINARY_MAGIC):
        return "binary"
    if _readable_length(head) >= min(len(head), 12):
        return "text"
    return None


def _key_version(data: bytes, offset: int) -> int:
    return int(ENVELOPE_HEADER.unpack_from(data, offset)[3])


def _padded_shape_of(head: bytes) -> tuple[str | None, int | None]:
    """A format-2 guess's first block: the stated length, then the plaintext's first bytes
    (zeros after a plaintext shorter than that). (None, None): the guess is wrong."""
    length = int.from_bytes(head[:LENGTH], "big")
    if length > MAX_PLAINTEXT:
        return None, None
    rest = head[LENGTH : LENGTH + length]
    if head[LENGTH + length :].strip(b"\x00"):
        return None, None  # what follows a short plaintext is padding: zeros
    if not rest:
        return None, None
    if length == 33 and rest[0] in PRODUCT_SUITES:
        return "key", length
    if rest.startswith(BINARY_MAGIC):
        return "binary", length
    if _readable_length(rest) >= len(rest):
        return "text", length
    return None, None


def _unframe(padded: bytes) -> bytes | None:
    """A format-2 plaintext without its length and padding (None: not framed so)."""
    length = int.from_bytes(padded[:LENGTH], "big")
    end = LENGTH + length
    if len(padded) < LENGTH or end > len(padded) or padded[end:].strip(b"\x00"):
        return None
    return padded[LENGTH:end]


def _readable_length(data: bytes) -> int:
    """How many leading bytes are printable UTF-8 text (whitespace included)."""
    text = data.decode("utf-8", "replace")
    count = 0
    for ch in text:
        if ch == "\ufffd" or not (ch.isprintable() or ch in "\t\n\r"):
            break
        count += len(ch.encode())
    return min(count, len(data))


def _candidate_lengths(stream: bytes, text_end: int) -> list[int]:
    """Plaintext lengths to check the tag at: where a JSON value ends, or near the text's end."""
    lengths: list[int] = []
    text = stream[:text_end].decode("utf-8", "ignore")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            _, index = json.JSONDecoder().raw_decode(stripped)
            lengths.append(len(text[: len(text) - len(stripped) + index].encode()))
        except ValueError:
            pass
    lengths += list(range(text_end, max(text_end - 24, 0), -1))
    return lengths


def _decodings(value: str) -> Iterator[bytes]:
    text = value.strip()
    raw = text.encode()
    yield raw
    for alphabet in (None, b"-_"):
        try:
            yield base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            pass
    try:
        yield bytes.fromhex(text)
    except ValueError:
        pass


def blob_contains(search: Search, needle: bytes) -> list[str]:
    """Where ``needle`` is in the copy's bytes (base64 decoded included), as labels."""
    return [f"{b.label} @ {b.data.find(needle)}" for b in search.every_byte() if needle in b.data]
