"""Facts about time the whole application shares: Vietnam's clock and Zalo's reply window.

A leaf module (it imports nothing of Tipline's): the intake, the workers and the staff UI
all import these from here rather than restating them.
"""

from __future__ import annotations

from datetime import timedelta, timezone

# Vietnam keeps one offset all year (UTC+7, no daylight saving time): officers' days and
# duty hours, the dashboard's calendar days and every time shown are read on this clock.
VIETNAM_OFFSET = timedelta(hours=7)
VIETNAM = timezone(VIETNAM_OFFSET, "ICT")
# Its IANA name, for what takes a zone by name (PostgreSQL's timezone(), Flask-Babel).
VIETNAM_ZONE_NAME = "Asia/Ho_Chi_Minh"

# Zalo lets an OA answer a user for 7 days after the user's last message (consultation
# messages); after that the informant must write again. Web-form tips have no such window.
ZALO_REPLY_WINDOW = timedelta(days=7)
