"""The tamper-evident audit trail (DESIGN.md, Audit; invariant 5).

Every security-relevant action calls :func:`record` in its own transaction. Events form one
hash chain (:mod:`tipline.audit.chain` explains the design and why), signed checkpoints pin
its head (:mod:`tipline.audit.checkpoint`), and :mod:`tipline.audit.query` is what the
auditor pages read: filters with pagination, CSV export, anomaly flags. Events carry public
ids, codes and fixed words only: never tip content, never an informant's id or address.
"""

from tipline.audit import actions
from tipline.audit.chain import (
    AuditError,
    ChainBrokenError,
    VerifyResult,
    audited_session,
    audited_transaction,
    canonical,
    deferred,
    record,
    savepoint,
    verify_chain,
    write_checkpoint,
)
from tipline.audit.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from tipline.audit.query import (
    DENIED_OPEN,
    FAILED_LOGINS,
    LOGIN_SPRAY,
    LOGIN_SWARM,
    NEW_ACCOUNT_GRANT,
    NOT_ASSIGNED_OPEN,
    OFF_HOURS_OPEN,
    OPEN_BURST,
    Anomaly,
    AnomalyRules,
    EventPage,
    anomalies,
    export_csv,
    filter_events,
    query_events,
)

__all__ = [
    "DENIED_OPEN",
    "FAILED_LOGINS",
    "LOGIN_SPRAY",
    "LOGIN_SWARM",
    "NEW_ACCOUNT_GRANT",
    "NOT_ASSIGNED_OPEN",
    "OFF_HOURS_OPEN",
    "OPEN_BURST",
    "Anomaly",
    "AnomalyRules",
    "AuditError",
    "ChainBrokenError",
    "Checkpoint",
    "CheckpointError",
    "EventPage",
    "VerifyResult",
    "actions",
    "anomalies",
    "audited_session",
    "audited_transaction",
    "canonical",
    "deferred",
    "export_csv",
    "filter_events",
    "load_checkpoint",
    "query_events",
    "record",
    "savepoint",
    "verify_chain",
    "write_checkpoint",
]
