"""The informant's side of the conversation (issue 6): commands, and a question after closure.

Commands are whole messages, recognised case-insensitively, with or without diacritics, with
surrounding spaces and a trailing "." "!" "?" ignored:

- "STOP", "XÓA" / "XOA", "HỦY" / "HUY": the informant's reply address is destroyed;
- "tình trạng" / "tinh trang": the receipt codes and statuses of their open tips, as a reply;
- a lone digit 1–5, only while one of their tips has a pending satisfaction question (asked
  within :data:`SATISFACTION_WINDOW`): the score is stored on that tip and they are thanked.
  Without a pending question "5" is an ordinary message.

"TT" is not a command: as a whole message it is as likely "thông tin" as "tình trạng", and a
tip misread as a command is lost, while a command misread as a tip only reaches an officer.

Commands are handled in intake's expansion (:func:`intercept`, called from
``tipline.intake.expansion._accept``), the only place where the worker, holding the transit key,
reads an informant's words. A command is never stored as a tip message; the replies to it are
ordinary outbound messages of the tip they concern (sealed to it, sent by the outbound worker).

"STOP" erases the address in the same transaction that reads the command: its key is deleted
from the volatile key store (tipline.reply_addresses), so every copy of the sealed Zalo id is
unreadable from then on, and every tip the informant sent so far is cut off for good
(``tips.informant_stopped_at``): replies queued before or after end ``NO_ADDRESS``, and the
officer sees why before writing. The informant gets one confirmation: it carries its own copy
of the address, sealed to the current transit epoch and never sealed again when that epoch is
retired (tipline.transit.reseal), so the copy cannot outlive the epoch, whatever happens to
the send; the erasure itself waits for nothing. A new message from the informant stores their
address again (``_upsert_reply_address``) and starts a new tip: writing again is their choice.

Closure (:func:`on_status_change`, called by the triage status change): a tip set to resolved
or unfounded (not duplicate or spam) gets one thank-you with its receipt code and the 1–5
question, if the informant can still be reached (an address, inside Zalo's 7-day window).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlalchemy import Connection, Table, delete, func, insert, select, update
from sqlalchemy.orm import Session

from keys import PublicKey, random_bytes
from tipline import audit
from tipline.keystore import Keystore
from tipline.models import (
    CLOSED_STATUSES,
    Delivery,
    Message,
    MessageKind,
    Notice,
    ReplyAddress,
    Tip,
    TipStatus,
    new_public_id,
    utcnow,
)
from tipline.models.sealed_fields import NOTICE_FOR_RELAY
from tipline.outbox import add_jobs
from tipline.outgoing import queue_outbound
from tipline.reply_addresses import destroy
from tipline.time_rules import (
    ZALO_REPLY_WINDOW,
)
from tipline.transit import Sealing
from tipline.zalo.events import (
    InboundMessage,
)

TIPS = cast(Table, Tip.__table__)
ADDRESSES = cast(Table, ReplyAddress.__table__)
MESSAGES = cast(Table, Message.__table__)
NOTICES = cast(Table, Notice.__table__)

SATISFACTION_WINDOW = timedelta(days=7)
THANKED_STATUSES = frozenset({TipStatus.RESOLVED, TipStatus.UNFOUNDED})
MAX_LISTED = 20  # open tips listed in a status reply

STATUS_NAMES: dict[str, str] = {
    TipStatus.NEW: "mới",
    TipStatus.VERIFYING: "đang xác minh",
    TipStatus.IN_PROGRESS: "đang xử lý",
}
QUESTION = "Bạn đánh giá việc tiếp nhận tin báo từ 1 đến 5 (5 là rất hài lòng)?"
NO_OPEN_TIPS = "Hiện bạn không có tin báo nào đang được xử lý."
NO_TIPS = (
    "Chưa có tin báo nào của bạn tại đơn vị này. Để báo tin, bạn chỉ cần nhắn nội dung sự "
    "việc, nơi xảy ra và hình ảnh (nếu có). Khẩn cấp, cần can thiệp ngay: gọi 113."
)
THANKS_FOR_SCORE = "Cảm ơn bạn đã đánh giá. Ý kiến của bạn giúp chúng tôi làm tốt hơn."


class Command(StrEnum):
    STOP = "stop"
    STATUS = "status"
    SCORE = "score"


_WORDS = {
    "stop": Command.STOP,
    "xoa": Command.STOP,
    "huy": Command.STOP,
    "tinh trang": Command.STATUS,
    "tinhtrang": Command.STATUS,
}


@dataclass(frozen=True)
class Parsed:
    command: Command
    score: int = 0  # 1–5 for SCORE


def fold(text: str) -> str:
    """Lower case, no diacritics (đ → d), single spaces, no trailing "." "!" "?"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split()).rstrip(".!? ").strip()


def parse(msg: InboundMessage) -> Parsed | None:
    """The command ``msg`` is, if its whole text is one (with anything else, a link, a card, a
    sticker, a location or a file: never)."""
    if msg.has_content_besides_text or not msg.text:
        return None
    folded = fold(msg.text)
    if folded in _WORDS:
        return Parsed(_WORDS[folded])
    if len(folded) == 1 and folded in "12345":
        return Parsed(Command.SCORE, int(folded))
    return None


def intercept(
    conn: Connection,
    sealing: Sealing,
    msg: InboundMessage,
    alias: str,
    store_address: Callable[[], object],
) -> str | None:
    """Handle ``msg`` if it is a command; None if it is an ordinary message for a tip.

    Returns the public id of the tip the command concerned ("" for "STOP"). Runs in intake's
    expansion transaction. ``store_address`` stores the informant's (new) reply address: called
    for every command but "STOP", since writing makes an informant reachable again.
    """
    parsed = parse(msg)
    if parsed is None:
        return None
    now = utcnow()
    if parsed.command is Command.STOP:
        _confirm_stop(conn, sealing, alias, msg.sender.address())
        _destroy_address(conn, sealing.keystore, alias, now)
        return ""
    if parsed.command is Command.STATUS:
        return _answer_status(conn, sealing, alias, store_address, msg)
    return _record_score(conn, sealing, alias, parsed.score, now, store_address)


STOP_CONFIRMED = (
    "Đơn vị đã nhận yêu cầu DỪNG. Các tin báo bạn đã gửi sẽ không được trả lời qua Zalo nữa "
    "và địa chỉ liên lạc của bạn đã bị xóa. Nếu muốn báo tin mới, bạn chỉ cần nhắn lại."
)


def _confirm_stop(conn: Connection, sealing: Sealing, alias: str, address: dict[str, str]) -> None:
    """The one answer to STOP, on the informant's latest tip (none: nothing to confirm)."""
    latest = conn.execute(
        select(TIPS.c.id)
        .where(TIPS.c.informant_alias == alias, TIPS.c.informant_stopped_at.is_(None))
        .order_by(TIPS.c.last_inbound_at.desc())
        .limit(1)
    ).scalar()
    if latest is None:
        return
    with Session(bind=conn, join_transaction_mode="rollback_only") as session:
        tip = session.get_one(Tip, latest)
        queue_outbound(
            session,
            tip,
            STOP_CONFIRMED,
            transit=sealing.transit,
            kind=MessageKind.STOP_CONFIRMATION,
            to=address,
        )
        session.flush()


def _destroy_address(conn: Connection, keystore: Keystore, alias: str, now: datetime) -> None:
    """STOP: the address key goes (every copy of the address is unreadable from now), and
    every tip so far is cut off from any later address, so no officer's reply to them is ever
    delivered, even when the informant writes again (that starts a new tip)."""
    destroy(keystore, alias)
    conn.execute(
        update(TIPS)
        .where(TIPS.c.informant_alias == alias, TIPS.c.informant_stopped_at.is_(None))
        .values(reply_address_id=None, informant_stopped_at=now)
    )
    destroyed = conn.execute(
        update(ADDRESSES)
        .where(ADDRESSES.c.informant_alias == alias, ADDRESSES.c.sealed_address.is_not(None))
        .values(sealed_address=None, destroyed_at=now)
    ).rowcount
    if destroyed:
        # The system acts; no object, no detail: which informant it was is nobody's business.
        audit.record(conn, action=audit.actions.INFORMANT_STOP)


def withdraw(conn: Connection, keystore: Keystore, alias: str, now: datetime) -> bool:
    """``user_withdraw``: the informant asked the OA's partners to delete their data.

    As for STOP, the address key goes (every copy of the address is unreadable), the address
    row is deleted and every tip so far is cut off; nothing is sent (they asked for silence,
    and the address is gone). Beyond STOP, the identity link is destroyed: their tips get a
    random alias in place of HMAC(alias key, OA + Zalo id), so their Zalo id no longer finds
    them, while the tips stay together under one (new) pseudonym. The content is kept for the
    case, under the retention policy (docs/zalo-events.md). Replies queued to them are
    dropped, relay copies (which may carry the address) erased. Whether anything was theirs.
    """
    destroy(keystore, alias)
    tip_ids = list(conn.execute(select(TIPS.c.id).where(TIPS.c.informant_alias == alias)).scalars())
    if tip_ids:
        conn.execute(
            update(TIPS)
            .where(TIPS.c.id.in_(tip_ids))
            .values(
                informant_alias=random_bytes(32).hex(),
                reply_address_id=None,
                informant_stopped_at=func.coalesce(TIPS.c.informant_stopped_at, now),
                informant_withdrawn_at=now,
            )
        )
        conn.execute(
            update(MESSAGES)
            .where(MESSAGES.c.tip_id.in_(tip_ids), MESSAGES.c.delivery == Delivery.QUEUED)
            .values(
                delivery=Delivery.NO_ADDRESS,
                delivery_error="informant withdrew consent",
                sealed_for_relay=None,
            )
        )
    removed = conn.execute(delete(ADDRESSES).where(ADDRESSES.c.informant_alias == alias)).rowcount
    if not tip_ids and not removed:
        return False
    audit.record(conn, action=audit.actions.INFORMANT_WITHDRAW)
    return True


def status_text(tips: list[tuple[str, str]]) -> str:
    """The reply to "tình trạng": one line per open tip, receipt code and status."""
    if not tips:
        return NO_OPEN_TIPS
    lines = ["Tình trạng tin báo của bạn:"]
    lines += [
        f"{code}: {STATUS_NAMES.get(status, 'đang xử lý')}" for code, status in tips[:MAX_LISTED]
    ]
    if len(tips) > MAX_LISTED:
        lines.append(f"… và {len(tips) - MAX_LISTED} tin báo khác.")
    return "\n".join(lines)


def _queue_notice(conn: Connection, sealing: Sealing, msg: InboundMessage, text: str) -> None:
    """Answer someone who has no tip: a notice (tipline.models.notice) the outbound worker
    sends and then deletes; the address travels sealed to the transit epoch, as the answer to
    STOP does, and is stored nowhere else."""
    public_id = new_public_id()
    sealed = NOTICE_FOR_RELAY.seal(
        sealing.transit,
        json.dumps({"to": msg.sender.address(), "text": text}, ensure_ascii=False).encode(),
        notice_public_id=public_id,
    )
    conn.execute(
        insert(NOTICES).values(
            public_id=public_id,
            oa_id=msg.oa_id,
            sealed_for_relay=sealed,
            created_at=utcnow(),
            attempts=0,
        )
    )
    add_jobs(conn, [("notice", public_id)])


def _answer_status(
    conn: Connection,
    sealing: Sealing,
    alias: str,
    store_address: Callable[[], object],
    msg: InboundMessage,
) -> str | None:
    rows = conn.execute(
        select(TIPS.c.id, TIPS.c.public_id, TIPS.c.receipt_code, TIPS.c.status)
        .where(TIPS.c.informant_alias == alias)
        .order_by(TIPS.c.last_inbound_at.desc(), TIPS.c.id.desc())
    ).all()
    if not rows:
        # No tip to answer on: answered all the same, never made a tip (a junk tip with a
        # receipt code for someone who only asked), as a notice of its own.
        _queue_notice(conn, sealing, msg, NO_TIPS)
        return ""
    open_rows = [r for r in rows if r.status not in CLOSED_STATUSES]
    store_address()
    about = open_rows[0] if open_rows else rows[0]
    _queue(conn, sealing, about.id, status_text([(r.receipt_code, r.status) for r in open_rows]))
    return str(about.public_id)


def _record_score(
    conn: Connection,
    sealing: Sealing,
    alias: str,
    score: int,
    now: datetime,
    store_address: Callable[[], object],
) -> str | None:
    pending = conn.execute(
        select(TIPS.c.id, TIPS.c.public_id)
        .where(
            TIPS.c.informant_alias == alias,
            TIPS.c.satisfaction_asked_at >= now - SATISFACTION_WINDOW,
            TIPS.c.satisfaction.is_(None),
        )
        .order_by(TIPS.c.satisfaction_asked_at.desc())
        .limit(1)
    ).first()
    if pending is None:
        return None  # no question asked: "5" is a message like any other
    store_address()
    conn.execute(update(TIPS).where(TIPS.c.id == pending.id).values(satisfaction=score))
    _queue(conn, sealing, pending.id, THANKS_FOR_SCORE)
    return str(pending.public_id)


def _queue(conn: Connection, sealing: Sealing, tip_id: int, text: str) -> None:
    """queue_outbound inside intake's Core transaction (the session joins it, never ends it)."""
    with Session(bind=conn, join_transaction_mode="rollback_only") as session:
        tip = session.get_one(Tip, tip_id)
        queue_outbound(session, tip, text, transit=sealing.transit)
        session.flush()


def thank_you_text(tip: Tip) -> str:
    return (
        f"Cảm ơn bạn đã báo tin. Tin báo mã {tip.receipt_code} đã được xem xét xong.\n"
        f"{QUESTION} Bạn chỉ cần trả lời bằng một chữ số."
    )


def on_status_change(
    session: Session, tip: Tip, transit: PublicKey, now: datetime | None = None
) -> Message | None:
    """After ``tip.status`` changed: thank the informant once if it was closed as resolved or
    unfounded, and ask the satisfaction question. None when nothing was sent."""
    now = now or utcnow()
    if tip.status not in THANKED_STATUSES or tip.satisfaction_asked_at is not None:
        return None
    address = tip.reply_address
    if address is None or address.sealed_address is None:
        return None  # a web-form informant, or one who sent "STOP"
    if address.last_inbound_at < now - ZALO_REPLY_WINDOW:
        return None  # Zalo would refuse it
    tip.satisfaction_asked_at = now
    return queue_outbound(session, tip, thank_you_text(tip), transit=transit)
