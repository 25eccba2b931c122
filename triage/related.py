"""Related tips (issue 18): suggestions from the phone numbers and plates a tip mentions, and
links an officer makes between two tips.

Suggestions use the search's own machinery (triage.search), not an index: the phone numbers
and licence plates are read from the open tip's decrypted messages and notes, each becomes the
search's pattern (``matcher``: +84 and 0 forms, separators ignored, never inside a longer
number), and the other tips the officer could open one by one (the same bound, the same key
chain, ``candidate_tips`` and ``open_tip_keys``) are decrypted in this request and matched.
Nothing is stored, so no equality pattern of numbers sits at rest (search.py says why there is
no blind index). Only what informants wrote and officers noted is read on both sides, never
the officers' replies: a unit's own telephone number in a ready-made answer would otherwise
relate every tip it was sent to.

The suggestions are computed when the officer asks (a button on the tip page; static JS loads
the fragment in place), not on every render: each list shows other tips' receipt codes and the
numbers they share, so it is audited like a search (``search`` with the tip as object, the ids
shown count as opens for the auditor's burst flag), and an automatic list would turn every
visit into a bulk read. Shown per suggestion: receipt code, date, unit, status and which
number matched; never anything of the informant.

Links: an officer links two tips they can both open (the key chain, not only the unit tree);
both pages show the link; unlinking is the same. Each is audited on both tips.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from keys import PrivateKey
from tipline.audit import actions, record
from tipline.db import write_session
from tipline.models import Direction, Officer, Tip, TipLink, Unit
from tipline.web.i18n import _
from tipline.web.labels import STATUS_LABELS, label
from triage.access import open_tip, other_tip, tip_for, visible_unit_ids
from triage.forms import DuplicateForm, EmptyForm
from triage.search import (
    FOLD,
    candidate_tips,
    matcher,
    open_tip_keys,
    search_bound,
    tip_texts,
)
from triage.users import StaffUser, runtime, staff, unit_keys

blueprint = Blueprint("related", __name__, url_prefix="/triage/tips")
SOURCES = (Direction.INBOUND.value, Direction.NOTE.value)  # never the officers' replies
MAX_IDENTIFIERS = 12  # numbers looked for: each is one more pattern over every text
MAX_SUGGESTIONS = 20  # tips shown (each named in the audit event)
PHONE = "phone"
PLATE = "plate"
# Over folded text (search.fold): Vietnamese mobile (0 + 3/5/7/8/9 + 8 digits) and landline
# (02 + 9 digits) numbers, in the 0, 84 or +84 form, with spaces, dots or dashes anywhere.
_PHONE = re.compile(
    r"(?<![0-9])(?:\+?84[\s.\-]?|0)"
    r"(?:([35789](?:[\s.\-]?[0-9]){8})|(2(?:[\s.\-]?[0-9]){9}))(?![0-9])"
)
# Licence plates: two digits (the province), a series of one or two letters and maybe a
# digit, then four or five digits ("69A-123.45", "51F1 234.56", "30E-1234", "51LD 12345").
_PLATE = re.compile(
    r"(?<![0-9a-z])([0-9]{2})[\s\-]?([a-z]{1,2}[0-9]?)[\s.\-]{0,2}"
    r"([0-9]{3}[.\s]?[0-9]{2}|[0-9]{4})(?![0-9a-z])"
)


@dataclass(frozen=True)
class Identifier:
    kind: str  # PHONE or PLATE
    value: str  # normalised: "0912345678", "69A12345"
    shown: str  # as first written in the open tip
    pattern: re.Pattern[str]  # the search's pattern for it


@dataclass(frozen=True)
class Suggestion:
    tip: Tip
    matched: tuple[Identifier, ...]


def identifiers(texts: Iterable[str]) -> list[Identifier]:
    """The phone numbers and plates in ``texts``, each once, in order of appearance."""
    found: dict[str, Identifier] = {}
    for text in texts:
        nfc = unicodedata.normalize("NFC", text)
        folded = nfc.translate(FOLD)  # search.fold: one character for one
        spans: list[tuple[int, int, str, str]] = []
        for m in _PHONE.finditer(folded):
            spans.append((m.start(), m.end(), PHONE, "0" + re.sub(r"[^0-9]", "", m[1] or m[2])))
        for m in _PLATE.finditer(folded):
            value = re.sub(r"[^0-9a-z]", "", m[1] + m[2] + m[3]).upper()
            spans.append((m.start(), m.end(), PLATE, value))
        for start, end, kind, value in sorted(spans):
            if value not in found and len(found) < MAX_IDENTIFIERS:
                shown = nfc[start:end].strip()
                found[value] = Identifier(kind, value, shown, matcher(value))
    return list(found.values())


def related_tips(
    db: Session,
    wanted: list[Identifier],
    tips: list[Tip],
    tip_keys: dict[int, PrivateKey],
) -> list[Suggestion]:
    """The ``tips`` (opened with ``tip_keys``) whose messages or notes mention any of
    ``wanted``, most identifiers shared first, then newest first (the order of ``tips``)."""
    if not wanted:
        return []
    found: list[Suggestion] = []
    for tip, texts in tip_texts(db, tips, tip_keys, directions=SOURCES):
        folded = [unicodedata.normalize("NFC", text).translate(FOLD) for _s, text in texts]
        matched = tuple(i for i in wanted if any(i.pattern.search(f) for f in folded))
        if matched:
            found.append(Suggestion(tip, matched))
    return sorted(found, key=lambda s: -len(s.matched))


def own_identifiers(db: Session, tip: Tip, tip_key: PrivateKey) -> list[Identifier]:
    """The numbers and plates of the open tip: what its informant wrote and officers noted."""
    texts = [
        text for _t, pairs in tip_texts(db, [tip], {tip.id: tip_key}, SOURCES) for _s, text in pairs
    ]
    return identifiers(texts)


def _pair(one: Tip, other: Tip) -> tuple[int, int]:
    return (one.id, other.id) if one.id < other.id else (other.id, one.id)


@dataclass(frozen=True)
class LinkRow:
    public_id: str
    receipt_code: str
    unit: str
    status: str
    visible: bool  # in the officer's units now: a link to its page


def links_of(db: Session, tip: Tip, units: list[int]) -> list[LinkRow]:
    """The tips linked to ``tip``, oldest link first; unit and status only for those still
    in the officer's units (a linked tip may have been transferred away since)."""
    others = db.scalars(
        select(Tip)
        .join(
            TipLink,
            or_(
                (TipLink.first_tip_id == tip.id) & (TipLink.second_tip_id == Tip.id),
                (TipLink.second_tip_id == tip.id) & (TipLink.first_tip_id == Tip.id),
            ),
        )
        .order_by(TipLink.id)
    )
    rows = []
    for other in others:
        visible = other.unit_id in units and other.shredded_at is None
        rows.append(
            LinkRow(
                other.public_id,
                other.receipt_code,
                other.unit.name if visible and other.unit else "",
                label(STATUS_LABELS, other.status) if visible else "",
                visible,
            )
        )
    return rows


def linked_ids(db: Session, tip: Tip) -> set[int]:
    rows = db.execute(
        select(TipLink.first_tip_id, TipLink.second_tip_id).where(
            or_(TipLink.first_tip_id == tip.id, TipLink.second_tip_id == tip.id)
        )
    )
    return {a if b == tip.id else b for a, b in rows}


def normalised_code(text: str) -> str:
    """A receipt code as typed: case, spaces and missing dashes forgiven (TL-XXXX-XXXX)."""
    compact = re.sub(r"[^0-9A-Z]", "", text.upper())
    if len(compact) == 10 and compact.startswith("TL"):
        return f"TL-{compact[2:6]}-{compact[6:]}"
    return text.strip().upper()


def _record_both(db: Session, user: StaffUser, action: str, tip: Tip, other: Tip) -> None:
    actor = db.get_one(Officer, user.officer_id)
    for one, two in ((tip, other), (other, tip)):
        record(
            db,
            action=action,
            actor=actor,
            object_id=one.public_id,
            client_address=request.remote_addr,
            detail={"tip": two.public_id},
        )


@blueprint.get("/<public_id>/related")
def suggest(public_id: str) -> ResponseReturnValue:
    """The related-tip suggestions: a fragment for the tip page (``?fragment=1``, loaded by
    console.js), or a page of its own without script."""
    user = staff()
    with runtime().sessions() as db:
        tip = tip_for(db, user, public_id)
        if tip.shredded_at is not None:
            abort(409, _("This tip was deleted under the retention policy."))
        wanted = own_identifiers(db, tip, open_tip(db, tip))
        units = visible_unit_ids(db, user)
        candidates = [t for t in candidate_tips(db, units, search_bound()) if t.id != tip.id]
        keys = open_tip_keys(db, candidates, unit_keys(db)) if wanted else {}
        found = related_tips(db, wanted, candidates, keys)
        more = len(found) > MAX_SUGGESTIONS
        found = found[:MAX_SUGGESTIONS]
        linked = linked_ids(db, tip)
        names = dict(db.execute(select(Unit.id, Unit.name).where(Unit.id.in_(units))).all())
        rows = [
            {
                "public_id": s.tip.public_id,
                "receipt_code": s.tip.receipt_code,
                "created_at": s.tip.created_at,
                "unit": names.get(s.tip.unit_id or 0, ""),
                "status": label(STATUS_LABELS, s.tip.status),
                "matched": [i.shown for i in s.matched],
                "linked": s.tip.id in linked,
                "is_original": tip.duplicate_of_id == s.tip.id,
            }
            for s in found
        ]
        searched, code, is_open = len(keys), tip.receipt_code, tip.is_open
    if wanted:
        with write_session(runtime().sessions) as db:
            record(
                db,
                action=actions.SEARCH,
                actor=db.get_one(Officer, user.officer_id),
                object_id=public_id,
                client_address=request.remote_addr,
                detail={
                    "related": "1",
                    "results": str(len(rows)),
                    "searched": str(searched),
                    "tips": " ".join(str(row["public_id"]) for row in rows),
                },
            )
    context = {
        "public_id": public_id,
        "receipt_code": code,
        "identifiers": wanted,
        "rows": rows,
        "more": more,
        "searched": searched,
        "tip_open": is_open,
        "empty_form": EmptyForm(),
        "user": user,
    }
    if request.args.get("fragment") == "1":
        return render_template("triage/_related.html", **context)
    return render_template("triage/related.html", logout_form=EmptyForm(), **context)


def _back(public_id: str) -> ResponseReturnValue:
    return redirect(url_for("tips.show", public_id=public_id) + "#related")


@blueprint.post("/<public_id>/link")
def link(public_id: str) -> ResponseReturnValue:
    """Link this tip and the tip of a receipt code as related; both must open for the officer."""
    form = DuplicateForm()
    if not form.validate_on_submit():
        abort(400)
    code = normalised_code(form.receipt_code.data or "")
    user = staff()
    with write_session(runtime().sessions) as db:
        tip = tip_for(db, user, public_id)
        if tip.shredded_at is not None:
            abort(409, _("This tip was deleted under the retention policy."))
        open_tip(db, tip)
        other = other_tip(db, user, code)
        if other is None or other.id == tip.id:
            # One answer for "no such tip" and "not yours": no oracle for other units' codes.
            message = _("No other tip of your units has that receipt code.")
        elif other.id in linked_ids(db, tip):
            message = _("These tips are already linked.")
        else:
            first, second = _pair(tip, other)
            db.add(TipLink(first_tip_id=first, second_tip_id=second, created_by_id=user.officer_id))
            _record_both(db, user, actions.TIP_LINK, tip, other)
            message = _("Linked to %(code)s.", code=other.receipt_code)
    flash(message, "info")
    return _back(public_id)


@blueprint.post("/<public_id>/unlink")
def unlink(public_id: str) -> ResponseReturnValue:
    """Remove the link between this tip and another (by its public id)."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    other_id = request.form.get("tip") or ""
    user = staff()
    with write_session(runtime().sessions) as db:
        tip = tip_for(db, user, public_id)
        open_tip(db, tip)
        other = db.scalars(select(Tip).where(Tip.public_id == other_id)).one_or_none()
        if other is None or other.id not in linked_ids(db, tip):
            message = _("These tips are not linked.")
        else:
            first, second = _pair(tip, other)
            db.execute(
                delete(TipLink).where(
                    TipLink.first_tip_id == first, TipLink.second_tip_id == second
                )
            )
            _record_both(db, user, actions.TIP_UNLINK, tip, other)
            message = _("Link to %(code)s removed.", code=other.receipt_code)
    flash(message, "info")
    return _back(public_id)
