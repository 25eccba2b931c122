"""The place router: from a tip's text (and a shared point) to a current unit code.

Pure and database-free, so the CLI, the benchmark and the dispatch job share it. The
database side (which of these units exist here, who is on duty) is in ``routing.service``.

Method (research/geo.md §4): match 1–6-word folded n-grams against the place index; a type
word ("xã", "P.", "huyện") must come before one-word and numbered names; score each reading
by its type word, the OA's province (a prior, never a filter), a named province or old
district, a new rather than old name and diacritics; auto-route only when one reading is
unique and clearly ahead, never to another province on a weak match, never to a split ward.

Issue 17 (informants' words, docs/routing.md): a match must stand on its own — typed, or
written as a name (capitalised, exact diacritics, not part of a longer proper name), or
backed by a named old district; the OA's province alone never makes one. Provinces written
as provinces stay provinces; plates and phone numbers are removed first; names after
hamlet, street, landmark, shop and person words, or after a house number, are not communes;
typos are offered as suggestions, never routed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace

from tipline.models import RouteReason
from tipline.routing.geo import Boundaries
from tipline.routing.normalise import Token, fold, has_diacritics, signature, tokens
from tipline.routing.places import (
    KIND_TYPES,
    NEW,
    TYPE_SPELLING,
    TYPE_WORDS,
    WARD_TYPES,
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
# Words after which a name is not a commune (issue 17): hamlets and other places below the
# commune, streets, schools, markets, hospitals, temples, bridges, wharves, shops and
# businesses, and people ("anh Quang Trung", "bác Gia Thuận"). The last word before the name
# is looked up. A word given with spellings blocks only when written so or without any
# diacritics: "quán Phú Quý" (a bar) but not "quận Phú Nhuận" (a type word, read first),
# "chùa Hương" but not "chứa", "cô Mai" but not "có".
_ANY = ""
_BLOCKING_WORDS: tuple[tuple[str, str], ...] = (
    # below the commune
    ("ấp", _ANY),
    ("thôn", _ANY),
    ("xóm", _ANY),
    ("khóm", _ANY),
    ("kp", _ANY),
    ("khu", _ANY),
    ("phố", "phố"),
    ("tổ", "tổ"),
    ("buôn", _ANY),
    ("bản", "bản"),
    ("làng", _ANY),
    ("sóc", "sóc"),
    ("đội", "đội"),
    ("cụm", _ANY),
    ("trại", "trại"),
    ("plei", _ANY),
    ("bon", "bon"),
    ("giáp", "giáp"),
    ("xứ", "xứ"),
    # streets
    ("đường", "đường"),
    ("hẻm", _ANY),
    ("ngõ", "ngõ"),
    ("ngách", _ANY),
    ("kiệt", _ANY),
    ("lộ", "lộ"),
    ("dốc", "dốc"),
    ("ngã", "ngã"),
    ("tư", "tư"),
    ("cư", "cư"),
    ("thị", "thị"),  # khu đô thị
    # schools, markets, hospitals, worship, landmarks
    ("chợ", "chợ"),
    ("trường", _ANY),
    ("thpt", _ANY),
    ("thcs", _ANY),
    ("học", "học"),
    ("non", "non"),
    ("giáo", "giáo"),
    ("đẳng", _ANY),
    ("viện", "viện"),
    ("xá", "xá"),
    ("tế", "tế"),
    ("chùa", "chùa"),
    ("thờ", "thờ"),
    ("đình", "đình"),
    ("đền", "đền"),
    ("miếu", _ANY),
    ("thất", "thất"),
    ("cầu", "cầu"),
    ("bến", "bến"),
    ("đò", "đò"),
    ("phà", "phà"),
    ("cảng", "cảng"),
    ("ga", "ga"),
    ("sân", "sân"),
    ("bóng", "bóng"),
    ("động", "động"),
    ("viên", "viên"),
    ("bãi", "bãi"),
    ("sông", "sông"),
    ("kênh", "kênh"),
    ("rạch", "rạch"),
    ("suối", "suối"),
    ("đập", "đập"),
    ("hồ", "hồ"),
    ("núi", "núi"),
    ("đèo", "đèo"),
    ("cồn", "cồn"),
    ("đảo", "đảo"),
    ("xe", "xe"),
    # shops and businesses
    ("quán", "quán"),
    ("tiệm", _ANY),
    ("karaoke", _ANY),
    ("nhậu", "nhậu"),
    ("phê", "phê"),
    ("cafe", _ANY),
    ("cf", _ANY),
    ("net", _ANY),
    ("game", _ANY),
    ("vàng", "vàng"),
    ("nghỉ", "nghỉ"),
    ("sạn", "sạn"),
    ("ty", "ty"),
    ("xăng", "xăng"),
    ("nghiệp", "nghiệp"),
    ("massage", _ANY),
    ("spa", _ANY),
    ("shop", _ANY),
    ("hàng", "hàng"),
    ("xưởng", _ANY),
    ("kho", "kho"),
    ("trạm", _ANY),
    ("lò", "lò"),
    ("hiệu", "hiệu"),
    ("hóa", "hóa hoá"),
    ("tnhh", _ANY),
    ("htx", _ANY),
    ("dntn", _ANY),
    ("cầm", "cầm"),  # cầm đồ
    ("đồ", "đồ"),
    ("phần", "phần"),  # cổ phần
    # people
    ("anh", "anh"),
    ("chị", "chị"),
    ("em", "em"),
    ("ông", "ông"),
    ("bà", "bà"),
    ("cô", "cô"),
    ("chú", "chú"),
    ("bác", "bác"),
    ("dì", "dì"),
    ("cậu", "cậu"),
    ("mợ", "mợ"),
    ("thím", _ANY),
    ("thằng", _ANY),
    ("con", "con"),
    ("tên", "tên"),
    ("cháu", "cháu"),
    ("lão", "lão"),
    ("gã", "gã"),
    ("bạn", "bạn"),
    ("đứa", "đứa"),
    ("tượng", "tượng"),
    ("vợ", "vợ"),
    ("chồng", _ANY),
    ("mẹ", "mẹ"),
    ("bố", "bố"),
    ("sư", "sư"),
    ("thầy", "thầy"),
    ("cha", "cha"),
    ("số", "số"),
    ("họ", "họ"),
)


def _blocking(words: tuple[tuple[str, str], ...]) -> dict[str, frozenset[str]]:
    """Folded word → the spellings that block (empty: any spelling blocks)."""
    merged: dict[str, set[str] | None] = {}
    for word, spellings in words:
        key = fold(word)
        if not spellings or merged.get(key, set()) is None:
            merged[key] = None
        else:
            merged.setdefault(key, set()).update(spellings.split())  # type: ignore[union-attr]
    return {key: frozenset(value or ()) for key, value in merged.items()}


NOT_A_COMMUNE_BEFORE = _blocking(_BLOCKING_WORDS)


_TWO_WORD_TYPES = frozenset(t for t in TYPE_WORDS if " " in t)
# Family names (and middle names) that open a person's full name.
SURNAMES = frozenset(
    "nguyễn trần lê phạm hoàng huỳnh phan vũ võ đặng bùi đỗ hồ ngô dương lý đào đoàn vương "
    "trịnh trương lâm phùng mai tô cao lưu tạ quách lương la kiều văn thị".split()
)
# A Vietnamese syllable without diacritics: onset, one to three vowels, a coda.
_SYLLABLE = re.compile(
    r"^(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?[aeiouy]{1,3}(?:ch|ng|nh|[cmnpt])?$"
)
# First words of type words ("huyen", "thi", "dac"): never part of a name slip.
_TYPE_STARTS = frozenset(t.split()[0] for t in TYPE_WORDS)


@dataclass(frozen=True)
class Scored:
    """One candidate unit (a namespaced code) with its score and the reasons for it."""

    code: str
    score: float
    reasons: tuple[str, ...]
    words: str = ""  # the tip's words that matched (sealed with the decision, never logged)

    def as_json(self) -> dict[str, object]:
        return {
            "unit": self.code,
            "score": round(self.score, 2),
            "reasons": list(self.reasons),
            "words": self.words,
        }


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
    # Near misses on a typo ("xã Lương Thế Trâm"): offered to the officer, never routed to.
    suggestions: list[Scored] = field(default_factory=list)


@dataclass
class _Mention:
    start: int
    end: int
    type_word: str | None
    places: list[Place]
    # Typed, or written as a proper name (capitalised, diacritics exact): it may stand alone;
    # otherwise it needs a named province or old district (not just the OA's province).
    named: bool = True

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
    # Typed, written as a proper name, or backed by a named province or old district: the
    # OA's province alone never makes a match (issue 17).
    standing: bool = True
    words: str = ""
    start: int = -1  # where the mention begins in the tip


def _type_before(toks: list[Token], start: int) -> str | None:
    """The type word just before ``start`` ("xã", "thị xã"), if there is one.

    Not across punctuation: in "xã Bắc Đông Quan, Hưng Yên" the last word of the name is no
    "quận" for what follows the comma.
    """
    if start < len(toks) and toks[start].after_break:
        return None
    for width in (2, 1):
        if start - width < 0:
            continue
        words = toks[start - width : start]
        if any(t.after_break for t in words[1:]):
            continue  # "ấp Trường Thi, xã Tân Minh": no "thị xã" across the comma
        folded = " ".join(t.folded for t in words)
        if folded in TYPE_WORDS:
            original = " ".join(t.original for t in words)
            if has_diacritics(original) and original != TYPE_SPELLING[folded]:
                return None  # "xa" is "far", "xả" is "release": only "xã" names a commune
            before = " ".join(t.folded for t in toks[max(0, start - width - 2) : start - width])
            if folded == "xa" and before == "hop tac":
                return None  # hợp tác xã: a cooperative
            return folded
    return None


def _blocked(toks: list[Token], start: int) -> bool:
    """The word before ``start`` makes the name a hamlet, street, landmark, shop or person."""
    if start == 0 or toks[start].after_break:
        return False
    if start >= 3 and " ".join(t.folded for t in toks[start - 3 : start]) == "hop tac xa":
        return True  # hợp tác xã: a cooperative, not a commune
    before = toks[start - 1]
    if before.folded.isdigit() and _type_before(toks, start - 1) is None:
        return True  # "số 45 Trần Phú", "17 Nghĩa Đô": a house number, then its street
    spellings = NOT_A_COMMUNE_BEFORE.get(before.folded)
    if spellings is None:
        return False
    return (
        not spellings
        or not has_diacritics(before.original)
        or any(signature(before.original) == signature(word) for word in spellings)
    )


def _written_as_name(toks: list[Token], start: int, end: int, places: list[Place]) -> bool:
    """An untyped name stands on its own when written as one: capitalised, diacritics exact.

    "ở Lương Thế Trân" is a place; "mất an ninh trật tự", "bạo lực gia đình" and "Long An
    có" are everyday words that fold to commune names (An Ninh, Gia Định, An Cơ).
    """
    words = toks[start:end]
    if not all(t.capital for t in words):
        return False
    before = toks[start - 1] if start > 0 and not toks[start].after_break else None
    if before is not None and before.capital:
        # Part of a longer proper name ("Nguyễn Hoàng Long", "em bị Lê An Nhơn Tây đánh"),
        # unless the word before only opens the sentence ("Tại Lương Thế Trân…").
        opens = start == 1 or before.after_break
        if not opens or before.original in SURNAMES:
            return False
    spelled = tuple(signature(t.original) for t in words)
    return any(spelled == p.spelling for p in places)


def _longer_proper_name(gaz: Gazetteer, toks: list[Token], end: int) -> bool:
    """A capitalised word goes on after the name ("Hoàng Tân An"), and is no district or
    province ("Lương Thế Trân Cà Mau" is a name and its province)."""
    if end >= len(toks) or toks[end].after_break or not toks[end].capital:
        return False
    for width in (3, 2, 1):
        key = " ".join(t.folded for t in toks[end : end + width])
        if any(p.kind is not Kind.WARD for p in gaz.lookup(key)):
            return False
    return True


def _spelled_as_written(
    toks: list[Token], start: int, end: int, places: list[Place]
) -> list[Place]:
    """With diacritics written, the readings spelled so (if any): "Liên Hoa" is not Liên Hòa.

    A name written without any mark is not read as spelled so, even in a tip written with
    diacritics: informants often type names plain ("xã Vinh Quang" for Vĩnh Quang).
    """
    written = [t.original for t in toks[start:end]]
    if not any(has_diacritics(word) for word in written):
        return places
    spelled = tuple(signature(word) for word in written)
    return [p for p in places if p.spelling == spelled] or places


def _accent_conflict(toks: list[Token], start: int, end: int, places: list[Place]) -> bool:
    """Written with diacritics that no reading has: "chứa mại dâm" is not Mái Dầm."""
    written = [t.original for t in toks[start:end]]
    if not any(has_diacritics(word) for word in written):
        return False
    spelled = tuple(signature(word) for word in written)
    return not any(spelled == p.spelling for p in places)


def distance(a: str, b: str, limit: int = 2) -> int:
    """Edit distance with transpositions ("Boa" → "Bao" is one slip), capped at limit + 1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _tolerance(text: str) -> int:
    return 1 if len(text) <= 5 else 2


def _slip_on_longer(gaz: Gazetteer, toks: list[Token], key: str, end: int) -> bool:
    """The words after a name are a slip on a longer name that starts with it.

    "phường An Nhơn Bắg" is a typo for An Nhơn Bắc, "Phường 3 Boa Loc" for Phường 3 Bảo
    Lộc: neither is Phường An Nhơn or Phường 3. A typo is never routed (issue 17).
    """
    for rest in gaz.continuations.get(key, ()):
        following = toks[end : end + len(rest)]
        if len(following) < len(rest) or any(
            t.after_break or t.folded in _TYPE_STARTS for t in following
        ):
            continue
        written = " ".join(t.folded for t in following)
        wanted = " ".join(rest)
        if written == wanted:
            continue
        # Written as part of the name (capitalised), or no Vietnamese syllable at all ("quy
        # nhon bmc"): one or two slips. Plain words that follow a name ("p. Hoa Xuân hay bị…",
        # "xã Châu Quế nhưng…", "x Phú Mỹ nhưng…") are words: only one swapped or mistyped
        # letter, same length, on a longer word counts then ("phuong 3 boa loc").
        if all(t.capital for t in following) or not all(
            _SYLLABLE.match(t.folded) for t in following
        ):
            limit = _tolerance(wanted)
        else:
            limit = 1 if len(wanted) >= 4 and len(written) == len(wanted) else 0
        if limit and distance(written, wanted, limit) <= limit:
            return True
    return False


def _mentions(gaz: Gazetteer, toks: list[Token]) -> list[_Mention]:
    folded = [t.folded for t in toks]
    found: list[_Mention] = []
    blocked_until = 0
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
                if _slip_on_longer(gaz, toks, key, start + width):
                    break
                places = [p for p in places if type_word in KIND_TYPES[p.kind]]
                # "xã Tân Thành" is the xã when there is one, not the phường of that name.
                exact = [p for p in places if p.type_word == type_word]
                places = _spelled_as_written(toks, start, start + width, exact or places)
                named = True
            else:
                if width < 2 and not any(p.era == "alias" for p in places):
                    continue  # one-word and numbered names need a type word
                if start + width <= blocked_until:
                    break  # inside a blocked name: "bà Bắc Tiên Hưng" is no Tiên Hưng
                if _blocked(toks, start):
                    blocked_until = start + width
                    break
                if _accent_conflict(toks, start, start + width, places):
                    continue
                named = _written_as_name(toks, start, start + width, places)
                if named and _longer_proper_name(gaz, toks, start + width):
                    named = False
            if places:
                found.append(_Mention(start, start + width, type_word, places, named))
                break
    # Drop readings inside a longer one ("Tân Thành" inside "Tân Thành Tây").
    found = [
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

    # Of two readings that overlap ("Long An có": Long An, An Cơ; "công an Nông Cống": An
    # Nông, Nông Cống), a typed one stands, then one written as a name, then the earlier.
    def rank(m: _Mention) -> tuple[bool, bool]:
        return (m.type_word is not None, m.named)

    return [
        m
        for m in found
        if not any(
            o is not m
            and (o.start < m.end and m.start < o.end)
            and (rank(o) > rank(m) or (rank(o) == rank(m) and o.start < m.start))
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
    decision = _decide(gaz, toks, mentions, oa_province, oa_ward)
    if decision.auto and decision.target is not None:
        return decision
    suggestions = _suggest(gaz, toks, mentions, oa_province)
    return replace(decision, suggestions=suggestions) if suggestions else decision


MAX_SUGGESTIONS = 3


def _suggest(
    gaz: Gazetteer, toks: list[Token], mentions: list[_Mention], oa_province: int | None
) -> list[Scored]:
    """Communes whose names are one or two slips from the words after a type word.

    Only after "xã", "phường", "thị trấn", "đặc khu" where no name was found, and only in
    the OA's province and the provinces the text names: a suggestion for the officer, never
    a route (issue 17).
    """
    starts = {m.start for m in mentions}
    gaps = [
        i
        for i in range(1, len(toks))
        if i not in starts and _type_before(toks, i) in WARD_TYPES and not toks[i].after_break
    ]
    if not gaps:
        return []
    provinces = {p.province for m in mentions for p in m.places if p.kind is not Kind.WARD}
    districts = {p.code for m in mentions for p in m.places if p.kind is Kind.DISTRICT}
    if oa_province is not None:
        provinces.add(oa_province)
    if not provinces:
        provinces = set(gaz.provinces)
    found: dict[int, tuple[int, bool, str, str]] = {}
    for start in gaps:
        words: list[str] = []
        originals: list[str] = []
        for tok in toks[start : start + 4]:
            if (words and tok.after_break) or tok.folded in TYPE_WORDS:
                break
            words.append(tok.folded)
            originals.append(tok.original)
        for n in range(len(words), 0, -1):
            written = " ".join(words[:n])
            if written.replace(" ", "").isdigit() or len(written) < 3:
                continue
            limit = _tolerance(written)
            for key in gaz.near(written):
                d = distance(written, key, limit)
                if d > limit:
                    continue
                for place in gaz.lookup(key):
                    if place.kind is Kind.WARD and place.province in provinces:
                        elsewhere = not place.districts & districts  # a named district first
                        for ward in place.targets:
                            if ward not in found or (d, elsewhere) < found[ward][:2]:
                                quoted = " ".join(originals[:n])
                                found[ward] = (d, elsewhere, quoted, _describe(place))
    # An exact shorter name was passed over as a slip on a longer one: offered last.
    ranked = sorted(found.items(), key=lambda kv: (kv[1][0] == 0, kv[1][:2], kv[0]))
    ranked = ranked[:MAX_SUGGESTIONS]
    return [
        Scored(
            f"{NEW}:{ward:05d}",
            float(-d),
            (f"gần giống tên {described} (có thể gõ sai)", f"nay là {gaz.wards[ward][0]}"),
            written,
        )
        for ward, (d, _, written, described) in ranked
        if ward in gaz.wards
    ]


def _decide(
    gaz: Gazetteer,
    toks: list[Token],
    mentions: list[_Mention],
    oa_province: int | None,
    oa_ward: int | None,
) -> PlaceDecision:
    for mention in mentions:
        if mention.type_word is None and any(p.kind is Kind.PROVINCE for p in mention.places):
            # A province written as a province ("Tân Uyên, Bình Dương", "…, Bạc Liêu") stays
            # a province, not today's ward named after it; "phường Bình Dương" is the ward.
            mention.places = [p for p in mention.places if p.kind is Kind.PROVINCE]
    districts_named = {
        id(m): {p.code for p in m.places if p.kind is Kind.DISTRICT} for m in mentions
    }
    for mention in mentions:
        if mention.shadowed:
            others = {c for m in mentions if m is not mention for c in districts_named[id(m)]}
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
                reasons.append(f"có chữ “{TYPE_SPELLING[mention.type_word or '']}” đứng trước")
                if mention.type_word == place.type_word:
                    score += EXACT_TYPE
            elif mention.named:
                reasons.append("viết đúng tên riêng (viết hoa, đủ dấu)")
            backed = False
            if oa_province is not None and place.province == oa_province:
                score += OA_PROVINCE
                backed = True
                reasons.append("cùng tỉnh với OA nhận tin")
            independent = False
            if place.province in named_provinces:
                score += NAMED_PROVINCE
                backed = True
                # A province holds hundreds of names: it backs a name the informant typed
                # or wrote as a name, but does not make everyday words one ("…an Nông…,
                # Thanh Hóa"). An old district does.
                reasons.append("tin nhắn nêu tên tỉnh/thành phố")
            if place.districts & named_districts:
                score += NAMED_DISTRICT
                backed = independent = True
                reasons.append("tin nhắn nêu tên quận/huyện cũ")
            if place.era == NEW:
                score += NEW_NAME
            accent = _accent(toks, mention, place)
            if accent:
                score += accent
                reasons.append("dấu khớp" if accent > 0 else "dấu không khớp")
            if place.split:
                reasons.append(f"đơn vị cũ đã tách thành {len(place.targets)} xã/phường mới")
            words = " ".join(t.original for t in toks[mention.start : mention.end])
            evidence.append(
                _Evidence(
                    place,
                    score,
                    typed,
                    backed,
                    reasons,
                    mention.named or independent,
                    words,
                    mention.start,
                )
            )

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
    if top.typed and _another_commune_typed(mentions, top):
        # "thanh niên xã Tân Thành đánh nhau với thanh niên xã Tân Lập": two communes named
        # with their type words, wherever the second lies; an officer reads which one.
        return PlaceDecision(None, 0.3, False, True, RouteReason.TIE, candidates)
    if rivals and margin < MARGIN - 1e-9:
        return PlaceDecision(
            None, round(0.3 + 0.1 * margin, 2), False, True, RouteReason.TIE, candidates
        )
    if not (top.standing and (top.typed or top.backed)):
        return PlaceDecision(None, 0.3, False, True, RouteReason.WEAK, candidates)
    contradicted = not top.place.districts & named_districts and any(
        p.province == top.place.province
        for m in mentions
        if m.type_word is not None and all(p.kind is Kind.DISTRICT for p in m.places)
        for p in m.places
    )
    if contradicted:
        # "xã Tân Thành, huyện Cái Nước" when no Tân Thành lay in Cái Nước: the text names
        # (with its type word, and only as a district) a district of that province the
        # place is not in; an officer must look.
        return PlaceDecision(None, 0.3, False, True, RouteReason.WEAK, candidates)
    if other_province and not (top.typed and explicit):
        return PlaceDecision(None, 0.4, False, True, RouteReason.OTHER_PROVINCE, candidates)
    confidence = round(min(0.99, 0.6 + 0.08 * min(margin, 5.0)), 2)
    return PlaceDecision(target_code, confidence, True, False, RouteReason.TEXT, candidates)


def _another_commune_typed(mentions: list[_Mention], top: _Evidence) -> bool:
    """Another typed mention names a commune that is not the best reading's unit."""
    mine = set(top.place.targets)
    for mention in mentions:
        if mention.start == top.start or mention.type_word not in WARD_TYPES:
            continue
        theirs = {t for p in mention.places if p.kind is Kind.WARD for t in p.targets}
        if theirs and not theirs & mine:
            return True
    return False


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
    provinces, districts = named
    rival_named = rival.place.province in provinces or bool(rival.place.districts & districts)
    top_named = top.place.province in provinces or bool(top.place.districts & districts)
    if top_named and not rival_named:
        # The text names the province or old district of the best reading and not of this
        # one ("xã Tân Kỳ, Nghệ An" to a Thái Nguyên OA): the OA's prior does not outweigh it.
        return False
    if oa_province is None or top.place.province != oa_province:
        return True
    if rival.place.province == oa_province:
        return True
    return rival_named


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
        province = districts[0].province
        named_here = oa_province == province or any(p.province == province for p in provinces)
        if len(targets) == 1 and named_here:
            # A few old districts became one commune each (islands: Cô Tô, Kiên Hải…).
            (ward,) = targets
            return PlaceDecision(
                f"{NEW}:{ward:05d}", 0.9, True, False, RouteReason.TEXT, candidates
            )
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
    best: dict[int, tuple[float, list[str], str]] = {}
    for item in evidence:
        for ward in item.place.targets:
            current = best.get(ward)
            if current is None or item.score > current[0]:
                name = gaz.wards.get(ward, ("?", "", 0))[0]
                reasons = [*item.reasons]
                if item.place.era != NEW:
                    reasons.append(f"nay là {name}")
                best[ward] = (item.score, reasons, item.words)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:MAX_CANDIDATES]
    return [
        Scored(f"{NEW}:{ward:05d}", score, tuple(reasons), words)
        for ward, (score, reasons, words) in ranked
    ]
