"""The names of audited actions (DESIGN.md, Audit). Stored as-is: never rename one.

``record()`` accepts only names listed in :data:`ALL`, so a typo fails in tests rather than
writing an event no filter will ever find; and only :class:`tipline.models.Outcome` members as
outcomes.
"""

from __future__ import annotations

# Sessions and keys
LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGOUT = "logout"
KEY_UNLOCK = "key_unlock"
# Intake and delivery (the system acts: actor None)
TIP_RECEIVED = "tip_received"
TIP_DISPATCHED = "tip_dispatched"
REPLY_DELIVERED = "reply_delivered"
# The informant sent "STOP" / "XÓA": their reply address was destroyed. No object, no detail:
# the event says only that it happened (tipline.informant).
INFORMANT_STOP = "informant_stop"
# The informant withdrew their consent on Zalo (``user_withdraw``): their address was erased
# and their tips cut off and unlinked from their Zalo id. No object, no detail, as for STOP.
INFORMANT_WITHDRAW = "informant_withdraw"
# An OA administrator answered an informant in Zalo's own console (oa.zalo.me); the message
# was added to the tip's record (actor None; object the tip; detail {"message": public id}).
OA_CONSOLE_REPLY = "oa_console_reply"
# A key holder's login brought back events whose transit key was lost (tipline.transit):
# detail {"events": count}.
EVENTS_RECOVERED = "events_recovered"
# An admin had the events set aside by expansion (InboundEvent.expand_failed_at) tried again:
# detail {"events": count}.
EVENTS_RETRIED = "events_retried"
# Retention: a closed tip past its period was crypto-shredded (actor None; object the tip's
# public id; detail {"status", "reason": "retention"}).
TIP_SHREDDED = "tip_shredded"
# Reading tips
TIP_OPEN = "tip_open"
ATTACHMENT_DOWNLOAD = "attachment_download"
# An attachment shown inside the tip page (image, audio, video, PDF): once per page visit,
# not per range request of a playing video (detail {"attachment": public id}).
ATTACHMENT_VIEW = "attachment_view"
TIP_EXPORT = "tip_export"
# detail: {"results", "searched"} counts and {"tips"}: the public ids of the tips shown
# (space-separated, at most triage.search.MAX_SHOWN); never the query text
SEARCH = "search"
# Triage
STATUS_CHANGE = "status_change"
PRIORITY_CHANGE = "priority_change"
CATEGORY_CHANGE = "category_change"
ASSIGN = "assign"  # detail: {"assignee": officer public id} (the anomaly flags read it)
TRANSFER = "transfer"  # detail: {"to_unit": code}
ESCALATE = "escalate"  # an officer handed the tip up to the parent unit (it moved there)
# The SLA check told the unit above that an urgent tip is still unopened (routing.escalation):
# a notice only, the tip stays where it is (actor None; detail {"to_unit", "level"}).
SLA_NOTICE = "sla_notice"
REPLY_QUEUED = "reply_queued"
NOTE_ADDED = "note_added"
# An officer linked two tips as related, or removed the link: one event on each tip (object
# the tip; detail {"tip": the other tip's public id}).
TIP_LINK = "tip_link"
TIP_UNLINK = "tip_unlink"
# Keys, accounts, units
GRANT = "grant"  # a unit key sealed to an account: actor the key holder who approved
# An account waits for a unit key (detail {"unit", "reason"}); a key holder rejected it; an
# account's unit key grants were deleted (detail {"units", "reason"}).
GRANT_REQUEST = "grant_request"
GRANT_REJECT = "grant_reject"
GRANT_REVOKE = "grant_revoke"
# Every session of an account ended (detail {"reason"}).
SESSIONS_ENDED = "sessions_ended"
KEY_CREATE = "key_create"
KEY_ROTATE = "key_rotate"
ACCOUNT_CREATE = "account_create"
ACCOUNT_CHANGE = "account_change"
UNIT_CREATE = "unit_create"
UNIT_RENAME = "unit_rename"  # detail {"name": the new name} (unit names are public)
OA_ATTACH = "oa_attach"  # detail {"oa"} and, when it moved, {"from_unit": code}
OA_DETACH = "oa_detach"  # the OA and its tokens removed; detail {"oa"}
# Tokens stored for an OA: detail {"via": "consent" | "set_tokens"}; a refused consent
# callback too (outcome denied or failed, detail {"reason"}, and Zalo's {"zalo_error"}).
OA_CONNECT = "oa_connect"
# The audit trail itself
AUDIT_VIEW = "audit_view"
AUDIT_EXPORT = "audit_export"
AUDIT_VERIFY = "audit_verify"
AUDIT_CHECKPOINT = "audit_checkpoint"
# An auditor reviewed an anomaly flag: object the flag's first event; detail {"kind"}. The
# note is kept with the review (anomaly_reviews), not in the chain's detail.
ANOMALY_REVIEW = "anomaly_review"
# The duty roster: object the officer's public id; detail {"on_duty": "1" | "0"}. The
# auditor's off-hours rule reads these (tipline.audit.roster).
DUTY_CHANGE = "duty_change"
# The database was restored from a backup (tipline.audit.witness.mark_restore; actor None):
# detail {"restored_seq", "lost_from", "lost_to"}, the witnessed events lost with it.
AUDIT_RESTORE = "audit_restore"
# An auditor compared an exported checkpoint with the chain (detail {"seq", "consistent"}).
AUDIT_COMPARE = "audit_compare"
# A public key failed its certificate before sealing (tipline.models.sealed_fields): nothing
# was sealed to it. Detail {"key": what the key claimed to be}.
KEY_REJECTED = "key_rejected"

ALL: frozenset[str] = frozenset(
    value
    for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, str) and name != "ALL"
)
