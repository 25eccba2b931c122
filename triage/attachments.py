"""Attachments on a tip's page: shown inside the page (images, audio, video, PDFs) and
downloadable, each access audited.

- A kept file is served only decrypted with the tip key, never cached (``no-store``), never
  sniffed (``nosniff``), under ``Content-Security-Policy: sandbox`` (a document opened from it
  runs no script and has an opaque origin), and never under the informant's file name: its
  name is the receipt code, its place in the tip and its type (``TL…-2.m4a``).
- Views are audited once per visit of the tip page, not once per request: a video plays with
  many range requests. The tip page gives each visit a random token (``visit``); the first
  request of a visit for an attachment writes the audit event, later ones (kept in Redis for
  :data:`VISIT_SECONDS`, the officer's and attachment's ids and the token only) do not.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, abort, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keys import EnvelopeError, PrivateKey, new_token
from tipline.audit import actions, audited_session, record
from tipline.files import FileStore
from tipline.jobs.media import EXTENSIONS, display_name, unpack
from tipline.models import Attachment, Officer, Tip
from tipline.models.sealed_fields import ATTACHMENT_FACTS, ATTACHMENT_FILE
from tipline.web.labels import (
    ATTACHMENT_STATE_LABELS,
    INTEGRITY_LABELS,
    MEDIA_LABELS,
    REFUSAL_LABELS,
    label,
)
from triage.access import open_tip, tip_for
from triage.users import runtime, staff

VISIT_SECONDS = 12 * 3600
VISIT = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Shown inside the page: the types the cleaning sandbox produces.
INLINE = frozenset(EXTENSIONS)
# The response's own policy: no script, no plugin but the browser's PDF viewer, an opaque
# origin; framed only by our own tip page.
VIEW_CSP = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; frame-ancestors 'self'"
TALISMAN_OPTIONS = {"content_security_policy": VIEW_CSP, "frame_options": "SAMEORIGIN"}


def new_visit() -> str:
    return new_token(18)


def _facts(tip_key: PrivateKey, attachment: Attachment) -> dict[str, Any]:
    if attachment.sealed_facts is None:
        return {}
    try:
        data = json.loads(
            ATTACHMENT_FACTS.open(
                tip_key, attachment.sealed_facts, attachment_public_id=attachment.public_id
            )
        )
    except (EnvelopeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def attachment_items(
    db: Session, tip: Tip, tip_key: PrivateKey, visit: str
) -> list[dict[str, Any]]:
    """What the tip page shows of each attachment, in the order they arrived."""
    items = []
    rows = db.scalars(
        select(Attachment).where(Attachment.tip_id == tip.id).order_by(Attachment.id)
    )
    for index, a in enumerate(rows, start=1):
        facts = _facts(tip_key, a) if a.storage_ref else {}
        content_type = str(facts.get("content_type") or "")
        integrity = facts.get("integrity")
        pages, pages_total = facts.get("pages"), facts.get("pages_total")
        items.append(
            {
                "attachment": a,
                "index": index,
                "state": label(ATTACHMENT_STATE_LABELS, a.state),
                "refusal": label(REFUSAL_LABELS, a.refusal) if a.refusal else None,
                "media": facts.get("media") if content_type in INLINE else None,
                "media_label": MEDIA_LABELS.get(str(facts.get("media") or "")),
                "name": display_name(tip.receipt_code, index, content_type)
                if a.storage_ref
                else None,
                "source": str(facts.get("source") or "")[:12] or None,
                "sha256": facts.get("sha256"),
                "integrity": label(INTEGRITY_LABELS, str(integrity)) if integrity else None,
                "mismatch": str(integrity or "").endswith("mismatch"),
                "pages_missing": (
                    pages_total - pages
                    if isinstance(pages, int) and isinstance(pages_total, int)
                    else 0
                ),
                "view_url": url_for(
                    "tips.view_attachment",
                    public_id=tip.public_id,
                    attachment_id=a.public_id,
                    visit=visit,
                ),
                "download_url": url_for(
                    "tips.download_attachment", public_id=tip.public_id, attachment_id=a.public_id
                ),
            }
        )
    return items


def _first_in_visit(officer_id: int, attachment_id: str, action: str, visit: str) -> bool:
    """True unless this officer's visit already fetched this attachment (range requests)."""
    if not VISIT.match(visit):
        return True
    key = f"tipline:attachment-seen:{officer_id}:{attachment_id}:{action}:{visit}"
    return bool(runtime().redis.set(key, b"1", nx=True, ex=VISIT_SECONDS))


def serve(public_id: str, attachment_id: str, *, inline: bool) -> Response:
    """The cleaned file, decrypted with the tip key; audited, never cached, never sniffed."""
    user = staff()
    action = actions.ATTACHMENT_VIEW if inline else actions.ATTACHMENT_DOWNLOAD
    with audited_session(runtime().sessions) as db:
        tip = tip_for(db, user, public_id, lock=True)
        attachment = db.scalars(
            select(Attachment).where(
                Attachment.tip_id == tip.id, Attachment.public_id == attachment_id
            )
        ).one_or_none()
        if attachment is None or attachment.storage_ref is None:
            abort(404)
        tip_key = open_tip(db, tip)
        sealed = FileStore.for_data_dir(runtime().config.data_dir).get(attachment.storage_ref)
        try:
            meta, data = unpack(
                ATTACHMENT_FILE.open(tip_key, sealed, attachment_public_id=attachment.public_id)
            )
        except EnvelopeError:
            abort(500)
        content_type = str(meta.get("content_type") or "application/octet-stream")
        if inline and content_type not in INLINE:
            abort(404)
        index = db.scalar(
            select(func.count())
            .select_from(Attachment)
            .where(Attachment.tip_id == tip.id, Attachment.id <= attachment.id)
        )
        officer = db.get_one(Officer, user.officer_id)
        if _first_in_visit(officer.id, attachment.public_id, action, request.args.get("visit", "")):
            record(
                db,
                action=action,
                actor=officer,
                object_id=tip.public_id,
                client_address=request.remote_addr,
                detail={"attachment": attachment.public_id},
            )
        name = display_name(tip.receipt_code, int(index or 1), content_type)
    response = Response(data, mimetype=content_type)
    response.headers.set(
        "Content-Disposition", "inline" if inline else "attachment", filename=name
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = VIEW_CSP
    # Range requests (a video's seeking; Safari plays no video without them).
    response.make_conditional(request, accept_ranges=True, complete_length=len(data))
    return response
