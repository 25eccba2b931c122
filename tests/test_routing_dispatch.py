"""Routing inside dispatch, on a real RQ worker: place names, GPS, the location question and
re-route, duty assignment, procedure questions, escalation, and the national import."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select

from keys import open_sealed
from tests.conftest import OFFICER_PASSWORD, PROVINCE_OA, expand, run_jobs
from tests.zalo_events import event, signed_headers
from tipline.jobs.relay import drain
from tipline.keychain import NoKeyChain, open_tip_key, unit_keys_of, unlock_officer_key
from tipline.models import (
    Holder,
    KeyGrant,
    Message,
    Notification,
    Officer,
    Subject,
    Tip,
    Unit,
)
from tipline.runtime import Runtime, install

pytestmark = pytest.mark.usefixtures("units")


def _square(code: str, lon: float, lat: float, size: float = 0.01) -> dict[str, object]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {
        "type": "Feature",
        "properties": {"code": code},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


@pytest.fixture
def geo_runtime(runtime: Runtime, tmp_path: Path) -> Iterator[Runtime]:
    """The test's runtime with a small boundary file: 32134 and 32128 as two squares."""
    path = tmp_path / "wards.geojson"
    features = [_square("32134", 105.0, 9.0), _square("32128", 105.02, 9.0)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    rt = install(Runtime(runtime.config.with_overrides(ward_boundaries=path)))
    yield rt
    rt.engine.dispose()
    install(runtime)


def send(client: FlaskClient, rt: Runtime, raw: bytes) -> None:
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(rt)
    drain(rt.sessions, rt.redis)


def location_event(lat: float, lon: float, msg_id: str, oa: str = PROVINCE_OA) -> bytes:
    body = json.loads(event("user_send_location", text="", msg_id=msg_id, oa=oa))
    body["message"]["attachments"] = [
        {"type": "location", "payload": {"coordinates": {"latitude": lat, "longitude": lon}}}
    ]
    return json.dumps(body, ensure_ascii=False).encode()


def the_tip(rt: Runtime) -> Tip:
    with rt.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        session.expunge(tip)
        return tip


def unit_code(rt: Runtime, tip: Tip) -> str:
    with rt.sessions() as session:
        return session.get_one(Unit, tip.unit_id).code


def outbound_texts(rt: Runtime, username: str) -> list[str]:
    with rt.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == username)).one()
        keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
        tip = session.scalars(select(Tip)).one()
        tip_key = open_tip_key(session, tip, keys)
        out = session.scalars(select(Message).where(Message.direction == "out")).all()
        return [
            json.loads(open_sealed(tip_key, m.sealed_body, purpose="message", binding=m.binding))[
                "text"
            ]
            for m in out
        ]


def test_an_old_commune_name_routes_to_its_new_unit_sealed(
    client: FlaskClient, runtime: Runtime
) -> None:
    text = "Có trộm xe máy ở xã Phú Hưng, huyện Cái Nước"
    send(client, runtime, event(text=text, oa=PROVINCE_OA))
    run_jobs(runtime, ["dispatch"])
    tip = the_tip(runtime)
    assert unit_code(runtime, tip) == "v2025:32134"
    assert tip.routing_auto is True and tip.routing_confidence and tip.routing_confidence > 0.8
    assert tip.needs_location is False and tip.location_requested_at is None
    assert tip.category == "trom_cap"
    # The record quotes the tip's words: it is sealed, and opens with the tip key only.
    assert tip.sealed_routing is not None and "Phú Hưng".encode() not in tip.sealed_routing
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
        tip_key = open_tip_key(session, session.get_one(Tip, tip.id), keys)
    record = json.loads(
        open_sealed(tip_key, tip.sealed_routing, purpose="routing", binding=tip.key_binding)
    )
    assert record["unit"] == "v2025:32134" and record["auto"] is True
    assert "Phú Hưng" in "; ".join(record["candidates"][0]["reasons"])
    assert record["candidates"][0]["name"] == "Xã Lương Thế Trân, Tỉnh Cà Mau"


def province_holds_it_alone(rt: Runtime, tip: Tip) -> None:
    """Only the OA's unit (the province here) and its parents hold a tip not yet routed: no
    candidate commune's key opens it (they used to be pre-granted, up to 5)."""
    with rt.sessions() as session:
        holders = set(
            session.scalars(
                select(KeyGrant.holder_id).where(
                    KeyGrant.subject_kind == Subject.TIP,
                    KeyGrant.subject_id == tip.id,
                    KeyGrant.holder_kind == Holder.UNIT_KEY,
                )
            )
        )
        province = session.scalars(select(Unit).where(Unit.code == "v2025:96")).one()
        assert holders and holders <= {k.id for k in province.keys}
        for username in ("canbo", "canbo2"):
            officer = session.scalars(select(Officer).where(Officer.username == username)).one()
            keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
            with pytest.raises(NoKeyChain):
                open_tip_key(session, session.get_one(Tip, tip.id), keys)


def test_unplaceable_tip_stays_asks_once_then_a_location_moves_it(
    client: FlaskClient, geo_runtime: Runtime
) -> None:
    rt = geo_runtime
    send(client, rt, event(text="Có sới bạc ở huyện Cái Nước", oa=PROVINCE_OA, msg_id="a1"))
    run_jobs(rt, ["dispatch"])
    tip = the_tip(rt)
    assert unit_code(rt, tip) == "v2025:96"
    assert tip.routing_auto is False and tip.needs_location is True
    assert tip.location_requested_at is not None
    province_holds_it_alone(rt, tip)
    texts = outbound_texts(rt, "chihuy")
    assert len(texts) == 1 and "chia sẻ vị trí" in texts[0]
    # A follow-up text does not ask again.
    send(client, rt, event(text="ở gần chợ", oa=PROVINCE_OA, msg_id="a2"))
    run_jobs(rt, ["dispatch"])
    assert len(outbound_texts(rt, "chihuy")) == 1
    # The location arrives: no worker can grant a tip it cannot open, and no commune held it
    # in advance, so the province is told where the point is and an officer transfers it.
    send(client, rt, location_event(9.005, 105.025, "a3"))
    run_jobs(rt, ["dispatch"])
    tip = the_tip(rt)
    assert unit_code(rt, tip) == "v2025:96"
    assert tip.needs_location is False and tip.sealed_reroute is None
    province_holds_it_alone(rt, tip)
    with rt.sessions() as session:
        notices = session.scalars(
            select(Notification.kind).where(Notification.tip_id == tip.id)
        ).all()
        officer = session.scalars(select(Officer).where(Officer.username == "chihuy")).one()
        keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
        tip_key = open_tip_key(session, session.get_one(Tip, tip.id), keys)
        routing = json.loads(
            open_sealed(tip_key, tip.sealed_routing, purpose="routing", binding=tip.key_binding)
        )
    assert "location_received" in notices
    assert routing["unit"] == "v2025:32128"  # where the point is, for the officer to transfer


def test_a_gps_tip_lands_where_the_point_is(client: FlaskClient, geo_runtime: Runtime) -> None:
    send(client, geo_runtime, location_event(9.005, 105.005, "g1"))
    run_jobs(geo_runtime, ["dispatch"])
    tip = the_tip(geo_runtime)
    assert unit_code(geo_runtime, tip) == "v2025:32134" and tip.routing_auto is True


def test_duty_officer_gets_the_tip_or_the_commander_is_told(
    client: FlaskClient, runtime: Runtime
) -> None:
    from tipline.cli.officers import duty

    result = CliRunner().invoke(duty, ["canbo", "on"], env=_env(runtime))
    assert result.exit_code == 0, result.output
    send(client, runtime, event(text="đánh bạc ở xã Phú Hưng huyện Cái Nước", oa=PROVINCE_OA))
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.assignee is not None and tip.assignee.username == "canbo"
    # Nobody on duty at Cái Nước: the queue, and the province's commander is notified.
    send(
        client,
        runtime,
        event(
            text="đánh bạc ở xã Cái Nước", oa=PROVINCE_OA, msg_id="d2", user="2468458835296199999"
        ),
    )
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip).order_by(Tip.id.desc())).first()
        assert tip is not None and tip.assignee_id is None and tip.unit is not None
        assert tip.unit.code == "v2025:32128"
        notes = session.scalars(
            select(Notification).where(Notification.kind == "unassigned_tip")
        ).all()
        commander = session.scalars(select(Officer).where(Officer.username == "chihuy")).one()
        assert {n.officer_id for n in notes} >= {commander.id}


def _env(runtime: Runtime) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "TIPLINE_DATA_DIR": str(runtime.config.data_dir),
        "TIPLINE_DATABASE_URL": runtime.config.database_url,
        "TIPLINE_REDIS_URL": runtime.config.redis_url or "",
        "TIPLINE_KEYSTORE_URL": runtime.config.keystore_url or "",
    }


def test_procedure_question_is_answered_and_kept_out_of_the_queue(
    client: FlaskClient, runtime: Runtime
) -> None:
    send(client, runtime, event(text="Cho hỏi thủ tục làm căn cước công dân ở đâu?"))
    run_jobs(runtime, ["dispatch"])
    tip = the_tip(runtime)
    assert tip.category == "hoi_thu_tuc" and not tip.is_open and tip.assignee_id is None
    (reply,) = outbound_texts(runtime, "canbo")
    assert "dichvucong.bocongan.gov.vn" in reply


def test_urgent_unopened_tip_escalates_to_the_parent_unit(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIPLINE_ESCALATE_AFTER_MINUTES", "0")
    send(client, runtime, event(text="Đang có đánh nhau, có người cầm dao ở ngay đầu hẻm"))
    run_jobs(runtime, ["dispatch"])
    tip = the_tip(runtime)
    assert tip.priority == "urgent" and unit_code(runtime, tip) == "v2025:32134"
    # The scheduler moves the due check onto the queue.
    run_jobs(runtime, ["dispatch"], scheduler=True)
    run_jobs(runtime, ["dispatch"])
    tip = the_tip(runtime)
    assert tip.escalation_level == 1 and tip.escalated_at is not None
    with runtime.sessions() as session:
        province = session.scalars(select(Unit).where(Unit.code == "v2025:96")).one()
        notes = session.scalars(select(Notification).where(Notification.kind == "escalated")).all()
        assert {n.unit_id for n in notes} == {province.id}


def test_units_import_builds_the_current_structure(runtime: Runtime) -> None:
    from tipline.routing.importer import import_units
    from tipline.units import list_units

    with runtime.sessions() as session, session.begin():
        result = import_units(session)
    assert (result.provinces, result.communes) == (33, 3319)  # Cà Mau and 2 communes existed
    with runtime.sessions() as session:
        rows = list_units(session)
    by_code = {row["code"]: row for row in rows}
    assert len([r for r in rows if r["level"] == "province"]) == 34
    assert len([r for r in rows if r["level"] == "commune"]) == 3321
    assert by_code["v2025:00004"]["name"] == "Công an phường Ba Đình"
    assert by_code["v2025:00004"]["parent"] == "v2025:01"
    assert by_code["v2025:21361"]["name"] == "Công an xã Minh Long"


def test_route_cli_json_and_batch(tmp_path: Path) -> None:
    from tipline.cli.routing import route

    runner = CliRunner()
    result = runner.invoke(route, ["xa Phu Hung huyen Cai Nuoc", "--oa", "v2025:96", "--json"])
    row = json.loads(result.output)
    assert row["unit"] == "v2025:32134" and row["auto"] is True
    assert {"unit", "confidence", "auto", "candidates"} <= set(row)
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        '{"text": "P.Tho Xuong TP Bac Giang"}\n'
        '{"text": "trộm ở P. Mỹ Phước, TX Bến Cát", "oa": "v2025:79"}\n'
    )
    lines = runner.invoke(route, ["--batch", str(batch)]).output.splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["unit"] == "v2025:07210" and first["auto"] is True
    assert second["unit"] == "v2025:79" and second["auto"] is False
