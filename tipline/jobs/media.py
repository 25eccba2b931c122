"""The media job: download one attachment, strip its metadata, seal it to the tip, store it.

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

from rq import get_current_job
from sqlalchemy import select, update

from keys import PublicKey
from tipline import runtime
from tipline.config import Config
from tipline.db import write_session
from tipline.files import FileStore
from tipline.media.clean import (
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
    Refusal,
    Tip,
)
from tipline.models.key_trust import tip_subject
from tipline.models.sealed_fields import (
    ATTACHMENT_FETCH,
    ATTACHMENT_FILE,
    WEB_UPLOAD,
)
from tipline.transit import TransitKeyLost

log = logging.getLogger(__name__)


def pack(data: bytes, content_type: str, name: str) -> bytes:
    """The sealed file's plaintext: a JSON header line (type, name), then the bytes."""
    header = json.dumps({"content_type": content_type, "name": name}, ensure_ascii=False)
    return header.encode() + b"\n" + data


def unpack(plaintext: bytes) -> tuple[dict[str, str], bytes]:
    header, _, data = plaintext.partition(b"\n")
    meta = json.loads(header)
    return (meta if isinstance(meta, dict) else {}), data


def _safe_name(name: object, extension: str) -> str:
    """A file name to offer on download: the informant's stem, cleaned, with the real extension."""
    stem = str(name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    stem = "".join(c for c in stem if c.isalnum() or c in "-_ ").strip()[:80] or "tep-dinh-kem"
    return f"{stem}.{extension}"


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


def _settle(rt: runtime.Runtime, attachment_id: int, ref: str | None, refusal: str | None) -> bool:
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
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


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
    store = FileStore.for_data_dir(config.data_dir)
    upload = source.get("file") if isinstance(source, dict) else None
    try:
        if isinstance(upload, str):
            original = _read_upload(config, store, upload, public_id)
        else:
            url = source.get("url") if isinstance(source, dict) else None
            if not isinstance(url, str):
                raise Refused(Refusal.BAD_URL)
            original = download(url, config)
        cleaned = clean(original)
        name = _safe_name(source.get("name"), cleaned.extension)
        sealed = ATTACHMENT_FILE.seal(
            PublicKey.from_bytes(row.public_key).claiming(
                tip_subject(row.tip_public_id), row.key_certificate
            ),
            pack(cleaned.data, cleaned.content_type, name),
            attachment_public_id=public_id,
        )
        ref = store.put(sealed)
    except Refused as exc:
        log.info("media: attachment %s refused (%s)", public_id, exc.reason)
        refusal = exc.reason
    except TransientError:
        if _retries_left():
            raise
        refusal = Refusal.UNAVAILABLE
    claimed = _settle(rt, row.id, ref, refusal)
    if isinstance(upload, str):
        store.delete(upload)  # settled (here or by an earlier run): the original goes
    if not claimed and ref is not None:
        store.delete(ref)
        return "done"
    return "stored" if ref else "refused"
