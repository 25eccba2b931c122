"""The router on informants' words (issue 17): the generated evaluation set, the hand-written
phrases of the five failure classes, the old provinces, and `tipline route --batch`.

Thresholds, not timings (speed is benchmarks/routing.py's): a fixed subset of the generated
set must keep precision ≥ 99.5 %, must-not-route tips routed ≤ 1 %, recall ≥ 85 %.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.data.routing_eval import Case, generate, phrases, score
from tipline.cli.routing import decision_json, route
from tipline.routing.normalise import strip_numbers, tokens
from tipline.routing.places import gazetteer
from tipline.routing.router import route_text


def decide(case: Case) -> dict[str, object]:
    return decision_json(route_text(case.text, case.oa), case.oa)


def test_generated_set_thresholds() -> None:
    cases = generate(600, seed=17)
    assert sum(c.must_not_route for c in cases) >= 0.3 * len(cases)
    result = score(cases, decide)
    wrong = [(c.text, c.oa, c.expect, row["unit"]) for c, row in result.wrong]
    assert result.precision >= 0.995, wrong
    assert result.must_not_routed_share <= 0.01, wrong
    assert result.recall >= 0.85, [(c.text, row["reason"]) for c, row in result.missed][:10]
    assert result.typos and result.typo_suggested >= 0.8 * result.typos


@pytest.mark.parametrize("case", phrases(), ids=lambda c: f"{c.kind}:{c.text[:40]}")
def test_hand_written_phrases(case: Case) -> None:
    row = decide(case)
    if case.must_not_route:
        assert not row["auto"] and row["unit"] == case.oa, row
    else:
        assert row["auto"] and row["unit"] in case.expect, row


def test_a_typo_is_suggested_never_routed() -> None:
    decision = route_text("có trộm ở xã Lương Thế Trâm", "v2025:96")
    assert not decision.auto and decision.target is None
    assert decision.suggestions[0].code == "v2025:32134"
    # A slip on a longer name is not the shorter name ("An Nhơn Bắg" is not An Nhơn).
    slip = route_text("có trộm ở phường An Nhơn Bắg", "v2025:52")
    assert not slip.auto and slip.suggestions[0].code == "v2025:21925"


@pytest.mark.parametrize(
    "text",
    [
        "59-P2 123.45",
        "51F-123.45",
        "29A1-234.56",
        "59X2 12345",
        "26-P8",
        "0909 123 456",
        "0912.345.678",
        "+84 912 345 678",
    ],
)
def test_plates_and_phone_numbers_are_not_words(text: str) -> None:
    assert [t.folded for t in tokens(f"xe {text} ở đây")] == ["xe", "o", "day"]


@pytest.mark.parametrize("text", ["nhà số 12 P.5 Q.8", "Q1 P12", "ấp 6, x. Tân Thành"])
def test_addresses_keep_their_numbers(text: str) -> None:
    assert strip_numbers(text) == text


# The 2025 merger (Resolution 202/2025/QH15), written out by hand: old province → new one.
MERGED_INTO = {
    "Hà Nội": "Hà Nội",
    "Hà Giang": "Tuyên Quang",
    "Cao Bằng": "Cao Bằng",
    "Bắc Kạn": "Thái Nguyên",
    "Tuyên Quang": "Tuyên Quang",
    "Lào Cai": "Lào Cai",
    "Điện Biên": "Điện Biên",
    "Lai Châu": "Lai Châu",
    "Sơn La": "Sơn La",
    "Yên Bái": "Lào Cai",
    "Hoà Bình": "Phú Thọ",
    "Thái Nguyên": "Thái Nguyên",
    "Lạng Sơn": "Lạng Sơn",
    "Quảng Ninh": "Quảng Ninh",
    "Bắc Giang": "Bắc Ninh",
    "Phú Thọ": "Phú Thọ",
    "Vĩnh Phúc": "Phú Thọ",
    "Bắc Ninh": "Bắc Ninh",
    "Hải Dương": "Hải Phòng",
    "Hải Phòng": "Hải Phòng",
    "Hưng Yên": "Hưng Yên",
    "Thái Bình": "Hưng Yên",
    "Hà Nam": "Ninh Bình",
    "Nam Định": "Ninh Bình",
    "Ninh Bình": "Ninh Bình",
    "Thanh Hóa": "Thanh Hóa",
    "Nghệ An": "Nghệ An",
    "Hà Tĩnh": "Hà Tĩnh",
    "Quảng Bình": "Quảng Trị",
    "Quảng Trị": "Quảng Trị",
    "Huế": "Huế",
    "Đà Nẵng": "Đà Nẵng",
    "Quảng Nam": "Đà Nẵng",
    "Quảng Ngãi": "Quảng Ngãi",
    "Bình Định": "Gia Lai",
    "Phú Yên": "Đắk Lắk",
    "Khánh Hòa": "Khánh Hòa",
    "Ninh Thuận": "Khánh Hòa",
    "Bình Thuận": "Lâm Đồng",
    "Kon Tum": "Quảng Ngãi",
    "Gia Lai": "Gia Lai",
    "Đắk Lắk": "Đắk Lắk",
    "Đắk Nông": "Lâm Đồng",
    "Lâm Đồng": "Lâm Đồng",
    "Bình Phước": "Đồng Nai",
    "Tây Ninh": "Tây Ninh",
    "Bình Dương": "Hồ Chí Minh",
    "Đồng Nai": "Đồng Nai",
    "Bà Rịa - Vũng Tàu": "Hồ Chí Minh",
    "Hồ Chí Minh": "Hồ Chí Minh",
    "Long An": "Tây Ninh",
    "Tiền Giang": "Đồng Tháp",
    "Bến Tre": "Vĩnh Long",
    "Trà Vinh": "Vĩnh Long",
    "Vĩnh Long": "Vĩnh Long",
    "Đồng Tháp": "Đồng Tháp",
    "An Giang": "An Giang",
    "Kiên Giang": "An Giang",
    "Cần Thơ": "Cần Thơ",
    "Hậu Giang": "Cần Thơ",
    "Sóc Trăng": "Cần Thơ",
    "Bạc Liêu": "Cà Mau",
    "Cà Mau": "Cà Mau",
}


def _short(name: str) -> str:
    for prefix in ("Thành phố ", "Tỉnh "):
        name = name.removeprefix(prefix)
    return name.replace("Hoà", "Hòa").replace("Thừa Thiên - Huế", "Thừa Thiên Huế")


def test_every_old_province_and_its_wards_map_where_they_should() -> None:
    gaz = gazetteer()
    assert len(gaz.old_provinces) == 63
    expected = {_short(old): _short(new) for old, new in MERGED_INTO.items()}
    mapped = {
        _short(name): _short(gaz.provinces[new][0]) for name, _, new in gaz.old_provinces.values()
    }
    assert mapped == expected
    # Every old ward lies where its conversion says (Tiền Giang's 164 wards were in Tây
    # Ninh: one mislabelled row of the conversion table), and so does its old district.
    tien_giang = next(c for c, (n, _, _) in gaz.old_provinces.items() if "Tiền Giang" in n)
    assert gaz.old_province_to_new[tien_giang] == 82  # Đồng Tháp
    misplaced = [
        place.name
        for places in gaz.index.values()
        for place in places
        if place.kind == "ward"
        and place.era == "v2024"
        and any(gaz.wards[t][2] != place.province for t in place.targets)
    ]
    assert misplaced == []
    assert all(
        gaz.old_districts[code][2] == gaz.old_wards[ward][2]
        for places in gaz.index.values()
        for place in places
        if place.kind == "ward" and place.era == "v2024"
        for code in place.districts
        for ward in [place.code]
    )


def test_route_batch_format(tmp_path: Path) -> None:
    """The documented batch format (docs/routing.md): one decision per line, in order."""
    source = tmp_path / "tips.jsonl"
    lines = [
        {"id": "a", "text": "Có trộm ở xã Phú Hưng, huyện Cái Nước", "oa": "v2025:96"},
        {"id": 2, "text": "nhà bên cạnh có bạo lực gia đình", "oa": "v2025:79"},
        {"text": "xe biển số 59-P2 123.45 ở quận Phú Nhuận", "oa": "v2025:79"},
        "not an object",
        {"id": "d", "text": "có trộm ở xã Lương Thế Trâm", "oa": "v2025:96"},
        {"id": "e", "text": "x", "oa": "v2025:96", "lat": 9.1},
    ]
    source.write_text(
        "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(route, ["--batch", str(source)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == len(lines)
    first, second, third, bad, typo, half = rows
    assert first["id"] == "a" and first["unit"] == "v2025:32134" and first["auto"] is True
    assert {"unit", "confidence", "auto", "stays", "reason", "candidates", "suggestions"} <= set(
        first
    )
    assert first["candidates"][0]["words"] == "phú hưng"
    assert second == {**second, "id": 2, "unit": "v2025:79", "auto": False, "stays": True}
    assert third["unit"] == "v2025:79" and third["auto"] is False
    assert bad == {"error": "line 4: not a JSON object"}
    assert typo["auto"] is False and typo["suggestions"][0]["unit"] == "v2025:32134"
    assert half == {"id": "e", "error": "line 6: give both lat and lon"}
