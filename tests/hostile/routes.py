"""One concrete request per route of the app, on real objects of unit A.

Keys are "METHOD /rule" as in ``app.url_map``. Each request is what an authorised person's
browser (or Zalo, or a test harness for /_sim) would send: valid form data, so that the status
it gets tells who may, not whether the form was filled in. Actions that move or close a tip
(transfer, escalate, duplicate) get a fresh tip of unit A each time.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import APP_ID, COMMUNE_OA
from tests.hostile.world import UNIT_A, UNIT_B, World
from tests.zalo_events import signed_headers
from tipline.units import set_oa

TO_LOGIN = "302→/login"


@dataclass
class Call:
    method: str
    path: str
    form: dict[str, Any] | None = None  # a form post: the CSRF token is added
    json: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Targets:
    """What the requests name: the world's objects, an attachment, a simulator file."""

    world: World
    attachment: str
    sim_media: str
    accounts: int = 0
    codes: int = 0
    oas: int = 0

    @property
    def tip(self) -> str:
        return f"/triage/tips/{self.world.tip_a}"

    def fresh_tip(self) -> str:
        return f"/triage/tips/{self.world.new_tip_a()}"

    def unknown_code(self) -> str:
        """A receipt code nobody has, another each time (5 failures lock a code)."""
        self.codes += 1
        return f"TL-0000-{self.codes:04d}"

    def new_username(self) -> str:
        self.accounts += 1
        return f"canbo.moi{self.accounts}"

    def grant_request(self) -> str:
        """A new account of unit A waiting for its key (tipline.grants): a request of its own
        for each call, so each role decides a pending one."""
        from tipline.grants import pending_request
        from tipline.models import new_public_id
        from tipline.officers import add_officer

        with self.world.runtime.sessions() as db, db.begin():
            new = add_officer(
                db,
                username=f"cho.{new_public_id()}",
                display_name="Cán bộ chờ khóa",
                role="officer",
                unit_code=UNIT_A,
                password="mot mat khau du dai",
                cost=self.world.runtime.config.kdf_cost,
            )
            request = pending_request(db, new.officer.id)
            assert request is not None
            return request.public_id

    def fresh_oa(self) -> str:
        """Another OA of unit A, for an action that removes it."""
        self.oas += 1
        oa_id = f"38861328087{self.oas:08d}"
        with self.world.runtime.sessions() as db, db.begin():
            set_oa(db, UNIT_A, oa_id)
        return oa_id

    def consent_callback(self) -> str:
        """Where Zalo sends the admin back after a consent the admin started: their own
        connect, approved on the consent page of the live simulator the runtime points at."""
        started = self.world.client("admin").get(f"/admin/zalo/connect/{COMMUNE_OA}")
        assert started.status_code == 302, started.status_code
        page = httpx.get(started.headers["Location"])
        hidden = r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"'
        fields = dict(re.findall(hidden, page.text))
        approved = httpx.post(started.headers["Location"], data={**fields, "oa_id": COMMUNE_OA})
        back = httpx.URL(approved.headers["Location"])
        return f"{back.path}?{back.query.decode()}"


def _follow_event() -> Call:
    body = {
        "app_id": APP_ID,
        "oa_id": COMMUNE_OA,
        "follower": {"id": "1029384756102938475"},
        "event_name": "follow",
        "timestamp": "1718000000000",
    }
    raw = json.dumps(body).encode()
    return Call("POST", "/zalo/webhook", raw=raw, headers=signed_headers(raw))


REQUESTS: dict[str, Callable[[Targets], Call]] = {
    # Machine routes: the webhook (signature, no session) and the Zalo simulator (test mode).
    "POST /zalo/webhook": lambda t: _follow_event(),
    "GET /healthz": lambda t: Call("GET", "/healthz"),
    "GET /livez": lambda t: Call("GET", "/livez"),
    "GET /readyz": lambda t: Call("GET", "/readyz"),
    "GET /static/<path:filename>": lambda t: Call("GET", "/static/tipline.css"),
    "GET /_sim/faults": lambda t: Call("GET", "/_sim/faults"),
    "POST /_sim/faults": lambda t: Call("POST", "/_sim/faults", json={"errors": []}),
    "DELETE /_sim/faults": lambda t: Call("DELETE", "/_sim/faults"),
    "POST /_sim/media": lambda t: Call(
        "POST", "/_sim/media", form={"file": (io.BytesIO(b"x"), "a.txt")}
    ),
    "GET /_sim/media/<media_id>": lambda t: Call("GET", f"/_sim/media/{t.sim_media}"),
    "GET /_sim/cdn/<host>/<media_id>": lambda t: Call(
        "GET", f"/_sim/cdn/f20-zpc.zdn.vn/{t.sim_media}"
    ),
    "POST /_sim/media-faults": lambda t: Call(
        "POST", "/_sim/media-faults", json={"count": 0}  # refused: nothing queued
    ),
    "GET /_sim/messages": lambda t: Call("GET", "/_sim/messages"),
    "DELETE /_sim/messages": lambda t: Call("DELETE", "/_sim/messages"),
    "POST /_sim/interactions": lambda t: Call(
        "POST", "/_sim/interactions", json={"oa_id": COMMUNE_OA, "user_id": "1"}
    ),
    "POST /_sim/oa/<oa_id>": lambda t: Call("POST", f"/_sim/oa/{COMMUNE_OA}", json={}),
    "POST /_sim/v2.0/oa/message": lambda t: Call("POST", "/_sim/v2.0/oa/message", json={}),
    "POST /_sim/v3.0/oa/message/cs": lambda t: Call("POST", "/_sim/v3.0/oa/message/cs", json={}),
    "POST /_sim/v4/oa/access_token": lambda t: Call("POST", "/_sim/v4/oa/access_token", json={}),
    "GET /_sim/v4/oa/permission": lambda t: Call(
        "GET",
        f"/_sim/v4/oa/permission?app_id={APP_ID}&oa_id={COMMUNE_OA}"
        "&redirect_uri=http://localhost/callback",
    ),
    "POST /_sim/v4/oa/permission": lambda t: Call(
        "POST",
        "/_sim/v4/oa/permission",
        form={
            "app_id": APP_ID,
            "oa_id": COMMUNE_OA,
            "redirect_uri": "http://localhost/callback",
        },
    ),
    # The informant's web form.
    "GET /bao-tin": lambda t: Call("GET", "/bao-tin"),
    "POST /bao-tin": lambda t: Call(
        "POST", "/bao-tin", form={"unit": t.world.units[UNIT_A], "text": "Tin", "nonce": "x"}
    ),
    "GET /tra-cuu": lambda t: Call("GET", "/tra-cuu"),
    "POST /tra-cuu": lambda t: Call(
        "POST", "/tra-cuu", form={"code": t.unknown_code(), "passphrase": "sai mat khau"}
    ),
    # Sessions.
    "GET /login": lambda t: Call("GET", "/login"),
    "POST /login": lambda t: Call("POST", "/login", form={}),
    "GET /login/totp-setup": lambda t: Call("GET", "/login/totp-setup"),
    "POST /login/totp-setup": lambda t: Call("POST", "/login/totp-setup", form={"code": "123456"}),
    "GET /login/recover": lambda t: Call("GET", "/login/recover"),
    "POST /login/recover": lambda t: Call("POST", "/login/recover", form={}),
    "POST /lang/<code>": lambda t: Call(
        "POST", "/lang/vi", form={}, headers={"Referer": "http://localhost/tra-cuu"}
    ),
    "POST /logout": lambda t: Call("POST", "/logout", form={}),
    # Officers and commanders.
    "GET /triage/": lambda t: Call("GET", "/triage/"),
    "GET /triage/search/": lambda t: Call("GET", "/triage/search/?q=ma+tuy"),
    "GET /triage/dashboard/": lambda t: Call("GET", "/triage/dashboard/"),
    "GET /triage/tips/<public_id>": lambda t: Call("GET", t.tip),
    "GET /triage/tips/<public_id>/attachments/<attachment_id>": lambda t: Call(
        "GET", f"{t.tip}/attachments/{t.attachment}"
    ),
    "GET /triage/tips/<public_id>/attachments/<attachment_id>/view": lambda t: Call(
        "GET", f"{t.tip}/attachments/{t.attachment}/view"
    ),
    "POST /triage/tips/<public_id>/status": lambda t: Call(
        "POST", f"{t.tip}/status", form={"value": "verifying"}
    ),
    "POST /triage/tips/<public_id>/priority": lambda t: Call(
        "POST", f"{t.tip}/priority", form={"value": "high"}
    ),
    "POST /triage/tips/<public_id>/category": lambda t: Call(
        "POST", f"{t.tip}/category", form={"value": "ma_tuy"}
    ),
    "POST /triage/tips/<public_id>/assign": lambda t: Call(
        "POST", f"{t.tip}/assign", form={"value": t.world.officers["canbo"]}
    ),
    "POST /triage/tips/<public_id>/note": lambda t: Call(
        "POST", f"{t.tip}/note", form={"text": "Ghi chú"}
    ),
    "POST /triage/tips/<public_id>/reply": lambda t: Call(
        "POST", f"{t.tip}/reply", form={"text": "Cảm ơn bạn"}
    ),
    "POST /triage/tips/<public_id>/transfer": lambda t: Call(
        "POST", f"{t.fresh_tip()}/transfer", form={"value": t.world.units[UNIT_B], "confirm": "1"}
    ),
    "POST /triage/tips/<public_id>/escalate": lambda t: Call(
        "POST", f"{t.fresh_tip()}/escalate", form={"confirm": "1"}
    ),
    "POST /triage/tips/<public_id>/duplicate": lambda t: Call(
        "POST",
        f"{t.fresh_tip()}/duplicate",
        form={"receipt_code": t.world.receipt_a, "confirm": "1"},
    ),
    "GET /triage/tips/<public_id>/related": lambda t: Call("GET", f"{t.tip}/related"),
    "POST /triage/tips/<public_id>/link": lambda t: Call(
        "POST", f"{t.fresh_tip()}/link", form={"receipt_code": t.world.receipt_a}
    ),
    "POST /triage/tips/<public_id>/unlink": lambda t: Call(
        "POST", f"{t.tip}/unlink", form={"tip": t.world.tip_b}
    ),
    "GET /triage/roster/": lambda t: Call("GET", "/triage/roster/"),
    "POST /triage/roster/<public_id>": lambda t: Call(
        "POST", f"/triage/roster/{t.world.officers['canbo']}", form={"on_duty": "1"}
    ),
    "GET /triage/grants/": lambda t: Call("GET", "/triage/grants/"),
    "POST /triage/grants/<public_id>/approve": lambda t: Call(
        "POST", f"/triage/grants/{t.grant_request()}/approve", form={}
    ),
    "POST /triage/grants/<public_id>/reject": lambda t: Call(
        "POST", f"/triage/grants/{t.grant_request()}/reject", form={}
    ),
    "GET /login/new-password": lambda t: Call("GET", "/login/new-password"),
    "POST /login/new-password": lambda t: Call(
        "POST", "/login/new-password", form={"new_password": "x" * 12, "confirm": "x" * 12}
    ),
    "GET /admin/accounts/<public_id>": lambda t: Call(
        "GET", f"/admin/accounts/{t.world.officers['canbo']}"
    ),
    # Asked, not confirmed: the admin gets the page that says what it would do.
    "POST /admin/accounts/<public_id>/<change>": lambda t: Call(
        "POST", f"/admin/accounts/{t.world.officers['canbo']}/authenticator", form={}
    ),
    "POST /triage/tips/<public_id>/take": lambda t: Call("POST", f"{t.tip}/take", form={}),
    "POST /triage/tips/<public_id>/triage": lambda t: Call(
        "POST",
        f"{t.tip}/triage",
        form={
            "triage-status": "verifying",
            "triage-priority": "high",
            "triage-category": "ma_tuy",
            "triage-assignee": t.world.officers["canbo"],
        },
    ),
    "POST /triage/tips/<public_id>/export.pdf": lambda t: Call(
        "POST", f"{t.tip}/export.pdf", form={}
    ),
    "GET /triage/tips/<public_id>/moved": lambda t: Call("GET", f"{t.tip}/moved"),
    "GET /triage/live": lambda t: Call("GET", "/triage/live"),
    "GET /triage/notifications": lambda t: Call("GET", "/triage/notifications"),
    "GET /triage/canned-replies/": lambda t: Call("GET", "/triage/canned-replies/"),
    "POST /triage/canned-replies/": lambda t: Call(
        "POST", "/triage/canned-replies/", form={"title": "Cảm ơn", "text": "Cảm ơn bạn."}
    ),
    "POST /triage/canned-replies/<public_id>/delete": lambda t: Call(
        "POST", "/triage/canned-replies/khongco/delete", form={}
    ),
    "GET /triage/units/<public_id>/poster": lambda t: Call(
        "GET", f"/triage/units/{t.world.units[UNIT_A]}/poster"
    ),
    "GET /triage/units/<public_id>/poster.png": lambda t: Call(
        "GET", f"/triage/units/{t.world.units[UNIT_A]}/poster.png"
    ),
    # Auditors.
    "GET /audit/": lambda t: Call("GET", "/audit/"),
    "GET /audit/anomalies": lambda t: Call("GET", "/audit/anomalies"),
    "GET /audit/officers/<public_id>": lambda t: Call(
        "GET", f"/audit/officers/{t.world.officers['canbo']}"
    ),
    "GET /audit/tips/<code>": lambda t: Call("GET", f"/audit/tips/{t.world.receipt_a}"),
    "POST /audit/anomalies/review": lambda t: Call(
        "POST", "/audit/anomalies/review", form={"flag": "failed_logins:none", "note": "x"}
    ),
    "GET /audit/verify": lambda t: Call("GET", "/audit/verify"),
    "POST /audit/verify": lambda t: Call("POST", "/audit/verify", form={}),
    "POST /audit/export": lambda t: Call("POST", "/audit/export", form={}),
    "POST /audit/checkpoints": lambda t: Call("POST", "/audit/checkpoints", form={}),
    "POST /audit/checkpoints/export": lambda t: Call("POST", "/audit/checkpoints/export", form={}),
    # Not a checkpoint file: the auditor gets the page's clear refusal (400), others 403.
    "POST /audit/checkpoints/compare": lambda t: Call(
        "POST", "/audit/checkpoints/compare", form={"checkpoint": (io.BytesIO(b"x"), "cp.json")}
    ),
    # Admins.
    "GET /admin/": lambda t: Call("GET", "/admin/"),
    "GET /admin/units/new": lambda t: Call("GET", "/admin/units/new"),
    "POST /admin/units/new": lambda t: Call(
        "POST", "/admin/units/new", form={"code": "", "name": "", "level": "commune"}
    ),
    "GET /admin/units/<public_id>": lambda t: Call(
        "GET", f"/admin/units/{t.world.units[UNIT_A]}"
    ),
    "POST /admin/units/<public_id>/rename": lambda t: Call(
        "POST", f"/admin/units/{t.world.units[UNIT_A]}/rename", form={"name": "Công an xã A"}
    ),
    "POST /admin/officers": lambda t: Call(
        "POST",
        "/admin/officers",
        form={
            "username": t.new_username(),
            "display_name": "Cán bộ mới",
            "role": "officer",
            "unit": UNIT_A,
        },
    ),
    "POST /admin/officers/<public_id>/active": lambda t: Call(
        "POST", f"/admin/officers/{t.world.officers['canbo']}/active", form={"value": "on"}
    ),
    "POST /admin/officers/<public_id>/unlock": lambda t: Call(
        "POST", f"/admin/officers/{t.world.officers['canbo']}/unlock", form={}
    ),
    "POST /admin/units/<public_id>/oa": lambda t: Call(
        "POST", f"/admin/units/{t.world.units[UNIT_A]}/oa", form={"oa_id": "3886132808700000001"}
    ),
    "POST /admin/units/<public_id>/rotate-key": lambda t: Call(
        "POST", f"/admin/units/{t.world.units[UNIT_A]}/rotate-key", form={}
    ),
    "GET /admin/zalo/": lambda t: Call("GET", "/admin/zalo/"),
    "GET /admin/zalo/connect/<oa_id>": lambda t: Call("GET", f"/admin/zalo/connect/{COMMUNE_OA}"),
    "GET /admin/zalo/callback": lambda t: Call("GET", t.consent_callback()),
    "POST /admin/zalo/<oa_id>/detach": lambda t: Call(
        "POST", f"/admin/zalo/{t.fresh_oa()}/detach", form={"confirm": "1"}
    ),
    "GET /admin/zalo-events": lambda t: Call("GET", "/admin/zalo-events"),
    "POST /admin/zalo-events/retry-failed": lambda t: Call(
        "POST", "/admin/zalo-events/retry-failed", form={}
    ),
}

# Run last: they end the session, or change the unit key the other requests go through.
LAST = ("POST /admin/units/<public_id>/rotate-key", "POST /logout")


def send(client: FlaskClient, call: Call, token: str | None) -> TestResponse:
    """``call`` from ``client``; a form post carries ``token`` as its CSRF token (if given)."""
    data: Any = None
    if call.form is not None:
        data = dict(call.form)
        if token is not None:
            data["csrf_token"] = token
    elif call.raw is not None:
        data = call.raw
    return client.open(
        call.path, method=call.method, data=data, json=call.json, headers=call.headers
    )


def outcome(response: TestResponse) -> str:
    """The status as the matrix writes it: a redirect to the login page is told apart."""
    if response.status_code in (301, 302, 303, 307, 308):
        return TO_LOGIN if urlsplit(response.location).path == "/login" else "302"
    return str(response.status_code)
