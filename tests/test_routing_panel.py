"""The routing panel of the tip page (issue 17): unit names, whole reasons, matched words,
typo suggestions; records sealed before the fix still read correctly."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import PROVINCE_OA, expand
from tests.triage_helpers import login
from tests.zalo_events import event, signed_headers
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import Tip
from tipline.models.sealed_fields import TIP_ROUTING
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")

# A record as dispatch sealed it before issue 17: reasons as one string, codes only.
OLD_RECORD = {
    "unit": "v2025:32134",
    "confidence": 0.99,
    "auto": True,
    "needs_location": False,
    "reason": "text",
    "candidates": [
        {
            "unit": "v2025:32134",
            "score": 8.2,
            "reasons": "khớp tên cũ: Xã Phú Hưng, Huyện Cái Nước; cùng tỉnh với OA nhận tin",
        },
        {"unit": "v2025:32128", "score": 3.1, "reasons": "khớp tên mới: Xã Cái Nước"},
    ],
}


def _tip(client: FlaskClient, runtime: Runtime, text: str, oa: str | None = None) -> str:
    raw = event(text=text, msg_id=f"panel-{abs(hash(text))}", **({"oa": oa} if oa else {}))
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id)).one()
    assert dispatch_tip(public_id) == "dispatched"
    return public_id


def _panel(html: str) -> str:
    start = html.index("<h2>Định tuyến</h2>")
    return html[start : html.index("</section>", start)]


def test_an_old_record_shows_whole_reasons_and_unit_names(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    public_id = _tip(client, runtime, "Có trộm xe máy ở xã Phú Hưng, huyện Cái Nước")
    with runtime.sessions() as session, session.begin():
        tip = session.scalars(select(Tip).where(Tip.public_id == public_id)).one()
        body = json.dumps(OLD_RECORD, ensure_ascii=False).encode()
        tip.sealed_routing = TIP_ROUTING.seal(tip.public, body, tip_public_id=tip.public_id)
    login(client, "canbo", units["totp:canbo"])
    panel = _panel(client.get(f"/triage/tips/{public_id}").get_data(as_text=True))
    assert "k; h; ớ; p" not in panel  # the string was iterated one character at a time
    assert "khớp tên cũ: Xã Phú Hưng, Huyện Cái Nước; cùng tỉnh với OA nhận tin" in panel
    assert "Công an xã Lương Thế Trân" in panel and "Công an xã Cái Nước" in panel
    assert "tin nhắn nêu rõ một xã/phường" in panel  # the reason word, in words


def test_a_typo_is_offered_by_name_and_not_routed(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    public_id = _tip(client, runtime, "Có trộm ở xã Phú Hưg, huyện Cái Nước", oa=PROVINCE_OA)
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip).where(Tip.public_id == public_id)).one()
        assert tip.unit.code == "v2025:96" and tip.routing_auto is False
    login(client, "chihuy", units["totp:chihuy"])
    panel = _panel(client.get(f"/triage/tips/{public_id}").get_data(as_text=True))
    suggestions = panel.split("Gợi ý (có thể gõ sai, không tự chuyển)", 1)[1]
    assert "Công an xã Lương Thế Trân" in suggestions
    assert "phú hưg" in suggestions and "gần giống tên Xã Phú Hưng, Huyện Cái Nước" in suggestions
    candidates = panel.split("Gợi ý", 1)[0]
    assert "Công an xã Cái Nước" in candidates  # the district's communes, by name
    assert "v2025:32128</strong>" not in panel


def test_a_routed_tip_shows_the_words_that_matched(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    public_id = _tip(
        client, runtime, "Có trộm xe máy ở xã Phú Hưng, huyện Cái Nước", oa=PROVINCE_OA
    )
    login(client, "canbo", units["totp:canbo"])
    panel = _panel(client.get(f"/triage/tips/{public_id}").get_data(as_text=True))
    assert "Từ khớp: “phú hưng”" in panel
    assert "có chữ “xã” đứng trước" in panel and "tin nhắn nêu tên quận/huyện cũ" in panel
    assert "<strong>Công an xã Lương Thế Trân</strong>" in panel
