"""Removing metadata: images are re-encoded from their pixels alone, PDFs lose their document
information, XMP and every action (scripts, launches, links out). Anything else is refused:
its metadata cannot be removed here.

The real type comes from the bytes, never from the name or the ``Content-Type`` Zalo sent.
Image dimensions are read from the header before any pixel is decoded, so a small file that
claims 20,000 × 20,000 pixels (a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from tipline.media.errors import Refused
from tipline.models import Refusal

# About 40 megapixels: any phone camera's photo, far below a bomb's gigabytes of pixels.
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass(frozen=True)
class Cleaned:
    data: bytes
    content_type: str
    extension: str


def detect(data: bytes) -> str:
    """The real type of ``data``: jpeg, png, gif, webp, pdf, zip, … or "unknown"."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"  # Office documents (docx, xlsx…) and archives
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"  # legacy Office documents
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith((b"ID3", b"\xff\xfb", b"\xff\xf3", b"OggS", b"#!AMR")):
        return "audio"
    return "unknown"


def clean(data: bytes) -> Cleaned:
    kind = detect(data)
    if kind in ("jpeg", "png", "gif", "webp"):
        return _clean_image(data, kind)
    if kind == "pdf":
        return _clean_pdf(data)
    raise Refused(Refusal.UNSUPPORTED_TYPE, kind)


def _clean_image(data: bytes, kind: str) -> Cleaned:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))  # reads the header only
            width, height = opened.size
            if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
                raise Refused(Refusal.IMAGE_TOO_LARGE, f"{width}x{height}")
            opened.seek(0)  # the first frame of an animation
            opened.load()
            image = ImageOps.exif_transpose(opened)  # keep the orientation the EXIF tag meant
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Refused(Refusal.IMAGE_TOO_LARGE) from exc
    except Refused:
        raise
    except Exception as exc:  # Pillow raises many types for damaged files
        raise Refused(Refusal.DAMAGED, kind) from exc
    jpeg = kind == "jpeg"
    if jpeg:
        mode = "L" if image.mode in ("L", "1") else "RGB"
    else:
        mode = (
            "RGBA"
            if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info
            else "RGB"
        )
    pixels = image.convert(mode)
    # A new image from the pixel bytes alone: no EXIF, GPS, XMP, ICC, comments or text chunks.
    bare = Image.frombytes(mode, pixels.size, pixels.tobytes())
    out = io.BytesIO()
    if jpeg:
        bare.save(out, format="JPEG", quality=90, optimize=True)
        return Cleaned(out.getvalue(), "image/jpeg", "jpg")
    bare.save(out, format="PNG", optimize=True)
    return Cleaned(out.getvalue(), "image/png", "png")


def _clean_pdf(data: bytes) -> Cleaned:
    try:
        from pypdf import PdfReader, PdfWriter
        from pypdf.generic import NameObject
    except ImportError as exc:  # no cleaner installed: refuse rather than keep metadata
        raise Refused(Refusal.UNSUPPORTED_TYPE, "pdf") from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Refused(Refusal.ENCRYPTED, "pdf")
        writer = PdfWriter()
        for page in reader.pages:
            added = writer.add_page(page)
            for key in ("/Metadata", "/PieceInfo", "/AA"):
                if NameObject(key) in added:
                    del added[NameObject(key)]
            # Actions of links and form fields (JavaScript, launching a program, a URL that
            # tells someone the file was opened) go; the annotations themselves stay.
            for annotation in added.get("/Annots") or []:
                annotation = annotation.get_object()
                for key in ("/A", "/AA"):
                    if NameObject(key) in annotation:
                        del annotation[NameObject(key)]
        writer.metadata = None  # no /Info dictionary at all (title, author, producer, dates)
        if NameObject("/Metadata") in writer.root_object:
            del writer.root_object[NameObject("/Metadata")]
        out = io.BytesIO()
        writer.write(out)
    except Refused:
        raise
    except Exception as exc:
        raise Refused(Refusal.DAMAGED, "pdf") from exc
    return Cleaned(out.getvalue(), "application/pdf", "pdf")
