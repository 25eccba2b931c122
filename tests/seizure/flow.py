"""The flow before the seizure: informants on Zalo and on the web form, an officer, the worker.

Everything runs in this process: webhooks and form posts through the Flask test client, the
simulator (Zalo's API and CDN) on a live port (the ``sim`` fixture), the worker's passes and
real RQ workers in burst mode. Time moves with tests/test_seizure.py's ``advance`` only.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
from flask.testing import FlaskClient
from rq import SimpleWorker
from sqlalchemy import select, update

from keys import solve_work
from tests.conftest import COMMUNE_OA
from tests.triage_helpers import csrf_from, login, post_form
from tests.zalo_events import signed_headers
from tipline.intake.expansion import expand_pending
from tipline.jobs.relay import drain
from tipline.jobs.sweeper import sweep
from tipline.models import Base, OutboxEntry, Tip, Unit, utcnow
from tipline.models.base import UTCDateTime
from tipline.outbox import JOB_SERIALIZER, QUEUE_NAMES
from tipline.retention import retention_pass
from tipline.runtime import Runtime
from tipline.zalo.sender import UploadedMedia, build_event, upload_media, user_id_by_app

# Tables whose rows the product never rewrites (the audit chain): their times stay as written.
APPEND_ONLY = frozenset({"audit_events", "audit_head"})


class BurstWorker(SimpleWorker):
    """RQ's worker in this process, without its command channel: stopping redis-py's pub/sub
    thread can wait out its 60-second read, once in a few runs."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def run_worker_passes(runtime: Runtime) -> None:
    """What `tipline worker` does, once and to the end: expand stored events, relay the outbox,
    sweep, apply retention at the product's ``utcnow()``, and run every queued job."""
    runtime.transit.rotate()  # the worker starts and retires transit epochs as time passes
    while expand_pending(runtime):
        pass
    for _ in range(10):  # jobs queue jobs (dispatch queues the acknowledgement)
        drain(runtime.sessions, runtime.redis)
        sweep(runtime.sessions, runtime.redis, runtime.config.sweep_after)
        BurstWorker(
            list(QUEUE_NAMES), connection=runtime.redis, serializer=JOB_SERIALIZER
        ).work(burst=True)
        if not _pending(runtime):
            break
    retention_pass(runtime.sessions, runtime.config, utcnow())


def _pending(runtime: Runtime) -> bool:
    with runtime.sessions() as session:
        return (
            session.scalars(select(OutboxEntry.id).where(OutboxEntry.enqueued_at.is_(None))).first()
            is not None
        )


def shift_stored_times(runtime: Runtime, delta: timedelta) -> int:
    """Every time the product stored (but the audit chain's) moves ``delta`` into the past."""
    changed = 0
    with runtime.engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in APPEND_ONLY:
                continue
            times = [c for c in table.columns if isinstance(c.type, UTCDateTime)]
            if not times:
                continue
            key = list(table.primary_key.columns)
            for row in conn.execute(select(*key, *times)).all():
                values = {
                    c.name: row._mapping[c] - delta for c in times if row._mapping[c] is not None
                }
                if values:
                    where = [k == row._mapping[k] for k in key]
                    conn.execute(update(table).where(*where).values(**values))
                    changed += 1
    return changed


# --- the people of the story --------------------------------------------------------------

BITS = 6  # the web form's proof of work, made cheap
OFFICER = "canbo"
ENROLLING = "canbo.moi"  # an officer mid-way through first login at the moment of the copy


@dataclass
class Informant:
    """Someone who reported. ``markers``: words only their tips' content holds."""

    name: str
    zalo_id: str | None = None
    markers: list[str] = field(default_factory=list)
    receipt_codes: list[str] = field(default_factory=list)

    def zalo_ids(self, app_id: str) -> list[str]:
        """Both forms Zalo gives: the OA-scoped ``sender.id`` and the app's ``user_id_by_app``."""
        if self.zalo_id is None:
            return []
        return [self.zalo_id, user_id_by_app(app_id, self.zalo_id)]


@dataclass
class Story:
    window_closed: Informant  # wrote, was answered, then silent for longer than the window
    stopped: Informant  # sent STOP
    web: Informant  # the web form, from CLIENT_IP
    live: Informant  # writes just before the copy: inside the hour and the window
    client_ip: str
    passphrase: str = ""

    @property
    def old(self) -> list[Informant]:
        return [self.window_closed, self.stopped, self.web]


_msg = iter(range(1_000_000))


def say(
    client: FlaskClient,
    who: Informant,
    *,
    text: str | None = None,
    image: UploadedMedia | None = None,
    location: tuple[float, float] | None = None,
) -> None:
    """The informant writes to the commune's OA; the webhook stores the event."""
    assert who.zalo_id is not None
    raw = build_event(
        COMMUNE_OA,
        who.zalo_id,
        text=text,
        image=image,
        location=location,
        msg_id=f"seizure{next(_msg):013x}",
    )
    answer = client.post("/zalo/webhook", data=raw, headers=signed_headers(raw))
    assert answer.status_code == 200, answer.get_data(as_text=True)


def web_report(
    client: FlaskClient, runtime: Runtime, who: Informant, ip: str, text: str, photo: bytes
) -> tuple[str, str]:
    """The web form, as a browser sends it from ``ip``: the receipt code and passphrase."""
    with runtime.sessions() as db:
        unit = db.scalars(select(Unit.public_id).where(Unit.code == "v2025:32134")).one()
    page = client.get(f"/bao-tin?don-vi={unit}", environ_base={"REMOTE_ADDR": ip})
    html = page.get_data(as_text=True)
    work = work_for(html)
    assert work, html
    data = {
        "csrf_token": csrf_from(html),
        "unit": unit,
        "text": text,
        **work,
        "files": [(io.BytesIO(photo), "IMG_0042.jpg")],
    }
    sent = client.post("/bao-tin", data=data, environ_base={"REMOTE_ADDR": ip})
    assert sent.status_code == 200, sent.get_data(as_text=True)
    body = sent.get_data(as_text=True)
    code = re.search(r'id="receipt-code">([^<]+)<', body)
    passphrase = re.search(r'id="passphrase">([^<]+)<', body)
    assert code and passphrase, body
    who.receipt_codes.append(code.group(1))
    return code.group(1), passphrase.group(1)


def work_for(page: str) -> dict[str, str]:
    """The page's proof of work as a browser does it: its challenge (a token signed for this
    browser's cookie, posted back) and a nonce solving it at the page's difficulty. None
    asked for (no challenge on the page): nothing to post."""
    form = re.search(r'data-challenge="([^"]+)"(?:\s+data-bits="(\d+)")?', page)
    if form is None:
        return {}
    challenge = form.group(1)
    bits = int(form.group(2)) if form.group(2) else BITS
    return {"challenge": challenge, "nonce": solve_work(challenge, bits)}


def web_follow_up(client: FlaskClient, ip: str, code: str, passphrase: str, answer: str) -> None:
    page = client.get("/tra-cuu", environ_base={"REMOTE_ADDR": ip}).get_data(as_text=True)
    data = {
        "csrf_token": csrf_from(page),
        "code": code,
        "passphrase": passphrase,
        "answer": answer,
        **work_for(page),
    }
    shown = client.post("/tra-cuu", data=data, environ_base={"REMOTE_ADDR": ip})
    body = shown.get_data(as_text=True)
    assert shown.status_code == 200 and answer in body, (shown.status_code, body)


def tip_of(runtime: Runtime, who: Informant) -> Tip:
    """The informant's latest tip, by the receipt code it was given."""
    with runtime.sessions() as db:
        return db.scalars(select(Tip).where(Tip.receipt_code == who.receipt_codes[-1])).one()


def note_receipt(runtime: Runtime, who: Informant, known: set[str]) -> None:
    """Record the receipt code of the tip the informant's last message made (a new tip)."""
    with runtime.sessions() as db:
        codes = set(db.scalars(select(Tip.receipt_code)))
    new = codes - known
    assert len(new) == 1, f"expected one new tip for {who.name}, got {new}"
    who.receipt_codes.append(new.pop())
    known.update(codes)


def officer_replies(
    client: FlaskClient, runtime: Runtime, password_totp: str, tip: Tip, text: str
) -> None:
    assert login(client, OFFICER, password_totp).status_code == 302
    url = f"/triage/tips/{tip.public_id}"
    assert client.get(url).status_code == 200  # opens (decrypts) the tip
    done = post_form(client, url, f"{url}/reply", {"text": text})
    assert done.status_code in (200, 302), done.get_data(as_text=True)


def start_enrolment(client: FlaskClient, runtime: Runtime, password: str) -> None:
    """A new officer's first login: password accepted, the authenticator not enrolled yet."""
    from tests.triage_helpers import csrf_from as token
    from tipline.officers import add_officer

    with runtime.sessions() as db, db.begin():
        add_officer(
            db,
            username=ENROLLING,
            display_name="Cán bộ mới",
            role="officer",
            unit_code="v2025:32134",
            password=password,
            cost=runtime.config.kdf_cost,
        )
    page = client.get("/login").get_data(as_text=True)
    answer = client.post(
        "/login",
        data={"csrf_token": token(page), "username": ENROLLING, "password": password, "code": ""},
    )
    assert answer.status_code == 302 and "totp-setup" in answer.headers["Location"]
    assert client.get("/login/totp-setup").status_code == 200


def upload_photo(sim: str, tmp: Path, photo: bytes) -> UploadedMedia:
    path = tmp / "IMG_20260101_120000.jpg"
    path.write_bytes(photo)
    with httpx.Client(timeout=10) as http:
        return upload_media(sim, path, client=http)
