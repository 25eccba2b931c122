"""The data model, one model per module; the shared vocabularies in :mod:`.enums`."""

from tipline.models.anomaly_review import AnomalyReview
from tipline.models.attachment import Attachment
from tipline.models.audit_event import AuditEvent
from tipline.models.audit_head import AuditHead
from tipline.models.base import Base, new_public_id, utcnow
from tipline.models.canned_reply import CannedReply
from tipline.models.enums import (
    CLOSED_STATUSES,
    KEY_HOLDING_ROLES,
    OPEN_STATUSES,
    AttachmentState,
    Category,
    Channel,
    Delivery,
    Direction,
    GrantReason,
    GrantState,
    Holder,
    HoldReason,
    Integrity,
    MessageKind,
    NotificationKind,
    Outcome,
    Priority,
    QuarantineReason,
    Refusal,
    Role,
    RouteReason,
    SendProblem,
    Subject,
    TipStatus,
    UnitLevel,
)
from tipline.models.grant_request import GrantRequest
from tipline.models.inbound_event import InboundEvent
from tipline.models.key_grant import KeyGrant
from tipline.models.message import Message
from tipline.models.notice import Notice
from tipline.models.notification import Notification
from tipline.models.officer import Officer
from tipline.models.official_account import OfficialAccount
from tipline.models.outbox import OutboxEntry
from tipline.models.quarantined_event import QuarantinedEvent
from tipline.models.reply_address import ReplyAddress
from tipline.models.tip import Tip
from tipline.models.tip_link import TipLink
from tipline.models.tip_view import TipView
from tipline.models.transit_epoch import TransitEpoch
from tipline.models.unit import Unit
from tipline.models.unit_key import UnitKey

__all__ = [
    "CLOSED_STATUSES",
    "KEY_HOLDING_ROLES",
    "OPEN_STATUSES",
    "AnomalyReview",
    "Attachment",
    "AttachmentState",
    "AuditEvent",
    "AuditHead",
    "Base",
    "CannedReply",
    "Category",
    "Channel",
    "Delivery",
    "Direction",
    "GrantReason",
    "GrantRequest",
    "GrantState",
    "HoldReason",
    "Holder",
    "InboundEvent",
    "Integrity",
    "KeyGrant",
    "Message",
    "MessageKind",
    "Notice",
    "Notification",
    "NotificationKind",
    "Officer",
    "OfficialAccount",
    "OutboxEntry",
    "Outcome",
    "Priority",
    "QuarantineReason",
    "QuarantinedEvent",
    "Refusal",
    "ReplyAddress",
    "Role",
    "RouteReason",
    "SendProblem",
    "Subject",
    "Tip",
    "TipLink",
    "TipStatus",
    "TipView",
    "TransitEpoch",
    "Unit",
    "UnitKey",
    "UnitLevel",
    "new_public_id",
    "utcnow",
]
