"""The shared vocabularies: every fixed word the application stores in a plaintext column.

Producers (intake, the classifier, the workers, the staff UI) write these members and readers
(filters, labels, charts, rules) compare against them; nobody spells a value out. They are
``StrEnum`` members, so the database, JSON bodies and audit details hold the plain strings.

Stored values are data: renaming one takes a migration that rewrites the rows (see
``0015_one_vocabulary``), and a value that cannot be rewritten (the append-only audit trail)
keeps its old spelling. ``tests/test_vocabulary.py`` checks that every member the UI shows
has a label in both languages.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """What a tip is about (``tips.category``): suggested at dispatch, changed by officers."""

    DRUGS = "ma_tuy"
    GAMBLING = "danh_bac"
    THEFT = "trom_cap"
    ROBBERY = "cuop"
    FRAUD = "lua_dao"
    LOAN_SHARKING = "tin_dung_den"
    VIOLENCE = "bao_luc"  # violence and public disorder
    PROSTITUTION = "mai_dam"
    SMUGGLING = "buon_lau"  # smuggling and counterfeit goods
    WANTED_PERSON = "truy_na"
    ENVIRONMENT = "moi_truong"
    TRAFFIC = "giao_thong"
    OTHER = "khac"
    # Not a tip: a question about an administrative procedure, answered and closed at once.
    PROCEDURE_QUESTION = "hoi_thu_tuc"


class TipStatus(StrEnum):
    NEW = "new"  # mới
    VERIFYING = "verifying"  # đang xác minh
    IN_PROGRESS = "in_progress"  # đang xử lý
    RESOLVED = "resolved"  # đã xử lý
    UNFOUNDED = "unfounded"  # không có cơ sở
    DUPLICATE = "duplicate"  # trùng lặp
    SPAM = "spam"  # rác


# Still being worked on, in the order the inbox and the dashboard show them.
OPEN_STATUSES = (TipStatus.NEW, TipStatus.VERIFYING, TipStatus.IN_PROGRESS)
CLOSED_STATUSES = frozenset(set(TipStatus) - set(OPEN_STATUSES))


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Channel(StrEnum):
    """How a tip came in (``tips.channel``)."""

    ZALO = "zalo"  # a Zalo OA conversation: replies go back through Zalo, within its window
    WEB = "web"  # the public web form: replies are read at /tra-cuu, never sent


class Role(StrEnum):
    OFFICER = "officer"
    COMMANDER = "commander"
    AUDITOR = "auditor"
    ADMIN = "admin"


# Roles that hold unit keys; auditors and admins never do (DESIGN.md: no tip content).
KEY_HOLDING_ROLES = frozenset({Role.OFFICER, Role.COMMANDER})


class UnitLevel(StrEnum):
    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"
    OTHER = "other"


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"
    NOTE = "note"


class Delivery(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    WINDOW_CLOSED = "window_closed"  # Zalo -230/-232: the informant must write again
    NO_ADDRESS = "no_address"  # the informant destroyed their reply address
    PORTAL = "portal"  # a web-form tip: shown to the informant at /tra-cuu, never sent


class AttachmentState(StrEnum):
    PENDING = "pending"  # the media worker has not fetched and cleaned it yet
    STORED = "stored"
    REFUSED = "refused"  # could not be fetched or cleaned safely; the reason is recorded


class Subject(StrEnum):
    """What a key grant opens (``key_grants.subject_kind``)."""

    TIP = "tip"  # subject_id = tips.id
    UNIT_KEY = "unit_key"  # subject_id = unit_keys.id


class Holder(StrEnum):
    """Who a key grant is sealed to (``key_grants.holder_kind``)."""

    TRANSIT = "transit"  # holder_id = 0: the intake tier, until dispatch
    UNIT_KEY = "unit_key"  # holder_id = unit_keys.id
    OFFICER = "officer"  # holder_id = officers.id
