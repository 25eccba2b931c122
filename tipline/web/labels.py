"""Display names for the shared vocabularies (keyed by their members), and the SLA rules.

Every member of a vocabulary the UI shows has a label here, translated in the Vietnamese
catalog (``tests/test_vocabulary.py`` fails otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l

from tipline.audit import (
    DENIED_OPEN,
    FAILED_LOGINS,
    LOGIN_SPRAY,
    LOGIN_SWARM,
    NEW_ACCOUNT_GRANT,
    NOT_ASSIGNED_OPEN,
    OFF_HOURS_OPEN,
    OPEN_BURST,
    actions,
)
from tipline.models import (
    AttachmentState,
    Category,
    Delivery,
    GrantReason,
    Integrity,
    MessageKind,
    NotificationKind,
    Outcome,
    Priority,
    QuarantineReason,
    Refusal,
    Role,
    SendProblem,
    Tip,
    TipStatus,
    UnitLevel,
)

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
    Category.DRUGS: _l("Drugs"),
    Category.GAMBLING: _l("Gambling"),
    Category.THEFT: _l("Theft"),
    Category.ROBBERY: _l("Robbery"),
    Category.FRAUD: _l("Fraud"),
    Category.LOAN_SHARKING: _l("Loan sharking"),
    Category.VIOLENCE: _l("Violence / disorder"),
    Category.PROSTITUTION: _l("Prostitution"),
    Category.SMUGGLING: _l("Smuggling / counterfeits"),
    Category.WANTED_PERSON: _l("Wanted person"),
    Category.ENVIRONMENT: _l("Environment"),
    Category.TRAFFIC: _l("Traffic"),
    Category.OTHER: _l("Other"),
    Category.PROCEDURE_QUESTION: _l("Procedure question"),
}
GRANT_REASON_LABELS = {
    GrantReason.NEW_ACCOUNT: _l("new account"),
    GrantReason.PASSWORD_RESET: _l("password reset by an administrator"),
    GrantReason.AUTHENTICATOR_RESET: _l("authenticator re-enrolled (lost phone)"),
    GrantReason.UNIT_MOVE: _l("moved to this unit"),
    GrantReason.ROLE_CHANGE: _l("role changed"),
    GrantReason.RE_ENABLED: _l("account enabled again"),
}
ROLE_LABELS = {
    Role.OFFICER: _l("officer"),
    Role.COMMANDER: _l("commander"),
    Role.AUDITOR: _l("auditor"),
    Role.ADMIN: _l("admin"),
}
# What a message is: a Zalo event's type, or an officer's note.
MESSAGE_KIND_LABELS = {
    MessageKind.TEXT: _l("Text"),
    MessageKind.IMAGE: _l("Photo"),
    MessageKind.FILE: _l("File"),
    MessageKind.AUDIO: _l("Voice message"),
    MessageKind.VIDEO: _l("Video"),
    MessageKind.LOCATION: _l("Location"),
    MessageKind.LINK: _l("Link"),
    MessageKind.STICKER: _l("Sticker"),
    MessageKind.GIF: _l("Animated image (GIF)"),
    MessageKind.BUSINESS_CARD: _l("Contact card"),
    MessageKind.NOTE: _l("Note"),
    MessageKind.STOP_CONFIRMATION: _l("Answer to STOP"),
}
# Where a reply to the informant stands.
DELIVERY_LABELS = {
    Delivery.QUEUED: _l("queued"),
    Delivery.SENT: _l("delivered"),
    Delivery.FAILED: _l("failed"),
    Delivery.WINDOW_CLOSED: _l("reply window closed"),
    Delivery.NO_ADDRESS: _l("informant stopped replies"),
    Delivery.PORTAL: _l("waiting on the web follow-up page"),
}
# Why Zalo did not take a message: what officers read on it, admins per OA.
SEND_PROBLEM_LABELS = {
    SendProblem.UNFUNDED: _l(
        "Paid message: the OA has no Zalo Cloud Account with money (an administrator must fund it)"
    ),
    SendProblem.OA_NOT_ELIGIBLE: _l("The OA is not verified or has no service package"),
    SendProblem.APP_NOT_PERMITTED: _l("The app is not permitted to use this API for the OA"),
    SendProblem.API_RETIRED: _l("Zalo has shut down this sending API"),
    SendProblem.APP_PROOF: _l("Wrong appsecret_proof (the app secret is misconfigured)"),
    SendProblem.WINDOW_CLOSED: _l("The informant has not written for 7 days"),
    SendProblem.UNREACHABLE: _l(
        "The informant cannot receive it (not following the OA, inactive, or blocked it)"
    ),
    SendProblem.OA_ACCESS: _l("The OA's access must be granted again by an administrator"),
    SendProblem.RATE_LIMITED: _l("Zalo's sending limit was reached"),
    SendProblem.UNAVAILABLE: _l("Zalo could not be reached"),
    SendProblem.REJECTED: _l("Zalo refused the message"),
}
# The notification list's words for each kind of notice.
NOTIFICATION_KIND_LABELS = {
    NotificationKind.ASSIGNED_TIP: _l("A tip was assigned to you"),
    NotificationKind.UNASSIGNED_TIP: _l("A tip is waiting: nobody on duty to take it"),
    NotificationKind.ESCALATED: _l("A tip was raised to your unit"),
    NotificationKind.TRANSFERRED: _l("A tip was transferred to your unit"),
    NotificationKind.LOCATION_RECEIVED: _l("A shared location points to another unit"),
    NotificationKind.RETENTION_WARNING: _l("A closed tip will soon be deleted (retention)"),
}
# What the audit pages and a tip's timeline call each event.
UNIT_LEVEL_LABELS = {
    UnitLevel.PROVINCE: _l("Province / city"),
    UnitLevel.DISTRICT: _l("District (old)"),
    UnitLevel.COMMUNE: _l("Commune / ward"),
    UnitLevel.OTHER: _l("Other unit"),
}
ACTION_LABELS: dict[str, Any] = {
    actions.LOGIN: _l("Login"),
    actions.LOGIN_FAILED: _l("Failed login"),
    actions.LOGOUT: _l("Logout"),
    actions.KEY_UNLOCK: _l("Officer's decryption key unlocked at login"),
    actions.TIP_RECEIVED: _l("Tip received"),
    actions.TIP_DISPATCHED: _l("Tip dispatched"),
    actions.REPLY_DELIVERED: _l("Reply delivered"),
    actions.INFORMANT_STOP: _l("Informant unsubscribed (reply address destroyed)"),
    actions.INFORMANT_WITHDRAW: _l("Informant withdrew consent on Zalo (address erased)"),
    actions.OA_CONSOLE_REPLY: _l("Reply typed by an OA administrator on Zalo"),
    actions.EVENTS_RECOVERED: _l("Waiting tips recovered with the unit key"),
    actions.EVENTS_RETRIED: _l("Events set aside tried again"),
    actions.TIP_OPEN: _l("Tip opened"),
    actions.TIP_SHREDDED: _l("Tip deleted (retention)"),
    actions.ATTACHMENT_DOWNLOAD: _l("Attachment downloaded"),
    actions.ATTACHMENT_VIEW: _l("Attachment viewed"),
    actions.TIP_EXPORT: _l("Tip exported"),
    actions.SEARCH: _l("Tip search"),
    actions.STATUS_CHANGE: _l("Status changed"),
    actions.PRIORITY_CHANGE: _l("Priority changed"),
    actions.CATEGORY_CHANGE: _l("Category changed"),
    actions.ASSIGN: _l("Assigned"),
    actions.TRANSFER: _l("Transferred"),
    actions.ESCALATE: _l("Handed up to the parent unit"),
    actions.SLA_NOTICE: _l("Automatic notice to the unit above: urgent tip still unopened"),
    actions.REPLY_QUEUED: _l("Reply written"),
    actions.NOTE_ADDED: _l("Note added"),
    actions.TIP_LINK: _l("Linked to a related tip"),
    actions.TIP_UNLINK: _l("Link to a related tip removed"),
    actions.GRANT: _l("Key granted"),
    actions.GRANT_REQUEST: _l("Key requested"),
    actions.GRANT_REJECT: _l("Key request rejected"),
    actions.GRANT_REVOKE: _l("Key grants revoked"),
    actions.SESSIONS_ENDED: _l("Sessions ended"),
    actions.KEY_CREATE: _l("Key created"),
    actions.KEY_ROTATE: _l("Key rotated"),
    actions.ACCOUNT_CREATE: _l("Account created"),
    actions.ACCOUNT_CHANGE: _l("Account changed"),
    actions.UNIT_CREATE: _l("Unit created"),
    actions.UNIT_RENAME: _l("Unit renamed"),
    actions.OA_ATTACH: _l("OA attached"),
    actions.OA_DETACH: _l("OA detached"),
    actions.OA_CONNECT: _l("OA connected to Zalo"),
    actions.AUDIT_VIEW: _l("Audit viewed"),
    actions.AUDIT_EXPORT: _l("Audit exported"),
    actions.AUDIT_VERIFY: _l("Audit chain verified"),
    actions.AUDIT_CHECKPOINT: _l("Audit checkpoint"),
    actions.ANOMALY_REVIEW: _l("Anomaly reviewed"),
    actions.DUTY_CHANGE: _l("Duty roster changed"),
    actions.AUDIT_RESTORE: _l("Database restored from a backup"),
    actions.AUDIT_COMPARE: _l("Audit checkpoint compared"),
    actions.KEY_REJECTED: _l("Public key rejected (not certified)"),
}
# What the auditor's anomaly panel calls each flag (tipline.audit.query).
ANOMALY_LABELS: dict[str, Any] = {
    OPEN_BURST: _l("Burst of tip opens"),
    OFF_HOURS_OPEN: _l("Tip opened outside duty hours"),
    NOT_ASSIGNED_OPEN: _l("Opened a tip assigned to someone else"),
    FAILED_LOGINS: _l("Repeated failed logins"),
    DENIED_OPEN: _l("Asked for a tip outside their units (refused)"),
    LOGIN_SPRAY: _l("Failed logins on many accounts from one address"),
    LOGIN_SWARM: _l("Failed logins on one account from many addresses"),
    NEW_ACCOUNT_GRANT: _l("Unit key granted to a recently created account"),
}
OUTCOME_LABELS = {
    Outcome.OK: _l("ok"),
    Outcome.DENIED: _l("denied"),
    Outcome.FAILED: _l("failed"),
    Outcome.HELD: _l("held"),
    Outcome.WINDOW_CLOSED: _l("reply window closed"),
    Outcome.NO_ADDRESS: _l("no reply address"),
    Outcome.BROKEN: _l("broken"),
}
# Why the media worker did not store an attachment (tipline.media.errors).
REFUSAL_LABELS = {
    Refusal.HOST_NOT_ALLOWED: _l("Refused: the link points to a server that is not Zalo's."),
    Refusal.PRIVATE_ADDRESS: _l("Refused: the link points to a private or internal address."),
    Refusal.BAD_URL: _l("Refused: the link is not a valid web address."),
    Refusal.TOO_MANY_REDIRECTS: _l("Refused: the link redirects too many times."),
    Refusal.TOO_LARGE: _l("Refused: the file is larger than the size limit."),
    Refusal.TIMEOUT: _l("Refused: the download took too long."),
    Refusal.UNAVAILABLE: _l("The file could not be downloaded from Zalo."),
    Refusal.UNSUPPORTED_TYPE: _l(
        "Refused: metadata cannot be removed from this type of file, so it was not kept."
    ),
    Refusal.IMAGE_TOO_LARGE: _l("Refused: the image is too large (possibly a decompression bomb)."),
    Refusal.DAMAGED: _l("Refused: the file is damaged and cannot be cleaned."),
    Refusal.ENCRYPTED: _l("Refused: the document is encrypted and cannot be cleaned."),
    Refusal.LIMITS: _l(
        "Refused: cleaning the file exceeded the time, memory or size limits of the sandbox."
    ),
    Refusal.SANDBOX_UNAVAILABLE: _l(
        "Not cleaned: the cleaning sandbox is not available on this server; tell the admin."
    ),
    Refusal.RETRYING: _l("Zalo's server did not answer for now; the download is retried."),
}
# The bytes received against the size and checksum Zalo's event gave.
INTEGRITY_LABELS = {
    Integrity.MATCHED: _l("Size and checksum match what Zalo stated."),
    Integrity.NOT_GIVEN: _l("Zalo stated no size or checksum for this file."),
    Integrity.SIZE_MISMATCH: _l(
        "Warning: the size received differs from what Zalo stated; the file is kept as received."
    ),
    Integrity.CHECKSUM_MISMATCH: _l(
        "Warning: the checksum differs from what Zalo stated; the file is kept as received."
    ),
}
# How a kept file is shown (the media worker's "media" fact).
MEDIA_LABELS = {
    "image": _l("Image"),
    "audio": _l("Audio"),
    "video": _l("Video"),
    "pdf": _l("Document (PDF, pages as images)"),
}
# Why a signed Zalo event was kept in quarantine (admins see this, never the event).
QUARANTINE_REASON_LABELS = {
    QuarantineReason.UNREADABLE: _l("Not readable (not JSON)"),
    QuarantineReason.NOT_UNICODE: _l("Holds characters that are not text"),
    QuarantineReason.NO_EVENT_NAME: _l("No event name"),
    QuarantineReason.OTHER_APP: _l("Names another Zalo app"),
    QuarantineReason.NO_MESSAGE: _l("A message event without a message"),
    QuarantineReason.NO_OA: _l("No OA served here"),
    QuarantineReason.NO_SENDER: _l("No sender"),
    QuarantineReason.BAD_MSG_ID: _l("Invalid message id"),
    QuarantineReason.TOO_LONG: _l("Text too long"),
    QuarantineReason.TOO_MANY_ATTACHMENTS: _l("Too many attachments"),
}
ATTACHMENT_STATE_LABELS = {
    AttachmentState.PENDING: _l("being downloaded and cleaned"),
    AttachmentState.STORED: _l("stored, metadata removed"),
    AttachmentState.REFUSED: _l("not stored"),
}
# Time from arrival in the unit to its first opening there, by priority.
FIRST_OPEN_SLA = {
    Priority.URGENT: timedelta(minutes=15),
    Priority.HIGH: timedelta(hours=2),
    Priority.NORMAL: timedelta(hours=24),
    Priority.LOW: timedelta(hours=72),
}
# Time from arrival in the unit to the first answer to the informant, and to closure.
RESPONSE_SLA = {
    Priority.URGENT: timedelta(hours=1),
    Priority.HIGH: timedelta(hours=8),
    Priority.NORMAL: timedelta(hours=48),
    Priority.LOW: timedelta(days=5),
}
CLOSURE_SLA = {
    Priority.URGENT: timedelta(days=3),
    Priority.HIGH: timedelta(days=7),
    Priority.NORMAL: timedelta(days=30),
    Priority.LOW: timedelta(days=60),
}


def _limit(table: Mapping[Priority, timedelta], tip: Tip, default: timedelta) -> timedelta:
    try:
        return table.get(Priority(tip.priority), default)
    except ValueError:
        return default


def sla_deadline(tip: Tip) -> datetime:
    """When the tip must be opened by an officer of its unit: the clock starts on arrival in
    the unit (dispatch, transfer, escalation)."""
    return tip.arrived_in_unit_at + _limit(FIRST_OPEN_SLA, tip, timedelta(hours=24))


def sla_remaining(tip: Tip, now: datetime) -> timedelta | None:
    """Time left for the unit to open the tip; None once an officer of the unit opened it, or
    it was closed; negative when breached."""
    if tip.unit_opened_at is not None or not tip.is_open:
        return None
    return sla_deadline(tip) - now


@dataclass(frozen=True)
class Deadline:
    """One of a tip's deadlines: its name, when it falls due, when it was met (or None)."""

    name: str
    due: datetime
    met_at: datetime | None

    def remaining(self, now: datetime) -> timedelta | None:
        return None if self.met_at is not None else self.due - now

    @property
    def missed(self) -> bool:
        return self.met_at is not None and self.met_at > self.due


def deadlines(tip: Tip) -> list[Deadline]:
    """Open (in the unit), answer the informant, close: each from arrival in the unit."""
    start = tip.arrived_in_unit_at
    return [
        Deadline(str(_l("Open")), sla_deadline(tip), tip.unit_opened_at),
        Deadline(
            str(_l("First answer")),
            start + _limit(RESPONSE_SLA, tip, timedelta(hours=48)),
            tip.responded_at,
        ),
        Deadline(
            str(_l("Closure")),
            start + _limit(CLOSURE_SLA, tip, timedelta(days=30)),
            tip.closed_at,
        ),
    ]


def label(mapping: Mapping[Any, object], value: str | None) -> str:
    """The display name of a stored ``value`` (a member's string); the value itself if it has
    none, "—" for none."""
    return str(mapping.get(value or "", value or "—"))


def choices(mapping: Mapping[Any, object]) -> list[tuple[str, str]]:
    """A select's (value, display name) pairs, in the mapping's order."""
    return [(str(value), str(name)) for value, name in mapping.items()]
