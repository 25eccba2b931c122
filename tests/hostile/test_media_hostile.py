"""Hostile attachments: bombs, polyglots, active content, traversal and CRLF in file names.

The informant's file is put on the simulator's "CDN", the signed event carries its URL, and
the media job (in this process, as the worker runs it) downloads, cleans and stores it. A file
that cannot be cleaned is refused: the attachment says why, nothing is written to the file
store, and its download is 404. A file that can be cleaned is re-encoded: whatever rode along
(an archive, a script, an action) is gone, and the download is served as an attachment, with
``nosniff``, under a name of letters and digits with the real extension.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, TextStringObject

from tests.hostile.snapshot import snapshot
from tests.hostile.world import Deliverer, World, attachment_state, jpeg
from tests.test_media import jpeg_bomb, png_bomb
from tipline.models import Refusal


def zip_bomb() -> bytes:
    """A 100 MB file of zeros, deflated to about 100 KB (an "office document")."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w") as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(100):
                member.write(chunk)
    return out.getvalue()


def gif_screen_bomb() -> bytes:
    """A one-pixel GIF whose logical screen claims 65,535 × 65,535."""
    out = io.BytesIO()
    Image.new("P", (1, 1)).save(out, format="GIF")
    data = bytearray(out.getvalue())
    data[6:10] = (65535).to_bytes(2, "little") * 2
    return bytes(data)


def jpeg_with_zip() -> bytes:
    """A real photo with an archive appended (a "GIFAR"-style polyglot)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.html", "<script>alert(1)</script>")
    return jpeg() + archive.getvalue()


def jpeg_with_html() -> bytes:
    """A real photo whose comment segment is an HTML page with a script."""
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(
        out, format="JPEG", comment=b"<html><script>alert('polyglot')</script></html>"
    )
    return out.getvalue()


def pdf_with_scripts() -> bytes:
    """One page with a JavaScript link, a page-open script and a document-open script (the
    scripts are plain words: pypdf escapes punctuation, and the test looks for them)."""
    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)

    def script(source: str) -> DictionaryObject:
        return DictionaryObject(
            {
                NameObject("/S"): NameObject("/JavaScript"),
                NameObject("/JS"): TextStringObject(source),
            }
        )

    page[NameObject("/AA")] = DictionaryObject({NameObject("/O"): script("hostilepage")})
    link = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([FloatObject(0), FloatObject(0)] * 2),
            NameObject("/A"): script("hostilelink"),
        }
    )
    page[NameObject("/Annots")] = ArrayObject([writer._add_object(link)])
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(script("hostileopen"))
    out = io.BytesIO()
    writer.write(out)
    assert out.getvalue().count(b"/JavaScript") == 3 and b"hostilelink" in out.getvalue()
    return out.getvalue()


REFUSED: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # Refused by the sizes it declares, before anything inflates it.
    "zip bomb": (zip_bomb, "bang-chung.docx", Refusal.LIMITS),
    "PNG of 20,000 × 20,000": (png_bomb, "anh.png", Refusal.IMAGE_TOO_LARGE),
    "JPEG header claiming 20,000 × 20,000": (jpeg_bomb, "anh.jpg", Refusal.IMAGE_TOO_LARGE),
    "GIF screen of 65,535 × 65,535": (gif_screen_bomb, "anh.gif", Refusal.IMAGE_TOO_LARGE),
    "HTML named .jpg": (
        lambda: b"<html><script>alert(1)</script></html>",
        "anh.jpg",
        Refusal.UNSUPPORTED_TYPE,
    ),
    "SVG with a script": (
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        "anh.png",
        Refusal.UNSUPPORTED_TYPE,
    ),
    "GIF header then JavaScript": (
        lambda: b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=alert(1);//" + b"\x00" * 32,
        "anh.gif",
        Refusal.DAMAGED,
    ),
    "truncated JPEG": (lambda: jpeg()[:200], "anh.jpg", Refusal.DAMAGED),
    "Windows program named .pdf": (
        lambda: b"MZ\x90\x00" + b"\x00" * 200,
        "bao-cao.pdf",
        Refusal.UNSUPPORTED_TYPE,
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_files_that_cannot_be_cleaned_are_refused_and_nothing_is_written(
    world: World, deliver: Deliverer, case: tuple[Callable[[], bytes], str, str]
) -> None:
    make, name, reason = case
    canbo = world.client("canbo")
    data = make()
    files_before = snapshot(world.runtime)["files/"]
    started = time.monotonic()
    public_id = deliver(data, name=name, kind="file")
    assert time.monotonic() - started < 20  # never decompressed, never decoded
    assert attachment_state(world.runtime, public_id) == ("refused", reason, None)
    assert snapshot(world.runtime)["files/"] == files_before
    url = f"/triage/tips/{world.tip_a}/attachments/{public_id}"
    assert canbo.get(url).status_code == 404
    page = canbo.get(f"/triage/tips/{world.tip_a}").get_data(as_text=True)
    assert 'class="refusal"' in page and "<script>alert" not in page


def download(world: World, public_id: str) -> tuple[bytes, dict[str, str]]:
    assert attachment_state(world.runtime, public_id)[0] == "stored"
    response = world.client("canbo").get(f"/triage/tips/{world.tip_a}/attachments/{public_id}")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return response.get_data(), dict(response.headers)


POLYGLOTS: dict[str, tuple[Callable[[], bytes], str, str, tuple[bytes, ...]]] = {
    "JPEG with an archive appended": (
        jpeg_with_zip,
        "anh.jpg",
        "image/jpeg",
        (b"PK\x03\x04", b"payload.html", b"<script>"),
    ),
    "JPEG whose comment is HTML": (
        jpeg_with_html,
        "anh.jpg",
        "image/jpeg",
        (b"<html>", b"<script>", b"polyglot"),
    ),
    "PDF with scripts and a JavaScript link": (
        pdf_with_scripts,
        "bao-cao.pdf",
        "application/pdf",
        (b"/JavaScript", b"/JS", b"hostile", b"/OpenAction", b"/AA"),
    ),
}


@pytest.mark.parametrize("case", POLYGLOTS.values(), ids=POLYGLOTS.keys())
def test_polyglots_are_stored_without_what_rode_along(
    world: World,
    deliver: Deliverer,
    case: tuple[Callable[[], bytes], str, str, tuple[bytes, ...]],
) -> None:
    make, name, content_type, gone = case
    public_id = deliver(make(), name=name, kind="file")
    data, headers = download(world, public_id)
    assert headers["Content-Type"] == content_type
    for marker in gone:
        assert marker not in data, marker
    if content_type == "application/pdf":
        assert len(PdfReader(io.BytesIO(data)).pages) == 1  # the page itself is kept
    else:
        assert Image.open(io.BytesIO(data)).format == "JPEG"


def test_a_file_over_the_size_cap_is_refused(world: World, deliver: Deliverer) -> None:
    world.runtime.config = world.runtime.config.with_overrides(media_max_bytes=50_000)
    files_before = snapshot(world.runtime)["files/"]
    public_id = deliver(jpeg((900, 900)) + b"\0" * 60_000, name="anh.jpg")
    assert attachment_state(world.runtime, public_id) == ("refused", Refusal.TOO_LARGE, None)
    assert snapshot(world.runtime)["files/"] == files_before


NAMES = {
    "dot-dot slashes": "../../../../tmp/evil.jpg",
    "dot-dot backslashes": "..\\..\\..\\windows\\evil.jpg",
    "absolute path": "/etc/cron.d/evil.jpg",
    "CRLF and a header": "anh\r\nSet-Cookie: pwned=1\r\n.jpg",
    "a second filename parameter": "x.jpg\"; filename*=UTF-8''evil.html",
    "HTML": "<script>alert(1)</script>.jpg",
    "an HTML extension": "evil.html",
    "NUL byte": "evil.html\x00.jpg",
    "dots only": "..",
}


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
def test_a_hostile_file_name_reaches_neither_the_disk_nor_a_header(
    world: World, deliver: Deliverer, name: str
) -> None:
    data_dir = Path(world.runtime.config.data_dir)
    everything_before = {p for p in data_dir.rglob("*") if p.is_file()}
    public_id = deliver(jpeg(), name=name, kind="file")
    written = {p for p in data_dir.rglob("*") if p.is_file()} - everything_before
    ref = attachment_state(world.runtime, public_id)[2]
    assert [p for p in written if p.parent == data_dir / "files"] == [data_dir / "files" / str(ref)]
    assert not any("evil" in str(p) or "cron" in str(p) for p in written)
    assert not Path("/tmp/evil.jpg").exists() and not Path("/etc/cron.d/evil.jpg").exists()
    _data, headers = download(world, public_id)
    disposition = headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "\x00" not in disposition
    assert len(re.findall(r"filename\*?=", disposition)) == 1, disposition
    filename = disposition.split("filename=", 1)[1].strip('"')
    assert filename.endswith(".jpg") and "/" not in filename and "\\" not in filename
    assert ".." not in filename and "<" not in filename and '"' not in filename
    assert "pwned" not in "".join(
        f"{k}:{v}" for k, v in headers.items() if k != "Content-Disposition"
    )
