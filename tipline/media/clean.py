"""Removing metadata: every received file is rebuilt from its content alone, in the sandbox.

The worker only reads the first bytes to know what the file really is (never the name or the
``Content-Type`` Zalo sent) and refuses anything it has no cleaner for; the file itself is
parsed only by the cleaning program (:mod:`tipline.media.cleaner`) in a fresh sandboxed
process (:mod:`tipline.media.sandbox`) that holds no key and has no network. What comes back
is the cleaned file and a few facts (its type, the source format, pages, duration).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tipline.config import Config
from tipline.media import sandbox
from tipline.media.errors import Refused
from tipline.models import Refusal

# What the sandbox may hand back: a cleaned file is one of these, nothing else.
OUTPUT_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "audio/mp4": "m4a",
    "video/mp4": "mp4",
    "application/pdf": "pdf",
}
COARSE = {
    "jpeg": "image", "png": "image", "gif": "image", "webp": "image",
    "pdf": "pdf",
    "zip": "office", "ole": "office",
    "mp4": "av", "amr": "av", "mp3": "av", "ogg": "av", "wav": "av", "webm": "av",
    "aac": "av", "flac": "av",
}


@dataclass(frozen=True)
class Cleaned:
    data: bytes
    content_type: str
    extension: str
    media: str = "file"  # image, audio, video, pdf: how an officer's page shows it
    source: str = ""  # the format received (amr, mov, docx…), from the content
    details: dict[str, Any] = field(default_factory=dict)  # pages, duration


def detect(data: bytes) -> str:
    """The real type of ``data`` from its first bytes: jpeg, png, pdf, zip, mp4, amr… or
    "unknown"."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"  # Office documents (docx, xlsx, odt…) and archives
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"  # legacy Office documents
    if head[4:8] == b"ftyp":
        return "mp4"  # MP4, MOV, M4A, 3GP
    if head.startswith(b"#!AMR"):
        return "amr"  # Zalo's voice notes
    if head.startswith(b"ID3"):
        return "mp3"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"  # WebM, Matroska
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3"  # an MPEG audio frame without an ID3 tag
    return "unknown"


def limits_for(config: Config | None) -> sandbox.Limits:
    if config is None:
        return sandbox.Limits()
    return sandbox.Limits(
        cpu_seconds=config.media_cpu_seconds,
        memory_bytes=config.media_memory_mb * 1024 * 1024,
        file_bytes=max(config.media_max_bytes * 4, 64 * 1024 * 1024),
        wall_seconds=config.media_wall_seconds,
    )


def clean(data: bytes, config: Config | None = None) -> Cleaned:
    """``data`` rebuilt without metadata, or :class:`Refused` saying why it cannot be kept."""
    kind = detect(data)
    coarse = COARSE.get(kind)
    if coarse is None:
        raise Refused(Refusal.UNSUPPORTED_TYPE, kind)
    try:
        outcome = sandbox.run(sandbox.cleaner_command(coarse), data, limits_for(config))
    except sandbox.SandboxUnavailable as exc:
        raise Refused(Refusal.SANDBOX_UNAVAILABLE, str(exc)) from exc
    if outcome.limited:
        why = "time" if outcome.timed_out else f"exit {outcome.returncode}"
        raise Refused(Refusal.LIMITS, f"{coarse}: {why}")
    lines = outcome.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise Refused(Refusal.DAMAGED, f"{coarse}: no answer (exit {outcome.returncode})")
    if not result.get("ok"):
        reason = str(result.get("refusal", ""))
        refusal = Refusal(reason) if reason in Refusal.__members__.values() else Refusal.DAMAGED
        raise Refused(refusal, str(result.get("detail", "")))
    content_type = str(result.get("content_type"))
    cleaned = outcome.outputs.get(str(result.get("file")))
    if content_type not in OUTPUT_TYPES or not cleaned:
        raise Refused(Refusal.DAMAGED, f"{coarse}: no cleaned file")
    details = {
        key: result[key]
        for key in ("pages", "pages_total", "duration")
        if isinstance(result.get(key), int | float)
    }
    return Cleaned(
        data=cleaned,
        content_type=content_type,
        extension=OUTPUT_TYPES[content_type],
        media=str(result.get("media") or "file"),
        source="".join(c for c in str(result.get("source", kind)) if c.isalnum())[:12] or kind,
        details=details,
    )
