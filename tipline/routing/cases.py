"""A generated evaluation set: tips naming real places, drawn from the conversion table.

Used by the tests (precision of auto-routed decisions ≥ 99 %) and by the benchmark. Each case
names a pre-2025 ward (with or without its old district, the province sometimes) or a
current one, written the ways informants write: full type words or abbreviations, with or
without diacritics, inside a sentence. The expected answer is the conversion table's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from tipline.routing.normalise import fold
from tipline.routing.places import NEW, Gazetteer, gazetteer, split_type
from tipline.routing.router import PlaceDecision, route_text

_OPENINGS = (
    "Có người bán ma túy ở {place}",
    "tối nay có sới bạc tại {place}",
    "Báo tin: trộm xe máy ở {place}, mong công an xử lý",
    "{place} có nhóm thanh niên tụ tập đua xe",
    "nhà em ở {place}, có người cho vay nặng lãi",
)
_ABBREVIATIONS = {
    "xa": ("xã", "X.", "x"),
    "phuong": ("phường", "P.", "P"),
    "thi tran": ("thị trấn", "TT", "TT."),
    "huyen": ("huyện", "H.", "huyện"),
    "quan": ("quận", "Q.", "Q"),
    "thi xa": ("thị xã", "TX", "TX."),
    "thanh pho": ("thành phố", "TP", "TP."),
    "dac khu": ("đặc khu", "đặc khu", "đặc khu"),
    "tinh": ("tỉnh", "tỉnh", "T."),
}


@dataclass(frozen=True)
class Case:
    text: str
    oa: str
    expected: tuple[str, ...]  # the current units the place became (several: a split ward)

    @property
    def split(self) -> bool:
        return len(self.expected) > 1


def _written(rng: random.Random, name: str, accents: bool) -> str:
    type_word, short = split_type(name)
    if rng.random() < 0.1 and " " in short and not short.split()[-1].isdigit():
        return short if accents else fold(short)  # no type word: "ở Lương Thế Trân"
    typed = rng.choice(_ABBREVIATIONS.get(type_word, (type_word,)))
    glue = "" if typed.endswith(".") and rng.random() < 0.5 else " "
    text = f"{typed}{glue}{short}"
    return text if accents else fold(text)


def generate(n: int = 2400, seed: int = 2025, gaz: Gazetteer | None = None) -> list[Case]:
    """``n`` cases: about two thirds old names, one third current names."""
    gaz = gaz or gazetteer()
    rng = random.Random(seed)  # noqa: S311 - a reproducible test set, not a secret  # nosec B311
    old_codes = sorted(gaz.old_wards)
    new_codes = sorted(gaz.wards)
    wards_by_province: dict[int, list[int]] = {}
    for code, (_, _, province) in gaz.wards.items():
        wards_by_province.setdefault(province, []).append(code)
    cases: list[Case] = []
    while len(cases) < n:
        accents = rng.random() < 0.5
        if rng.random() < 0.67:
            code = rng.choice(old_codes)
            name, _, province = gaz.old_wards[code]
            place = _written(rng, name, accents)
            district = next(
                p for p in gaz.lookup(_key_of(gaz, code)) if p.code == code and p.era != NEW
            ).district_name
            if rng.random() < 0.6:
                place += ", " + _written(rng, district, accents)
            expected = tuple(f"{NEW}:{t:05d}" for t in gaz.old_to_new[code])
        else:
            code = rng.choice(new_codes)
            name, _, province = gaz.wards[code]
            place = _written(rng, name, accents)
            expected = (f"{NEW}:{code:05d}",)
        if rng.random() < 0.2:
            province_name = gaz.provinces[province][0]
            place += ", " + (province_name if accents else fold(province_name))
        # The OA: the province's unit or one of its communes (the usual case).
        if rng.random() < 0.5:
            oa = f"{NEW}:{province:02d}"
        else:
            oa = f"{NEW}:{rng.choice(wards_by_province[province]):05d}"
        text = rng.choice(_OPENINGS).format(place=place)
        cases.append(Case(text if accents else fold(text), oa, expected))
    return cases


def _key_of(gaz: Gazetteer, old_code: int) -> str:
    from tipline.routing.normalise import name_words

    return " ".join(name_words(split_type(gaz.old_wards[old_code][0])[1]))


@dataclass(frozen=True)
class Score:
    cases: int
    auto: int
    auto_correct: int
    split_cases: int
    split_auto: int

    @property
    def precision(self) -> float:
        return self.auto_correct / self.auto if self.auto else 1.0

    @property
    def auto_share(self) -> float:
        return self.auto / self.cases if self.cases else 0.0


def decisions(cases: list[Case]) -> Iterator[tuple[Case, PlaceDecision]]:
    for case in cases:
        yield case, route_text(case.text, case.oa)


def evaluate(cases: list[Case]) -> tuple[Score, list[tuple[Case, PlaceDecision]]]:
    """Precision of auto-routed decisions, their share, and the wrong auto-routes."""
    auto = correct = split_auto = 0
    wrong: list[tuple[Case, PlaceDecision]] = []
    for case, decision in decisions(cases):
        if not decision.auto:
            continue
        auto += 1
        split_auto += case.split
        if decision.target in case.expected or (
            decision.target is None and case.oa in case.expected
        ):
            correct += 1
        else:
            wrong.append((case, decision))
    splits = sum(case.split for case in cases)
    return Score(len(cases), auto, correct, splits, split_auto), wrong
