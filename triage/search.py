"""Search the content of the tips an officer can open: decrypt-and-match, within a bound.

Why not a keyed-hash index of phone numbers, plates and addresses? The two designs compared:

- A blind index (HMAC of each normalised token, stored beside the tip) answers in one indexed
  lookup at any scale, but its key has to be usable by whoever writes the index. The intake
  writes tips before anyone has opened them, so the index key would be a server-side secret at
  rest, and phone numbers and plates are small spaces (10^9 numbers, a few million plates): with
  the database and the configuration, one brute-forces every indexed number in minutes. That
  breaks invariant 1 (nothing at rest reveals dispatched tips). Sealing the index key to each
  unit instead means the intake cannot write it, and the equality pattern it stores (which
  tips share a number) still leaks at rest. It also only finds whole normalised tokens: no
  substring, no free-text words, no notes written later without re-indexing.
- Decrypt-and-match opens each candidate tip with the officer's own key chain, in this
  request, and matches anything in its messages and notes (folded diacritics and case, and
  separator-blind digits for phone numbers and plates). Nothing new is stored; the search can
  only reach tips the officer could open one by one anyway. Its cost grows with the number of
  tips searched, so it is bounded: the ``TRIAGE_SEARCH_BOUND`` (default 500) most recent tips
  of the officer's units. Measured (benchmarks/triage.py, 100,000 tips, 2 cores, same run as
  the inbox figures): 0.44–0.57 ms per tip with 3.6 messages on average (one HPKE open for the
  tip key, one per message, JSON, fold and match; HPKE alone is ~0.04 ms an open), so
  220–290 ms for the full bound, 300–450 ms p95 for the whole request. Older tips
  are found through the inbox filters (dates, category, unit) and their receipt codes.

The related-tip suggestions of the tip page (triage.related) are this search too: the phone
numbers and plates of the open tip, each made a pattern by :func:`matcher`, over the same
bounded candidates (:func:`candidate_tips`, :func:`open_tip_keys`, :func:`tip_texts`).

One audit event per search with the number of tips searched and found and the ids of the tips
shown (at most ``MAX_SHOWN``: each shows text from the tip, so each counts as an open for the
auditor's burst flag); never the query, which may quote a phone number from a tip. A query
needs 3 characters at least: shorter ones match nearly everything. The search is a GET form
(a result page can be reloaded); the access log therefore records paths without query strings
(``tipline serve``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select, true
from sqlalchemy.orm import Session, load_only
from werkzeug.exceptions import Forbidden

from keys import EnvelopeError, PrivateKey
from tipline.audit import actions, record
from tipline.db import write_session
from tipline.models import Holder, KeyGrant, Message, Officer, Subject, Tip, Unit
from tipline.models.sealed_fields import KEY_GRANT, MESSAGE_BODY
from tipline.web.labels import CATEGORY_LABELS, PRIORITY_LABELS, STATUS_LABELS, label
from triage.access import visible_unit_ids
from triage.forms import EmptyForm, SearchForm
from triage.users import runtime, staff, unit_keys

blueprint = Blueprint("search", __name__, url_prefix="/triage/search")
DEFAULT_BOUND = 500
SNIPPET_CONTEXT = 60  # characters either side of the match
# Results shown per search: each shows text from its tip and is named in the audit event.
MAX_SHOWN = 40
MIN_DIGITS = 4  # a query with this many digits also matches across separators ("0912 345 678")
PHONE_DIGITS = 9  # a query of only digits this long is a whole phone number
_SEPARATORS = r"[\s.\-/()]*"


def _fold_table() -> dict[int, str]:
    """One character to one character: lower case, no diacritics, đ→d (indices are kept)."""
    table: dict[int, str] = {}
    for code in [*range(0x41, 0x5B), *range(0xC0, 0x250), *range(0x1E00, 0x1F00)]:
        char = chr(code)
        lower = char.lower()
        if len(lower) != 1:
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFD", lower) if not unicodedata.combining(c)
        )
        if len(base) == 1 and base != char:
            table[code] = base
    table[ord("Đ")] = table[ord("đ")] = "d"
    return table


FOLD = _fold_table()


def fold(text: str) -> str:
    """NFC, then folded character by character: ``fold(t)[i]`` stands for ``nfc(t)[i]``."""
    return unicodedata.normalize("NFC", text).translate(FOLD)


def matcher(query: str) -> re.Pattern[str]:
    """The query's pattern over folded text: its words in order, and, when it has digits, its
    letters and digits with any separators between them (phone numbers, plates).

    A phone number (9 digits or more) starting with 0 also matches its +84 form and the
    reverse, and never matches inside a longer number; shorter queries match as substrings.
    """
    folded = fold(query).strip()
    alternatives = [r"\s+".join(re.escape(word) for word in folded.split())]
    compact = re.sub(r"[^0-9a-z]", "", folded)
    if sum(c.isdigit() for c in compact) >= MIN_DIGITS:
        phone = compact.isdigit() and len(compact) >= PHONE_DIGITS
        head = ""
        if phone and compact.startswith("0"):
            head, compact = r"(?:0|\+?84)" + _SEPARATORS, compact[1:]
        elif phone and compact.startswith("84"):
            head, compact = r"(?:0|\+?84)" + _SEPARATORS, compact[2:]
        alternatives.append(head + _SEPARATORS.join(re.escape(c) for c in compact))
        if phone:
            alternatives = [rf"(?<![0-9])(?:{a})(?![0-9])" for a in alternatives]
    return re.compile("|".join(f"(?:{a})" for a in alternatives if a))


@dataclass(frozen=True)
class Hit:
    tip: Tip
    source: str  # "in", "out", "note" (Direction) or "receipt"
    before: str
    match: str
    after: str


def snippet(text: str, pattern: re.Pattern[str]) -> tuple[str, str, str] | None:
    """(before, match, after) around the first match in ``text``, or None."""
    nfc = unicodedata.normalize("NFC", text)
    found = pattern.search(nfc.translate(FOLD))
    if found is None:
        return None
    start, end = found.span()
    left, right = max(0, start - SNIPPET_CONTEXT), min(len(nfc), end + SNIPPET_CONTEXT)
    before = ("…" if left else "") + nfc[left:start]
    after = nfc[end:right] + ("…" if right < len(nfc) else "")
    return before, nfc[start:end], after


def candidate_tips(db: Session, units: list[int], bound: int) -> list[Tip]:
    """The ``bound`` most recent dispatched tips of ``units``, newest first."""
    if not units:
        return []
    return list(
        db.scalars(
            select(Tip)
            .where(
                Tip.unit_id.in_(units),
                Tip.dispatched_at.is_not(None),
                Tip.shredded_at.is_(None),  # nothing left to search (tipline.retention)
            )
            .order_by(Tip.created_at.desc(), Tip.id.desc())
            .limit(bound)
        )
    )


def open_tip_keys(
    db: Session, tips: list[Tip], opened_units: dict[int, PrivateKey]
) -> dict[int, PrivateKey]:
    """The tip keys the officer's unit keys open, in one query (what access.open_tip does one
    tip at a time); tips without a chain are left out."""
    if not tips or not opened_units:
        return {}
    rows = db.scalars(
        select(KeyGrant).where(
            KeyGrant.subject_kind == Subject.TIP,
            KeyGrant.subject_id.in_([t.id for t in tips]),
            KeyGrant.holder_kind == Holder.UNIT_KEY,
            KeyGrant.holder_id.in_(list(opened_units)),
        )
    )
    keys: dict[int, PrivateKey] = {}
    for row in rows:
        if row.subject_id in keys:
            continue
        try:
            keys[row.subject_id] = KEY_GRANT.open(
                row.sealed, opened_units[row.holder_id], *row.link
            )
        except EnvelopeError:
            continue
    return keys


def body_text(body: object) -> str:
    """What a decrypted message body holds as text: its text, and what else the informant
    sent as text (links and a contact card), one per line."""
    if not isinstance(body, dict):
        return ""
    parts = [body.get("text")]
    for link in body.get("links") or []:
        if isinstance(link, dict):
            parts += [link.get("url"), link.get("description")]
    card = body.get("card")
    if isinstance(card, dict):
        parts += [card.get("name"), card.get("phone")]
    return "\n".join(p for p in parts if isinstance(p, str) and p)


def _text(tip_key: PrivateKey, message: Message) -> str:
    try:
        body = json.loads(
            MESSAGE_BODY.open(tip_key, message.sealed_body, message_public_id=message.public_id)
        )
    except (EnvelopeError, ValueError):
        return ""
    return body_text(body)


def tip_texts(
    db: Session,
    tips: list[Tip],
    tip_keys: dict[int, PrivateKey],
    directions: Collection[str] | None = None,
) -> Iterator[tuple[Tip, list[tuple[str, str]]]]:
    """Each of ``tips`` the keys open, in order, with its decrypted texts: (source, text)
    pairs, the receipt code first, then its messages and notes. Opened here, in this request,
    and never kept: what both the search and the related-tip suggestions (triage.related)
    match against. ``directions``: only messages of these (and no receipt code); None, all.
    A generator, so a caller that stops early opens no more."""
    opened = [t for t in tips if t.id in tip_keys]
    messages: dict[int, list[Message]] = {t.id: [] for t in opened}
    if opened:
        for message in db.scalars(
            select(Message)
            .options(
                load_only(Message.tip_id, Message.public_id, Message.direction, Message.sealed_body)
            )
            .where(
                Message.tip_id.in_(list(messages)),
                Message.direction.in_(list(directions)) if directions is not None else true(),
            )
            .order_by(Message.id)
        ):
            messages[message.tip_id].append(message)
    for tip in opened:
        texts = [] if directions is not None else [("receipt", tip.receipt_code)]
        texts += [
            (message.direction, _text(tip_keys[tip.id], message))
            for message in messages[tip.id]
        ]
        yield tip, texts


def search_tips(
    db: Session, tips: list[Tip], tip_keys: dict[int, PrivateKey], pattern: re.Pattern[str]
) -> list[Hit]:
    """Decrypt the messages and notes of ``tips`` and keep those that match, in order."""
    hits: list[Hit] = []
    for tip, texts in tip_texts(db, tips, tip_keys):
        for source, text in texts:
            found = snippet(text, pattern)
            if found is not None:
                hits.append(Hit(tip, source, *found))
                break
    return hits


def search_bound() -> int:
    return int(current_app.config.get("TRIAGE_SEARCH_BOUND", DEFAULT_BOUND))


@blueprint.get("/")
def index() -> ResponseReturnValue:
    user = staff()
    if not user.holds_keys:
        raise Forbidden()
    form = SearchForm(request.args)
    hits: list[Hit] | None = None
    more = False
    searched = 0
    bound = search_bound()
    names: dict[int, str] = {}
    if "q" in request.args and form.validate():
        pattern = matcher(str(form.q.data))
        with runtime().sessions() as db:
            units = visible_unit_ids(db, user)
            tips = candidate_tips(db, units, bound)
            keys = open_tip_keys(db, tips, unit_keys(db))
            hits = search_tips(db, tips, keys, pattern)
            more = len(hits) > MAX_SHOWN
            hits = hits[:MAX_SHOWN]
            searched = len(keys)
            names = dict(db.execute(select(Unit.id, Unit.name).where(Unit.id.in_(units))).all())
        with write_session(runtime().sessions) as db:
            record(
                db,
                action=actions.SEARCH,
                actor=db.get_one(Officer, user.officer_id),
                client_address=request.remote_addr,
                detail={
                    "results": str(len(hits)),
                    "searched": str(searched),
                    "tips": " ".join(hit.tip.public_id for hit in hits),
                },
            )
    rows = [
        {
            "hit": hit,
            "unit": names.get(hit.tip.unit_id or 0, ""),
            "status": label(STATUS_LABELS, hit.tip.status),
            "priority": label(PRIORITY_LABELS, hit.tip.priority),
            "category": label(CATEGORY_LABELS, hit.tip.category),
        }
        for hit in hits or []
    ]
    return render_template(
        "triage/search.html",
        form=form,
        rows=rows,
        searched=searched,
        bound=bound,
        done=hits is not None,
        more=more,
        max_shown=MAX_SHOWN,
        logout_form=EmptyForm(),
        user=user,
    )
