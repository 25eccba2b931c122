"""The data model, one model per module."""

from tipline.models.attachment import Attachment, AttachmentState
from tipline.models.audit_event import AuditEvent
from tipline.models.audit_head import AuditHead
from tipline.models.base import Base, new_public_id, utcnow
from tipline.models.inbound_event import InboundEvent
from tipline.models.key_grant import Holder, KeyGrant, Subject
from tipline.models.message import Delivery, Direction, Message
from tipline.models.notification import Notification
from tipline.models.officer import KEY_HOLDING_ROLES, Officer, Role
from tipline.models.official_account import OfficialAccount
from tipline.models.outbox import OutboxEntry
from tipline.models.reply_address import ReplyAddress
from tipline.models.tip import CLOSED_STATUSES, Priority, Tip, TipStatus
from tipline.models.transit_epoch import TransitEpoch
from tipline.models.unit import Unit, UnitLevel
from tipline.models.unit_key import UnitKey

__all__ = [
    "CLOSED_STATUSES",
    "KEY_HOLDING_ROLES",
    "Attachment",
    "AttachmentState",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Delivery",
    "Direction",
    "Holder",
    "InboundEvent",
    "KeyGrant",
    "Message",
    "Notification",
    "Officer",
    "OfficialAccount",
    "OutboxEntry",
    "Priority",
    "ReplyAddress",
    "Role",
    "Subject",
    "Tip",
    "TipStatus",
    "TransitEpoch",
    "Unit",
    "UnitKey",
    "UnitLevel",
    "new_public_id",
    "utcnow",
]
