"""A tip as a PDF, for the official register (sổ tiếp nhận tin báo) and the case file.

Built in memory with fpdf2 (never written to disk), in a Unicode TrueType font (Debian's
DejaVu Sans: ``fonts-dejavu-core``) so Vietnamese prints as written. Holds the receipt code,
unit, status and dates, the conversation and internal notes, the attachments with the SHA-256
of each cleaned file (so the copy in the case file can be checked against the system), and the
timeline. Exporting is audited (``tip_export``) and the response is never cached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, request
from flask.typing import ResponseReturnValue
from fpdf import FPDF
from sqlalchemy import select

from keys import EnvelopeError, fingerprint
from tipline.audit import actions, audited_session, query_events, record
from tipline.files import FileStore
from tipline.jobs.media import unpack
from tipline.models import Attachment, Direction, Officer, utcnow
from tipline.models.sealed_fields import ATTACHMENT_FILE, MESSAGE_BODY
from tipline.web.i18n import _, when
from tipline.web.labels import (
    ACTION_LABELS,
    ATTACHMENT_STATE_LABELS,
    CATEGORY_LABELS,
    MESSAGE_KIND_LABELS,
    PRIORITY_LABELS,
    STATUS_LABELS,
    label,
)
from triage.access import open_tip, tip_for
from triage.forms import EmptyForm
from triage.users import runtime, staff

blueprint = Blueprint("tip_export", __name__, url_prefix="/triage/tips")
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
TIMELINE = 500  # events in an export


def _font(name: str) -> Path | None:
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    return None


class TipPdf(FPDF):
    def __init__(self, receipt_code: str) -> None:
        super().__init__(format="A4")
        regular, bold = _font("DejaVuSans.ttf"), _font("DejaVuSans-Bold.ttf")
        if regular is None or bold is None:
            abort(
                503, _("The PDF font (DejaVu Sans, Debian package fonts-dejavu-core) is missing.")
            )
        self.add_font("DejaVu", "", str(regular))
        self.add_font("DejaVu", "B", str(bold))
        self.receipt_code = receipt_code
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(receipt_code)
        self.set_creator("Tipline")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", "", 8)
        self.cell(0, 8, f"{self.receipt_code} · {self.page_no()}/{{nb}}", align="C")

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font("DejaVu", "B", 12)
        self.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font("DejaVu", "", 10)

    def line_of(self, text: str, *, bold: bool = False, size: int = 10) -> None:
        self.set_font("DejaVu", "B" if bold else "", size)
        self.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        self.set_font("DejaVu", "", 10)


def _body(tip_key: Any, public_id: str, sealed: bytes) -> dict[str, Any]:
    try:
        data = json.loads(MESSAGE_BODY.open(tip_key, sealed, message_public_id=public_id))
    except (EnvelopeError, ValueError):
        return {"text": _("(this message could not be decrypted)")}
    return data if isinstance(data, dict) else {}


@blueprint.post("/<public_id>/export.pdf")
def pdf(public_id: str) -> ResponseReturnValue:
    if not EmptyForm().validate_on_submit():
        abort(400)
    user = staff()
    store = FileStore.for_data_dir(runtime().config.data_dir)
    with audited_session(runtime().sessions) as db:
        tip = tip_for(db, user, public_id, lock=True)
        if tip.shredded_at is not None:
            abort(409, _("This tip was deleted under the retention policy."))
        tip_key = open_tip(db, tip)
        doc = TipPdf(tip.receipt_code)
        doc.add_page()
        doc.line_of(_("Tip %(code)s", code=tip.receipt_code), bold=True, size=16)
        rows = [
            (_("Unit"), tip.unit.name if tip.unit else "—"),
            (_("Informant"), tip.pseudonym),
            (_("Received"), when(tip.created_at)),
            (_("Status"), label(STATUS_LABELS, tip.status)),
            (_("Priority"), label(PRIORITY_LABELS, tip.priority)),
            (_("Category"), label(CATEGORY_LABELS, tip.category)),
            (_("Assignee"), tip.assignee.display_name if tip.assignee else "—"),
            (_("Closed"), when(tip.closed_at)),
            (_("Exported"), f"{when(utcnow())} · {user.display_name}"),
        ]
        for name, value in rows:
            doc.line_of(f"{name}: {value}")
        authors = dict(db.execute(select(Officer.id, Officer.display_name)).all())
        doc.heading(_("Conversation and notes"))
        for m in tip.messages:
            body = _body(tip_key, m.public_id, m.sealed_body)
            if m.direction == Direction.INBOUND:
                who = tip.pseudonym
            elif m.direction == Direction.OUTBOUND:
                author = authors.get(m.author_id or 0) or _("Automatic acknowledgement")
                who = f"{author} → {tip.pseudonym}"
            else:
                who = f"{_('Internal note')} · {authors.get(m.author_id or 0, '')}"
            kind = "" if m.kind == "text" else f" · {label(MESSAGE_KIND_LABELS, m.kind)}"
            doc.line_of(f"{when(m.created_at)} · {who}{kind}", bold=True, size=9)
            parts = [str(body.get("text") or "")]
            location = body.get("location")
            if isinstance(location, dict):
                parts.append(f"{_('Location')}: {location.get('lat')}, {location.get('lon')}")
            for link in body.get("links") or []:
                if isinstance(link, dict):
                    parts.append(f"{_('Link')}: {link.get('url', '')}")
            text = "\n".join(p for p in parts if p)
            if text:
                doc.line_of(text)
            doc.ln(1)
        attachments = list(
            db.scalars(
                select(Attachment).where(Attachment.tip_id == tip.id).order_by(Attachment.id)
            )
        )
        doc.heading(_("Attachments"))
        if not attachments:
            doc.line_of(_("None."))
        for a in attachments:
            digest = "—"
            name = ""
            if a.storage_ref is not None:
                try:
                    meta, data = unpack(
                        ATTACHMENT_FILE.open(
                            tip_key, store.get(a.storage_ref), attachment_public_id=a.public_id
                        )
                    )
                    digest, name = fingerprint(data), str(meta.get("name") or "")
                except (EnvelopeError, OSError, ValueError):
                    digest = _("(could not be read)")
            doc.line_of(
                f"{label(MESSAGE_KIND_LABELS, a.kind)} {name} · "
                f"{label(ATTACHMENT_STATE_LABELS, a.state)}",
                bold=True,
                size=9,
            )
            doc.line_of(f"SHA-256: {digest}", size=8)
        events = query_events(db, object_id=tip.public_id, newest_first=True, per_page=TIMELINE)
        doc.heading(_("Timeline"))
        for event in reversed(events.items):
            doc.line_of(
                f"{when(event.at, True)} · {label(ACTION_LABELS, event.action)} · "
                f"{event.actor_name or _('system')}",
                size=9,
            )
        record(
            db,
            action=actions.TIP_EXPORT,
            actor=db.get_one(Officer, user.officer_id),
            object_id=tip.public_id,
            client_address=request.remote_addr,
            detail={"format": "pdf"},
        )
        code = tip.receipt_code
    data = bytes(doc.output())
    response = Response(data, mimetype="application/pdf")
    response.headers.set("Content-Disposition", "attachment", filename=f"{code}.pdf")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
