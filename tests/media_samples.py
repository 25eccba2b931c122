"""Evidence files with metadata planted, made in the tests (no binary fixtures committed).

Each carries names a metadata reader must not find after cleaning: :data:`PLANTED`.
"""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from pathlib import Path

from PIL import Image

AUTHOR = "Nguyen Van Informant"
TITLE = "Bao cao mat"
DEVICE = "InformantPhone X9"
PLACE = "+08.9600+105.0200/"
CREATED = "2026-11-23T08:15:00.000000Z"
FILE_NAME = "IMG_informant_secret"
# Strings that must not survive cleaning, in any kept file.
PLANTED = (AUTHOR, TITLE, DEVICE, "Informant", "105.02", "2026-11-23", "2026:11:23", FILE_NAME)
GPS_IFD = 0x8825
XMP = (
    '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/">'
    f'<dc:creator><rdf:Seq><rdf:li>{AUTHOR}</rdf:li></rdf:Seq></dc:creator>'
    '<exif:GPSLatitude>8,57.6N</exif:GPSLatitude><exif:GPSLongitude>105,1.2E</exif:GPSLongitude>'
    '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def jpeg_with_gps(size: tuple[int, int] = (120, 80)) -> bytes:
    image = Image.new("RGB", size, (180, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = DEVICE  # Model
    exif[0x0132] = "2026:11:23 08:15:00"  # DateTime
    exif[GPS_IFD] = {1: "N", 2: (8.0, 57.0, 36.0), 3: "E", 4: (105.0, 1.0, 12.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), comment=AUTHOR.encode(),
               xmp=XMP.encode())
    return out.getvalue()


def _pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.6\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer_extra
              + b">>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def pdf_with_metadata() -> bytes:
    """A PDF with an embedded JPEG carrying EXIF GPS and XMP, document XMP, document info,
    an annotation with an author, and JavaScript run on opening."""
    photo = jpeg_with_gps((200, 150))
    xmp = XMP.encode()
    content = (
        b"BT /F1 18 Tf 40 300 Td (Bien so xe 94A-123.45) Tj ET q 200 0 0 150 40 80 cm /Im0 Do Q"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Metadata 3 0 R /OpenAction 8 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(xmp) + xmp
        + b"\nendstream",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 400] /Contents 5 0 R "
        b"/Resources << /XObject << /Im0 6 0 R >> /Font << /F1 9 0 R >> >> /Annots [7 0 R] >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width 200 /Height 150 /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Filter /DCTDecode /Metadata 3 0 R /Length %d >>\nstream\n"
        % len(photo) + photo + b"\nendstream",
        b"<< /Type /Annot /Subtype /Text /Rect [300 300 320 320] /T (" + AUTHOR.encode()
        + b") /Contents (Ghi chu cua " + AUTHOR.encode() + b") /M (D:20261123081500Z) >>",
        b"<< /S /JavaScript /JS (app.alert\\('" + AUTHOR.encode() + b"'\\);) >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Author (" + AUTHOR.encode() + b") /Title (" + TITLE.encode() + b") /Creator ("
        + DEVICE.encode() + b") /CreationDate (D:20261123081500Z) >>",
    ]
    return _pdf(objects, b"/Info 10 0 R ")


def _core(creator: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
        'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms='
        '"http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:title>{TITLE}</dc:title><dc:creator>{creator}</dc:creator>"
        f"<cp:lastModifiedBy>{creator}</cp:lastModifiedBy>"
        '<dcterms:created xsi:type="dcterms:W3CDTF">2026-11-23T08:15:00Z</dcterms:created>'
        "</cp:coreProperties>"
    )


RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://'
    'schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type='
    '"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="{main}"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/'
    '2006/relationships/metadata/core-properties" Target="docProps/core.xml"/></Relationships>'
)
TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.'
    'openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType='
    '"application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
    'ContentType="application/xml"/>{overrides}<Override PartName="/docProps/core.xml" '
    'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>'
)


def docx_with_creator(text: str = "Bien so xe 94A-123.45") -> bytes:
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://'
        'schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
        f"{text}</w:t></w:r></w:p></w:body></w:document>"
    )
    override = (
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.wordprocessingml.document.main+xml"/>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", TYPES.format(overrides=override))
        archive.writestr("_rels/.rels", RELS.format(main="word/document.xml"))
        archive.writestr("word/document.xml", document)
        archive.writestr("docProps/core.xml", _core(AUTHOR))
        archive.writestr("word/media/image1.jpeg", jpeg_with_gps())
    return out.getvalue()


def xlsx_with_creator() -> bytes:
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.'
        'openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id='
        '"rId1"/></sheets></workbook>'
    )
    workbook_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://'
        'schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type='
        '"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>'
    )
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.'
        'openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="'
        'inlineStr"><is><t>So tien</t></is></c><c r="B1"><v>1500000</v></c></row></sheetData>'
        "</worksheet>"
    )
    overrides = (
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
        'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
        'worksheet+xml"/>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", TYPES.format(overrides=overrides))
        archive.writestr("_rels/.rels", RELS.format(main="xl/workbook.xml"))
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        archive.writestr("docProps/core.xml", _core(AUTHOR))
    return out.getvalue()


def _ffmpeg(args: list[str], out: Path) -> bytes:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)],
        check=True,
    )
    return out.read_bytes()


def metadata_args() -> list[str]:
    return [
        "-metadata", f"title={TITLE}", "-metadata", f"artist={AUTHOR}",
        "-metadata", f"location={PLACE}", "-metadata", f"location-eng={PLACE}",
        "-metadata", f"com.apple.quicktime.location.ISO6709={PLACE}",
        "-metadata", f"com.apple.quicktime.model={DEVICE}",
        "-metadata", f"creation_time={CREATED}", "-metadata", f"comment={FILE_NAME}",
        "-movflags", "+use_metadata_tags",
    ]


def mp4_with_metadata(tmp: Path, seconds: int = 2, size: str = "320x240") -> bytes:
    """An H.264 + AAC MP4 with title, artist, GPS location, device model, creation time, and a
    rotation (90°), as a phone writes them."""
    out = tmp / "phone.mp4"
    _ffmpeg(
        ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=15:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", *metadata_args()],
        out,
    )
    # A phone held upright: the picture is stored sideways with a rotation in the track matrix.
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-Rotation=90", str(out)],
                   check=True)
    return out.read_bytes()


def m4a_with_metadata(tmp: Path) -> bytes:
    return _ffmpeg(
        ["-f", "lavfi", "-i", "sine=frequency=660:duration=2", "-c:a", "aac",
         *metadata_args()],
        tmp / "note.m4a",
    )


def amr_voice_note(seconds: float = 2.0) -> bytes:
    """An AMR-NB voice note as Zalo sends them: the file header and 12.2 kbit/s frames (their
    bits random: noise, but valid frames; Debian's FFmpeg decodes AMR and cannot encode it)."""
    frames = int(seconds * 50)
    return b"#!AMR\n" + b"".join(b"\x3c" + os.urandom(31) for _ in range(frames))
