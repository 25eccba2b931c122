"""A small world to attack: two communes' tips, every role logged in, attachments on demand.

Everything is made through the real paths: tips through the signed webhook, the worker's
expansion and dispatch; the note and reply through the functions the tip page's forms call;
attachments through the simulator's "CDN" and the media job. Plain functions, so that the
hostile package's fixtures (conftest.py) and the authorisation matrix share them.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from keys import FAST_TEST_COST, solve_work
from tests.conftest import COMMUNE_OA, OFFICER_PASSWORD, expand
from tests.triage_helpers import csrf_from, login
from tests.zalo_events import event, signed_headers
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.media import fetch_attachment
from tipline.models import (
    Attachment,
    Direction,
    InboundEvent,
    Message,
    Officer,
    Tip,
    Unit,
    new_public_id,
)
from tipline.officers import add_officer
from tipline.outgoing import queue_outbound, seal_body
from tipline.runtime import Runtime
from tipline.units import set_oa

ROLES = ("anonymous", "canbo", "canbo2", "chihuy", "thanhtra", "admin")
UNIT_A, UNIT_B, PROVINCE = "v2025:32134", "v2025:32128", "v2025:96"
OA_B = "3886132808788132128"
USER_A = "2468458835296197922"
USER_B = "1357913579135791357"
TEXT_A = "Có người bán ma túy ở hẻm 12, khoảng 21 giờ"
TEXT_B = "Có người đánh bạc ở quán nước số 8"
NOTE_A = "Ghi chú nội bộ: đã xác minh một phần"
REPLY_A = "Cảm ơn bạn, bạn có biết biển số xe không?"


def send_event(client: FlaskClient, raw: bytes) -> int:
    """Deliver ``raw`` as Zalo does (signed); the status the webhook answered."""
    return client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code


def send_tip(
    client: FlaskClient, runtime: Runtime, *, text: str, msg_id: str, user: str, oa: str
) -> str:
    """A new tip through the webhook, expanded and dispatched; its public id."""
    assert send_event(client, event(text=text, msg_id=msg_id, user=user, oa=oa)) == 200
    expand(runtime)
    with runtime.sessions() as db:
        public_id = db.scalars(
            select(InboundEvent.tip_public_id).order_by(InboundEvent.id.desc()).limit(1)
        ).one()
    assert public_id is not None
    assert dispatch_tip(public_id) == "dispatched"
    return public_id


def jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (20, 120, 60)).save(out, format="JPEG")
    return out.getvalue()


@dataclass
class World:
    """Public ids of what the tests attack, and a logged-in client per role."""

    app: Flask
    runtime: Runtime
    totp: dict[str, str]
    tip_a: str
    tip_b: str
    receipt_a: str
    receipt_b: str
    units: dict[str, str]  # code → public id
    officers: dict[str, str]  # username → public id
    _clients: dict[str, FlaskClient] = field(default_factory=dict)
    _extra_tips: int = 0

    def client(self, role: str) -> FlaskClient:
        """A client logged in as ``role`` ("anonymous": none); one login per role and test
        (a TOTP code is good once)."""
        if role not in self._clients:
            client = self.app.test_client()
            # An address of its own: the login and form throttles count per address.
            client.environ_base["REMOTE_ADDR"] = f"192.0.2.{len(self._clients) + 10}"
            if role != "anonymous":
                response = login(client, role, self.totp[role])
                assert response.status_code == 302, (role, response.status_code)
            self._clients[role] = client
        return self._clients[role]

    def fresh_client(self) -> FlaskClient:
        return self.app.test_client()

    def token(self, client: FlaskClient) -> str:
        """A valid CSRF token of ``client``'s session, from a page that changes nothing."""
        return csrf_from(client.get("/tra-cuu").get_data(as_text=True))

    def lookup_work(self, client: FlaskClient) -> dict[str, str]:
        """A /tra-cuu challenge for ``client``'s browser, solved: so that a post is judged on
        its code and passphrase, not refused for want of work."""
        page = client.get("/tra-cuu").get_data(as_text=True)
        form = re.search(r'data-challenge="([^"]+)" data-bits="(\d+)"', page)
        assert form, "no proof-of-work challenge on /tra-cuu"
        return {"challenge": form.group(1), "nonce": solve_work(form.group(1), int(form.group(2)))}

    def new_tip_a(self) -> str:
        """Another dispatched tip of unit A (another informant), for actions that move it."""
        self._extra_tips += 1
        n = self._extra_tips
        return send_tip(
            self.app.test_client(),
            self.runtime,
            text=f"Tin báo thêm số {n}",
            msg_id=f"extra-{n}",
            user=f"9{n:018d}",
            oa=COMMUNE_OA,
        )

    def tip_row(self, public_id: str) -> Tip:
        with self.runtime.sessions() as db:
            tip = db.scalars(select(Tip).where(Tip.public_id == public_id)).one()
            db.expunge(tip)
            return tip


def build_world(app: Flask, runtime: Runtime, units: dict[str, str]) -> World:
    """Unit A (Lương Thế Trân) with a tip holding a note and a reply; unit B (Cái Nước, its own
    OA) with a tip of its own; the commander above both, an auditor and an admin."""
    totp = {k.removeprefix("totp:"): v for k, v in units.items() if k.startswith("totp:")}
    with runtime.sessions() as db, db.begin():
        set_oa(db, UNIT_B, OA_B)
        admin = add_officer(
            db,
            username="admin",
            display_name="Quản trị",
            role="admin",
            unit_code=None,
            password=OFFICER_PASSWORD,
            cost=FAST_TEST_COST,
            totp_confirmed=True,
        )
        totp["admin"] = admin.totp_secret
    client = app.test_client()
    tip_a = send_tip(client, runtime, text=TEXT_A, msg_id="world-a", user=USER_A, oa=COMMUNE_OA)
    tip_b = send_tip(client, runtime, text=TEXT_B, msg_id="world-b", user=USER_B, oa=OA_B)
    relay = runtime.transit.public()
    with runtime.sessions() as db, db.begin():
        tips = {t.public_id: t for t in db.scalars(select(Tip))}
        canbo = db.scalars(select(Officer).where(Officer.username == "canbo")).one()
        note = Message(
            public_id=new_public_id(),
            tip=tips[tip_a],
            direction=Direction.NOTE,
            kind="note",
            sealed_body=b"",
            author_id=canbo.id,
        )
        note.sealed_body = seal_body(tips[tip_a], note, {"text": NOTE_A})
        db.add(note)
        queue_outbound(db, tips[tip_a], REPLY_A, transit=relay, author=canbo)
        assert tips[tip_a].unit_id != tips[tip_b].unit_id
        receipts = {t.public_id: t.receipt_code for t in tips.values()}
        unit_ids = {u.code: u.public_id for u in db.scalars(select(Unit))}
        officer_ids = {o.username: o.public_id for o in db.scalars(select(Officer))}
    return World(
        app=app,
        runtime=runtime,
        totp=totp,
        tip_a=tip_a,
        tip_b=tip_b,
        receipt_a=receipts[tip_a],
        receipt_b=receipts[tip_b],
        units=unit_ids,
        officers=officer_ids,
    )


def upload(sim: str, name: str, data: bytes, content_type: str = "image/jpeg") -> str:
    """Put ``data`` on the simulator's "CDN"; the URL an event would carry."""
    response = httpx.post(
        f"{sim}/_sim/media", files={"file": (name, data, content_type)}, timeout=10
    )
    assert response.status_code == 201, response.text
    return str(response.json()["url"])


class Deliverer:
    """Files an informant sends: served by the simulator, joined to that informant's tip,
    run through the media job (in this process, as the worker would)."""

    def __init__(self, world: World, sim: str) -> None:
        self.world = world
        self.sim = sim
        self.sent = 0

    def __call__(
        self,
        data: bytes,
        *,
        name: str = "anh.jpg",
        kind: str = "image",
        user: str = USER_A,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """The new attachment's public id, after the media job ran on it."""
        self.sent += 1
        url = upload(self.sim, "upload.bin", data, "application/octet-stream")
        body = {"url": url, "name": name, "type": name.rsplit(".", 1)[-1], "size": str(len(data))}
        raw = event(
            f"user_send_{kind}",
            text="",
            msg_id=f"media-{self.sent}",
            user=user,
            attachments=[{"type": kind, "payload": payload or body}],
        )
        assert send_event(self.world.fresh_client(), raw) == 200
        expand(self.world.runtime)
        with self.world.runtime.sessions() as db:
            public_id = db.scalars(
                select(Attachment.public_id).order_by(Attachment.id.desc()).limit(1)
            ).one()
        fetch_attachment(public_id)
        return public_id


def attachment_state(runtime: Runtime, public_id: str) -> tuple[str, str | None, str | None]:
    """(state, refusal, storage_ref) of an attachment."""
    with runtime.sessions() as db:
        row = db.scalars(select(Attachment).where(Attachment.public_id == public_id)).one()
        return row.state, row.refusal, row.storage_ref
