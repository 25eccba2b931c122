"""The place index: current and pre-2025 communes, districts, provinces and aliases.

Built once per process (lazily, cached) from `vietnam-provinces` (research/geo.md §1.1): its
official codes, the current structure (34 provinces, 3,321 communes), the pre-2025 one
(63 / 696 / 10,051) and the official old→new ward conversion table. Keys are folded short
names (type word stripped); each entry keeps its spelling with diacritics for tie-breaks.

Codes are namespaced because the same number meant different places before and after the
reform (code 32134 was Xã Phú Hưng and is now Xã Lương Thế Trân): ``v2025:32134``,
``v2024:32134``.
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from tipline.routing.normalise import name_words, original_words, signature

NEW = "v2025"
OLD = "v2024"


class Kind(StrEnum):
    WARD = "ward"
    DISTRICT = "district"
    PROVINCE = "province"


# Folded type words, grouped by the level they name. "thành phố" names a province (Hà Nội)
# or a former district-level city (TP Bắc Giang).
WARD_TYPES = frozenset({"xa", "phuong", "thi tran", "dac khu"})
DISTRICT_TYPES = frozenset({"huyen", "quan", "thi xa", "thanh pho"})
PROVINCE_TYPES = frozenset({"tinh", "thanh pho"})
TYPE_WORDS = WARD_TYPES | DISTRICT_TYPES | PROVINCE_TYPES
# How each type word is spelt with diacritics: "xả" or "xa" (far) after a word is not "xã".
TYPE_SPELLING = {
    "xa": "xã",
    "phuong": "phường",
    "thi tran": "thị trấn",
    "dac khu": "đặc khu",
    "huyen": "huyện",
    "quan": "quận",
    "thi xa": "thị xã",
    "thanh pho": "thành phố",
    "tinh": "tỉnh",
}
KIND_TYPES = {Kind.WARD: WARD_TYPES, Kind.DISTRICT: DISTRICT_TYPES, Kind.PROVINCE: PROVINCE_TYPES}

_PREFIXES = (
    ("thành phố trung ương", "thanh pho"),
    ("thành phố", "thanh pho"),
    ("thị xã", "thi xa"),
    ("thị trấn", "thi tran"),
    ("đặc khu", "dac khu"),
    ("huyện", "huyen"),
    ("quận", "quan"),
    ("phường", "phuong"),
    ("xã", "xa"),
    ("tỉnh", "tinh"),
)

# Common names for provinces that are not their official short names (the list).
PROVINCE_ALIASES: dict[str, int] = {
    "Sài Gòn": 79,
    "Thành phố Hồ Chí Minh": 79,  # "TPHCM", "TP HCM", "HCM" expand to this (normalise.py)
    "Đắc Lắc": 66,
    "Daklak": 66,
    "Thừa Thiên - Huế": 46,
}


@dataclass(frozen=True, slots=True)
class Place:
    """One named unit: a match candidate and what it means after the reform."""

    kind: Kind
    era: str  # NEW, OLD, or "alias"
    code: int
    name: str  # full official name, with its type word
    type_word: str  # folded ("xa", "thanh pho")
    key: str  # folded short name: the index key
    spelling: tuple[str, ...]  # signatures of the short name's words, for tie-breaks
    province: int  # the current (2025) province code it lies in
    # Current wards this place became (wards: the conversion table; districts: all their
    # wards' targets). More than one for a ward means the old ward was split.
    targets: tuple[int, ...] = ()
    # Pre-2025 districts the place lay in (for wards, new and old): "huyện Cái Nước" settles
    # which of several "Phú Hưng" the informant means.
    districts: frozenset[int] = frozenset()
    old_province: int | None = None
    district_name: str = ""

    @property
    def ns_code(self) -> str:
        if self.kind is Kind.WARD:
            return f"{self.era if self.era != 'alias' else NEW}:{self.code:05d}"
        if self.kind is Kind.DISTRICT:
            return f"{OLD}:{self.code:03d}"
        return f"{self.era if self.era != 'alias' else NEW}:{self.code:02d}"

    @property
    def split(self) -> bool:
        return self.kind is Kind.WARD and len(self.targets) > 1


@dataclass
class Gazetteer:
    """The index and the facts the router and the importer need about current units."""

    index: dict[str, list[Place]] = field(default_factory=lambda: defaultdict(list))
    max_words: int = 1
    # Current units: code → (name, division type word, province code).
    wards: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    provinces: dict[int, tuple[str, str]] = field(default_factory=dict)
    old_provinces: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    old_districts: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    old_wards: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    old_province_to_new: dict[int, int] = field(default_factory=dict)
    # Pre-2025 ward → current wards (the official conversion table).
    old_to_new: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def add(self, place: Place) -> None:
        self.index[place.key].append(place)
        self.max_words = max(self.max_words, place.key.count(" ") + 1)

    def lookup(self, key: str) -> list[Place]:
        return self.index.get(key, [])

    def province_of(self, ns_code: str) -> int | None:
        """The current province a namespaced unit code lies in, if the code is official."""
        era, _, number = ns_code.partition(":")
        if not number.isdigit():
            return None
        code = int(number)
        if era == NEW:
            if len(number) == 2:
                return code if code in self.provinces else None
            ward = self.wards.get(code)
            return ward[2] if ward else None
        if era == OLD:
            if len(number) == 2:
                return self.old_province_to_new.get(code)
            if len(number) == 3:
                district = self.old_districts.get(code)
                return district[2] if district else None
            old_ward = self.old_wards.get(code)
            return old_ward[2] if old_ward else None
        return None


def split_type(name: str) -> tuple[str, str]:
    """("Xã Lương Thế Trân") → ("xa", "Lương Thế Trân")."""
    lower = name.lower()
    for prefix, folded in _PREFIXES:
        if lower.startswith(prefix + " "):
            return folded, name[len(prefix) + 1 :].strip()
    return "", name.strip()


def _place(
    kind: Kind,
    era: str,
    code: int,
    name: str,
    province: int,
    **extra: object,
) -> Place:
    type_word, short = split_type(name)
    return Place(
        kind=kind,
        era=era,
        code=code,
        name=name,
        type_word=type_word,
        key=" ".join(name_words(short)),
        spelling=tuple(signature(word) for word in original_words(short)),
        province=province,
        **extra,  # type: ignore[arg-type]
    )


_building = threading.Lock()


def gazetteer() -> Gazetteer:
    """The index, built once per process; a caller that comes while another thread builds it
    (the worker builds it when it starts) waits for that build instead of making a second."""
    with _building:
        return _gazetteer()


@functools.cache
def _gazetteer() -> Gazetteer:
    """Build the index once per process (about 0.5 s; research/geo.md §1.1)."""
    from vietnam_provinces import Province, Ward
    from vietnam_provinces import _ward_conversion_2025 as conversion
    from vietnam_provinces.legacy import base as legacy

    gaz = Gazetteer()
    for new_province in Province.iter_all():
        code = new_province.code.value
        type_word, _ = split_type(new_province.name)
        gaz.provinces[code] = (new_province.name, type_word)
        gaz.add(_place(Kind.PROVINCE, NEW, code, new_province.name, code))

    for old_code, entry in conversion.OLD_TO_NEW.items():
        gaz.old_to_new[old_code] = tuple(ref.code for ref in entry.new_wards)
        gaz.old_province_to_new.setdefault(
            entry.old_ward.province_code, entry.new_wards[0].province_code
        )

    for old_province in legacy.Province.iter_all():
        code = old_province.code.value
        new = gaz.old_province_to_new.get(code)
        if new is None:
            continue
        gaz.old_provinces[code] = (old_province.name, split_type(old_province.name)[0], new)
        gaz.add(_place(Kind.PROVINCE, OLD, code, old_province.name, new, old_province=code))

    district_targets: dict[int, set[int]] = defaultdict(set)
    new_ward_districts: dict[int, set[int]] = defaultdict(set)
    old_wards = list(legacy.Ward.iter_all())
    for old_ward in old_wards:
        targets = gaz.old_to_new.get(old_ward.code.value, ())
        district_targets[old_ward.district_code.value].update(targets)
        for target in targets:
            new_ward_districts[target].add(old_ward.district_code.value)

    for district in legacy.District.iter_all():
        code = district.code.value
        new = gaz.old_province_to_new.get(district.province_code.value)
        if new is None:
            continue
        gaz.old_districts[code] = (district.name, split_type(district.name)[0], new)
        gaz.add(
            _place(
                Kind.DISTRICT,
                OLD,
                code,
                district.name,
                new,
                targets=tuple(sorted(district_targets[code])),
                districts=frozenset({code}),
            )
        )

    for old_ward in old_wards:
        code = old_ward.code.value
        old_targets = gaz.old_to_new.get(code)
        if not old_targets:
            continue  # 18 wards the conversion table does not cover (islands, dissolved)
        district_code = old_ward.district_code.value
        old_ward_province = gaz.old_districts[district_code][2]
        gaz.old_wards[code] = (old_ward.name, split_type(old_ward.name)[0], old_ward_province)
        gaz.add(
            _place(
                Kind.WARD,
                OLD,
                code,
                old_ward.name,
                old_ward_province,
                targets=old_targets,
                districts=frozenset({district_code}),
                district_name=gaz.old_districts[district_code][0],
            )
        )

    for ward in Ward.iter_all():
        code = ward.code.value
        ward_province = ward.province_code.value
        gaz.wards[code] = (ward.name, split_type(ward.name)[0], ward_province)
        gaz.add(
            _place(
                Kind.WARD,
                NEW,
                code,
                ward.name,
                ward_province,
                targets=(code,),
                districts=frozenset(new_ward_districts[code]),
            )
        )

    for alias, code in PROVINCE_ALIASES.items():
        name = gaz.provinces[code][0]
        place = _place(Kind.PROVINCE, "alias", code, name, code)
        words = name_words(alias)
        gaz.add(
            Place(
                kind=place.kind,
                era="alias",
                code=code,
                name=name,
                type_word=place.type_word,
                key=" ".join(words),
                spelling=tuple(signature(word) for word in original_words(alias)),
                province=code,
            )
        )
    return gaz
