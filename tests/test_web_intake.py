"""Web intake (issue 6 part 3): /bao-tin with proof of work, /tra-cuu with code + passphrase.

Flask client, the real stored-event path (seal to transit → expansion → dispatch job).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from werkzeug.test import TestResponse

from keys import KdfCost, password, solve_work, work_is_valid
from tests.conftest import COMMUNE_OA, expand
from tests.databases import every_value
from tests.test_media import jpeg_with_gps
from tests.triage_helpers import csrf_from, login
from tipline.intake.web import MAX_FILE_BYTES, MAX_FILES
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.media import fetch_attachment
from tipline.models import Attachment, Delivery, Direction, Message, OutboxEntry, Refusal, Tip, Unit
from tipline.outgoing import queue_outbound
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")
BITS = 6
CLIENT_IP = "203.0.113.77"
ATTACKER_IP = "2001:db8:66:1::9"


@pytest.fixture(autouse=True)
def low_difficulty(runtime: Runtime) -> None:
    runtime.config = runtime.config.with_overrides(pow_bits=BITS)


def commune(runtime: Runtime) -> str:
    with runtime.sessions() as db:
        return db.scalars(select(Unit.public_id).where(Unit.code == "v2025:32134")).one()


def wrong_nonce(challenge: str) -> str:
    """A nonce that does not solve the challenge (at 6 bits, "0" would pass one time in 64)."""
    return next(str(n) for n in range(1000) if not work_is_valid(challenge, str(n), BITS))


def report(
    client: FlaskClient, unit: str, words: str, *, solve: bool = True, **extra: object
) -> TestResponse:
    page = client.get(f"/bao-tin?don-vi={unit}").get_data(as_text=True)
    challenge = re.search(r'data-challenge="([^"]+)"', page)
    assert challenge
    nonce = solve_work(challenge.group(1), BITS) if solve else wrong_nonce(challenge.group(1))
    data = {"csrf_token": csrf_from(page), "unit": unit, "text": words, "nonce": nonce, **extra}
    data["challenge"] = challenge.group(1)
    return client.post("/bao-tin", data=data, environ_base={"REMOTE_ADDR": CLIENT_IP})


def receipt_of(response: TestResponse) -> tuple[str, str]:
    html = response.get_data(as_text=True)
    code = re.search(r'id="receipt-code">([^<]+)<', html)
    passphrase = re.search(r'id="passphrase">([^<]+)<', html)
    assert code and passphrase, html
    return code.group(1), passphrase.group(1)


def work_for(page: str, *, short_of: int | None = None) -> dict[str, str]:
    """The challenge of the page's form, solved at the difficulty the page asks for (and, with
    ``short_of``, by a nonce that does not solve it at that difficulty: not more by luck)."""
    form = re.search(r'data-challenge="([^"]+)" data-bits="(\d+)"', page)
    assert form, "no proof-of-work challenge on the page"
    challenge, bits = form.group(1), int(form.group(2))
    nonce = next(
        str(n)
        for n in range(10**7)
        if work_is_valid(challenge, str(n), bits)
        and (short_of is None or not work_is_valid(challenge, str(n), short_of))
    )
    return {"challenge": challenge, "nonce": nonce}


def look_up(
    client: FlaskClient,
    code: str,
    passphrase: str,
    answer: str = "",
    *,
    page: str | None = None,
    address: str = CLIENT_IP,
    short_of: int | None = None,
) -> TestResponse:
    """Post code and passphrase from /tra-cuu (or ``page``), its work done as a browser does."""
    where = {"REMOTE_ADDR": address}
    page = page or client.get("/tra-cuu", environ_base=where).get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), "code": code, "passphrase": passphrase}
    data |= work_for(page, short_of=short_of)
    if answer:
        data["answer"] = answer
    return client.post("/tra-cuu", data=data, environ_base=where)


def test_the_form_needs_the_proof_of_work_and_explains_javascript(
    client: FlaskClient, runtime: Runtime
) -> None:
    page = client.get("/bao-tin").get_data(as_text=True)
    assert "<noscript>" in page and "pow.js" in page and 'id="send" disabled' in page
    refused = report(client, commune(runtime), "Có người bán ma túy ở chợ", solve=False)
    assert refused.status_code == 400
    assert expand(runtime) == 0
    # A challenge is good once: replaying a solved nonce with a new page fails.
    assert report(client, commune(runtime), "").status_code == 400


def test_a_web_report_becomes_a_dispatched_tip_and_keeps_no_ip(
    client: FlaskClient, runtime: Runtime
) -> None:
    unit = commune(runtime)
    response = report(client, unit, "Có người bán ma túy ở chợ")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    code, passphrase = receipt_of(response)
    assert re.fullmatch(r"TL-[0-9A-Z]{4}-[0-9A-Z]{4}", code)
    assert len(passphrase.split()) == 7 and passphrase.isascii()
    assert expand(runtime) == 1
    with runtime.sessions() as db:
        tip = db.scalars(select(Tip)).one()
        assert (tip.channel, tip.receipt_code, tip.oa_id) == ("web", code, None)
        assert tip.informant_key is not None and tip.reply_address is not None
        assert db.scalars(select(OutboxEntry.job)).all() == ["dispatch"]
        public_id = tip.public_id
    assert dispatch_tip(public_id) == "dispatched"
    with runtime.sessions() as db:
        tip = db.scalars(select(Tip)).one()
        assert tip.unit is not None and tip.unit.code == "v2025:32134"
        ack = db.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).one()
        assert ack.delivery == Delivery.PORTAL and ack.sealed_for_relay is None
        assert "send" not in db.scalars(select(OutboxEntry.job)).all()
    # No trace of the address anywhere in the database, nor the passphrase.
    for value in every_value(runtime.config.database_url):
        blob = value if isinstance(value, bytes) else str(value).encode()
        assert CLIENT_IP.encode() not in blob
        assert passphrase.encode() not in blob
    for key in runtime.redis.keys("*"):
        assert CLIENT_IP.encode() not in key


def test_tra_cuu_shows_replies_takes_answers_and_never_locks_the_informant_out(
    client: FlaskClient, runtime: Runtime
) -> None:
    code, passphrase = receipt_of(report(client, commune(runtime), "Trộm xe máy ở ấp 3"))
    pending = look_up(client, code, passphrase)
    assert pending.status_code == 409  # stored, not expanded yet: "try again", not a failure
    assert "try again in a minute" in pending.get_data(as_text=True).lower() or (
        "thử lại sau một phút" in pending.get_data(as_text=True)
    )
    assert look_up(client, "TL-0000-0000", passphrase).status_code == 403
    expand(runtime)
    with runtime.sessions() as db, db.begin():
        tip = db.scalars(select(Tip)).one()
        dispatch_tip(tip.public_id)
    with runtime.sessions() as db, db.begin():
        tip = db.scalars(select(Tip)).one()
        queue_outbound(db, tip, "Bạn thấy biển số xe không?", transit=runtime.transit.public())
    page = look_up(client, code, passphrase.upper())
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Trộm xe máy ở ấp 3" in html and "Bạn thấy biển số xe không?" in html
    assert 'id="status">Mới<' in html
    answered = look_up(client, code, passphrase, answer="Biển số 69B1-12345")
    assert "Biển số 69B1-12345" in answered.get_data(as_text=True)
    with runtime.sessions() as db:
        inbound = db.scalars(
            select(Message).where(Message.direction == Direction.INBOUND).order_by(Message.id)
        ).all()
        assert len(inbound) == 2
        assert b"69B1" not in inbound[-1].sealed_body  # sealed to the tip key
    # Someone who knows the code tries passphrases: that once locked the informant out.
    attacker = FlaskClient(client.application, client.response_wrapper)
    for _ in range(5):
        assert look_up(attacker, code, "sai mat khau", address=ATTACKER_IP).status_code == 403
    # The informant's browser did the page's work: not enough for this code now ...
    more = look_up(client, code, passphrase, short_of=BITS + 5)
    assert more.status_code == 403 and "Biển số" not in more.get_data(as_text=True)
    assert f'data-bits="{BITS + 5}"' in more.get_data(as_text=True)
    assert "lâu hơn" in more.get_data(as_text=True)  # "the check takes longer now"
    # ... and with the longer work done, the right passphrase gets in.
    again = look_up(client, code, passphrase, page=more.get_data(as_text=True))
    assert again.status_code == 200 and "Biển số" in again.get_data(as_text=True)
    # That reset the code's count: its answer form asks only for this client's own extra bit
    # (the unknown code it tried above).
    assert f'data-bits="{BITS + 1}"' in again.get_data(as_text=True)


def test_tra_cuu_asks_for_work_before_any_argon2_run_and_takes_it_once(
    client: FlaskClient, runtime: Runtime, argon2_runs: list[KdfCost]
) -> None:
    """Every post ran a 64 MiB Argon2id in the processes that serve officers, work or not."""
    code, passphrase = receipt_of(report(client, commune(runtime), "Đánh bạc ở quán cà phê"))
    expand(runtime)
    argon2_runs.clear()
    page = client.get("/tra-cuu").get_data(as_text=True)
    bare = {"csrf_token": csrf_from(page), "code": code, "passphrase": passphrase}
    refused = client.post("/tra-cuu", data=bare)
    assert refused.status_code == 403 and argon2_runs == []
    unsolved = work_for(page) | {"nonce": wrong_nonce(work_for(page)["challenge"])}
    assert client.post("/tra-cuu", data=bare | unsolved).status_code == 403
    assert argon2_runs == []
    # From another page (/bao-tin's challenges are not /tra-cuu's) or another browser: refused.
    report_page = client.get("/bao-tin").get_data(as_text=True)
    foreign = re.search(r'data-challenge="([^"]+)"', report_page)
    assert foreign
    solved = {"challenge": foreign.group(1), "nonce": solve_work(foreign.group(1), BITS)}
    assert client.post("/tra-cuu", data=bare | solved).status_code == 403
    assert argon2_runs == []
    # Done: one run, and the status page. The same work again: refused, no run.
    work = work_for(page)
    assert client.post("/tra-cuu", data=bare | work).status_code == 200
    assert len(argon2_runs) == 1
    assert client.post("/tra-cuu", data=bare | work).status_code == 403
    assert len(argon2_runs) == 1


def test_a_clients_wrong_passphrases_make_its_work_longer_for_any_code(
    client: FlaskClient, runtime: Runtime
) -> None:
    for n in range(3):
        assert look_up(client, f"TL-0000-000{n}", "sai mat khau").status_code == 403
    here = client.get("/tra-cuu", environ_base={"REMOTE_ADDR": CLIENT_IP})
    assert f'data-bits="{BITS + 3}"' in here.get_data(as_text=True)
    # Counted for the client's /64, not for each address in it; nothing for anyone else.
    elsewhere = client.get("/tra-cuu", environ_base={"REMOTE_ADDR": "2001:db8:66:2::1"})
    assert f'data-bits="{BITS}"' in elsewhere.get_data(as_text=True)
    assert look_up(client, "TL-0000-0009", "sai", address=ATTACKER_IP).status_code == 403
    same_64 = client.get("/tra-cuu", environ_base={"REMOTE_ADDR": "2001:db8:66:1::abcd"})
    assert f'data-bits="{BITS + 1}"' in same_64.get_data(as_text=True)


def test_poster_for_the_units_officers_only(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    unit = commune(runtime)
    login(client, "canbo", units["totp:canbo"])
    png = client.get(f"/triage/units/{unit}/poster.png")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    page = client.get(f"/triage/units/{unit}/poster").get_data(as_text=True)
    assert f"/bao-tin?don-vi={unit}" in page and f"https://zalo.me/{COMMUNE_OA}" in page
    other = FlaskClient(client.application, client.response_wrapper)
    login(other, "canbo2", units["totp:canbo2"])
    assert other.get(f"/triage/units/{unit}/poster.png").status_code == 403
    # Printed from the staff address, the poster still carries the public address.
    runtime.config = runtime.config.with_overrides(public_url="https://baotin.example.vn")
    page = client.get(f"/triage/units/{unit}/poster").get_data(as_text=True)
    assert f"https://baotin.example.vn/bao-tin?don-vi={unit}" in page


def test_bad_location_is_refused(client: FlaskClient, runtime: Runtime) -> None:
    refused = report(client, commune(runtime), "Có trộm", lat="abc", lon="105")
    assert refused.status_code == 400
    assert "Vị trí phải là hai số" in refused.get_data(as_text=True)


def test_files_on_the_form_are_kept_sealed_and_cleaned_by_the_media_worker(
    client: FlaskClient,
    runtime: Runtime,
    units: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    photo = jpeg_with_gps()
    padding = os.urandom(700 * 1024)  # over Werkzeug's 500 KB spool threshold
    pdf = b"%PDF-1.4\n" + b"%" + padding  # a damaged PDF: refused, with the reason kept
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    response = report(
        client,
        commune(runtime),
        "Ảnh chụp điểm bán ma túy",
        files=[(io.BytesIO(photo), "IMG_0042.jpg"), (io.BytesIO(pdf), "../../etc/bien-ban.pdf")],
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert list(spool.iterdir()) == []  # nothing spooled to a temporary file
    store = runtime.config.data_dir / "files"
    uploads = sorted(store.iterdir())
    assert len(uploads) == 2
    for path in uploads:  # sealed to the transit key as uploaded
        at_rest = path.read_bytes()
        assert b"PhoneMaker" not in at_rest and padding[:64] not in at_rest
    assert expand(runtime) == 1
    with runtime.sessions() as db:
        tip = db.scalars(select(Tip)).one()
        attachments = db.scalars(select(Attachment).order_by(Attachment.id)).all()
        assert [(a.kind, a.state) for a in attachments] == [("file", "pending")] * 2
        jobs = db.scalars(select(OutboxEntry.job).order_by(OutboxEntry.id)).all()
        assert sorted(jobs) == ["dispatch", "media", "media"]
        tip_id, ids = tip.public_id, [a.public_id for a in attachments]
    assert dispatch_tip(tip_id) == "dispatched"
    assert [fetch_attachment(i) for i in ids] == ["stored", "refused"]
    assert [fetch_attachment(i) for i in ids] == ["done", "done"]  # idempotent
    with runtime.sessions() as db:
        photo_row, pdf_row = db.scalars(select(Attachment).order_by(Attachment.id)).all()
        assert pdf_row.refusal == Refusal.DAMAGED and pdf_row.sealed_fetch is None
        assert photo_row.storage_ref is not None
        assert [p.name for p in store.iterdir()] == [photo_row.storage_ref]  # uploads erased
    login(client, "canbo", units["totp:canbo"])
    page = client.get(f"/triage/tips/{tip_id}").get_data(as_text=True)
    link = f"/triage/tips/{tip_id}/attachments/{ids[0]}"
    assert link in page
    download = client.get(link)
    assert download.status_code == 200
    # Never the informant's file name: the receipt code, the attachment's place, the type.
    disposition = download.headers["Content-Disposition"]
    assert "IMG_0042" not in disposition
    assert disposition.endswith(("-1.jpg", '-1.jpg"'))
    image = Image.open(io.BytesIO(download.get_data()))
    assert image.format == "JPEG" and dict(image.getexif()) == {}
    assert b"PhoneMaker" not in download.get_data() and b"xmpmeta" not in download.get_data()


@pytest.mark.parametrize(
    ("count", "size", "message"),
    [
        (MAX_FILES + 1, 10, "5"),
        (1, MAX_FILE_BYTES + 1, "10 MB"),
        (1, 0, "trống"),
    ],
)
def test_too_many_too_large_or_empty_files_change_nothing(
    client: FlaskClient, runtime: Runtime, count: int, size: int, message: str
) -> None:
    files = [(io.BytesIO(b"x" * size), f"anh-{n}.jpg") for n in range(count)]
    refused = report(client, commune(runtime), "Có trộm", files=files)
    assert refused.status_code == 400
    assert message in refused.get_data(as_text=True)
    assert expand(runtime) == 0
    assert not (runtime.config.data_dir / "files").exists() or not any(
        (runtime.config.data_dir / "files").iterdir()
    )


def test_an_unknown_code_costs_the_same_argon2_run_as_a_wrong_passphrase(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _ = receipt_of(report(client, commune(runtime), "Đánh bạc ở quán cà phê"))
    expand(runtime)
    runs: list[int] = []
    real = password._derive

    def counted(*args: Any) -> bytes:
        runs.append(1)
        return real(*args)

    monkeypatch.setattr(password, "_derive", counted)
    assert look_up(client, code, "sai mat khau").status_code == 403
    known = len(runs)
    assert look_up(client, "TL-ZZZZ-ZZZZ", "sai mat khau").status_code == 403
    assert known == 1 and len(runs) == 2
