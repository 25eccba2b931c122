"""The "notice" job: send a one-off answer to an informant who has no tip (tipline.models.notice).

Like "send" (tipline.jobs.outbound) it runs on the outbound queue, opens its sealed copy with
the transit epoch and sends through the OA API; unlike it there is no tip to record the answer
on, so the row is deleted once Zalo took it or it cannot be sent (a closed window, an
unreachable informant, an epoch already destroyed, the OA's tokens gone). Temporary trouble
(Zalo down, rate limited, a busy token lock) raises, so RQ's Retry backs off; the last allowed
attempt deletes the row instead. Logs name the notice's public id only.
"""

from __future__ import annotations

import json
import logging

from redis.exceptions import LockError
from sqlalchemy import delete, select, update

from keys import EnvelopeError
from tipline.db import write_session
from tipline.models import Notice
from tipline.models.sealed_fields import NOTICE_FOR_RELAY
from tipline.runtime import Runtime, current
from tipline.transit import TransitKeyLost
from tipline.zalo.client import (
    InvalidAddressError,
    SendStatus,
    TextTooLongError,
    ZaloClient,
    ZaloUnavailableError,
)
from tipline.zalo.tokens import TokenUnavailableError, access_token_for

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


class NoticeDeferredError(Exception):
    """Raised so that RQ's Retry runs the job again later. Carries no content."""


def send_notice(notice_public_id: str) -> str:
    """RQ entry point: send the notice; return what became of it."""
    runtime = current()
    with ZaloClient.from_config(runtime.config) as client:
        return deliver_notice(runtime, notice_public_id, client)


def _done(runtime: Runtime, public_id: str, outcome: str) -> str:
    with write_session(runtime.sessions) as session:
        session.execute(delete(Notice).where(Notice.public_id == public_id))
    if outcome == "sent":
        log.info("notice %s: sent", public_id)
    else:
        log.warning("notice %s: %s", public_id, outcome)
    return outcome


def deliver_notice(runtime: Runtime, public_id: str, client: ZaloClient) -> str:
    """Send one notice with ``client``; the testable body of :func:`send_notice`."""
    with write_session(runtime.sessions) as session:
        row = session.execute(
            select(Notice.oa_id, Notice.sealed_for_relay, Notice.attempts).where(
                Notice.public_id == public_id
            )
        ).one_or_none()
        if row is None:
            return "missing"
        attempt = row.attempts + 1
        session.execute(
            update(Notice).where(Notice.public_id == public_id).values(attempts=attempt)
        )
    try:
        key = runtime.transit.private_for(row.sealed_for_relay)
        relay = json.loads(
            NOTICE_FOR_RELAY.open(key, row.sealed_for_relay, notice_public_id=public_id)
        )
        address, text = relay["to"], str(relay["text"])
    except (TransitKeyLost, EnvelopeError, ValueError, KeyError, TypeError):
        return _done(runtime, public_id, "does not open")
    try:
        token = access_token_for(runtime, row.oa_id, client)
        result = client.send_text(token, address, text)
        if result.status is SendStatus.TOKEN_INVALID:
            token = access_token_for(
                runtime, row.oa_id, client, force_refresh=True, rejected_token=token
            )
            result = client.send_text(token, address, text)
    except (TokenUnavailableError, TextTooLongError, InvalidAddressError) as exc:
        return _done(runtime, public_id, f"not sendable ({type(exc).__name__})")
    except (ZaloUnavailableError, LockError) as exc:
        return _defer(runtime, public_id, attempt, type(exc).__name__)
    if result.status is SendStatus.OK:
        return _done(runtime, public_id, "sent")
    if result.status in (SendStatus.RATE_LIMITED, SendStatus.TOKEN_INVALID):
        return _defer(runtime, public_id, attempt, str(result.status))
    return _done(runtime, public_id, f"refused ({result.status})")


def _defer(runtime: Runtime, public_id: str, attempt: int, reason: str) -> str:
    if attempt >= MAX_ATTEMPTS:
        return _done(runtime, public_id, f"gave up after {attempt} attempts ({reason})")
    log.warning("notice %s: attempt %d deferred (%s)", public_id, attempt, reason)
    raise NoticeDeferredError(f"notice {public_id}: {reason}")
