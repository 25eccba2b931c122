"""The place router on real names (research/geo.md), the gazetteer counts, the generated set."""

from __future__ import annotations

import gzip
import json

import pytest

from tipline.config import (
    PACKAGED_WARD_BOUNDARIES,
)
from tipline.models import (
    Category,
)
from tipline.routing.cases import evaluate, generate
from tipline.routing.classify import classify
from tipline.routing.geo import Boundaries, load_boundaries
from tipline.routing.normalise import fold, tokens
from tipline.routing.places import gazetteer
from tipline.routing.router import route_text

BOUNDARIES = PACKAGED_WARD_BOUNDARIES


def test_gazetteer_counts() -> None:
    gaz = gazetteer()
    assert len(gaz.provinces) == 34
    assert len(gaz.wards) == 3321
    kinds = [t for _, t, _ in gaz.wards.values()]
    assert (kinds.count("xa"), kinds.count("phuong"), kinds.count("dac khu")) == (2621, 687, 13)
    assert len(gaz.old_provinces) == 63
    assert len(gaz.old_districts) == 696
    assert len(gaz.old_to_new) >= 10_033


@pytest.mark.parametrize(
    ("text", "forms"),
    [
        ("P.Tho Xuong TP Bac Giang", ["phuong", "tho", "xuong", "thanh", "pho", "bac", "giang"]),
        ("Q1 P12", ["quan", "1", "phuong", "12"]),
        ("F5 q.8", ["phuong", "5", "quan", "8"]),
        ("TPHCM", ["thanh", "pho", "ho", "chi", "minh"]),
        ("TX. Bến Cát", ["thi", "xa", "ben", "cat"]),
        ("P.05", ["phuong", "5"]),
    ],
)
def test_abbreviations_and_glued_forms(text: str, forms: list[str]) -> None:
    assert [t.folded for t in tokens(text)] == forms


def both(text: str) -> list[str]:
    return [text, fold(text)]


@pytest.mark.parametrize("text", both("Có trộm ở xã Phú Hưng huyện Cái Nước"))
def test_phu_hung_cai_nuoc_from_a_ca_mau_oa(text: str) -> None:
    for oa in ("v2025:96", "v2025:32002", None):
        decision = route_text(text, oa)
        assert decision.auto and decision.target == "v2025:32134", (oa, decision)


@pytest.mark.parametrize("text", both("Có người buôn ma túy ở xã Long Môn"))
def test_long_mon_became_minh_long(text: str) -> None:
    decision = route_text(text, "v2025:51")
    assert decision.auto and decision.target == "v2025:21361"


@pytest.mark.parametrize("text", both("trộm xe máy ở P. Mỹ Phước, TX Bến Cát"))
def test_split_ward_is_not_auto_routed(text: str) -> None:
    decision = route_text(text, "v2025:79")
    assert not decision.auto and decision.needs_location and decision.reason == "split"
    assert {c.code for c in decision.candidates[:2]} == {"v2025:25813", "v2025:25840"}


@pytest.mark.parametrize("text", both("đánh nhau tại P.Thọ Xương TP Bắc Giang"))
def test_tho_xuong_bac_giang_without_oa(text: str) -> None:
    decision = route_text(text, None)
    assert decision.auto and decision.target == "v2025:07210"


def test_tho_xuong_from_thanh_hoa_is_the_thanh_hoa_one() -> None:
    assert route_text("nha o xã Thọ Xương", "v2025:38").target == "v2025:15544"


def test_numbered_ward_needs_its_old_district() -> None:
    decision = route_text("ăn trộm ở Q.8 P.5 tp hcm", "v2025:79")
    assert not decision.auto  # Phường 5, Quận 8 was split
    assert {c.code for c in decision.candidates[:2]} == {"v2025:27418", "v2025:27424"}
    assert not route_text("ăn trộm ở P.5", "v2025:79").auto  # which Phường 5?


def test_one_word_and_untyped_names() -> None:
    # "Huế" is also a given name; "Sài Gòn" alone is the city, not Phường Sài Gòn.
    assert not route_text("chị Huế bán hàng giả", "v2025:96").auto
    assert route_text("ở Sài Gòn có lừa đảo", "v2025:79").target is None
    # An untyped two-word name in the OA's province is enough.
    decision = route_text("có trộm ở Lương Thế Trân", "v2025:96")
    assert decision.auto and decision.target == "v2025:32134"
    # ... but not a street of the same name.
    assert not route_text("nhà số 5 đường Lương Thế Trân", "v2025:96").auto


def test_never_another_province_on_a_weak_match() -> None:
    decision = route_text("có trộm ở xã Long Môn", "v2025:96")  # Cà Mau OA, Quảng Ngãi place
    assert not decision.auto and decision.reason == "other_province"
    # Named with its old district and province, it is not weak.
    strong = route_text("xã Long Môn, huyện Minh Long, tỉnh Quảng Ngãi", "v2025:96")
    assert strong.auto and strong.target == "v2025:21361"


def test_old_district_only_stays_with_the_oa() -> None:
    decision = route_text("đánh bạc ở huyện Cái Nước", "v2025:96")
    assert not decision.auto and decision.target is None and decision.needs_location
    assert "v2025:32134" in {c.code for c in decision.candidates}


def test_diacritics_break_ties() -> None:
    gaz = gazetteer()
    plain = route_text("xa Tan Hung", "v2025:96")
    accented = route_text("xã Tân Hưng", "v2025:96")
    assert accented.target == "v2025:32137" and plain.target == "v2025:32137"
    assert accented.candidates[0].score > plain.candidates[0].score
    assert gaz.wards[32137][0] == "Xã Tân Hưng"


def test_generated_set_precision_and_share() -> None:
    """≥ 2,000 cases from the conversion table and the current list: precision ≥ 99 %."""
    cases = generate(2400)
    assert len(cases) >= 2000 and sum(c.split for c in cases) > 30
    score, wrong = evaluate(cases)
    assert score.precision >= 0.99, wrong[:5]
    assert score.auto_share >= 0.8
    assert score.split_auto == 0
    print(f"generated set: precision {score.precision:.4f}, auto-routed {score.auto_share:.3f}")


def test_classification() -> None:
    assert classify("Có người buôn bán ma túy ở hẻm 12").category is Category.DRUGS
    assert classify("co nguoi ban ma tuy").category is Category.DRUGS
    assert classify("o day co so de, danh bac").category is Category.GAMBLING
    urgent = classify("đang có đánh nhau, có người cầm dao")
    assert urgent.category is Category.VIOLENCE and urgent.priority == "urgent"
    assert classify("nha ben canh bi chay, co tre em").priority == "urgent"
    assert classify("tụi nó đang chạy xe").priority == "normal"  # chạy is not cháy
    assert classify("Cho hỏi thủ tục làm căn cước ở đâu?").category is Category.PROCEDURE_QUESTION
    assert classify("cho hoi lam cccd can gi").category is Category.PROCEDURE_QUESTION


# --- GPS ----------------------------------------------------------------------------------


def _square(code: str, lon: float, lat: float, size: float = 0.01) -> dict[str, object]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {
        "type": "Feature",
        "properties": {"code": code},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def test_point_in_polygon_nearest_and_province_fallback() -> None:
    """A small boundary file of our own: each rule on a shape whose answer is plain."""
    boundaries = Boundaries([_square("32134", 105.0, 9.0), _square("32128", 105.02, 9.0)])
    inside = route_text("", "v2025:96", (9.005, 105.005), boundaries)
    assert inside.target == "v2025:32134" and inside.auto and inside.reason == "gps"
    near = route_text("", "v2025:96", (9.005, 105.0305), boundaries)  # ~0.5 km east of 32128
    assert near.target == "v2025:32128" and near.reason == "gps_nearest"
    far = route_text("", "v2025:96", (9.5, 105.5), boundaries)
    assert far.target == "v2025:96" and far.reason == "gps_province"
    # The point beats the words.
    assert route_text("xã Long Môn", "v2025:96", (9.005, 105.005), boundaries).target == (
        "v2025:32134"
    )


def test_real_boundaries() -> None:
    boundaries = load_boundaries(str(BOUNDARIES.resolve()))
    assert len(boundaries) == 3321
    with gzip.open(BOUNDARIES, "rt") as handle:
        features = json.load(handle)["features"]
    codes = {32134, 32128, 32137, 32002, 32025, 21361, 7210}
    from shapely.geometry import shape

    for feature in features:
        code = int(feature["properties"]["code"])
        if code in codes:
            point = shape(feature["geometry"]).representative_point()
            assert boundaries.locate(point.y, point.x) == (code, True)
    outside = route_text("", "v2025:96", (21.0285, 105.8542), boundaries)  # Hà Nội, Cà Mau OA
    assert not outside.auto and outside.reason == "gps_other_province"
