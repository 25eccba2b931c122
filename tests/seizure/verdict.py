"""What the search found, held against the requirements, in words a failure message can list.

Provenance decides what the copy alone gave: a key, secret or opening whose source mentions
``in memory:`` needed a key the caller gave as held only in memory (what a running server
holds); one whose source mentions ``control only:`` needed a secret no attacker has (an
officer's password), given for a positive control only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keys import PrivateKey
from tests.seizure.flow import Informant
from tests.seizure.search import CONTROL, MEMORY, Opening, Search

SOURCES = [Path(__file__).parents[2] / name for name in ("tipline", "triage", "keys")]
HEX_RUN = re.compile(rb"[0-9a-fA-F]{64,}")
# Raw (not hex) digests are looked for byte by byte in every value but the database files
# themselves: their values are searched as read back, and hex digests everywhere.
SMALL = 1 << 20
DATABASE_FILES = ("postgresql/", "sqlite/", "data-dir/tipline.db")


def from_copy(source: str) -> bool:
    """Whether a key, secret or opening came from the copy alone (no key held in memory)."""
    return MEMORY not in source and CONTROL not in source


def from_memory(source: str) -> bool:
    """Whether it needed a key held in memory, and nothing given for a control only: what a
    running server's attacker adds to the copy (docs/threat-model.md, attacker 2)."""
    return MEMORY in source and CONTROL not in source


def from_control(source: str) -> bool:
    """Whether it needed a secret given for a positive control only (an officer's password)."""
    return CONTROL in source


def keyed_digest_purposes() -> list[str]:
    """Every purpose the product gives ``keyed_digest`` (read from its sources), and none."""
    found = {""}
    for root in SOURCES:
        for path in root.rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found.update(re.findall(r'keyed_digest\([^"]*?"([a-z_]+)"', text))
    return sorted(found)


def as_time(value: Any) -> datetime | None:
    """A time read back from the copy: PostgreSQL's aware datetime or SQLite's UTC text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class TipInCopy:
    """A tip as the copied database describes it, with everything that belongs to it."""

    who: Informant
    row: dict[str, Any]
    identifiers: set[str] = field(default_factory=set)  # its rows' public ids, dedup keys…

    @property
    def label(self) -> str:
        return f"{self.who.name}'s tip {self.row['receipt_code']} (tips.id {self.row['id']})"

    def concerns(self, opening: Opening) -> bool:
        """The opening is part of this tip: by its binding (its rows, its key's grants) or by
        what it says (words only this tip's informant wrote)."""
        if opening.binding.startswith(f"grant:tip:{self.row['id']}>"):
            return True
        named = opening.binding.split(":", 1)[-1]
        if any(identifier in named for identifier in self.identifiers):
            return True
        return any(marker.encode() in opening.plaintext for marker in self.who.markers)


def tips_in_copy(
    tables: dict[str, list[dict[str, Any]]], people: Iterable[Informant]
) -> list[TipInCopy]:
    by_code = {row["receipt_code"]: row for row in tables.get("tips", [])}
    out = []
    for who in people:
        for code in who.receipt_codes:
            row = by_code[code]
            tip = TipInCopy(who, row, {row["public_id"], code})
            for table in ("messages", "attachments"):
                tip.identifiers |= {
                    r["public_id"] for r in tables.get(table, []) if r["tip_id"] == row["id"]
                }
            tip.identifiers |= {
                r["dedup_key"]
                for r in tables.get("inbound_events", [])
                if r.get("tip_public_id") == row["public_id"]
            }
            out.append(tip)
    return out


def public_half(raw: bytes) -> bytes:
    return PrivateKey.from_bytes(b"\x01" + raw).public_key.to_bytes()


def recovered_keys(
    search: Search, public_keys: dict[bytes, str], given: Callable[[str], bool] = from_copy
) -> list[str]:
    """Each key whose public half is one of ``public_keys`` that the copy alone gave (or, with
    ``given``, whatever that source test accepts)."""
    return [
        f"the private key of {public_keys[public_half(raw)]}, from <{found.source}>"
        for raw, found in search.keys.items()
        if given(found.source) and public_half(raw) in public_keys
    ]


def ip_encodings(address: str) -> dict[str, bytes]:
    ip = ipaddress.IPv4Address(address)
    packed = ip.packed
    return {
        f"{address} as text": address.encode(),
        f"{address} as UTF-16": address.encode("utf-16-le"),
        f"{address} reversed (in-addr.arpa)": ".".join(reversed(address.split("."))).encode(),
        f"{address} as 4 bytes, network order": packed,
        f"{address} as 4 bytes, little-endian": packed[::-1],
        f"{address} as hex": packed.hex().encode(),
        f"{address} as an integer": str(int(ip)).encode(),
        f"{address}'s SHA-256 in hex": hashlib.sha256(address.encode()).hexdigest().encode(),
    }


def _places(places: list[str], limit: int = 3) -> str:
    shown = ", ".join(places[:limit])
    more = f" and {len(places) - limit} more" if len(places) > limit else ""
    return f"in {len(places)} place(s): {shown}{more}"


def literal_findings(search: Search, needles: dict[str, bytes]) -> list[str]:
    """Each needle found in the copy's bytes (base64 in them decoded), with where. One pass
    of all needles at once, longest first (a needle inside a longer one found there is
    reported as the longer one)."""
    names: dict[bytes, list[str]] = {}
    for name, needle in needles.items():
        names.setdefault(needle, []).append(name)
    if not names:
        return []
    pattern = re.compile(b"|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    places: dict[bytes, list[str]] = {}
    for blob in search.every_byte():
        for match in pattern.finditer(blob.data):
            places.setdefault(match.group(), []).append(f"{blob.label} @ {match.start()}")
    return [
        f"{name}, {_places(where)}" for needle, where in places.items() for name in names[needle]
    ]


def plaintext_findings(openings: Iterable[Opening], needles: dict[str, bytes]) -> list[str]:
    return [
        f"{name} in what the copy opened: {o.describe()}"
        for o in openings
        for name, needle in needles.items()
        if needle in o.plaintext
    ]


def hmac_secrets(search: Search) -> dict[bytes, str]:
    """Every secret the copy alone gave usable as an HMAC key: configuration strings as given
    (and decoded: the search added those as keys), every 32-byte value (keys, secrets)."""
    out: dict[bytes, str] = {}
    for text, found in search.strings.items():
        if len(text) >= 16 and from_copy(found.source):
            out.setdefault(text.encode(), found.source)
    for raw, found in search.secrets.items():
        if from_copy(found.source):
            out.setdefault(raw, found.source)
    return out


def hmac_findings(search: Search, values: dict[str, str], purposes: list[str]) -> list[str]:
    """Where the copy holds ``keyed_digest(secret, purpose, value)`` for a secret it also
    holds, in hex (the product's form) anywhere, or raw in any value under 1 MiB: the value
    can then be confirmed, and an IP address recovered by trying all 2³² of them."""
    digests: dict[bytes, str] = {}
    for secret, source in hmac_secrets(search).items():
        for purpose in purposes:
            for name, value in values.items():
                message = (purpose.encode() + b"\x00" if purpose else b"") + value.encode()
                digest = hmac.new(secret, message, hashlib.sha256).digest()
                digests[digest] = f"HMAC(<{source}>, {purpose or 'no purpose'!r}, {name})"
    hexes = {digest.hex().encode(): digest for digest in digests}
    prefixes = {digest[:8] for digest in digests}
    places: dict[bytes, list[str]] = {}
    for blob in search.every_byte():
        data = blob.data
        for match in HEX_RUN.finditer(data):
            run = match.group().lower()
            for i in range(len(run) - 63):
                digest = hexes.get(run[i : i + 64])
                if digest is not None:
                    places.setdefault(digest, []).append(f"{blob.label} @ {match.start() + i}")
        if len(data) <= SMALL and not blob.label.startswith(DATABASE_FILES):
            for i in range(len(data) - 31):
                if data[i : i + 8] in prefixes and data[i : i + 32] in digests:
                    places.setdefault(data[i : i + 32], []).append(f"{blob.label} @ {i} (raw)")
    return [f"{digests[d]}, {_places(where)}" for d, where in places.items()]


@dataclass
class Verdict:
    """Findings per requirement, each of a kind (what opened, a key, an HMAC, bytes found):
    every requirement must have none. Failed controls: must be none either."""

    requirements: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    controls: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, requirement: str, kind: str, findings: Iterable[str]) -> None:
        found = self.requirements.setdefault(requirement, [])
        found += [(kind, finding) for finding in findings]

    def control(self, name: str, failures: Iterable[str]) -> None:
        self.controls.setdefault(name, []).extend(failures)

    @property
    def ok(self) -> bool:
        return not any(self.controls.values()) and not any(self.requirements.values())

    def report(self, per_kind: int = 6) -> str:
        lines = []
        broken = {name: failures for name, failures in self.controls.items() if failures}
        if broken:
            lines.append("A POSITIVE CONTROL FAILED: the search below cannot be trusted.")
            for name, failures in broken.items():
                lines.append(f"  CONTROL: {name}")
                lines += [f"    - {failure}" for failure in failures[: per_kind * 2]]
        failed = {name: found for name, found in self.requirements.items() if found}
        if failed:
            lines.append("The seized copy gives away what it must not:")
        for name, findings in failed.items():
            lines.append(f"  REQUIREMENT: {name} — {len(findings)} finding(s)")
            kinds: dict[str, list[str]] = {}
            for kind, finding in findings:
                kinds.setdefault(kind, []).append(finding)
            for kind, texts in kinds.items():
                lines.append(f"    {kind} ({len(texts)}):")
                lines += [f"      - {text}" for text in texts[:per_kind]]
                if len(texts) > per_kind:
                    lines.append(f"      … and {len(texts) - per_kind} more")
        return "\n".join(lines + self.notes)
