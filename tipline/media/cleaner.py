"""The cleaning program: runs *inside* the sandbox (tipline.media.sandbox), one process per file.

It sees only the received file (read-only), an empty output directory and a private /tmp; it
has no network, no key, no Tipline setting and no environment beyond PATH, HOME and LANG. It
imports nothing of Tipline (the package is not even visible in the sandbox): the standard
library and Pillow only. Usage::

    python -I cleaner.py INPUT OUTPUT_DIR KIND

KIND is the coarse type the worker read from the first bytes (image, pdf, office, av). The
program writes one cleaned file into OUTPUT_DIR and prints one JSON line: either
``{"ok": true, "file", "content_type", "extension", "media", "source", …}`` or
``{"ok": false, "refusal", "detail"}``. A crash, a signal (the CPU, memory, file-size and
process limits) or silence is read by the worker as a failure.

What each kind becomes (secrecy first: nothing of the original container survives):

- image: a new image from the decoded pixels alone (JPEG stays JPEG, others become PNG).
- audio (AMR voice notes, MP3, M4A/AAC, OGG, WAV…): FFmpeg re-encodes the first audio stream to
  AAC in an M4A, the format both Chromium and Safari play; no metadata, chapters or pictures.
- video (MP4, MOV, 3GP, WebM…): FFmpeg re-encodes to H.264 + AAC in MP4 with ``faststart``,
  rotation applied to the pixels, at most 1280 pixels a side; no metadata or chapters.
- pdf: every page rasterised by Poppler (``pdftoppm``) and the page images put into a new
  PDF written here, which holds nothing else: no text layer, no document information, XMP,
  annotation, form, script, link, attachment or embedded photo (and so none of their EXIF).
- office (DOCX, XLSX, ODT, ODS, DOC, XLS): LibreOffice (headless, no network, a throw-away
  profile) converts to PDF, which is then cleaned like any PDF.
"""

from __future__ import annotations

import json
import struct
import subprocess  # fixed argument lists, no shell  # nosec B404
import sys
import zipfile
from pathlib import Path
from typing import Any

MAX_PIXELS = 40_000_000  # about 40 megapixels: any phone photo, far below a bomb
MAX_PAGES = 200  # pages of a PDF or office document kept (the rest is counted, not kept)
PAGE_PIXELS = 1700  # the long side of a rasterised page (A4 at about 144 dpi)
PAGE_DPI = 144
MAX_SIDE = 1280  # the long side of a re-encoded video
FFMPEG_THREADS = "2"


class Refusal(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _run(argv: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 - fixed tools, paths we chose  # nosec B603
        argv, capture_output=True, check=False, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _failed(done: subprocess.CompletedProcess[bytes], what: str) -> Refusal:
    """Why a tool failed: a limit (killed by a signal, out of memory) or a damaged file."""
    text = done.stderr.decode("utf-8", "replace").lower()
    if done.returncode < 0 or "cannot allocate memory" in text or "out of memory" in text:
        return Refusal("limits", what)
    if "password" in text:
        return Refusal("encrypted", what)
    return Refusal("damaged", what)


# --- images -----------------------------------------------------------------------------------


def clean_image(src: Path, out: Path) -> dict[str, Any]:
    import warnings

    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(src)  # reads the header only
            width, height = opened.size
            if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
                raise Refusal("image_too_large", f"{width}x{height}")
            kind = (opened.format or "").lower()
            opened.seek(0)  # the first frame of an animation
            opened.load()
            image = ImageOps.exif_transpose(opened)  # the orientation the EXIF tag meant
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Refusal("image_too_large") from exc
    except (Refusal, MemoryError):
        raise
    except Exception as exc:  # Pillow raises many types for damaged files
        raise Refusal("damaged", "image") from exc
    jpeg = kind == "jpeg"
    if jpeg:
        mode = "L" if image.mode in ("L", "1") else "RGB"
    else:
        transparent = image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info
        mode = "RGBA" if transparent else "RGB"
    pixels = image.convert(mode)
    # A new image from the pixel bytes alone: no EXIF, GPS, XMP, ICC, comments or text chunks.
    bare = Image.frombytes(mode, pixels.size, pixels.tobytes())
    if jpeg:
        bare.save(out / "clean.jpg", format="JPEG", quality=90, optimize=True)
        return {"file": "clean.jpg", "content_type": "image/jpeg", "extension": "jpg",
                "media": "image", "source": "jpeg"}
    bare.save(out / "clean.png", format="PNG", optimize=True)
    return {"file": "clean.png", "content_type": "image/png", "extension": "png",
            "media": "image", "source": kind or "image"}


# --- audio and video --------------------------------------------------------------------------


def _probe(src: Path) -> dict[str, Any]:
    probe = _run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
                  "-show_format", str(src)])
    if probe.returncode != 0:
        raise _failed(probe, "media")
    data = json.loads(probe.stdout or b"{}")
    return data if isinstance(data, dict) else {}


COMMON = [
    "-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn",
    "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
]


def clean_av(src: Path, out: Path) -> dict[str, Any]:
    info = _probe(src)
    streams = [s for s in info.get("streams") or [] if isinstance(s, dict)]
    video = [
        s for s in streams
        if s.get("codec_type") == "video"
        and not (s.get("disposition") or {}).get("attached_pic")  # an MP3's cover art
    ]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    source = str((info.get("format") or {}).get("format_name") or "media").split(",")[0]
    base = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads",
            FFMPEG_THREADS, "-i", str(src)]
    if video:
        target = out / "clean.mp4"
        scale = (
            f"scale='min({MAX_SIDE},iw)':'min({MAX_SIDE},ih)'"
            ":force_original_aspect_ratio=decrease:force_divisible_by=2,setsar=1"
        )
        argv = [*base, "-map", "0:v:0", *(["-map", "0:a:0"] if audio else []), *COMMON,
                "-vf", scale, "-c:v", "libx264", "-preset", "veryfast", "-crf", "26",
                "-pix_fmt", "yuv420p", "-profile:v", "main", "-threads", FFMPEG_THREADS,
                "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "44100",
                "-movflags", "+faststart", "-f", "mp4", str(target)]
        media, content_type, extension = "video", "video/mp4", "mp4"
    elif audio:
        target = out / "clean.m4a"
        argv = [*base, "-map", "0:a:0", "-vn", *COMMON, "-c:a", "aac", "-b:a", "96k",
                "-ar", "44100", "-movflags", "+faststart", "-f", "ipod", str(target)]
        media, content_type, extension = "audio", "audio/mp4", "m4a"
    else:
        raise Refusal("unsupported_type", source)
    done = _run(argv)
    if done.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        raise _failed(done, media)
    try:
        duration = float((_probe(target).get("format") or {}).get("duration") or 0)
    except (Refusal, ValueError):
        duration = 0.0
    return {"file": target.name, "content_type": content_type, "extension": extension,
            "media": media, "source": source, "duration": round(duration, 1)}


# --- PDF and office documents -----------------------------------------------------------------


def _jpeg_size(data: bytes) -> tuple[int, int, int]:
    """(width, height, components) from a JPEG's frame header."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            raise Refusal("damaged", "page")
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height, data[i + 9]
        i += 2 + length
    raise Refusal("damaged", "page")


def write_image_pdf(pages: list[Path], target: Path) -> None:
    """A PDF of JPEG page images and nothing else: catalog, pages, one image per page."""
    offsets: list[int] = []
    count = len(pages)
    # Objects: 1 catalog, 2 page tree, then per page: page, content, image.
    with target.open("wb") as out:
        def obj(number: int, body: bytes) -> None:
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")

        out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        kids = b" ".join(b"%d 0 R" % (3 + 3 * n) for n in range(count))
        obj(2, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count)
        for n, path in enumerate(pages):
            data = path.read_bytes()
            width, height, components = _jpeg_size(data)
            space = b"/DeviceGray" if components == 1 else b"/DeviceRGB"
            w_pt = width * 72 / PAGE_DPI
            h_pt = height * 72 / PAGE_DPI
            page, content, image = 3 + 3 * n, 4 + 3 * n, 5 + 3 * n
            obj(page, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] "
                b"/Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>"
                % (w_pt, h_pt, image, content))
            stream = b"q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q" % (w_pt, h_pt)
            obj(content, b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
            obj(image, b"<< /Type /XObject /Subtype /Image /Width %d /Height %d "
                b"/ColorSpace %s /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n"
                % (width, height, space, len(data)) + data + b"\nendstream")
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
        for offset in offsets:
            out.write(b"%010d 00000 n \n" % offset)
        out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
                  % (len(offsets) + 1, xref))


def _page_count(src: Path) -> int:
    info = _run(["pdfinfo", str(src)])
    text = (info.stdout + info.stderr).decode("utf-8", "replace")
    if "Incorrect password" in text or "Command Line Error: Incorrect password" in text:
        raise Refusal("encrypted", "pdf")
    if info.returncode != 0:
        raise _failed(info, "pdf")
    for line in text.splitlines():
        if line.startswith("Pages:"):
            return int(line.split(":", 1)[1].strip() or 0)
    raise Refusal("damaged", "pdf")


def clean_pdf(src: Path, out: Path, source: str = "pdf") -> dict[str, Any]:
    total = _page_count(src)
    if total < 1:
        raise Refusal("damaged", "pdf")
    kept = min(total, MAX_PAGES)
    pages_dir = Path("/tmp/pages")  # noqa: S108 - the sandbox's private tmpfs  # nosec B108
    pages_dir.mkdir(exist_ok=True)
    done = _run(["pdftoppm", "-f", "1", "-l", str(kept), "-scale-to", str(PAGE_PIXELS),
                 "-jpeg", "-jpegopt", "quality=80", str(src), str(pages_dir / "p")])
    pages = sorted(pages_dir.glob("p-*.jpg"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    if done.returncode != 0 or not pages:
        raise _failed(done, "pdf")
    target = out / "clean.pdf"
    write_image_pdf(pages, target)
    return {"file": target.name, "content_type": "application/pdf", "extension": "pdf",
            "media": "pdf", "source": source, "pages": len(pages), "pages_total": total}


OOXML = {"word/document.xml": "docx", "xl/workbook.xml": "xlsx"}
ODF = {"application/vnd.oasis.opendocument.text": "odt",
       "application/vnd.oasis.opendocument.spreadsheet": "ods"}


MAX_UNZIPPED = 300 * 1024 * 1024  # a document's parts, inflated
MAX_RATIO = 100  # inflated / deflated, for any part over BOMB_PART
BOMB_PART = 20 * 1024 * 1024


def _zip_bomb(archive: zipfile.ZipFile) -> bool:
    """Declared sizes say it inflates far beyond any real document (a zip bomb); what the
    declarations hide, the sandbox's memory, file-size and time limits stop."""
    infos = archive.infolist()
    if sum(i.file_size for i in infos) > MAX_UNZIPPED:
        return True
    return any(
        i.file_size > BOMB_PART and i.file_size > MAX_RATIO * max(i.compress_size, 1)
        for i in infos
    )


def office_type(src: Path) -> str:
    try:
        with zipfile.ZipFile(src) as archive:
            if _zip_bomb(archive):
                raise Refusal("limits", "zip bomb")
            names = set(archive.namelist())
            for member, kind in OOXML.items():
                if member in names:
                    return kind
            if "mimetype" in names:
                mimetype = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                if mimetype in ODF:
                    return ODF[mimetype]
    except zipfile.BadZipFile:
        pass
    except (OSError, KeyError, ValueError) as exc:
        raise Refusal("damaged", "zip") from exc
    if src.read_bytes()[:4] == b"\xd0\xcf\x11\xe0":
        return "doc"  # a legacy Word or Excel file: LibreOffice reads the content's real type
    raise Refusal("unsupported_type", "zip")


def clean_office(src: Path, out: Path) -> dict[str, Any]:
    kind = office_type(src)
    work = Path("/tmp/office")  # noqa: S108 - the sandbox's private tmpfs  # nosec B108
    work.mkdir(exist_ok=True)
    named = work / f"document.{kind}"  # LibreOffice picks its import filter by the extension
    named.write_bytes(src.read_bytes())
    done = _run([
        "soffice", "--headless", "--norestore", "--nologo", "--nodefault", "--nolockcheck",
        "--nofirststartwizard", "-env:UserInstallation=file:///tmp/lo-profile",
        "--convert-to", "pdf", "--outdir", str(work), str(named),
    ])
    converted = work / "document.pdf"
    if not converted.exists() or converted.stat().st_size == 0:
        raise _failed(done, kind)
    named.unlink()
    return clean_pdf(converted, out, source=kind)


CLEANERS = {"image": clean_image, "av": clean_av, "pdf": clean_pdf, "office": clean_office}


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[3] not in CLEANERS:
        print(json.dumps({"ok": False, "refusal": "unsupported_type", "detail": "usage"}))
        return 2
    src, out, kind = Path(argv[1]), Path(argv[2]), argv[3]
    try:
        result = {"ok": True, **CLEANERS[kind](src, out)}
    except Refusal as refusal:
        result = {"ok": False, "refusal": refusal.reason, "detail": refusal.detail}
    except MemoryError:  # the address-space limit: say so rather than crash
        result = {"ok": False, "refusal": "limits", "detail": f"{kind}: memory"}
    except FileNotFoundError as exc:  # a cleaning tool is not installed: the admin's to fix
        result = {"ok": False, "refusal": "sandbox_unavailable", "detail": f"no {exc.filename}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
