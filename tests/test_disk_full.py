"""The public pages never answer Werkzeug's English "Internal Server Error".

A full disk while the web form stores a report: a clear Vietnamese error, the report not
stored at all, no partial file left. The disk is really full: the file store is a 64 KiB tmpfs
(the tests run as root in CI, `make test`); where mounting is not allowed, the write is made
to fail with ENOSPC after writing part of the file (fault injection, said in the output).
Any other failure: a Vietnamese 500 page.
"""

from __future__ import annotations

import errno
import io
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select

from tests.test_web_intake import BITS, commune, report
from tipline.app import create_app
from tipline.config import Config
from tipline.files import FileStore
from tipline.models import InboundEvent
from tipline.runtime import Runtime


@pytest.fixture(autouse=True)
def low_difficulty(runtime: Runtime) -> None:
    runtime.config = runtime.config.with_overrides(pow_bits=BITS)


def noisy_jpeg(side: int = 500) -> bytes:
    """A photo that does not compress: a few hundred KB."""
    image = Image.frombytes("RGB", (side, side), random.Random(7).randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.fixture
def full_file_store(config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The file store on a 64 KiB tmpfs, or (not allowed to mount) writes that hit ENOSPC."""
    root = FileStore.for_data_dir(config.data_dir).root
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(root)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode == 0:
        try:
            yield root
        finally:
            subprocess.run(["umount", str(root)], check=True)
        return
    print("cannot mount a tmpfs here: ENOSPC injected after a partial write instead")
    real_fsync = os.fsync

    def full(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).parent == root:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    yield root


def test_a_full_disk_on_the_web_form_says_so_in_vietnamese_and_keeps_nothing(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], full_file_store: Path
) -> None:
    words = "Có người đổ trộm rác thải công nghiệp ở bờ kênh"
    photo = (io.BytesIO(noisy_jpeg()), "anh.jpg", "image/jpeg")
    answer = report(client, commune(runtime), words, files=[photo])
    page = answer.get_data(as_text=True)
    assert answer.status_code == 507, page
    assert "bộ nhớ lưu trữ đã đầy" in page and "chưa được lưu" in page
    assert "Internal Server Error" not in page
    assert words in page  # the informant's text is still in the form, to send again
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(InboundEvent)) == 0
    assert list(full_file_store.iterdir()) == []  # no partial file, no orphan


def test_any_other_failure_of_a_public_page_is_a_vietnamese_500(
    config: Config, tmp_path: Path
) -> None:
    broken = config.with_overrides(database_url=f"sqlite:///{tmp_path}/missing/dir/tipline.db")
    for kinds in ({}, {"staff_ui": False, "public_form": True}):
        app = create_app(broken, **kinds)
        app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production (TESTING re-raises)
        for path in ("/bao-tin",):  # its unit list comes from the database
            answer = app.test_client().get(path)
            page = answer.get_data(as_text=True)
            assert answer.status_code == 500, (path, page)
            assert "Máy chủ gặp sự cố" in page and 'lang="vi"' in page
            assert "Internal Server Error" not in page and "OperationalError" not in page
