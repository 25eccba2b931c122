"""The "send" job: deliver one outbound message to the informant through the OA API.

Runs on the "outbound" queue with an RQ ``Retry`` (tipline.outbox.JOBS). It is the only
code that opens a reply address, with the relay key the outbound worker holds.

Outcomes:

- sent → ``SENT``; the relay copy of the text is erased;
- Zalo rejects the token (-216/-220) → one forced refresh, one more try;
- the informant's 7-day window closed (-230/-232) → ``WINDOW_CLOSED``, not retried: only a
  new message from them reopens it;
- the informant cannot be reached (-213/-227/-244), Zalo refuses the message for another
  reason, or the OA's token needs an admin → ``FAILED`` with the reason, not retried;
- every final failure is named as a :class:`~tipline.models.SendProblem` (funding -320/-321,
  the OA's package -221/-224, the app's permissions -209/-212/-219/-223, a retired API -240,
  appsecret_proof -242, …), which officers see on the message and admins per OA;
- Zalo's ``message_id`` of a message it took is stored as is (``zalo_message_id``): Zalo's id
  of our message, which the informant's quote of it carries;
- rate limited (-32), network trouble, a busy token lock → the job raises so RQ backs off;
  after :data:`MAX_ATTEMPTS` it is marked ``FAILED`` instead.

The job is idempotent: a message already in a final state is left alone. Zalo offers no
idempotency key, so the moment Zalo accepts a message is marked in Redis before the database
records it: if recording fails (the database down, the worker killed while it waits for the
audit chain), the retry finds the mark and records the send instead of sending again. What is
left: a worker killed in the instant between Zalo's answer and the mark, or a send that timed
out after Zalo accepted it, is sent again.
Log lines name the message's public id and Zalo's error code, never a token, id or text.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any, cast

from redis.exceptions import LockError, RedisError
from redis.lock import Lock
from sqlalchemy import Connection, Table, bindparam, func, select, update

from keys import EnvelopeError, PrivateKey
from tipline import audit
from tipline.config import Config
from tipline.counters import count
from tipline.leases import release, take_lease
from tipline.models import (
    Delivery,
    Direction,
    Message,
    OfficialAccount,
    Outcome,
    ReplyAddress,
    SendProblem,
    Tip,
    Unit,
    utcnow,
)
from tipline.models.sealed_fields import (
    MESSAGE_FOR_RELAY,
)
from tipline.reply_addresses import open_address
from tipline.runtime import Runtime, current
from tipline.transit import TransitKeyLost
from tipline.zalo.client import (
    InvalidAddressError,
    SendResult,
    SendStatus,
    TextTooLongError,
    ZaloClient,
    ZaloUnavailableError,
)
from tipline.zalo.tokens import TokenUnavailableError, access_token_for

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
_OUTCOMES = {Delivery.WINDOW_CLOSED: Outcome.WINDOW_CLOSED, Delivery.NO_ADDRESS: Outcome.NO_ADDRESS}
FINAL = frozenset({Delivery.SENT, Delivery.FAILED, Delivery.WINDOW_CLOSED, Delivery.NO_ADDRESS})
SENT_MARK = "tipline:zalo-accepted:{}"  # a message public id; nothing else
SENT_MARK_TTL = 8 * 24 * 3600  # longer than RQ's retries of a send (Retry, MAX_ATTEMPTS)


class DeliveryDeferredError(Exception):
    """Raised so that RQ's Retry runs the job again later. Carries no content."""


@dataclass(frozen=True)
class _Outgoing:
    oa_id: str
    address: dict[str, str]
    text: str
    attempt: int


_clients: dict[tuple[str, str, str, str], ZaloClient] = {}
_clients_lock = threading.Lock()


def process_client(config: Config) -> ZaloClient:
    """One Zalo client per process and configuration, kept: its connections stay open (one TLS
    handshake per connection, not one per message, against the real API) and its TLS context
    is built once. httpx's client is safe to share between threads."""
    key = (config.zalo_api_base, config.zalo_oauth_base, config.zalo_app_id, config.zalo_app_secret)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = ZaloClient.from_config(config)
        return client


# One sender at a time per message, whichever path runs it (the relay's batch or an RQ job):
# a lease in Redis, longer than a send with a token refresh can take. A sender killed while
# holding it leaves it to expire; the sweeper's job then finds Zalo's mark or sends.
SEND_LEASE = "tipline:sending:{}"  # a message public id; nothing else
SEND_LEASE_SECONDS = 120
IN_PROGRESS = "in progress"


def _take_lease(runtime: Runtime, message_public_id: str) -> Lock | None:
    """The message's lease, or None when another live sender holds it (tipline.leases: a
    lease whose holder died on this machine is taken over at once)."""
    lease = take_lease(runtime.redis, SEND_LEASE.format(message_public_id), SEND_LEASE_SECONDS)
    if lease is None:
        log.info("message %s: another sender has it", message_public_id)
    return lease


def deliver_once(runtime: Runtime, message_public_id: str, client: ZaloClient) -> str:
    """:func:`deliver` under the message's lease; ``IN_PROGRESS`` when another live sender
    holds it (that sender delivers, or its lease expires and the sweeper queues the job
    again). Every delivery holds the lease now (:func:`deliver_many`): the same as
    :func:`deliver`, kept for the RQ job's name."""
    return deliver(runtime, message_public_id, client)


def send_message(message_public_id: str) -> str:
    """RQ entry point: deliver the message; return its delivery state."""
    runtime = current()
    return deliver_once(runtime, message_public_id, process_client(runtime.config))


# What a send says about its OA rather than about one message: kept on the OA for
# `tipline zalo oa-status` and /admin/zalo/, until a send goes through again.
OA_PROBLEMS = frozenset(
    {
        SendProblem.UNFUNDED,
        SendProblem.OA_NOT_ELIGIBLE,
        SendProblem.APP_NOT_PERMITTED,
        SendProblem.API_RETIRED,
        SendProblem.APP_PROOF,
        SendProblem.OA_ACCESS,
    }
)


_OAS = cast(Table, OfficialAccount.__table__)
_OA_ERROR = (
    update(_OAS)
    .where(_OAS.c.oa_id == bindparam("oa"))
    .values(last_error=bindparam("error"), last_error_at=bindparam("at"))
)
# Only where there is something to clear: no write per send.
_OAS_WORK = (
    update(_OAS)
    .where(_OAS.c.oa_id.in_(bindparam("oas", expanding=True)), _OAS.c.last_error.is_not(None))
    .values(last_error=None, last_error_at=None)
)


def _note_oa(
    conn: Connection,
    oa_id: str | None,
    delivery: Delivery,
    problem: SendProblem | None,
    error: str | None,
    working: set[str],
) -> None:
    """An OA's last error: set at once by a problem of the OA's own; ``working`` collects the
    OAs for which Zalo took the token and answered for the informant, cleared together by
    :func:`_clear_oa_errors` at the end of the transaction (a later problem in the same
    transaction takes its OA out again)."""
    if oa_id is None:
        return
    if problem in OA_PROBLEMS:
        conn.execute(
            _OA_ERROR, {"oa": oa_id, "error": (error or str(problem))[:200], "at": utcnow()}
        )
        working.discard(oa_id)
    elif delivery in (Delivery.SENT, Delivery.WINDOW_CLOSED) or problem == SendProblem.UNREACHABLE:
        working.add(oa_id)


def _clear_oa_errors(conn: Connection, working: set[str]) -> None:
    if working:
        conn.execute(_OAS_WORK, {"oas": sorted(working)})


@dataclass(frozen=True)
class _Final:
    """A final state to record: why Zalo did not take it (``problem``), Zalo's id of ours."""

    delivery: Delivery
    error: str | None = None
    problem: SendProblem | None = None
    zalo_message_id: str | None = None


@dataclass(frozen=True)
class _Deferred:
    """Zalo or the network said "later": RQ tries again, up to MAX_ATTEMPTS."""

    attempt: int
    reason: str
    problem: SendProblem


def _write_final(conn: Connection, row: Any, final: _Final, working: set[str]) -> None:
    """Record a final state; the relay copy of the text goes, as the model promises."""
    values = {
        "message_id": row.id,
        "delivery": str(final.delivery),
        "error": final.error[:200] if final.error else None,
        "problem": str(final.problem) if final.problem is not None else None,
    }
    _note_oa(conn, row.oa_id, final.delivery, final.problem, final.error, working)
    if final.delivery is Delivery.SENT:
        now = utcnow()
        zalo_id = final.zalo_message_id[:64] if final.zalo_message_id else None
        conn.execute(_MESSAGE_SENT, values | {"at": now, "zalo_id": zalo_id})
        conn.execute(_TIP_REPLIED, {"tip_id": row.tip_id, "at": now})
    else:
        conn.execute(_MESSAGE_FINAL, values)
    # The tip is the object (auditors follow a tip); the message id and the final state
    # are the detail. Zalo's error text stays out: it is not a fixed word.
    audit.record(
        conn,
        action=audit.actions.REPLY_DELIVERED,
        object_id=row.tip_public_id,
        unit_code=row.unit_code,
        outcome=Outcome.OK
        if final.delivery is Delivery.SENT
        else _OUTCOMES.get(final.delivery, Outcome.FAILED),
        detail={"message": row.public_id, "delivery": str(final.delivery)},
    )


def _settled(outcome: _Final | _Deferred) -> _Final | _Deferred:
    """A deferral at the last allowed attempt is final: FAILED, ``problem`` the reason."""
    if isinstance(outcome, _Deferred) and outcome.attempt >= MAX_ATTEMPTS:
        return _Final(
            Delivery.FAILED,
            f"gave up after {outcome.attempt} attempts: {outcome.reason}",
            outcome.problem,
        )
    return outcome


def _after(runtime: Runtime, public_id: str, outcome: _Final | _Deferred) -> None:
    """Log lines and failure counters, once the outcome is committed."""
    if isinstance(outcome, _Deferred):
        log.warning(
            "message %s: attempt %d deferred (%s)", public_id, outcome.attempt, outcome.reason
        )
        count_send_failure(runtime, "deferred", outcome.reason)
    elif outcome.delivery is Delivery.SENT:
        log.info("message %s: sent", public_id)
    else:
        log.warning("message %s: %s (%s)", public_id, outcome.delivery, outcome.error)
        count_send_failure(runtime, str(outcome.delivery), outcome.error)


_ZALO_CODE = re.compile(r"zalo (-?\d+):")


def count_send_failure(runtime: Runtime, delivery: str, error: str | None) -> None:
    """tipline.metrics' ``tipline_send_failures``: by final state and Zalo's error code."""
    found = _ZALO_CODE.search(error or "")
    code = found[1] if found else "none"
    count(runtime.redis, "send_failures", delivery=delivery, zalo_error=code)


# The messages' rows, locked for the attempt count and the final state (tipline.db: row locks;
# the send's lease already keeps two senders apart, this keeps an officer's retry out too),
# with what the send needs of each one's tip, reply address and unit. Core, built once: the
# ORM's loading of messages and their tips was a fifth of the relay's CPU (issue 15).
_MESSAGES = cast(Table, Message.__table__)
_TIPS = cast(Table, Tip.__table__)
_ADDRESSES = cast(Table, ReplyAddress.__table__)
_UNITS = cast(Table, Unit.__table__)
_MESSAGES_FOR_UPDATE = (
    select(
        _MESSAGES.c.id,
        _MESSAGES.c.public_id,
        _MESSAGES.c.direction,
        _MESSAGES.c.delivery,
        _MESSAGES.c.delivery_attempts,
        _MESSAGES.c.sealed_for_relay,
        _TIPS.c.id.label("tip_id"),
        _TIPS.c.public_id.label("tip_public_id"),
        func.coalesce(_TIPS.c.oa_id, _ADDRESSES.c.oa_id).label("oa_id"),
        _ADDRESSES.c.sealed_address,
        _ADDRESSES.c.informant_alias,
        _UNITS.c.code.label("unit_code"),
    )
    .join(_TIPS, _TIPS.c.id == _MESSAGES.c.tip_id)
    .outerjoin(_ADDRESSES, _ADDRESSES.c.id == _TIPS.c.reply_address_id)
    .outerjoin(_UNITS, _UNITS.c.id == _TIPS.c.unit_id)
    .where(_MESSAGES.c.public_id.in_(bindparam("public_ids", expanding=True)))
    .order_by(_MESSAGES.c.id)
    .with_for_update(key_share=True, of=_MESSAGES)
)
_COUNT_ATTEMPT = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id.in_(bindparam("message_ids", expanding=True)))
    .values(delivery_attempts=func.coalesce(_MESSAGES.c.delivery_attempts, 0) + 1)
)
_MESSAGE_FINAL = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("message_id"))
    .values(
        delivery=bindparam("delivery"),
        delivery_error=bindparam("error"),
        delivery_problem=bindparam("problem"),
        sealed_for_relay=None,
    )
)
_MESSAGE_SENT = _MESSAGE_FINAL.values(
    delivered_at=bindparam("at"),
    zalo_message_id=func.coalesce(bindparam("zalo_id"), _MESSAGES.c.zalo_message_id),
)
_MESSAGE_DEFERRED = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("message_id"))
    .values(delivery_error=bindparam("reason"))
)
_TIP_REPLIED = (
    update(_TIPS).where(_TIPS.c.id == bindparam("tip_id")).values(last_outbound_at=bindparam("at"))
)


@dataclass(frozen=True)
class _Claimed:
    """An attempt counted: what the send needs, still sealed."""

    attempt: int
    oa_id: str | None
    sealed_text: bytes | None
    sealed_address: bytes | None
    alias: str


def _count_attempts(runtime: Runtime, public_ids: list[str]) -> dict[str, _Claimed | str]:
    """One transaction: each message's attempt counted, or its final state if it has one
    ("missing" for no outbound message)."""
    out: dict[str, _Claimed | str] = {}
    with audit.audited_transaction(runtime.engine) as conn:
        rows = {
            row.public_id: row
            for row in conn.execute(_MESSAGES_FOR_UPDATE, {"public_ids": public_ids})
        }
        counted: list[int] = []
        for public_id in public_ids:
            row = rows.get(public_id)
            if row is None or row.direction != Direction.OUTBOUND:
                log.warning("message %s: no outbound message to send", public_id)
                out[public_id] = "missing"
                continue
            if row.delivery in FINAL:
                out[public_id] = str(row.delivery)
                continue
            counted.append(row.id)
            out[public_id] = _Claimed(
                attempt=(row.delivery_attempts or 0) + 1,
                oa_id=row.oa_id,
                sealed_text=row.sealed_for_relay,
                sealed_address=row.sealed_address,
                alias=row.informant_alias or "",
            )
        if counted:
            conn.execute(_COUNT_ATTEMPT, {"message_ids": counted})
    return out


def _open(
    runtime: Runtime,
    public_id: str,
    claimed: _Claimed,
    private_for: Callable[[bytes], PrivateKey],
) -> _Outgoing | _Final:
    """The text and the address, opened (the relay key, the informant's address key)."""
    if claimed.attempt > MAX_ATTEMPTS:
        return _Final(
            Delivery.FAILED, f"gave up after {MAX_ATTEMPTS} attempts", SendProblem.UNAVAILABLE
        )
    if claimed.sealed_text is None or claimed.oa_id is None:
        return _Final(Delivery.FAILED, "nothing to send or no OA")
    sealed_text = claimed.sealed_text
    try:
        key = private_for(sealed_text)
        relay = json.loads(MESSAGE_FOR_RELAY.open(key, sealed_text, message_public_id=public_id))
        text = str(relay["text"])
    except (TransitKeyLost, EnvelopeError, ValueError, KeyError, TypeError):
        return _Final(Delivery.FAILED, "the reply's sealed text does not open")
    address = relay.get("to")
    if not isinstance(address, dict):
        if claimed.sealed_address is None:
            return _Final(Delivery.NO_ADDRESS, "reply address destroyed")
        address = open_address(
            runtime.keystore,
            claimed.alias,
            claimed.sealed_address,
            runtime.config.secrets.relay_private,
        )
        if address is None:  # its key is gone: Zalo's reply window closed, or the informant left
            return _Final(Delivery.NO_ADDRESS, "reply window closed")
    return _Outgoing(oa_id=claimed.oa_id, address=address, text=text, attempt=claimed.attempt)


@dataclass
class _BatchKeys:
    """What a batch of sends opens and sends with, read once a batch and dropped with it:
    each transit epoch's key (tipline.transit), each OA's access token (tipline.zalo.tokens;
    a session, an ORM load and an opening a message before, issue 15)."""

    private_for: Callable[[bytes], PrivateKey]
    tokens: dict[str, str] = field(default_factory=dict)


def _send(runtime: Runtime, client: ZaloClient, out: _Outgoing, keys: _BatchKeys) -> SendResult:
    token = keys.tokens.get(out.oa_id)
    if token is None:
        token = keys.tokens[out.oa_id] = access_token_for(runtime, out.oa_id, client)
    result = client.send_text(token, out.address, out.text)
    if result.status is SendStatus.TOKEN_INVALID:
        token = keys.tokens[out.oa_id] = access_token_for(
            runtime, out.oa_id, client, force_refresh=True, rejected_token=token
        )
        result = client.send_text(token, out.address, out.text)
    return result


def _mark_accepted(runtime: Runtime, public_id: str, zalo_message_id: str | None) -> None:
    """The mark holds Zalo's id of the message (Zalo's id of ours, not the informant's)."""
    try:
        runtime.redis.set(
            SENT_MARK.format(public_id), (zalo_message_id or "").encode() or b"1", ex=SENT_MARK_TTL
        )
    except RedisError:  # the database records the send; the mark is its backup
        log.warning("message %s: sent, but Redis did not take the mark", public_id)


def _attempt(
    runtime: Runtime,
    client: ZaloClient,
    public_id: str,
    claimed: _Claimed,
    keys: _BatchKeys,
) -> _Final | _Deferred:
    """Open and send one message; what to record. No database write."""
    out = _open(runtime, public_id, claimed, keys.private_for)
    if isinstance(out, _Final):
        return out
    mark = runtime.redis.get(SENT_MARK.format(public_id))
    if mark is not None:
        log.warning("message %s: Zalo took it on an earlier attempt; recording", public_id)
        text = mark.decode(errors="replace") if isinstance(mark, bytes) else str(mark)
        return _Final(Delivery.SENT, zalo_message_id=text if text != "1" else None)
    try:
        result = _send(runtime, client, out, keys)
    except TokenUnavailableError as exc:
        return _Final(Delivery.FAILED, f"OA token: {exc}", SendProblem.OA_ACCESS)
    except TextTooLongError:
        return _Final(Delivery.FAILED, "text over 2,000 characters", SendProblem.REJECTED)
    except InvalidAddressError:
        return _Final(Delivery.FAILED, "reply address unusable", SendProblem.UNREACHABLE)
    except ZaloUnavailableError as exc:
        return _Deferred(out.attempt, str(exc), SendProblem.UNAVAILABLE)
    except LockError:
        return _Deferred(out.attempt, "token refresh in progress", SendProblem.OA_ACCESS)
    problem = result.problem
    match result.status:
        case SendStatus.OK:
            _mark_accepted(runtime, public_id, result.message_id)
            return _Final(Delivery.SENT, zalo_message_id=result.message_id)
        case SendStatus.WINDOW_CLOSED:
            return _Final(Delivery.WINDOW_CLOSED, result.reason, problem)
        case SendStatus.RATE_LIMITED | SendStatus.TOKEN_INVALID:
            return _Deferred(out.attempt, result.reason, problem or SendProblem.REJECTED)
        case _:  # UNREACHABLE, OTHER: Zalo will not take this message; do not repeat it.
            # Funding (-320/-321) and configuration codes are named: an admin must act.
            return _Final(Delivery.FAILED, result.reason, problem)


def _record(runtime: Runtime, outcomes: dict[str, _Final | _Deferred]) -> None:
    """One transaction: every final state written, every deferral's reason noted."""
    if not outcomes:
        return
    with audit.audited_transaction(runtime.engine) as conn:
        rows = {
            row.public_id: row
            for row in conn.execute(_MESSAGES_FOR_UPDATE, {"public_ids": list(outcomes)})
        }
        working: set[str] = set()
        for public_id, outcome in outcomes.items():
            row = rows[public_id]
            if isinstance(outcome, _Final):
                _write_final(conn, row, outcome, working)
            else:
                conn.execute(
                    _MESSAGE_DEFERRED, {"message_id": row.id, "reason": outcome.reason[:200]}
                )
        _clear_oa_errors(conn, working)


# How often the outcomes of concurrent sends are recorded (deliver_many).
RECORD_EVERY = 0.05


def deliver_many(
    runtime: Runtime,
    public_ids: list[str],
    client: ZaloClient,
    executor: Executor | None = None,
) -> dict[str, str | _Deferred]:
    """Deliver messages with ``client``, each under its lease: their states, or the
    :class:`_Deferred` for those RQ must try again; a message whose send raised is left out
    (logged; its job runs again). Issue 15: two transactions per message before.

    One transaction counts every attempt. The sends run on ``executor`` (the relay's thread
    pool: concurrently) or one after another, and the outcomes are recorded every
    :data:`RECORD_EVERY` seconds, whatever has finished, in one transaction. Not once for the
    whole batch: until recorded, a message Zalo took is known sent only by its mark in Redis,
    and a worker and Redis lost together in that time send it again (tests/faults).
    """
    states: dict[str, str | _Deferred] = {}
    leases: dict[str, Lock] = {}
    outcomes: dict[str, _Final | _Deferred] = {}
    try:
        for public_id in public_ids:
            lease = _take_lease(runtime, public_id)
            if lease is None:
                states[public_id] = IN_PROGRESS
            else:
                leases[public_id] = lease
        claimed = _count_attempts(runtime, list(leases))
        keys = _BatchKeys(runtime.transit.batch_opener())
        attempts: dict[str, _Claimed] = {}
        for public_id, state in claimed.items():
            if isinstance(state, str):
                states[public_id] = state
            else:
                attempts[public_id] = state
        if executor is None:
            for public_id, attempt in attempts.items():
                done = {public_id: _settled(_attempt(runtime, client, public_id, attempt, keys))}
                _record(runtime, done)
                outcomes.update(done)
        else:
            futures = {
                executor.submit(_attempt, runtime, client, public_id, attempt, keys): public_id
                for public_id, attempt in attempts.items()
            }
            pending: set[Future[_Final | _Deferred]] = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=RECORD_EVERY)
                done = {}
                for future in finished:
                    try:
                        done[futures[future]] = _settled(future.result())
                    except Exception:
                        log.exception("message %s: the send raised", futures[future])
                _record(runtime, done)
                outcomes.update(done)
    finally:
        for lease in leases.values():
            release(lease)
    for public_id, outcome in outcomes.items():
        _after(runtime, public_id, outcome)
        states[public_id] = outcome if isinstance(outcome, _Deferred) else str(outcome.delivery)
    return states


def deliver(runtime: Runtime, message_public_id: str, client: ZaloClient) -> str:
    """Deliver one message with ``client``; the testable body of :func:`send_message`.
    Raises :class:`DeliveryDeferredError` for RQ to try again later."""
    state = deliver_many(runtime, [message_public_id], client)[message_public_id]
    if isinstance(state, _Deferred):
        raise DeliveryDeferredError(f"message {message_public_id}: {state.reason}")
    return state
