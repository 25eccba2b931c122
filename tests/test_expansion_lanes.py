"""Expansion in lanes (issue 15: "per-row expansion across workers"): an informant's messages
are expanded in the order they came, so expansion was one stage fleet-wide, one batch at a
time, whatever the number of workers. An informant is an alias of one OA (Zalo's user ids are
the OA's), so each OA's events are one lane and different OAs' events expand side by side, on
up to TIPLINE_EXPANDERS workers (1 by default: one expands while the others dispatch and send,
which measured best on one machine)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import COMMUNE_OA, PROVINCE_OA
from tests.zalo_events import event, signed_headers
from tipline.config import Config
from tipline.intake import expansion
from tipline.jobs import worker
from tipline.models import InboundEvent
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")


def post(client: FlaskClient, oa: str, msg_id: str, user: str, text: str) -> None:
    raw = event(text=text, msg_id=msg_id, user=user, oa=oa)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200


def pending(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        rows = session.scalars(select(InboundEvent).where(InboundEvent.processed_at.is_(None)))
        return len(rows.all())


def one_expander_held(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, expanders: int
) -> tuple[threading.Thread, threading.Event, list[int]]:
    """A first expander that stops after reading its batch, as a slow worker would."""
    started, go_on = threading.Event(), threading.Event()
    first_thread: list[threading.Thread] = []
    real_open = expansion._open

    def slow_open(*args: Any) -> Any:
        if threading.current_thread() in first_thread:
            started.set()
            assert go_on.wait(30)
        return real_open(*args)

    monkeypatch.setattr(expansion, "_open", slow_open)
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(expansion.expand_pending(runtime, expanders=expanders))
    )
    first_thread.append(first)
    first.start()
    assert started.wait(30)
    return first, go_on, results


def test_two_oas_events_expand_side_by_side_while_one_lane_is_busy(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(client, COMMUNE_OA, "lane-commune", "5550001", "Có đánh bạc ở chợ")
    post(client, PROVINCE_OA, "lane-province", "5550002", "Có người buôn ma túy ở bến xe")
    assert pending(runtime) == 2
    first, go_on, results = one_expander_held(runtime, monkeypatch, expanders=2)
    try:
        # Meanwhile another worker expands the other OA's event.
        assert expansion.expand_pending(runtime, expanders=2) == 1
        assert pending(runtime) == 1
    finally:
        go_on.set()
        first.join(30)
    assert results == [1]
    assert pending(runtime) == 0


def test_with_one_expander_slot_the_other_worker_leaves_expansion_to_the_first(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(client, COMMUNE_OA, "slot-commune", "5550004", "Có đánh bạc ở chợ")
    post(client, PROVINCE_OA, "slot-province", "5550005", "Có người buôn ma túy ở bến xe")
    first, go_on, results = one_expander_held(runtime, monkeypatch, expanders=1)
    try:
        assert expansion.expand_pending(runtime, expanders=1) == 0  # it dispatches instead
        assert pending(runtime) == 2
    finally:
        go_on.set()
        first.join(30)
    assert results == [2]  # the first took both lanes, one after the other


def test_how_many_may_expand_at_once_is_a_setting_from_1_to_the_lanes(
    env: dict[str, str],
) -> None:
    assert Config.from_env(env).expanders == 1  # one expands, the others dispatch and send
    assert Config.from_env({**env, "TIPLINE_EXPANDERS": "3"}).expanders == 3
    for bad in ("0", "17", "two", "-1", "1.5"):
        with pytest.raises(ValueError, match="TIPLINE_EXPANDERS"):
            Config.from_env({**env, "TIPLINE_EXPANDERS": bad})


def test_the_relay_expands_with_as_many_as_the_setting_allows(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(client, COMMUNE_OA, "relay-commune", "5550008", "Có đánh bạc ở chợ")
    asked: list[int] = []
    real = worker.expand_pending

    def spy(rt: Runtime, limit: int = 200, expanders: int = 1) -> int:
        asked.append(expanders)
        return int(real(rt, limit, expanders))

    monkeypatch.setattr(worker, "expand_pending", spy)
    monkeypatch.setattr(runtime, "config", runtime.config.with_overrides(expanders=2))
    assert worker.relay_pass(runtime) is True
    assert asked == [2] and pending(runtime) == 0


def test_an_informants_messages_stay_in_one_lane_in_the_order_they_came(
    client: FlaskClient, runtime: Runtime
) -> None:
    post(client, COMMUNE_OA, "order-1", "5550003", "Có đánh bạc ở chợ Cái Nước")
    post(client, COMMUNE_OA, "order-2", "5550003", "Họ có khoảng 5 người")
    with runtime.sessions() as session:
        lanes = set(session.scalars(select(InboundEvent.lane)))
    assert len(lanes) == 1
    assert expansion.expand_pending(runtime) == 2
    with runtime.sessions() as session:
        tips = {e.tip_public_id for e in session.scalars(select(InboundEvent))}
    assert len(tips) == 1  # the second message joined the tip the first opened


def test_an_expander_writes_its_share_of_the_lanes_in_one_transaction(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch a lane cost a write transaction each (the audit head, BEGIN and COMMIT): with
    two workers, one expander takes every waiting lane into one batch, as before lanes."""
    post(client, COMMUNE_OA, "share-commune", "5550006", "Có đánh bạc ở chợ")
    post(client, PROVINCE_OA, "share-province", "5550007", "Có người buôn ma túy ở bến xe")
    writes: list[int] = []
    real_write = expansion._write_batch

    def counted(*args: Any, **kwargs: Any) -> int:
        writes.append(1)
        return int(real_write(*args, **kwargs))

    monkeypatch.setattr(expansion, "_write_batch", counted)
    assert expansion.expand_pending(runtime, expanders=1) == 2
    assert len(writes) == 1
