"""The place router: from a tip's text (and a shared point) to a current unit code.

Pure and database-free, so the CLI, the benchmark and the dispatch job share it. The
database side (which of these units exist here, who is on duty) is in ``routing.service``.

Method (research/geo.md §4): match 1–6-word folded n-grams against the place index; a type
word ("xã", "P.", "huyện") must come before one-word and numbered names; score each reading
by its type word, the OA's province (a prior, never a filter), a named province or old
district, a new rather than old name and diacritics; auto-route only when one reading is
unique and clearly ahead, never to another province on a weak match, never to a split ward.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from tipline.models import RouteReason
from tipline.routing.geo import Boundaries
from tipline.routing.normalise import Token, has_diacritics, signature, tokens
from tipline.routing.places import (
    KIND_TYPES,
    NEW,
    TYPE_SPELLING,
    TYPE_WORDS,
    Gazetteer,
    Kind,
    Place,
    gazetteer,
)

# Scores (points; see the module docstring). A clear lead is MARGIN points over the best
# reading that names a different unit.
TYPED = 2.0
EXACT_TYPE = 0.5
OA_PROVINCE = 1.5
NAMED_PROVINCE = 2.0
NAMED_DISTRICT = 2.5
NEW_NAME = 0.3
ACCENT_MATCH = 0.7
ACCENT_MISMATCH = -0.7
MARGIN = 1.5
MAX_CANDIDATES = 8
# Words after which a name is a street, a hamlet, a market or a person, not a commune.
NOT_A_COMMUNE_BEFORE = frozenset(
    {
        "duong",
        "pho",
        "hem",
        "ngo",
        "kiet",
        "ap",
        "thon",
        "to",
        "khu",
        "xom",
        "lang",
        "cho",
        "truong",
        "cau",
        "song",
        "ben",
        "so",
        "ong",
        "ba",
        "anh",
        "chi",
        "em",
        "ten",
        "ban",
        "co",
        "chu",
    }
)


_TWO_WORD_TYPES = frozenset(t for t in TYPE_WORDS if " " in t)


@dataclass(frozen=True)
class Scored:
    """One candidate unit (a namespaced code) with its score and the reasons for it."""

    code: str
    score: float
    reasons: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"unit": self.code, "score": round(self.score, 2), "reasons": list(self.reasons)}


@dataclass(frozen=True)
class PlaceDecision:
    """Where the text and point say the tip belongs.

    ``target`` is a namespaced code (``v2025:32134``, ``v2025:96``) or None for "the OA's own
    unit". ``reason`` is a fixed machine word (never tip text).
    """

    target: str | None
    confidence: float
    auto: bool
    needs_location: bool
    reason: RouteReason
    candidates: list[Scored] = field(default_factory=list)


@dataclass
class _Mention:
    start: int
    end: int
    type_word: str | None
    places: list[Place]

    @property
    def shadowed(self) -> bool:
        """Untyped and also the name of a district or province ("ở Cái Nước", "Sài Gòn").

        Read as the district or province, unless another mention names an old district
        that a namesake ward lies in ("Bắc Hà, quận Kiến An"): then it is that ward.
        """
        return self.type_word is None and any(p.kind is not Kind.WARD for p in self.places)


@dataclass
class _Evidence:
    place: Place
    score: float
    typed: bool
    backed: bool
    reasons: list[str]


def _type_before(toks: list[Token], start: int) -> str | None:
    """The type word just before ``start`` ("xã", "thị xã"), if there is one."""
    for width in (2, 1):
        if start - width < 0:
            continue
        words = toks[start - width : start]
        folded = " ".join(t.folded for t in words)
        if folded in TYPE_WORDS:
            original = " ".join(t.original for t in words)
            if has_diacritics(original) and original != TYPE_SPELLING[folded]:
                return None  # "xa" is "far", "xả" is "release": only "xã" names a commune
            return folded
    return None


def _mentions(gaz: Gazetteer, toks: list[Token]) -> list[_Mention]:
    folded = [t.folded for t in toks]
    found: list[_Mention] = []
    for start in range(len(toks)):
        type_word = _type_before(toks, start)
        longest = 1
        while (
            longest < min(gaz.max_words, len(toks) - start)
            and not toks[start + longest].after_break
            and " ".join(folded[start + longest : start + longest + 2]) not in _TWO_WORD_TYPES
        ):
            longest += 1
        for width in range(longest, 0, -1):
            key = " ".join(folded[start : start + width])
            places = gaz.lookup(key)
            if not places:
                continue
            if type_word is not None:
                places = [p for p in places if type_word in KIND_TYPES[p.kind]]
            else:
                if width < 2 and not any(p.era == "alias" for p in places):
                    continue  # one-word and numbered names need a type word
                if start > 0 and folded[start - 1] in NOT_A_COMMUNE_BEFORE:
                    continue
            if places:
                found.append(_Mention(start, start + width, type_word, places))
                break
    # Drop readings inside a longer one ("Tân Thành" inside "Tân Thành Tây").
    return [
        m
        for m in found
        if not any(
            o is not m
            and o.start <= m.start
            and m.end <= o.end
            and (o.end - o.start) > (m.end - m.start)
            for o in found
        )
    ]


def _accent(toks: list[Token], mention: _Mention, place: Place) -> float:
    written = [t.original for t in toks[mention.start : mention.end]]
    if not any(has_diacritics(word) for word in written):
        return 0.0
    if tuple(signature(word) for word in written) == place.spelling:
        return ACCENT_MATCH
    return ACCENT_MISMATCH


def _province_of_oa(gaz: Gazetteer, oa_code: str | None) -> tuple[int | None, int | None]:
    """(province, ward) of the OA's unit when its code is an official one."""
    if not oa_code:
        return None, None
    province = gaz.province_of(oa_code)
    era, _, number = oa_code.partition(":")
    ward = int(number) if era == NEW and len(number) == 5 and number.isdigit() else None
    return province, ward


def route_text(
    text: str,
    oa_code: str | None = None,
    point: tuple[float, float] | None = None,
    boundaries: Boundaries | None = None,
    gaz: Gazetteer | None = None,
) -> PlaceDecision:
    """Decide where a tip belongs from its text, the OA's unit code and a shared point."""
    gaz = gaz or gazetteer()
    oa_province, oa_ward = _province_of_oa(gaz, oa_code)
    if point is not None:
        return _route_point(gaz, point, boundaries, oa_province)
    return _route_words(gaz, tokens(text), oa_province, oa_ward)


def _route_point(
    gaz: Gazetteer,
    point: tuple[float, float],
    boundaries: Boundaries | None,
    oa_province: int | None,
) -> PlaceDecision:
    lat, lon = point
    found = boundaries.locate(lat, lon) if boundaries is not None else None
    if found is None:
        if oa_province is None:
            return PlaceDecision(None, 0.5, True, False, RouteReason.GPS_PROVINCE)
        code = f"{NEW}:{oa_province:02d}"
        reason = "vị trí chia sẻ không thuộc ranh giới xã/phường nào: về công an tỉnh"
        return PlaceDecision(
            code, 0.6, True, False, RouteReason.GPS_PROVINCE, [Scored(code, 1.0, (reason,))]
        )
    ward, inside = found
    name, _, province = gaz.wards.get(ward, (f"{ward:05d}", "", -1))
    code = f"{NEW}:{ward:05d}"
    how = "nằm trong" if inside else "cách chưa tới 1 km"
    candidate = Scored(code, 10.0, (f"vị trí chia sẻ {how} ranh giới {name}",))
    if oa_province is not None and province != oa_province:
        # A point in another province: show it, let an officer decide (research/geo.md §4).
        return PlaceDecision(None, 0.5, False, False, RouteReason.GPS_OTHER_PROVINCE, [candidate])
    return PlaceDecision(
        code,
        0.99 if inside else 0.9,
        True,
        False,
        RouteReason.GPS if inside else RouteReason.GPS_NEAREST,
        [candidate],
    )


def _route_words(
    gaz: Gazetteer, toks: list[Token], oa_province: int | None, oa_ward: int | None
) -> PlaceDecision:
    mentions = _mentions(gaz, toks)
    for mention in mentions:
        if mention.shadowed:
            others = {
                p.code
                for m in mentions
                if m is not mention
                for p in m.places
                if p.kind is Kind.DISTRICT
            }
            wards = [p for p in mention.places if p.kind is Kind.WARD and p.districts & others]
            mention.places = wards or [p for p in mention.places if p.kind is not Kind.WARD]
    named_provinces: set[int] = set()
    named_districts: set[int] = set()
    district_places: list[Place] = []
    province_places: list[Place] = []
    for mention in mentions:
        for place in mention.places:
            if place.kind is Kind.PROVINCE:
                named_provinces.add(place.province)
                province_places.append(place)
            elif place.kind is Kind.DISTRICT:
                named_districts.add(place.code)
                district_places.append(place)

    evidence: list[_Evidence] = []
    for mention in mentions:
        for place in mention.places:
            if place.kind is not Kind.WARD:
                continue
            typed = mention.type_word is not None
            score = 1.0
            reasons = [f"khớp tên {'cũ' if place.era != NEW else 'mới'}: {_describe(place)}"]
            if typed:
                score += TYPED
                if mention.type_word == place.type_word:
                    score += EXACT_TYPE
            backed = False
            if oa_province is not None and place.province == oa_province:
                score += OA_PROVINCE
                backed = True
                reasons.append("cùng tỉnh với OA nhận tin")
            if place.province in named_provinces:
                score += NAMED_PROVINCE
                backed = True
                reasons.append("tin nhắn nêu tên tỉnh/thành phố")
            if place.districts & named_districts:
                score += NAMED_DISTRICT
                backed = True
                reasons.append("tin nhắn nêu tên quận/huyện cũ")
            if place.era == NEW:
                score += NEW_NAME
            accent = _accent(toks, mention, place)
            if accent:
                score += accent
                reasons.append("dấu khớp" if accent > 0 else "dấu không khớp")
            if place.split:
                reasons.append(f"đơn vị cũ đã tách thành {len(place.targets)} xã/phường mới")
            evidence.append(_Evidence(place, score, typed, backed, reasons))

    if not evidence:
        return _route_context(gaz, district_places, province_places, oa_province, oa_ward)

    named = (named_provinces, named_districts)
    evidence.sort(key=lambda e: -e.score)
    top = evidence[0]
    top_targets = set(top.place.targets)
    rivals = [
        e
        for e in evidence[1:]
        if set(e.place.targets) != top_targets and _can_compete(e, top, oa_province, named)
    ]
    runner_up = rivals[0].score if rivals else 0.0
    margin = top.score - runner_up
    candidates = _candidates(gaz, evidence)
    target_code = f"{NEW}:{top.place.targets[0]:05d}"
    other_province = oa_province is not None and top.place.province != oa_province
    explicit = top.place.province in named_provinces or bool(top.place.districts & named_districts)

    if top.place.split:
        return PlaceDecision(None, 0.3, False, True, RouteReason.SPLIT, candidates)
    if rivals and margin < MARGIN:
        return PlaceDecision(
            None, round(0.3 + 0.1 * margin, 2), False, True, RouteReason.TIE, candidates
        )
    if not (top.typed or top.backed):
        return PlaceDecision(None, 0.3, False, True, RouteReason.WEAK, candidates)
    if other_province and not (top.typed and explicit):
        return PlaceDecision(None, 0.4, False, True, RouteReason.OTHER_PROVINCE, candidates)
    confidence = round(min(0.99, 0.6 + 0.08 * min(margin, 5.0)), 2)
    return PlaceDecision(target_code, confidence, True, False, RouteReason.TEXT, candidates)


def _can_compete(
    rival: _Evidence,
    top: _Evidence,
    oa_province: int | None,
    named: tuple[set[int], set[int]],
) -> bool:
    """Whether ``rival`` makes ``top`` uncertain.

    A reading in another province than the OA's, with nothing in the text pointing there,
    could never be auto-routed itself; when the top reading is in the OA's province, the
    informant who wrote to the local OA most likely means the local place.
    """
    if oa_province is None or top.place.province != oa_province:
        return True
    if rival.place.province == oa_province:
        return True
    provinces, districts = named
    return rival.place.province in provinces or bool(rival.place.districts & districts)


def _route_context(
    gaz: Gazetteer,
    districts: list[Place],
    provinces: list[Place],
    oa_province: int | None,
    oa_ward: int | None,
) -> PlaceDecision:
    """No commune named: an old district or a province only, or no place at all."""
    if districts:
        targets: dict[int, list[str]] = defaultdict(list)
        for place in districts:
            for ward in place.targets:
                targets[ward].append(f"thuộc {place.name} cũ ({gaz.provinces[place.province][0]})")
        candidates = [
            Scored(f"{NEW}:{ward:05d}", 1.0, tuple(reasons))
            for ward, reasons in sorted(targets.items())
        ][:MAX_CANDIDATES]
        # An old district maps to several communes: the tip stays with the OA's unit (which
        # may well be one of them: then no need to ask where), for an officer to place.
        inside = oa_ward is not None and oa_ward in targets
        return PlaceDecision(
            None, 0.5 if inside else 0.3, False, not inside, RouteReason.DISTRICT_ONLY, candidates
        )
    if provinces:
        codes = {p.province for p in provinces}
        candidates = [
            Scored(f"{NEW}:{code:02d}", 1.0, (f"nêu tên {gaz.provinces[code][0]}",))
            for code in sorted(codes)
        ]
        # Only a province: the tip stays with the OA's unit; ask where unless the OA is a
        # commune of that very province.
        inside = oa_ward is not None and codes == {oa_province}
        return PlaceDecision(
            None, 0.5 if inside else 0.3, False, not inside, RouteReason.PROVINCE_ONLY, candidates
        )
    return PlaceDecision(None, 0.5, oa_ward is not None, oa_ward is None, RouteReason.NO_PLACE)


def _describe(place: Place) -> str:
    if place.era == NEW or place.kind is not Kind.WARD:
        return place.name
    return f"{place.name}, {place.district_name}"


def _candidates(gaz: Gazetteer, evidence: list[_Evidence]) -> list[Scored]:
    """The best score and its reasons per current unit, best first."""
    best: dict[int, tuple[float, list[str]]] = {}
    for item in evidence:
        for ward in item.place.targets:
            current = best.get(ward)
            if current is None or item.score > current[0]:
                name = gaz.wards.get(ward, ("?", "", 0))[0]
                reasons = [*item.reasons]
                if item.place.era != NEW:
                    reasons.append(f"nay là {name}")
                best[ward] = (item.score, reasons)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:MAX_CANDIDATES]
    return [Scored(f"{NEW}:{ward:05d}", score, tuple(reasons)) for ward, (score, reasons) in ranked]
