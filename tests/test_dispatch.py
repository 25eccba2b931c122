"""Dispatch on a real RQ worker: key chain, idempotence, held tips, and the sweeper."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import select, update

from keys import open_sealed
from tests.conftest import OFFICER_PASSWORD, expand, run_jobs
from tests.zalo_events import event, signed_headers
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.relay import drain
from tipline.jobs.sweeper import sweep
from tipline.keychain import NoKeyChain, open_tip_key, unit_keys_of, unlock_officer_key
from tipline.models import Holder, KeyGrant, Message, Officer, OutboxEntry, Subject, Tip, utcnow
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")
TEXT = "Có người buôn bán ma túy ở hẻm 12"


def send(client: FlaskClient, raw: bytes) -> None:
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(client.application.extensions["tipline"])


def read_as(runtime: Runtime, username: str, tip_id: int) -> list[dict[str, object]]:
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == username)).one()
        unit_keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
        tip = session.get_one(Tip, tip_id)
        tip_key = open_tip_key(session, tip, unit_keys)
        return [
            json.loads(open_sealed(tip_key, m.sealed_body, purpose="message", binding=m.binding))
            for m in tip.messages
        ]


def test_dispatch_routes_to_the_oa_unit_and_only_its_chain_can_read(
    client: FlaskClient, runtime: Runtime
) -> None:
    send(client, event(text=TEXT))
    assert drain(runtime.sessions, runtime.redis) == 1
    assert Queue("dispatch", connection=runtime.redis).count == 1
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.dispatched_at is not None and tip.unit is not None
        assert tip.unit.code == "v2025:32134"
        grants = session.scalars(
            select(KeyGrant).where(
                KeyGrant.subject_kind == Subject.TIP, KeyGrant.subject_id == tip.id
            )
        ).all()
        assert [g.holder_kind for g in grants] == [Holder.UNIT_KEY]  # the transit grant is gone
        ack = session.scalars(select(OutboxEntry).where(OutboxEntry.job == "send")).one()
        assert ack.enqueued_at is not None  # relayed right after dispatch
        tip_id, receipt = tip.id, tip.receipt_code
    # The commune officer and the provincial commander read it; the next commune's cannot.
    bodies = read_as(runtime, "canbo", tip_id)
    assert bodies[0]["text"] == TEXT
    assert receipt in str(bodies[1]["text"]) and "đã nhận được tin báo" in str(bodies[1]["text"])
    assert read_as(runtime, "chihuy", tip_id)[0]["text"] == TEXT
    with pytest.raises(NoKeyChain):
        read_as(runtime, "canbo2", tip_id)


def test_dispatch_is_idempotent(client: FlaskClient, runtime: Runtime) -> None:
    send(client, event())
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id)).one()
    assert dispatch_tip(public_id) == "dispatched"
    assert dispatch_tip(public_id) == "already dispatched"
    with runtime.sessions() as session:
        outbound = session.scalars(select(Message).where(Message.direction == "out")).all()
        assert len(outbound) == 1  # one acknowledgement


def test_a_tip_for_an_unattached_oa_is_held_then_dispatched_by_the_sweeper(
    client: FlaskClient, runtime: Runtime
) -> None:
    from datetime import timedelta

    from tipline.units import set_oa

    send(client, event(oa="3886132808788199999"))
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.dispatched_at is None and tip.dispatch_error == "oa_not_attached"
    with runtime.sessions() as session, session.begin():
        set_oa(session, "v2025:32128", "3886132808788199999")
    assert sweep(runtime.sessions, runtime.redis, older_than=timedelta(0)) == 1
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.unit is not None and tip.unit.code == "v2025:32128"


def test_crash_between_commit_and_enqueue_is_recovered_by_the_sweeper(
    client: FlaskClient, runtime: Runtime
) -> None:
    from datetime import timedelta

    send(client, event())
    # The relay marked the row but the job never reached a queue (crash, or Redis restarted).
    with runtime.sessions() as session, session.begin():
        session.execute(update(OutboxEntry).values(enqueued_at=utcnow()))
    runtime.redis.flushall()
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        assert session.scalars(select(Tip)).one().dispatched_at is None
    # Not yet old enough: the sweeper leaves young tips to the relay.
    assert sweep(runtime.sessions, runtime.redis, older_than=timedelta(minutes=5)) == 0
    assert sweep(runtime.sessions, runtime.redis, older_than=timedelta(0)) == 1
    # A second sweep while the job is still queued does not queue it twice.
    assert sweep(runtime.sessions, runtime.redis, older_than=timedelta(0)) == 0
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        assert session.scalars(select(Tip)).one().dispatched_at is not None


def test_an_attachment_whose_media_job_was_lost_is_swept(
    client: FlaskClient, runtime: Runtime
) -> None:
    from datetime import timedelta

    from tipline.models import Attachment

    image = {"type": "image", "payload": {"url": "https://10.0.0.1/photo.jpg", "name": "a.jpg"}}
    send(client, event("user_send_image", text="", attachments=[image]))
    with runtime.sessions() as session, session.begin():
        session.execute(update(OutboxEntry).values(enqueued_at=utcnow()))
    runtime.redis.flushall()  # the queued dispatch and media jobs are gone
    assert sweep(runtime.sessions, runtime.redis, older_than=timedelta(0)) == 2
    run_jobs(runtime, ["dispatch", "media"])
    with runtime.sessions() as session:
        attachment = session.scalars(select(Attachment)).one()
        assert attachment.state == "refused" and attachment.refusal == "host_not_allowed"
    assert sweep(runtime.sessions, runtime.redis, older_than=timedelta(0)) == 0


def test_intake_accepts_while_redis_is_down(runtime: Runtime, units: dict[str, str]) -> None:
    from tipline.app import create_app
    from tipline.runtime import install

    down = runtime.config.with_overrides(redis_url="redis://127.0.0.1:1/0")
    app = create_app(down)
    app.extensions["tipline"] = install(Runtime(down))
    raw = event(msg_id="while-down")
    response = app.test_client().post("/zalo/webhook", data=raw, headers=signed_headers(raw))
    assert response.status_code == 200
    install(runtime)
    expand(runtime)
    assert drain(runtime.sessions, runtime.redis) == 1  # Redis back: the row is relayed
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        assert session.scalars(select(Tip)).one().dispatched_at is not None
