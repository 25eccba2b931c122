"""Display names for statuses, priorities and categories, and the SLA rules the inbox shows."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l

from tipline.models import Priority, Tip, TipStatus

STATUS_LABELS = {
    TipStatus.NEW: _l("New"),
    TipStatus.VERIFYING: _l("Verifying"),
    TipStatus.IN_PROGRESS: _l("In progress"),
    TipStatus.RESOLVED: _l("Resolved"),
    TipStatus.UNFOUNDED: _l("Unfounded"),
    TipStatus.DUPLICATE: _l("Duplicate"),
    TipStatus.SPAM: _l("Spam"),
}
PRIORITY_LABELS = {
    Priority.URGENT: _l("Urgent"),
    Priority.HIGH: _l("High"),
    Priority.NORMAL: _l("Normal"),
    Priority.LOW: _l("Low"),
}
PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}
CATEGORY_LABELS = {
    "ma_tuy": _l("Drugs"),
    "danh_bac": _l("Gambling"),
    "trom_cap": _l("Theft"),
    "cuop": _l("Robbery"),
    "lua_dao": _l("Fraud"),
    "tin_dung_den": _l("Loan sharking"),
    "bao_luc": _l("Violence / disorder"),
    "mai_dam": _l("Prostitution"),
    "buon_lau": _l("Smuggling / counterfeits"),
    "truy_na": _l("Wanted person"),
    "moi_truong": _l("Environment"),
    "giao_thong": _l("Traffic"),
    "khac": _l("Other"),
    "hoi_thu_tuc": _l("Procedure question"),
}
# Time from arrival to the first opening, by priority.
FIRST_OPEN_SLA = {
    Priority.URGENT: timedelta(minutes=15),
    Priority.HIGH: timedelta(hours=2),
    Priority.NORMAL: timedelta(hours=24),
    Priority.LOW: timedelta(hours=72),
}


def sla_deadline(tip: Tip) -> datetime:
    return tip.created_at + FIRST_OPEN_SLA.get(Priority(tip.priority), timedelta(hours=24))


def sla_remaining(tip: Tip, now: datetime) -> timedelta | None:
    """Time left to open the tip; None once opened or closed; negative when breached."""
    if tip.first_opened_at is not None or not tip.is_open:
        return None
    return sla_deadline(tip) - now


def label(mapping: dict[str, object], value: str | None) -> str:
    return str(mapping.get(value or "", value or "—"))
