"""The "send" job end to end: outbox → real RQ → job → OA API of the simulator over HTTP."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from flask import Flask
from redis import Redis
from rq.job import Job, JobStatus
from sqlalchemy import select

from keys import generate_keypair, new_token
from tests.conftest import run_jobs
from tests.test_simulator import live_server
from tipline.jobs.outbound import MAX_ATTEMPTS, DeliveryDeferredError, deliver, send_message
from tipline.jobs.relay import drain
from tipline.models import (
    Delivery,
    Message,
    OfficialAccount,
    ReplyAddress,
    Tip,
    Unit,
    new_public_id,
    utcnow,
)
from tipline.models.key_trust import certify, tip_subject
from tipline.outbox import JOB_SERIALIZER, job_id
from tipline.outgoing import queue_outbound
from tipline.reply_addresses import seal_address
from tipline.runtime import Runtime
from tipline.time_rules import ZALO_REPLY_WINDOW
from tipline.zalo.client import RefreshFailedError, TokenPair, ZaloClient
from tipline.zalo.simulator import issue_tokens
from tipline.zalo.tokens import access_token_for, open_tokens, store_tokens

OA_ID = "3886132808788086451"
USER_ID = "2468458835296197922"
TEXT = "Chúng tôi đã nhận tin báo của bạn. Mã tin: TL-AB12-CD34"


@pytest.fixture
def sim(app: Flask, runtime: Runtime) -> Iterator[str]:
    """The app (with the simulator) on a real port; the runtime's Zalo bases point at it."""
    with live_server(app) as url:
        runtime.config = runtime.config.with_overrides(
            zalo_api_base=f"{url}/_sim", zalo_oauth_base=f"{url}/_sim"
        )
        yield url


@dataclass
class Setup:
    message_id: str
    tip_id: str
    access: str
    refresh: str


def make_oa(runtime: Runtime, *, access_ttl: int = 90_000, pair: TokenPair | None = None) -> None:
    """A unit with the OA, holding a token pair the simulator issued (or ``pair``)."""
    if pair is None:
        access, refresh, expires_in = issue_tokens(
            runtime.config.data_dir, OA_ID, access_ttl=access_ttl
        )
        pair = TokenPair(access, refresh, expires_in)
    with runtime.sessions() as session, session.begin():
        unit = Unit(code="test:1", name="Công an xã Thử", level="commune")
        oa = OfficialAccount(oa_id=OA_ID, unit=unit)
        session.add_all([unit, oa])
        store_tokens(session, oa, pair, runtime.config.secrets.relay_public)


def make_message(
    runtime: Runtime, *, address: dict[str, str] | None = None, text: str = TEXT
) -> str:
    """A tip whose informant can be answered, and one queued outbound message."""
    address = address or {"kind": "user", "user_id": USER_ID}
    with runtime.sessions() as session, session.begin():
        reply = ReplyAddress(public_id=new_public_id(), informant_alias=new_token(32), oa_id=OA_ID)
        reply.sealed_address = seal_address(
            runtime.keystore, reply.informant_alias, address, ZALO_REPLY_WINDOW
        )
        tip_public = generate_keypair().public_key
        tip = Tip(
            public_id=new_public_id(), receipt_code=f"TL-{new_token(4)}-{new_token(4)}",
            oa_id=OA_ID, informant_alias=reply.informant_alias, reply_address=reply,
            public_key=tip_public.to_bytes(),
        )
        tip.key_certificate = certify(tip_subject(tip.public_id), tip_public)  # as intake does
        session.add_all([reply, tip])
        session.flush()
        message = queue_outbound(session, tip, text, transit=runtime.transit.public())
        return message.public_id


def setup(runtime: Runtime, *, access_ttl: int = 90_000) -> Setup:
    make_oa(runtime, access_ttl=access_ttl)
    tokens = stored_tokens(runtime)
    public_id = make_message(runtime)
    with runtime.sessions() as session:
        tip_id = session.scalars(
            select(Tip.public_id).join(Message).where(Message.public_id == public_id)
        ).one()
    return Setup(public_id, tip_id, tokens.access_token, tokens.refresh_token)


def stored_tokens(runtime: Runtime) -> TokenPair:
    with runtime.sessions() as session:
        oa = session.scalars(select(OfficialAccount)).one()
        pair = open_tokens(oa, runtime.config.secrets.relay_key)
    assert pair is not None
    return pair


def oa_row(runtime: Runtime) -> OfficialAccount:
    with runtime.sessions() as session:
        return session.scalars(select(OfficialAccount)).one()


def message_row(runtime: Runtime, public_id: str) -> Message:
    with runtime.sessions() as session:
        message = session.scalars(select(Message).where(Message.public_id == public_id)).one()
        _ = message.tip.last_outbound_at  # load before the session closes
        return message


def run_worker(runtime: Runtime, redis: Redis) -> None:
    """Relay the outbox into RQ and let a real worker run the outbound queue dry."""
    drain(runtime.sessions, redis)
    run_jobs(runtime, ["outbound"])


def sim_calls(sim: str) -> list[dict[str, object]]:
    calls = httpx.get(f"{sim}/_sim/messages").json()
    assert isinstance(calls, list)
    return calls


def fault(sim: str, *codes: int) -> None:
    httpx.post(f"{sim}/_sim/faults", json={"errors": list(codes)}).raise_for_status()


def test_send_ok_through_rq(runtime: Runtime, redis: Redis, sim: str) -> None:
    s = setup(runtime)
    run_worker(runtime, redis)
    job = Job.fetch(job_id("send", s.message_id), connection=redis, serializer=JOB_SERIALIZER)
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == "sent"
    message = message_row(runtime, s.message_id)
    assert message.delivery == Delivery.SENT and message.delivery_attempts == 1
    assert message.delivered_at is not None and message.sealed_for_relay is None
    assert message.tip.last_outbound_at is not None
    [call] = sim_calls(sim)
    assert (call["oa_id"], call["user_id"], call["text"], call["status"]) == (
        OA_ID, USER_ID, TEXT, "ok"
    )


def test_anonymous_reply_goes_to_the_conversation(runtime: Runtime, sim: str) -> None:
    make_oa(runtime)
    public_id = make_message(
        runtime, address={"kind": "anonymous", "conversation_id": "cv1", "anonymous_id": "an1"}
    )
    assert send_message(public_id) == "sent"
    [call] = sim_calls(sim)
    assert call["endpoint"] == "v2.0/oa/message" and call["conversation_id"] == "cv1"


def test_rejected_token_is_refreshed_once_then_sent(
    runtime: Runtime, redis: Redis, sim: str
) -> None:
    s = setup(runtime)
    fault(sim, -216)
    run_worker(runtime, redis)
    assert message_row(runtime, s.message_id).delivery == Delivery.SENT
    assert [c["error"] for c in sim_calls(sim)] == [-216, 0]
    stored = stored_tokens(runtime)
    assert stored.access_token != s.access and stored.refresh_token != s.refresh
    oa = oa_row(runtime)
    assert oa.token_generation == 2 and oa.token_error is None
    # Zalo's refresh tokens are single-use: the old one is dead at the simulator.
    with ZaloClient.from_config(runtime.config) as client, pytest.raises(RefreshFailedError):
        client.refresh(s.refresh)


def test_window_closed_is_final_and_not_retried(
    runtime: Runtime, redis: Redis, sim: str
) -> None:
    s = setup(runtime)
    fault(sim, -230)
    run_worker(runtime, redis)
    job = Job.fetch(job_id("send", s.message_id), connection=redis, serializer=JOB_SERIALIZER)
    assert job.get_status() == JobStatus.FINISHED
    message = message_row(runtime, s.message_id)
    assert message.delivery == Delivery.WINDOW_CLOSED
    assert message.delivery_error is not None and "-230" in message.delivery_error
    assert message.sealed_for_relay is None and message.delivered_at is None
    # Running the job again (a redelivery, the sweeper) sends nothing.
    assert send_message(s.message_id) == "window_closed"
    assert len(sim_calls(sim)) == 1


def test_unreachable_informant_fails_without_retry(runtime: Runtime, sim: str) -> None:
    s = setup(runtime)
    fault(sim, -213)
    assert send_message(s.message_id) == "failed"
    message = message_row(runtime, s.message_id)
    assert message.delivery == Delivery.FAILED and "-213" in (message.delivery_error or "")
    assert message.sealed_for_relay is None


def test_rate_limit_raises_so_rq_retries(runtime: Runtime, redis: Redis, sim: str) -> None:
    s = setup(runtime)
    fault(sim, -32)
    run_worker(runtime, redis)
    job = Job.fetch(job_id("send", s.message_id), connection=redis, serializer=JOB_SERIALIZER)
    assert job.get_status() == JobStatus.SCHEDULED  # RQ's Retry backs off
    assert job.retries_left == 4
    message = message_row(runtime, s.message_id)
    assert message.delivery == Delivery.QUEUED and message.delivery_attempts == 1
    assert "-32" in (message.delivery_error or "") and message.sealed_for_relay is not None
    # The retry, when it comes, delivers.
    assert send_message(s.message_id) == "sent"
    assert message_row(runtime, s.message_id).delivery_attempts == 2


def test_network_error_raises_for_retry(runtime: Runtime) -> None:
    s = setup(runtime)
    runtime.config = runtime.config.with_overrides(
        zalo_api_base="http://127.0.0.1:9", zalo_oauth_base="http://127.0.0.1:9"
    )
    with pytest.raises(DeliveryDeferredError):
        send_message(s.message_id)
    assert message_row(runtime, s.message_id).delivery == Delivery.QUEUED


def test_gives_up_after_max_attempts(runtime: Runtime, sim: str) -> None:
    s = setup(runtime)
    with runtime.sessions() as session, session.begin():
        message = session.scalars(select(Message).where(Message.public_id == s.message_id)).one()
        message.delivery_attempts = MAX_ATTEMPTS - 1
    fault(sim, -32)
    assert send_message(s.message_id) == "failed"
    message = message_row(runtime, s.message_id)
    assert message.delivery == Delivery.FAILED and message.delivery_attempts == MAX_ATTEMPTS
    assert "gave up" in (message.delivery_error or "") and message.sealed_for_relay is None


def test_destroyed_address_is_no_address(runtime: Runtime, sim: str) -> None:
    s = setup(runtime)
    with runtime.sessions() as session, session.begin():
        address = session.scalars(select(ReplyAddress)).one()
        address.sealed_address = None
        address.destroyed_at = utcnow()
    assert send_message(s.message_id) == "no_address"
    message = message_row(runtime, s.message_id)
    assert message.delivery == Delivery.NO_ADDRESS and message.sealed_for_relay is None
    assert sim_calls(sim) == []


def test_already_sent_is_left_alone(runtime: Runtime, sim: str) -> None:
    s = setup(runtime)
    assert send_message(s.message_id) == "sent"
    assert send_message(s.message_id) == "sent"
    assert len(sim_calls(sim)) == 1
    assert message_row(runtime, s.message_id).delivery_attempts == 1


class PersistedBeforeUseClient(ZaloClient):
    """Checks, at the moment of each send, that the token used is the one on disk."""

    runtime: Runtime
    seen: list[int]

    def send_text(self, access_token: str, address: dict[str, str], text: str):  # type: ignore[no-untyped-def]
        with self.runtime.sessions() as session:
            oa = session.scalars(select(OfficialAccount)).one()
            stored = open_tokens(oa, self.runtime.config.secrets.relay_key)
            assert stored is not None and stored.access_token == access_token
            assert oa.access_expires_at is not None
            assert oa.access_expires_at > utcnow() + timedelta(hours=20)
            self.seen.append(oa.token_generation)
        return super().send_text(access_token, address, text)


def test_refreshed_pair_is_persisted_before_use(runtime: Runtime, sim: str) -> None:
    # An access token 10 minutes from expiry is refreshed before sending.
    s = setup(runtime, access_ttl=600)
    client = PersistedBeforeUseClient.from_config(runtime.config)
    client.runtime, client.seen = runtime, []
    with client:
        assert deliver(runtime, s.message_id, client) == "sent"
    assert client.seen == [2]
    assert stored_tokens(runtime).access_token != s.access


def test_refused_refresh_records_token_error(runtime: Runtime, sim: str) -> None:
    make_oa(runtime, pair=TokenPair("expired-access", "dead-refresh", 0))
    public_id = make_message(runtime)
    assert send_message(public_id) == "failed"
    message = message_row(runtime, public_id)
    assert message.delivery == Delivery.FAILED
    assert "re-consent" in (message.delivery_error or "")
    oa = oa_row(runtime)
    assert oa.token_error is not None and "re-consent" in oa.token_error
    assert sim_calls(sim) == []
    # A new consent (store_tokens) clears the error.
    access, refresh, expires_in = issue_tokens(runtime.config.data_dir, OA_ID)
    with runtime.sessions() as session, session.begin():
        store_tokens(session, session.scalars(select(OfficialAccount)).one(),
                     TokenPair(access, refresh, expires_in), runtime.config.secrets.relay_public)
    assert send_message(make_message(runtime)) == "sent"


def test_concurrent_refreshes_are_single_flight(runtime: Runtime, sim: str) -> None:
    make_oa(runtime, access_ttl=600)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with ZaloClient.from_config(runtime.config) as client:
                results.append(access_token_for(runtime, OA_ID, client))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 4
    oa = oa_row(runtime)
    assert oa.token_generation == 2 and oa.token_error is None


def test_forced_refresh_reuses_a_replacement_made_meanwhile(runtime: Runtime, sim: str) -> None:
    make_oa(runtime)
    old = stored_tokens(runtime).access_token
    with ZaloClient.from_config(runtime.config) as client:
        first = access_token_for(runtime, OA_ID, client, force_refresh=True, rejected_token=old)
        second = access_token_for(runtime, OA_ID, client, force_refresh=True, rejected_token=old)
    assert first == second != old
    assert oa_row(runtime).token_generation == 2


def test_no_token_id_or_text_in_logs(
    runtime: Runtime, redis: Redis, sim: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = setup(runtime)
    fault(sim, -216)
    run_worker(runtime, redis)
    fault(sim, -230)
    second = make_message(runtime)
    run_worker(runtime, redis)
    assert message_row(runtime, s.message_id).delivery == Delivery.SENT
    assert message_row(runtime, second).delivery == Delivery.WINDOW_CLOSED
    new = stored_tokens(runtime)
    assert caplog.records
    for secret in (s.access, s.refresh, new.access_token, new.refresh_token, USER_ID, TEXT):
        assert secret not in caplog.text


def test_sends_share_one_client_per_process(runtime: Runtime, sim: str) -> None:
    """One Zalo client per process (issue 15): a new client per send meant a new connection,
    and against the real API one TLS handshake, per message. (The test server closes each
    connection, so only the sharing itself is checked here.)"""
    from tipline.jobs.outbound import process_client

    make_oa(runtime)
    first, second = make_message(runtime), make_message(runtime)
    assert send_message(first) == "sent"
    client = process_client(runtime.config)
    assert send_message(second) == "sent"
    assert process_client(runtime.config) is client
    assert process_client(runtime.config.with_overrides(zalo_app_id="other")) is not client
    assert len(sim_calls(sim)) == 2
