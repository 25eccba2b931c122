"""Facts about time the whole application shares: Vietnam's clock and Zalo's reply windows.

A leaf module (it imports nothing of Tipline's): the intake, the workers and the staff UI
all import these from here rather than restating them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import StrEnum

# Vietnam keeps one offset all year (UTC+7, no daylight saving time): officers' days and
# duty hours, the dashboard's calendar days and every time shown are read on this clock.
VIETNAM_OFFSET = timedelta(hours=7)
VIETNAM = timezone(VIETNAM_OFFSET, "ICT")
# Its IANA name, for what takes a zone by name (PostgreSQL's timezone(), Flask-Babel).
VIETNAM_ZONE_NAME = "Asia/Ho_Chi_Minh"

# Zalo lets an OA answer a user for 7 days after the user's last message (consultation
# messages); after that the informant must write again. Web-form tips have no such window.
ZALO_REPLY_WINDOW = timedelta(days=7)
# Within 48 hours of the informant's last message a consultation message is free; from 48 hours
# to 7 days Zalo charges it to the OA's Zalo Cloud Account (refused with -320/-321 when none is
# linked or it is empty); after 7 days it is refused (-230). research/zalo.md §2.4, §8.2.
ZALO_FREE_WINDOW = timedelta(hours=48)


class ReplyWindow(StrEnum):
    FREE = "free"
    PAID = "paid"
    CLOSED = "closed"


def reply_window(last_message_at: datetime, now: datetime) -> tuple[ReplyWindow, datetime | None]:
    """Where an answer to an informant who last wrote at ``last_message_at`` stands, and until
    when (None once closed)."""
    if now < last_message_at + ZALO_FREE_WINDOW:
        return ReplyWindow.FREE, last_message_at + ZALO_FREE_WINDOW
    if now <= last_message_at + ZALO_REPLY_WINDOW:
        return ReplyWindow.PAID, last_message_at + ZALO_REPLY_WINDOW
    return ReplyWindow.CLOSED, None

