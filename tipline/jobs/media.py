"""The media job: download one attachment, clean it in the sandbox, seal it to the tip, store it.

Beside the cleaned file it seals the facts an officer needs to trust it (ATTACHMENT_FACTS):
the SHA-256 of the bytes received, their size, and whether they match the ``size`` and
``checksum`` (MD5) of Zalo's payload; a mismatch is recorded and shown, the file still kept.
The informant's file name is never kept: officers get one made of the receipt code, the
attachment's place in the tip and its type (:func:`display_name`).

A download that fails for now (DNS, connection, timeout, 5xx) is retried by RQ with back-off
(``tipline.outbox.JOBS``); meanwhile the attachment stays pending with ``refusal`` set to
``retrying`` so officers see why. Only when the retries are spent is it refused.

A web-form file is not downloaded: the form sealed it, as uploaded, to the transit key into
the file store; the job reads it from there and erases it once the attachment is settled.

The worker cannot read ``Attachment.sealed_source`` (sealed to the tip's key, which workers
lose at dispatch), so intake also sealed the source to the transit key (``sealed_fetch``); the
job opens that, and erases it once the attachment is stored or refused. The cleaned bytes are
sealed to the tip's *public* key, which every worker has; the original bytes are never written.

Idempotent: only a ``pending`` attachment is worked on, and the final UPDATE is guarded by the
state, so a second run stores nothing twice (an orphan file at worst, deleted at once).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from rq import get_current_job
from sqlalchemy import select, update

from keys import PublicKey, file_checksum, fingerprint
from tipline import runtime
from tipline.config import Config
from tipline.db import write_session
from tipline.files import FileStore
from tipline.media.clean import (
    Cleaned,
    clean,
)
from tipline.media.errors import (
    Refused,
)
from tipline.media.fetch import (
    TransientError,
    download,
)
from tipline.models import (
    Attachment,
    AttachmentState,
    Integrity,
    Refusal,
    Tip,
)
from tipline.models.key_trust import tip_subject
from tipline.models.sealed_fields import (
    ATTACHMENT_FACTS,
    ATTACHMENT_FETCH,
    ATTACHMENT_FILE,
    WEB_UPLOAD,
)
from tipline.transit import TransitKeyLost

log = logging.getLogger(__name__)


def pack(data: bytes, content_type: str) -> bytes:
    """The sealed file's plaintext: a JSON header line (type), then the bytes."""
    header = json.dumps({"content_type": content_type}, ensure_ascii=False)
    return header.encode() + b"\n" + data


def unpack(plaintext: bytes) -> tuple[dict[str, str], bytes]:
    header, _, data = plaintext.partition(b"\n")
    meta = json.loads(header)
    return (meta if isinstance(meta, dict) else {}), data


EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "audio/mp4": "m4a", "video/mp4": "mp4",
    "application/pdf": "pdf",
}


def display_name(receipt_code: str, index: int, content_type: str) -> str:
    """The name a kept file is shown and downloaded under: the tip's receipt code, the
    attachment's place in the tip (from 1) and its type; never the informant's."""
    code = "".join(c for c in receipt_code if c.isalnum() or c == "-") or "tip"
    return f"{code}-{index}.{EXTENSIONS.get(content_type, 'bin')}"


def integrity(data: bytes, source: dict[str, Any]) -> Integrity:
    """The bytes received against the ``size`` and ``checksum`` in Zalo's payload."""
    size = str(source.get("size") or "").strip()
    checksum = str(source.get("checksum") or "").strip().lower()
    if not size and not checksum:
        return Integrity.NOT_GIVEN
    if size and (not size.isdigit() or int(size) != len(data)):
        return Integrity.SIZE_MISMATCH
    if checksum and checksum != file_checksum(data):
        return Integrity.CHECKSUM_MISMATCH
    return Integrity.MATCHED


def facts(original: bytes, cleaned: Cleaned, source: dict[str, Any]) -> dict[str, Any]:
    """What officers are shown of the file received (sealed to the tip: ATTACHMENT_FACTS).
    A web-form upload has no Zalo payload to check against: no ``integrity`` then."""
    from_zalo = isinstance(source.get("url"), str)
    return {
        "sha256": fingerprint(original),
        "received_bytes": len(original),
        "integrity": integrity(original, source) if from_zalo else None,
        "declared_size": str(source.get("size") or "")[:20] or None,
        "media": cleaned.media,
        "content_type": cleaned.content_type,
        "source": cleaned.source,
        **cleaned.details,
    }


def _retries_left() -> bool:
    job = get_current_job()
    return bool(job is not None and job.retries_left)


def _read_upload(config: Config, store: FileStore, ref: str, public_id: str) -> bytes:
    try:
        sealed = store.get(ref)
    except (FileNotFoundError, ValueError) as exc:
        raise Refused(Refusal.UNAVAILABLE, "upload") from exc
    try:
        key = runtime.current().transit.private_for(sealed)
    except TransitKeyLost as exc:
        raise Refused(Refusal.UNAVAILABLE, "upload") from exc
    return WEB_UPLOAD.open(key, sealed, attachment_public_id=public_id)


def _settle(
    rt: runtime.Runtime,
    attachment_id: int,
    ref: str | None,
    refusal: str | None,
    sealed_facts: bytes | None = None,
) -> bool:
    """Record the outcome of a pending attachment; False if another run settled it first."""
    with write_session(rt.sessions) as session:
        result = session.execute(
            update(Attachment)
            .where(Attachment.id == attachment_id, Attachment.state == AttachmentState.PENDING)
            .values(
                state=AttachmentState.STORED if ref else AttachmentState.REFUSED,
                storage_ref=ref,
                refusal=refusal,
                sealed_fetch=None,
                sealed_facts=sealed_facts,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _mark_retrying(rt: runtime.Runtime, attachment_id: int) -> None:
    """Still pending, and why: the download failed for now and will be tried again."""
    with write_session(rt.sessions) as session:
        session.execute(
            update(Attachment)
            .where(Attachment.id == attachment_id, Attachment.state == AttachmentState.PENDING)
            .values(refusal=Refusal.RETRYING)
        )


def fetch_attachment(public_id: str) -> str:
    rt = runtime.current()
    config = rt.config
    with rt.sessions() as session:
        row = session.execute(
            select(
                Attachment.id,
                Attachment.state,
                Attachment.sealed_fetch,
                Tip.public_id.label("tip_public_id"),
                Tip.public_key,
                Tip.key_certificate,
            )
            .join(Tip, Tip.id == Attachment.tip_id)
            .where(Attachment.public_id == public_id)
        ).one_or_none()
    if row is None:
        log.warning("media: no attachment %s", public_id)
        return "missing"
    if row.state != AttachmentState.PENDING or row.sealed_fetch is None:
        return "done"
    try:
        key = rt.transit.private_for(row.sealed_fetch)
    except TransitKeyLost:  # the key store restarted before the file was fetched
        _settle(rt, row.id, None, Refusal.UNAVAILABLE)
        return "refused"
    source = json.loads(
        ATTACHMENT_FETCH.open(key, row.sealed_fetch, attachment_public_id=public_id)
    )
    ref: str | None = None
    refusal: Refusal | None = None
    sealed_facts: bytes | None = None
    store = FileStore.for_data_dir(config.data_dir)
    upload = source.get("file") if isinstance(source, dict) else None
    # The tip's key, with the certificate its row carries: sealing checks it (key_trust).
    public = PublicKey.from_bytes(row.public_key).claiming(
        tip_subject(row.tip_public_id), row.key_certificate
    )
    try:
        if isinstance(upload, str):
            original = _read_upload(config, store, upload, public_id)
        else:
            url = source.get("url") if isinstance(source, dict) else None
            if not isinstance(url, str):
                raise Refused(Refusal.BAD_URL)
            original = download(url, config)
        cleaned = clean(original, config)
        sealed_facts = ATTACHMENT_FACTS.seal(
            public,
            json.dumps(facts(original, cleaned, source if isinstance(source, dict) else {}))
            .encode(),
            attachment_public_id=public_id,
        )
        del original  # the bytes received are never written anywhere
        sealed = ATTACHMENT_FILE.seal(
            public, pack(cleaned.data, cleaned.content_type), attachment_public_id=public_id
        )
        ref = store.put(sealed)
    except Refused as exc:
        log.info("media: attachment %s refused (%s)", public_id, exc.reason)
        refusal = exc.reason
        if exc.reason in (Refusal.LIMITS, Refusal.SANDBOX_UNAVAILABLE):
            log.warning("media: attachment %s not cleaned: %s", public_id, exc)
    except TransientError as exc:
        if _retries_left():
            log.info("media: attachment %s: %s; retried later", public_id, exc)
            _mark_retrying(rt, row.id)
            raise
        refusal = Refusal.UNAVAILABLE
    claimed = _settle(rt, row.id, ref, refusal, sealed_facts)
    if isinstance(upload, str):
        store.delete(upload)  # settled (here or by an earlier run): the original goes
    if not claimed and ref is not None:
        store.delete(ref)
        return "done"
    return "stored" if ref else "refused"
