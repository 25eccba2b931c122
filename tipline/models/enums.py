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


class MessageKind(StrEnum):
    """What a message is (``messages.kind``): a Zalo event's type, or an officer's note."""

    TEXT = "text"
    IMAGE = "image"
    FILE = "file"
    AUDIO = "audio"
    VIDEO = "video"
    LOCATION = "location"
    LINK = "link"
    STICKER = "sticker"
    GIF = "gif"
    BUSINESS_CARD = "business_card"
    NOTE = "note"
    # The one answer to STOP: it carries its own copy of the address, never kept past its
    # transit epoch (tipline.informant, tipline.transit.reseal).
    STOP_CONFIRMATION = "stop_answer"


class Delivery(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    WINDOW_CLOSED = "window_closed"  # Zalo -230/-232: the informant must write again
    NO_ADDRESS = "no_address"  # the informant destroyed their reply address
    PORTAL = "portal"  # a web-form tip: shown to the informant at /tra-cuu, never sent


class QuarantineReason(StrEnum):
    """Why a validly signed Zalo event was kept in quarantine instead of read
    (``quarantined_events.reason``). Zalo retries anything but a 200 and then cancels the
    app's webhook subscription for every OA, so what Tipline cannot read is kept, never refused.
    """

    UNREADABLE = "unreadable"  # not JSON
    NOT_UNICODE = "not_unicode"  # JSON escapes that no text holds (a lone surrogate)
    NO_EVENT_NAME = "no_event_name"
    OTHER_APP = "other_app"  # signed for our app, but the body names another app id
    NO_MESSAGE = "no_message"  # a message event without a message object
    NO_OA = "no_oa"  # no OA id this install could serve
    NO_SENDER = "no_sender"  # no user id, or an anonymous chat without its ids
    BAD_MSG_ID = "bad_msg_id"  # a msg_id that is there but is no id
    TOO_LONG = "too_long"  # text over what intake reads (events.MAX_TEXT)
    TOO_MANY_ATTACHMENTS = "too_many_attachments"


class SendProblem(StrEnum):
    """Why Zalo did not take an outbound message (``messages.delivery_problem``): one class per
    kind of fix, shown to officers on the message and to admins per OA. Zalo's code and words
    stay in ``delivery_error``."""

    UNFUNDED = "unfunded"  # -320, -321: a paid message, and no funded Zalo Cloud Account
    OA_NOT_ELIGIBLE = "oa_not_eligible"  # -221, -224: OA not verified, or no service package
    APP_NOT_PERMITTED = "app_not_permitted"  # -209, -212, -219, -223: the app lacks this API
    API_RETIRED = "api_retired"  # -240: Zalo shut the API down (MessageV2)
    APP_PROOF = "app_proof"  # -242: appsecret_proof wrong
    WINDOW_CLOSED = "window_closed"  # -230, -232: the informant has not written for 7 days
    UNREACHABLE = "unreachable"  # -213, -227, -244: not following, inactive, or blocked it
    OA_ACCESS = "oa_access"  # the OA's token was refused even after a refresh, or is missing
    RATE_LIMITED = "rate_limited"  # -32, until the attempts ran out
    UNAVAILABLE = "unavailable"  # Zalo could not be reached, until the attempts ran out
    REJECTED = "rejected"  # any other refusal


class AttachmentState(StrEnum):
    PENDING = "pending"  # the media worker has not fetched and cleaned it yet
    STORED = "stored"
    REFUSED = "refused"  # could not be fetched or cleaned safely; the reason is recorded


class Refusal(StrEnum):
    """Why the media worker did not store an attachment (``attachments.refusal``)."""

    HOST_NOT_ALLOWED = "host_not_allowed"
    PRIVATE_ADDRESS = "private_address"
    BAD_URL = "bad_url"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    UNSUPPORTED_TYPE = "unsupported_type"
    IMAGE_TOO_LARGE = "image_too_large"
    DAMAGED = "damaged"
    ENCRYPTED = "encrypted"
    LIMITS = "limits"  # the cleaning sandbox stopped it (CPU, memory, size, processes, time)
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"  # bwrap missing or not permitted here
    # Not final: the download failed for now (DNS, connection, timeout, 5xx) and is retried;
    # recorded on a pending attachment so officers see why it is still pending.
    RETRYING = "retrying"


class Integrity(StrEnum):
    """The received bytes against the ``size`` and ``checksum`` (MD5) Zalo's payload gave."""

    MATCHED = "matched"
    NOT_GIVEN = "not_given"  # Zalo gives them for files only
    SIZE_MISMATCH = "size_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"


class NotificationKind(StrEnum):
    """What a notice is about (``notifications.kind``): fixed kinds, never tip content."""

    ASSIGNED_TIP = "assigned_tip"  # to the officer a tip was assigned to (by duty or by hand)
    UNASSIGNED_TIP = "unassigned_tip"  # to the unit's commanders: nobody on duty took it
    ESCALATED = "escalated"  # to the unit above (SLA escalation or an officer's choice)
    TRANSFERRED = "transferred"  # to the unit a tip was transferred to
    LOCATION_RECEIVED = "location_received"  # a shared location points to another unit
    RETENTION_WARNING = "retention_warning"  # a closed tip nears the end of its retention


class HoldReason(StrEnum):
    """Why dispatch keeps a tip back (``tips.dispatch_error``): a fixed word, never content."""

    OA_NOT_ATTACHED = "oa_not_attached"  # its OA belongs to no unit yet
    UNIT_HAS_NO_KEY = "unit_has_no_key"  # its unit cannot receive tips until it has a key
    # The transit epoch's key was lost (the key store restarted) before dispatch: the tip
    # waits in its intake unit, whose key holders open it and route it by hand.
    TRANSIT_KEY_LOST = "transit_key_lost"
    # The unit's stored public key fails its certificate (swapped in the database): nothing
    # is sealed to it; the tip waits, still sealed to the transit epoch (tipline.models.key_trust).
    UNIT_KEY_NOT_CERTIFIED = "unit_key_not_certified"


class RouteReason(StrEnum):
    """How the place router decided (``PlaceDecision.reason``; the audit's ``route``)."""

    GPS = "gps"  # the shared point is inside a commune
    GPS_NEAREST = "gps_nearest"  # the shared point is near a commune
    GPS_PROVINCE = "gps_province"  # the shared point is in the province, in no commune
    GPS_OTHER_PROVINCE = "gps_other_province"
    TEXT = "text"  # one commune named
    SPLIT = "split"  # a named place split between communes
    TIE = "tie"  # two communes equally likely
    WEAK = "weak"  # a commune, but on weak evidence
    OTHER_PROVINCE = "other_province"
    DISTRICT_ONLY = "district_only"
    PROVINCE_ONLY = "province_only"
    NO_PLACE = "no_place"


class Outcome(StrEnum):
    """How an audited action ended (``audit_events.outcome``). Stored as-is: never rename."""

    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"
    HELD = "held"
    WINDOW_CLOSED = "window_closed"
    NO_ADDRESS = "no_address"
    BROKEN = "broken"  # an audit chain verification that found a broken link


class Subject(StrEnum):
    """What a key grant opens (``key_grants.subject_kind``)."""

    TIP = "tip"  # subject_id = tips.id
    UNIT_KEY = "unit_key"  # subject_id = unit_keys.id


class Holder(StrEnum):
    """Who a key grant is sealed to (``key_grants.holder_kind``)."""

    TRANSIT = "transit"  # holder_id = 0: the intake tier, until dispatch
    UNIT_KEY = "unit_key"  # holder_id = unit_keys.id
    OFFICER = "officer"  # holder_id = officers.id


class GrantReason(StrEnum):
    """Why an account waits for a unit key (``grant_requests.reason``)."""

    NEW_ACCOUNT = "new_account"
    # An admin reset the password: a new officer key pair. (A word, not a password.)
    PASSWORD_RESET = "password_reset"  # noqa: S105  # nosec B105
    AUTHENTICATOR_RESET = "authenticator_reset"  # a lost phone: whoever enrols gets the keys
    UNIT_MOVE = "unit_move"
    ROLE_CHANGE = "role_change"  # from a role without keys to one that holds them
    RE_ENABLED = "re_enabled"  # disabled (keys revoked), then enabled again


class GrantState(StrEnum):
    """Where a grant request stands (``grant_requests.state``)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # superseded (another reset, a move, a disable) before a decision
