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
from collections import Counter, defaultdict
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
    "Huế": 46,  # the one one-word province: "p. Thủy Xuân, Huế"
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
    # Names longer than a prefix: "an nhon" → [("bac",), ("dong",), …], so "phường An Nhơn
    # Bắg" is read as a slip on "An Nhơn Bắc", not as Phường An Nhơn.
    continuations: dict[str, list[tuple[str, ...]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # One-deletion variants of every ward name → the names (built on the first typo): a
    # typo one or two slips from a name shares a variant with it (SymSpell's idea), so a
    # suggestion costs a few lookups, not a distance to every name of the province.
    _near: dict[str, list[str]] | None = None

    def add(self, place: Place) -> None:
        self.index[place.key].append(place)
        words = place.key.split(" ")
        self.max_words = max(self.max_words, len(words))
        if place.kind is Kind.WARD:
            for cut in range(1, len(words)):
                rest = tuple(words[cut:])
                prefix = " ".join(words[:cut])
                if rest not in self.continuations[prefix]:
                    self.continuations[prefix].append(rest)

    def lookup(self, key: str) -> list[Place]:
        return self.index.get(key, [])

    def near(self, written: str) -> set[str]:
        """Ward names sharing a one-deletion variant with ``written`` (check the distance)."""
        if self._near is None:
            near: dict[str, list[str]] = defaultdict(list)
            for key, places in self.index.items():
                if any(p.kind is Kind.WARD for p in places):
                    for variant in deletions(key):
                        near[variant].append(key)
            self._near = dict(near)
        return {key for variant in deletions(written) for key in self._near.get(variant, ())}

    def name_of(self, ns_code: str) -> str | None:
        """A readable name for an official code: "Xã Lương Thế Trân, Tỉnh Cà Mau"."""
        era, _, number = ns_code.partition(":")
        if not number.isdigit():
            return None
        code = int(number)
        found: tuple[object, ...] | None = None
        if era == NEW:
            found = self.provinces.get(code) if len(number) == 2 else self.wards.get(code)
        elif era == OLD:
            table = {2: self.old_provinces, 3: self.old_districts}.get(len(number), self.old_wards)
            found = table.get(code)
        if found is None:
            return None
        name = str(found[0])
        province = self.province_of(ns_code)
        if province is not None and len(number) > 2:
            name = f"{name}, {self.provinces[province][0]}"
        return name

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


def deletions(text: str) -> set[str]:
    """``text`` and every string one character shorter."""
    return {text} | {text[:i] + text[i + 1 :] for i in range(len(text))}


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


def _old_province_map(gaz: Gazetteer, new_ward_province: dict[int, int]) -> dict[int, int]:
    """Each pre-2025 province → the current province its wards went to.

    Not from the conversion table's province column: one mislabelled row there put old
    Tiền Giang (82) in Tây Ninh, and with it all 164 of its wards (issue 17). Each old ward's
    current province is that of the wards it became; each old district's is where most of its
    wards went, each old province's where most of its districts' wards went.
    """
    from vietnam_provinces.legacy import base as legacy

    district_votes: dict[int, Counter[int]] = defaultdict(Counter)
    for old_ward in legacy.Ward.iter_all():
        for target in gaz.old_to_new.get(old_ward.code.value, ()):
            district_votes[old_ward.district_code.value][new_ward_province[target]] += 1
    province_votes: dict[int, Counter[int]] = defaultdict(Counter)
    for district in legacy.District.iter_all():
        votes = district_votes.get(district.code.value)
        if votes:
            province_votes[district.province_code.value][votes.most_common(1)[0][0]] += 1
    return {code: votes.most_common(1)[0][0] for code, votes in province_votes.items()}


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

    new_ward_province = {ward.code.value: ward.province_code.value for ward in Ward.iter_all()}
    for old_code, entry in conversion.OLD_TO_NEW.items():
        gaz.old_to_new[old_code] = tuple(ref.code for ref in entry.new_wards)
    gaz.old_province_to_new.update(_old_province_map(gaz, new_ward_province))

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
