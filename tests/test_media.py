"""The media worker (issue 6): guarded downloads, metadata removal, refusals, officer download."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from tests.conftest import COMMUNE_OA, Stack
from tests.triage_helpers import login
from tipline.config import Config
from tipline.intake.expansion import accept_message
from tipline.jobs.media import fetch_attachment
from tipline.media import fetch
from tipline.media.clean import clean, detect
from tipline.media.errors import Refused
from tipline.models import Attachment, AuditEvent, Refusal, Tip
from tipline.runtime import Runtime
from tipline.zalo.events import read_envelope, read_message
from tipline.zalo.sender import UploadedMedia, build_event

USER = "7391045528810466777"
GPS_IFD = 0x8825
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf'
    b'-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude='
    b'"8,57.6N"/></rdf:RDF></x:xmpmeta>'
)


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (120, 80), (180, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Informant Phone X"  # Model
    exif[0x0131] = "CameraApp 1.0"  # Software
    exif[GPS_IFD] = {1: "N", 2: (8.0, 57.0, 36.0), 3: "E", 4: (105.0, 1.0, 12.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), comment=b"Nguyen Van A", xmp=XMP)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD)  # the GPS really is there
    return data


def png_bomb() -> bytes:
    """A real 20,000 × 20,000 PNG: tens of kilobytes on disk, 400 million pixels decoded."""
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")
    return out.getvalue()


def jpeg_bomb() -> bytes:
    """A tiny JPEG whose frame header claims 20,000 × 20,000."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (20_000).to_bytes(2, "big") + (20_000).to_bytes(2, "big")
    return bytes(data)


def upload(stack: Stack, name: str, data: bytes) -> UploadedMedia:
    response = httpx.post(
        f"{stack.base_url}/_sim/media", files={"file": (name, data, "image/jpeg")}, timeout=10
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return UploadedMedia(body["url"], body["name"], body["size"], "", name.rsplit(".", 1)[-1])


def wait_for(runtime: Runtime, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            value = check(session)
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_jpeg_with_gps_sent_through_the_simulator_downloads_without_metadata(
    stack: Stack,
    runtime: Runtime,
    config: Config,
    client: FlaskClient,
    units: dict[str, str],
    tmp_path: Path,
) -> None:
    original = jpeg_with_gps()
    photo = tmp_path / "IMG_20261123_gps.jpg"
    photo.write_bytes(original)
    sent = stack.tipline(
        "zalo",
        "send",
        "--to",
        stack.base_url,
        "--oa",
        COMMUNE_OA,
        "--user",
        USER,
        "--image",
        str(photo),
    )
    assert sent.returncode == 0, sent.stderr + sent.stdout

    def stored(session: Any) -> Any:
        row = session.scalars(select(Attachment)).first()
        tip = session.scalars(select(Tip)).first()
        if row is None or row.state == "pending" or tip is None or tip.dispatched_at is None:
            return None
        return row.public_id, row.state, row.refusal, row.storage_ref, row.sealed_fetch, tip

    public_id, state, refusal, ref, sealed_fetch, tip = wait_for(runtime, stored)
    assert (state, refusal) == ("stored", None), stack.logs.joinpath("worker.log").read_text()
    assert sealed_fetch is None  # the transit copy of the URL is gone
    at_rest = (config.data_dir / "files" / ref).read_bytes()
    assert b"PhoneMaker" not in at_rest and not at_rest.startswith(b"\xff\xd8")  # sealed

    assert login(client, "canbo", units["totp:canbo"]).status_code == 302
    page = client.get(f"/triage/tips/{tip.public_id}").get_data(as_text=True)
    link = f"/triage/tips/{tip.public_id}/attachments/{public_id}"
    assert link in page
    response = client.get(link)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["Content-Type"] == "image/jpeg"
    data = response.get_data()
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.size == (120, 80)
    assert dict(image.getexif()) == {}
    assert not image.getexif().get_ifd(GPS_IFD)
    assert "exif" not in image.info and "xmp" not in image.info and "comment" not in image.info
    for marker in (b"Exif", b"PhoneMaker", b"Informant Phone", b"xmpmeta", b"Nguyen Van A"):
        assert marker not in data
    with runtime.sessions() as session:
        downloads = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "attachment_download")
        ).all()
        assert [e.object_id for e in downloads] == [tip.public_id]


def test_image_bombs_are_refused_without_decoding() -> None:
    for bomb in (png_bomb(), jpeg_bomb()):
        assert len(bomb) < 100_000
        # Refused from the header alone, in the sandbox: 400 million pixels never decoded.
        with pytest.raises(Refused) as refused:
            clean(bomb)
        assert refused.value.reason == Refusal.IMAGE_TOO_LARGE


def test_other_types_are_refused_and_pdf_properties_removed() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.add_metadata({"/Author": "Nguyen Van A", "/Title": "Bao cao"})
    out = io.BytesIO()
    writer.write(out)
    cleaned = clean(out.getvalue())
    assert cleaned.content_type == "application/pdf"
    assert b"Nguyen Van A" not in cleaned.data
    assert not PdfReader(io.BytesIO(cleaned.data)).metadata
    assert detect(b"PK\x03\x04rest") == "zip"
    for data, reason in (
        (b"PK\x03\x04" + b"\x00" * 40, Refusal.UNSUPPORTED_TYPE),  # no document inside
        (b"ID3\x04" + b"\x00" * 40, Refusal.DAMAGED),  # an MP3 header and nothing to play
        (b"hello", Refusal.UNSUPPORTED_TYPE),
    ):
        with pytest.raises(Refused) as refused:
            clean(data)
        assert refused.value.reason == reason


@pytest.fixture
def sim_config(config: Config) -> Config:
    return config.with_overrides(simulator=True, zalo_api_base="http://127.0.0.1:5555/_sim")


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail on any attempt to connect anywhere; the refusals must come before."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:6666/_sim/media/x", Refusal.HOST_NOT_ALLOWED),
        ("http://127.0.0.1/_sim/media/x", Refusal.HOST_NOT_ALLOWED),
        ("https://127.0.0.1/x", Refusal.HOST_NOT_ALLOWED),
        ("http://10.0.0.1/x", Refusal.HOST_NOT_ALLOWED),
        ("https://10.0.0.1/x", Refusal.HOST_NOT_ALLOWED),
        ("https://evil.example.com/x.jpg", Refusal.HOST_NOT_ALLOWED),
        ("https://zdn.vn.evil.example/x.jpg", Refusal.HOST_NOT_ALLOWED),
        ("http://f20.zdn.vn/x.jpg", Refusal.HOST_NOT_ALLOWED),  # HTTPS only
        ("https://user:pw@f20.zdn.vn/x.jpg", Refusal.BAD_URL),
        ("file:///etc/passwd", Refusal.BAD_URL),
    ],
)
def test_urls_off_the_list_are_refused_before_connecting(
    sim_config: Config, no_connections: list[Any], url: str, reason: str
) -> None:
    with pytest.raises(Refused) as refused:
        fetch.download(url, sim_config)
    assert refused.value.reason == reason
    assert no_connections == []


def test_listed_names_resolving_to_private_addresses_are_refused(
    sim_config: Config, no_connections: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for address in ("10.0.0.1", "127.0.0.1", "169.254.169.254", "192.168.1.1", "::1"):
        monkeypatch.setattr(
            fetch.socket,
            "getaddrinfo",
            lambda *a, _ip=address, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (_ip, 443))],
        )
        with pytest.raises(Refused) as refused:
            fetch.download("https://f20-zpc.zdn.vn/photo.jpg", sim_config)
        assert refused.value.reason == Refusal.PRIVATE_ADDRESS
    assert no_connections == []
    # The simulator's exact origin is the only exception, and only in simulator mode.
    assert fetch.check_url("http://127.0.0.1:5555/_sim/media/x", sim_config).address == "127.0.0.1"
    with pytest.raises(Refused):
        fetch.check_url(
            "http://127.0.0.1:5555/_sim/media/x", sim_config.with_overrides(simulator=False)
        )


def test_a_redirect_off_the_list_is_not_followed(
    sim_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://10.0.0.1/latest/meta-data"})

    real = httpx.Client
    monkeypatch.setattr(
        fetch.httpx, "Client", lambda **kw: real(transport=httpx.MockTransport(handler), **kw)
    )
    with pytest.raises(Refused) as refused:
        fetch.download("http://127.0.0.1:5555/_sim/media/x", sim_config)
    assert refused.value.reason == Refusal.HOST_NOT_ALLOWED
    assert seen == ["http://127.0.0.1:5555/_sim/media/x"]


def test_the_media_job_records_the_refusal_for_the_officer(
    runtime: Runtime, config: Config, no_connections: list[Any]
) -> None:
    for url in ("http://127.0.0.1:6666/a.jpg", "http://10.0.0.1/a.jpg", "https://x.example/a"):
        media = UploadedMedia(url, "a.jpg", 10, "", "jpg")
        raw = build_event(COMMUNE_OA, USER, image=media)
        msg = read_message(read_envelope(json.loads(raw)))
        assert msg is not None
        accept_message(runtime, msg)
    with runtime.sessions() as session:
        ids = list(session.scalars(select(Attachment.public_id)))
    assert len(ids) == 3
    for public_id in ids:
        assert fetch_attachment(public_id) == "refused"
        assert fetch_attachment(public_id) == "done"  # idempotent
    with runtime.sessions() as session:
        rows = session.scalars(select(Attachment)).all()
        assert {(r.state, r.refusal, r.sealed_fetch, r.storage_ref) for r in rows} == {
            ("refused", Refusal.HOST_NOT_ALLOWED, None, None)
        }
    assert no_connections == []


def test_a_download_leaves_its_address_in_no_log_line(
    sim: str, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """An attachment's link fetches the informant's file while Zalo keeps it: tip content.
    httpx logs every URL at INFO; not in any Tipline process, at any level."""
    response = httpx.post(
        f"{sim}/_sim/media", files={"file": ("a.jpg", jpeg_with_gps(), "image/jpeg")}, timeout=10
    )
    url = response.json()["url"]
    caplog.set_level(logging.DEBUG)
    assert fetch.download(url, runtime.config.with_overrides(simulator=True))
    # werkzeug here is the live server standing in for Zalo's CDN: Zalo's logs, not ours.
    assert any(r.name == "werkzeug" for r in caplog.records)  # the capture sees every logger
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert url not in ours and "/_sim/media" not in ours
