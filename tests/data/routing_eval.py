"""A realistic evaluation set for the place router, generated with a fixed seed (issue 17).

Tips are sentences the way informants write them: informal Vietnamese with and without
diacritics, abbreviations ("p.", "x.", "tt", "tp", "q."), glued forms ("P.Tân Thành", "Q1"),
hamlets, streets, schools, markets, shops, licence plates, phone numbers, two places in one
tip, old (pre-2025) and current names, typos, and everyday words that look like commune names.

The ground truth comes from `vietnam-provinces`' public API only (``Province``, ``Ward``,
``Ward.search_from_legacy``, ``Ward.get_legacy_sources`` and ``vietnam_provinces.legacy``),
with a folding function of its own: nothing here imports the router or its index, so the
router's mistakes cannot leak into the answers.

Each case: ``text``, ``oa`` (the receiving unit's code: a province ``v2025:PP`` or a commune
``v2025:WWWWW``), ``expect`` (the current units an auto-route may go to; empty: the tip must
not be auto-routed — it stays with the receiving unit for an officer), ``kind`` (the style,
for the breakdown) and ``suggest`` (for typos: the unit the officer should be offered).

    python tests/data/routing_eval.py [N] [SEED] > cases.jsonl   # the set as JSONL
"""

from __future__ import annotations

import functools
import json
import random
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

SEED = 17
SIZE = 1200


@dataclass(frozen=True)
class Case:
    text: str
    oa: str
    expect: tuple[str, ...]
    kind: str
    suggest: tuple[str, ...] = ()

    @property
    def must_not_route(self) -> bool:
        return not self.expect

    def as_json(self) -> dict[str, object]:
        row = asdict(self)
        row["expect"] = list(self.expect)
        row["suggest"] = list(self.suggest)
        return row


# --- folding (own implementation: the router's is not used) ----------------------------------

_TONES = "\u0300\u0301\u0303\u0309\u0323"


def fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def key(name: str) -> str:
    """Folded, lower-case words; apostrophes glue ("Ea H'Leo" → "ea hleo")."""
    name = re.sub(r"['’‘`ʼ]\s*", "", fold(name).lower())
    return " ".join(str(int(w)) if w.isdigit() else w for w in re.findall(r"\w+", name))


def spelled(name: str) -> str:
    """Lower-case with diacritics, tone kept as a set per word ("hoà" == "hòa")."""
    words = []
    for word in re.findall(r"\w+", re.sub(r"['’‘`ʼ]\s*", "", name.lower())):
        nfd = unicodedata.normalize("NFD", word)
        tones = "".join(sorted({c for c in nfd if c in _TONES}))
        letters = "".join(c for c in nfd if c not in _TONES)
        words.append(unicodedata.normalize("NFC", letters) + tones)
    return " ".join(words)


_TYPES = (
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


def split(name: str) -> tuple[str, str]:
    low = name.lower()
    for prefix, folded in _TYPES:
        if low.startswith(prefix + " "):
            return folded, name[len(prefix) + 1 :].strip()
    return "", name


# --- the gazetteer, from the public API ------------------------------------------------------


@dataclass
class Unit:
    code: int
    name: str
    type: str  # folded type word
    short: str
    province: int  # current province code
    targets: tuple[int, ...] = ()  # current wards (old wards: the conversion; new: itself)
    district: int = 0  # old wards: their old district
    districts: frozenset[int] = frozenset()  # new wards: the old districts of their sources
    old: bool = False


@dataclass
class Geo:
    provinces: dict[int, str] = field(default_factory=dict)
    wards: dict[int, Unit] = field(default_factory=dict)
    old_wards: dict[int, Unit] = field(default_factory=dict)
    old_districts: dict[int, Unit] = field(default_factory=dict)
    old_provinces: dict[int, Unit] = field(default_factory=dict)
    wards_of_province: dict[int, list[int]] = field(default_factory=dict)
    # (folded key) → units of every level, for ambiguity and "is this a place name at all".
    by_key: dict[str, list[Unit]] = field(default_factory=lambda: defaultdict(list))


@functools.cache
def geo() -> Geo:
    from vietnam_provinces import Province, Ward
    from vietnam_provinces.legacy import District as OldDistrict
    from vietnam_provinces.legacy import Province as OldProvince
    from vietnam_provinces.legacy import Ward as OldWard

    g = Geo()
    for province in Province.iter_all():
        g.provinces[province.code.value] = province.name
    for ward in Ward.iter_all():
        t, short = split(ward.name)
        districts = frozenset(s.district_code.value for s in ward.get_legacy_sources())
        unit = Unit(
            ward.code.value,
            ward.name,
            t,
            short,
            ward.province_code.value,
            (ward.code.value,),
            districts=districts,
        )
        g.wards[unit.code] = unit
        g.wards_of_province.setdefault(unit.province, []).append(unit.code)
    district_provinces: dict[int, Counter[int]] = defaultdict(Counter)
    for old in OldWard.iter_all():
        found = Ward.search_from_legacy(code=old.code.value)
        if not found:
            continue
        targets = tuple(sorted({w.ward.code.value for w in found}))
        province = g.wards[targets[0]].province
        t, short = split(old.name)
        unit = Unit(
            old.code.value,
            old.name,
            t,
            short,
            province,
            targets,
            district=old.district_code.value,
            old=True,
        )
        g.old_wards[unit.code] = unit
        district_provinces[unit.district][province] += 1
    province_votes: dict[int, Counter[int]] = defaultdict(Counter)
    for district in OldDistrict.iter_all():
        votes = district_provinces.get(district.code.value)
        if not votes:
            continue
        province = votes.most_common(1)[0][0]
        t, short = split(district.name)
        targets = tuple(
            sorted(
                {
                    t2
                    for w in g.old_wards.values()
                    if w.district == district.code.value
                    for t2 in w.targets
                }
            )
        )
        g.old_districts[district.code.value] = Unit(
            district.code.value, district.name, t, short, province, targets, old=True
        )
        province_votes[district.province_code.value][province] += sum(votes.values())
    for old_province in OldProvince.iter_all():
        votes = province_votes.get(old_province.code.value)
        if not votes:
            continue
        t, short = split(old_province.name)
        g.old_provinces[old_province.code.value] = Unit(
            old_province.code.value,
            old_province.name,
            t,
            short,
            votes.most_common(1)[0][0],
            old=True,
        )
    for units in (g.wards, g.old_wards, g.old_districts, g.old_provinces):
        for unit in units.values():
            g.by_key[key(unit.short)].append(unit)
    for code, name in g.provinces.items():
        g.by_key[key(split(name)[1])].append(Unit(code, name, "tinh", split(name)[1], code))
    return g


def code(ward: int) -> str:
    return f"v2025:{ward:05d}"


def answer(
    g: Geo,
    written: str,
    type_word: str,
    province: int | None,
    accents: bool,
    district: int | None = None,
) -> tuple[str, ...]:
    """The current unit a typed ward name means in ``province``, or () when not one.

    Every old or current ward of that type and name in the province (every province when
    the tip does not tell which: None) counts, spelled exactly when the informant wrote
    diacritics; an old district named narrows them — every old district of that name, since
    the informant writes a name, not a code. A split ward or two namesakes → () (an officer
    must ask)."""
    same = [
        u
        for u in g.by_key[key(written)]
        if u.type == type_word
        and (province is None or u.province == province)
        and ((not u.old and g.wards.get(u.code) is u) or (u.old and g.old_wards.get(u.code) is u))
    ]
    if accents:
        same = [u for u in same if spelled(u.short) == spelled(written)]
    if district is not None:
        named = g.old_districts[district]
        namesakes = {
            d.code
            for d in g.by_key[key(named.short)]
            if g.old_districts.get(d.code) is d
            and d.type == named.type
            and (not accents or spelled(d.short) == spelled(named.short))
        }
        same = [
            u
            for u in same
            if (u.old and u.district in namesakes) or (not u.old and u.districts & namesakes)
        ]
    targets = {t for u in same for t in u.targets}
    return (code(targets.pop()),) if len(targets) == 1 else ()


# --- how people write ------------------------------------------------------------------------

WARD_FORMS = {
    "xa": ["xã ", "xã ", "x.", "X.", "x ", "Xã "],
    "phuong": ["phường ", "phường ", "P.", "p.", "P ", "Phường ", "F"],
    "thi tran": ["thị trấn ", "TT ", "tt.", "TT.", "Thị trấn "],
    "dac khu": ["đặc khu ", "Đặc khu "],
}
DISTRICT_FORMS = {
    "huyen": ["huyện ", "huyện ", "H.", "h.", "Huyện "],
    "quan": ["quận ", "Q.", "q.", "Q", "Quận "],
    "thi xa": ["thị xã ", "TX ", "tx.", "TX."],
    "thanh pho": ["thành phố ", "TP ", "tp.", "Tp ", "TP."],
}
PROVINCE_FORMS = {"tinh": ["tỉnh ", "", "", "T."], "thanh pho": ["TP ", "", "thành phố "]}

OPEN = [
    "Có người bán ma túy ở {p}",
    "tối nay có sòng bạc tại {p}, mong công an xuống",
    "Báo tin: nhà em bị trộm xe máy ở {p}",
    "e báo: {p} có nhóm thanh niên tụ tập đua xe mỗi tối",
    "nhà em ở {p}, có người cho vay nặng lãi đến đòi nợ đập phá",
    "ở {p} có đánh nhau, có người cầm dao",
    "cho em báo {p} có người tàng trữ vũ khí",
    "anh chị công an ơi, {p} có ổ đá gà ăn tiền",
    "chỗ {p} có tụ điểm hút chích, tối nào cũng có",
    "Tôi phản ánh: {p} có xưởng làm hàng giả",
    "{p} có người bị lừa đảo qua mạng mất 200tr",
    "báo công an: {p} có quán karaoke chứa mại dâm",
    "khu vực {p} hay bị giật điện thoại",
    "{p}: có vụ bạo lực gia đình, chồng đánh vợ",
    "ở {p} có người buôn lậu thuốc lá",
    "e bị mất xe ở {p} lúc 9h tối qua",
    "có đám cháy ở {p}, khẩn cấp",
    "ở {p} có người khai thác cát trái phép",
    "mong cơ quan công an {p} xử lý giúp, bọn nó bán ma túy công khai",
    "có kẻ lạ mặt rình rập trẻ em ở {p}",
]
# Words around the place that are not places themselves.
NOISE = [
    "",
    "",
    "",
    "",
    " ạ",
    " nha",
    " giúp em",
    " gấp",
    ", cảm ơn",
    ". e xin giấu tên",
    ", sđt em {phone}",
    ", liên hệ {phone}",
    ". xe biển số {plate}",
    ", xe {plate} màu đen",
]
# Sub-commune and landmark words that may precede a (commune-looking) name.
BELOW = [
    "ấp",
    "thôn",
    "xóm",
    "khóm",
    "KP",
    "khu phố",
    "buôn",
    "bản",
    "tổ",
    "tổ dân phố",
    "làng",
    "đường",
    "phố",
    "hẻm",
    "ngõ",
    "kiệt",
    "chợ",
    "trường THPT",
    "trường tiểu học",
    "trường THCS",
    "bệnh viện",
    "chùa",
    "nhà thờ",
    "cầu",
    "bến xe",
    "bến đò",
    "quán nhậu",
    "quán karaoke",
    "tiệm vàng",
    "nhà nghỉ",
    "khách sạn",
    "quán cà phê",
    "công ty",
    "cây xăng",
    "khu công nghiệp",
    "sân bóng",
    "tiệm net",
]
SURNAMES = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
    "Nguyễn Văn",
    "Trần Thị",
    "Lê Văn",
]
PEOPLE = ["anh", "chị", "ông", "bà", "thằng", "con", "cô", "chú", "bác", "tên"]
# Everyday phrases, some of which fold to commune names ("bạo lực gia đình" ⊃ Gia Định).
EVERYDAY = [
    "Ở đây có người chứa mại dâm, công an vào kiểm tra giúp",
    "nhà kế bên có bạo lực gia đình, đêm nào cũng đánh nhau",
    "có tụ điểm đá gà ăn tiền sau nhà văn hóa",
    "có thanh niên chạy xe lạng lách, rú ga suốt đêm",
    "xóm em có đám ma mà bọn nó đánh bài ăn tiền",
    "khu này mất an ninh trật tự quá, mong các anh xử lý",
    "em ở Long An có việc cần hỏi thủ tục làm căn cước",
    "có người tự xưng công an gọi điện đòi chuyển tiền",
    "bọn nó tân trang xe gian rồi bán lại",
    "cả xóm không được bình yên vì tụi nó hát karaoke tới 2h sáng",
    "mong cho bà con được sống thanh bình, không còn ma túy",
    "con em bị dụ vào đường dây cá độ bóng đá",
    "có người bán hàng cấm trên mạng, giao tận nhà",
    "nó hứa cho vay nhanh, lãi suất thấp, rồi đòi tiền hoa hồng",
    "có người lạ đến hỏi mua thận, trả giá cao",
    "tụi nó cho vay tín dụng đen rồi tạt sơn nhà người ta",
    "người hàng xóm hay đánh đập con, cháu bé bị thương",
    "có xe tải chở gỗ lậu đi qua lúc nửa đêm",
    "có người bị dụ đi làm việc nhẹ lương cao ở nước ngoài",
    "em muốn tố cáo một ổ cờ bạc, họ chơi xóc đĩa",
    "có người phát tán clip đồi trụy, tống tiền bạn em",
    "cho hỏi làm lại CCCD bị mất thì làm sao",
    "thanh niên say xỉn gây rối, chửi bới người đi đường",
    "có nhóm trẻ hút bóng cười ở công viên, rất mất trật tự",
    "ông chủ quán nợ lương công nhân rồi bỏ trốn",
    "bị trộm mất con chó, nghi nhóm bắt chó chuyên nghiệp",
    "có đối tượng truy nã đang lẩn trốn, nó hay ra vào quán game",
    "tình hình an ninh phức tạp, đêm nào cũng có trộm",
    "chủ tiệm hòa bình vui vẻ nhưng bán thuốc lắc cho học sinh",
    "có người giả danh cán bộ điện lực thu tiền",
    "con nhỏ bị người yêu cũ đăng ảnh nóng lên mạng",
    "tôi phát hiện có người trồng cần sa trong nhà kính",
    "anh em nhà đó tranh chấp đất đai, đánh nhau trọng thương",
    "bên kia sông có lò mổ lậu, xả thải hôi thối",
    "mấy đứa đua xe độ chạy từ chợ tới cầu",
    "có người cho thuê nhà để đánh bạc, ăn tiền xâu",
    "thằng đó chuyên trộm gà, đã đi tù một lần",
    "ổ nhóm lừa đảo đầu tư tiền ảo, dụ người già",
    "đất nước độc lập tự do hạnh phúc mà tụi nó coi thường pháp luật",
    "bà chủ tiệm tạp hóa bán rượu giả",
    "có vụ tai nạn giao thông, tài xế bỏ chạy",
    "nghi có người buôn bán người qua biên giới",
    "em bị hack facebook rồi nó mượn tiền bạn bè",
    "có người vận chuyển pháo nổ trên xe khách",
    "đoàn kết chống tội phạm, em báo tin có ổ trộm chó",
    "có người mua bán hóa đơn đỏ trái phép",
    "quyết thắng tụi buôn ma túy, tụi nó giao hàng lúc 10h",
    "nhà đó thắng lợi lớn nhờ buôn lậu, xây nhà 5 tầng",
    "đây là một vấn đề an toàn thực phẩm, có người bán thịt thối",
    "cho em hỏi đăng ký tạm trú cần giấy tờ gì",
]
PHONE = [
    "09{0}{1}{2} {3}{4}{5} {6}{7}{8}",
    "0{0}{1}{2}.{3}{4}{5}.{6}{7}{8}",
    "09{0}{1}{2}{3}{4}{5}{6}{7}",
]
PLATE = [
    "{a}{b}-P{c} {d}{e}{f}.{g}{h}",
    "{a}{b}F-{d}{e}{f}.{g}{h}",
    "{a}{b}A{c}-{d}{e}{f}.{g}{h}",
    "{a}{b}-B{c} {d}{e}{f}{g}{h}",
    "{a}{b}H{c}-{d}{e}{f}{g}{h}",
    "{a}{b}X{c} {d}{e}{f}.{g}{h}",
]


class Writer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def phone(self) -> str:
        return self.rng.choice(PHONE).format(*(self.rng.randint(0, 9) for _ in range(9)))

    def plate(self) -> str:
        d = {k: self.rng.randint(1 if k == "a" else 0, 9) for k in "abcdefgh"}
        return self.rng.choice(PLATE).format(**d)

    def typed(self, type_word: str, short: str, forms: dict[str, list[str]]) -> str:
        form = self.rng.choice(forms.get(type_word, [type_word + " "]))
        if form == "F" and not short.isdigit():
            form = "P."
        if form in ("Q", "P ", "x ") and not short.isdigit():
            form = form.strip() + " "
        if form.endswith(".") and self.rng.random() < 0.5:
            form += " "
        name = short if self.rng.random() < 0.8 else short.lower()
        return f"{form}{name}"

    def noise(self) -> str:
        return self.rng.choice(NOISE).format(phone=self.phone(), plate=self.plate())

    def sentence(self, place: str) -> str:
        text = self.rng.choice(OPEN).format(p=place) + self.noise()
        return text[0].upper() + text[1:] if self.rng.random() < 0.5 else text


def _finish(text: str, accents: str) -> str:
    return fold(text) if accents == "none" else text


def generate(n: int = SIZE, seed: int = SEED) -> list[Case]:
    g = geo()
    rng = random.Random(seed)  # a reproducible test set, not a secret  # nosec B311
    w = Writer(rng)
    old_codes = sorted(g.old_wards)
    new_codes = sorted(g.wards)
    old_by_province: dict[int, list[int]] = defaultdict(list)
    for c, u in g.old_wards.items():
        old_by_province[u.province].append(c)
    districts_by_province: dict[int, list[int]] = defaultdict(list)
    for c, u in g.old_districts.items():
        districts_by_province[u.province].append(c)
    old_province_of_district = {}
    from vietnam_provinces.legacy import District as OldDistrict

    for d in OldDistrict.iter_all():
        old_province_of_district[d.code.value] = d.province_code.value

    def whole_district(d: Unit) -> tuple[str, ...]:
        """An old district that became a single commune (islands) names that commune."""
        namesakes = [
            x
            for x in g.by_key[key(d.short)]
            if g.old_districts.get(x.code) is x and x.type == d.type
        ]
        targets = {t for x in namesakes for t in x.targets}
        return (code(targets.pop()),) if len(targets) == 1 else ()

    def province_of(oa: str) -> int:
        number = oa.partition(":")[2]
        return int(number) if len(number) == 2 else g.wards[int(number)].province

    def oa_for(province: int) -> str:
        if rng.random() < 0.5:
            return f"v2025:{province:02d}"
        return code(rng.choice(g.wards_of_province[province]))

    def accents_mode() -> str:
        r = rng.random()
        return "full" if r < 0.5 else "none" if r < 0.9 else "mixed"

    def written_name(short: str, accents: str) -> str:
        return fold(short) if accents == "mixed" else short

    def province_suffix(province_name: str) -> str:
        t, short = split(province_name)
        return rng.choice(PROVINCE_FORMS.get(t, [""])) + short

    def old_ward_place(u: Unit, accents: str, with_district: bool, with_province: bool) -> str:
        place = w.typed(u.type, written_name(u.short, accents), WARD_FORMS)
        d = g.old_districts.get(u.district)
        if with_district and d is not None:
            place += rng.choice([", ", " ", " - "]) + w.typed(
                d.type, written_name(d.short, accents), DISTRICT_FORMS
            )
        if with_province:
            old_p = g.old_provinces.get(old_province_of_district.get(u.district, 0))
            if old_p is not None:
                place += ", " + province_suffix(old_p.name)
        return place

    def typo(name: str) -> str | None:
        """One slip of the thumb that makes no place name at all."""
        words = name.split()
        for _ in range(20):
            i = rng.randrange(len(words))
            word = words[i]
            if len(word) < 3 or word.isdigit():
                continue
            j = rng.randrange(1, len(word))
            op = rng.random()
            if op < 0.4:
                new = word[:j] + word[j + 1 :]
            elif op < 0.7 and j < len(word) - 1:
                new = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
            else:
                new = word[:j] + rng.choice("nmhgtc") + word[j + 1 :]
            candidate = " ".join([*words[:i], new, *words[i + 1 :]])
            if not g.by_key.get(key(candidate)):
                return candidate
        return None

    builders: list[tuple[float, Callable[[], Case | None]]] = []

    def old_with_district() -> Case | None:
        u = g.old_wards[rng.choice(old_codes)]
        acc = accents_mode()
        with_province = rng.random() < 0.35
        text = w.sentence(old_ward_place(u, acc, True, with_province))
        oa = oa_for(u.province) if rng.random() < 0.85 else oa_for(rng.choice(list(g.provinces)))
        known = u.province if with_province or province_of(oa) == u.province else None
        expect = answer(g, u.short, u.type, known, acc == "full", u.district)
        return Case(_finish(text, acc), oa, expect, "old_ward_district")

    def old_alone() -> Case | None:
        u = g.old_wards[rng.choice(old_codes)]
        acc = accents_mode()
        text = w.sentence(old_ward_place(u, acc, False, False))
        expect = answer(g, u.short, u.type, u.province, acc == "full")
        return Case(_finish(text, acc), oa_for(u.province), expect, "old_ward")

    def new_ward() -> Case | None:
        u = g.wards[rng.choice(new_codes)]
        acc = accents_mode()
        place = w.typed(u.type, written_name(u.short, acc), WARD_FORMS)
        named = rng.random() < 0.3
        if named:
            place += ", " + province_suffix(g.provinces[u.province])
            oa = oa_for(rng.choice(list(g.provinces))) if rng.random() < 0.4 else oa_for(u.province)
        else:
            oa = oa_for(u.province)
        expect = answer(g, u.short, u.type, u.province, acc == "full")
        return Case(_finish(w.sentence(place), acc), oa, expect, "new_ward" + "_province" * named)

    def address() -> Case | None:
        """A full address: number, street, hamlet, commune (and more), maybe noise."""
        use_old = rng.random() < 0.5
        u = g.old_wards[rng.choice(old_codes)] if use_old else g.wards[rng.choice(new_codes)]
        acc = accents_mode()
        other = g.wards[rng.choice(g.wards_of_province[u.province])].short
        below = rng.choice(["ấp", "thôn", "khóm", "KP", "khu phố", "tổ", "xóm", "buôn", "bản"])
        number = rng.choice([str(rng.randint(1, 300)), f"{rng.randint(1, 99)}/{rng.randint(1, 9)}"])
        street = rng.choice(
            [
                f"{number} đường {other}",
                f"{number} Đường {other}",
                f"hẻm {number} {other}",
                f"ngõ {number} {other}",
                f"kiệt {number} {other}",
                f"số {number} {other}",
                f"{number} {other}",  # a house number and the street's name, nothing else
            ]
        )
        parts = [
            street
            if rng.random() < 0.5
            else f"{below} {rng.choice([other, str(rng.randint(1, 12))])}"
        ]
        if use_old:
            with_district = rng.random() < 0.6
            parts.append(old_ward_place(u, acc, with_district, rng.random() < 0.3))
            district = u.district if with_district else None
            expect = answer(g, u.short, u.type, u.province, acc == "full", district)
        else:
            parts.append(w.typed(u.type, written_name(u.short, acc), WARD_FORMS))
            expect = answer(g, u.short, u.type, u.province, acc == "full")
        lead = rng.choice(
            [
                "địa chỉ: {a}, có người bán ma túy",
                "em ở {a}, tối qua bị trộm 2 con bò",
                "nhà số {a} có người tụ tập đánh bạc",
                "Tại {a} có cơ sở massage trá hình",
                "{a} có người nghi tàng trữ ma túy, hay đi xe {plate}",
                "có người gọi từ sđt {phone} đe dọa, nó ở {a}",
            ]
        )
        text = lead.format(a=", ".join(parts), plate=w.plate(), phone=w.phone())
        return Case(_finish(text, acc), oa_for(u.province), expect, "address")

    def untyped() -> Case | None:
        """A two-or-more-word name written exactly, without a type word."""
        u = g.wards[rng.choice(new_codes)]
        if " " not in u.short or u.short.split()[-1].isdigit():
            return None
        if len(g.by_key[key(u.short)]) != 1:
            return None  # also an old ward, a district, a province, elsewhere: not clean
        text = rng.choice(
            [
                "có trộm ở {p}",
                "bên {p} có tụ điểm ma túy",
                "ở {p} có người đánh bạc",
                "nhà em ở {p}, bị lừa mất tiền",
            ]
        ).format(p=u.short)
        return Case(text, oa_for(u.province), (code(u.code),), "untyped_exact")

    def old_province_end() -> Case | None:
        """A pre-2025 address ending in the old province: that is a province, not a ward."""
        u = g.old_wards[rng.choice(old_codes)]
        acc = accents_mode()
        old_p = g.old_provinces.get(old_province_of_district.get(u.district, 0))
        if old_p is None:
            return None
        d = g.old_districts[u.district]
        if rng.random() < 0.5:
            place = (
                w.typed(u.type, written_name(u.short, acc), WARD_FORMS)
                + ", "
                + w.typed(d.type, written_name(d.short, acc), DISTRICT_FORMS)
                + ", "
                + written_name(old_p.short, acc)
            )
            expect = answer(g, u.short, u.type, u.province, acc == "full", u.district)
            kind = "old_province_end"
        else:
            # District (untyped or typed) then the province: no commune at all.
            dname = written_name(d.short, acc)
            if rng.random() < 0.5:
                dname = w.typed(d.type, dname, DISTRICT_FORMS)
            place = f"{dname}, {written_name(old_p.short, acc)}"
            expect = whole_district(d)
            kind = "district_province"
        return Case(_finish(w.sentence(place), acc), oa_for(u.province), expect, kind)

    def everyday() -> Case | None:
        acc = accents_mode()
        province = rng.choice(list(g.provinces))
        text = rng.choice(EVERYDAY)
        if rng.random() < 0.3:
            text += w.noise()
        return Case(_finish(text, acc), oa_for(province), (), "everyday")

    def below_commune() -> Case | None:
        """A hamlet, street, school, market or shop named like a commune, and no commune."""
        province = rng.choice(list(g.provinces))
        name = g.wards[rng.choice(g.wards_of_province[province])].short
        if rng.random() < 0.3:
            old = [g.old_wards[c].short for c in old_by_province[province]]
            name = rng.choice(old)
        acc = accents_mode()
        word = rng.choice(BELOW)
        text = rng.choice(
            [
                "có người bán ma túy ở {w} {n}",
                "{w} {n} có tụ điểm đánh bạc",
                "gần {w} {n} tối nào cũng có đua xe",
                "tụi nó hay tụ tập trước {w} {n}",
                "ở {w} {n} có người cho vay nặng lãi",
                "em bị giật túi ở {w} {n}",
            ]
        ).format(w=word, n=written_name(name, acc))
        return Case(_finish(text, acc), oa_for(province), (), "below_commune")

    def person() -> Case | None:
        province = rng.choice(list(g.provinces))
        name = g.wards[rng.choice(g.wards_of_province[province])].short
        acc = accents_mode()
        text = rng.choice(
            [
                "{w} {n} bán ma túy cho học sinh",
                "nghi {w} {n} trộm xe của nhà em",
                "{w} {n} cho vay nặng lãi, đòi nợ kiểu xã hội đen",
            ]
        ).format(w=rng.choice(PEOPLE), n=written_name(name, acc))
        return Case(_finish(text, acc), oa_for(province), (), "person")

    def district_only() -> Case | None:
        province = rng.choice(list(g.provinces))
        d = g.old_districts[rng.choice(districts_by_province[province])]
        if len(d.targets) < 2:
            return None
        acc = accents_mode()
        place = w.typed(d.type, written_name(d.short, acc), DISTRICT_FORMS)
        return Case(_finish(w.sentence(place), acc), oa_for(province), (), "district_only")

    def province_only() -> Case | None:
        province = rng.choice(list(g.provinces))
        acc = accents_mode()
        name = split(g.provinces[province])[1]
        if rng.random() < 0.5:
            olds = [p for p in g.old_provinces.values() if p.province == province]
            name = rng.choice(olds).short
        return Case(
            _finish(w.sentence(written_name(name, acc)), acc), oa_for(province), (), "province_only"
        )

    def plate_district() -> Case | None:
        """Plates and phones next to a district: "59-P2" is not Phường 2."""
        province = rng.choice([79, 1, 48, 92, 31, 79, 79])
        d = g.old_districts[rng.choice(districts_by_province[province])]
        acc = accents_mode()
        text = rng.choice(
            [
                "xe biển số {plate} chở hàng cấm ở {d}",
                "thấy xe {plate} giao ma túy khu {d}",
                "có nhóm đòi nợ thuê ở {d}, gọi từ số {phone}, đi xe {plate}",
                "báo: xe {plate} tông người rồi bỏ chạy trên đường qua {d}",
            ]
        ).format(
            plate=w.plate(),
            phone=w.phone(),
            d=w.typed(d.type, written_name(d.short, acc), DISTRICT_FORMS),
        )
        return Case(_finish(text, acc), oa_for(province), whole_district(d), "plate_phone")

    def split_ward() -> Case | None:
        splits = [c for c in old_codes if len(g.old_wards[c].targets) > 1]
        u = g.old_wards[rng.choice(splits)]
        acc = accents_mode()
        text = w.sentence(old_ward_place(u, acc, rng.random() < 0.7, False))
        return Case(_finish(text, acc), oa_for(u.province), (), "split")

    def two_communes() -> Case | None:
        province = rng.choice(list(g.provinces))
        a, b = rng.sample(g.wards_of_province[province], 2)
        if rng.random() < 0.3:  # the second commune in another province
            b = rng.choice(new_codes)
        ua, ub = g.wards[a], g.wards[b]
        if set(answer(g, ua.short, ua.type, province, True)) == set(
            answer(g, ub.short, ub.type, ub.province, True)
        ) or key(ua.short) == key(ub.short):
            return None
        acc = accents_mode()
        text = rng.choice(
            [
                "em ở {a} nhưng bị trộm ở {b}",
                "tụi nó từ {a} qua {b} đánh nhau",
                "có người ở {a} bán ma túy cho thanh niên {b}",
            ]
        ).format(
            a=w.typed(ua.type, written_name(ua.short, acc), WARD_FORMS),
            b=w.typed(ub.type, written_name(ub.short, acc), WARD_FORMS),
        )
        return Case(_finish(text, acc), oa_for(province), (), "two_communes")

    def landmark_and_commune() -> Case | None:
        """A market or school named after one commune, in another commune: the commune."""
        u = g.wards[rng.choice(new_codes)]
        other = g.wards[rng.choice(g.wards_of_province[u.province])]
        acc = accents_mode()
        place = (
            f"{rng.choice(['chợ', 'trường THCS', 'cầu', 'ấp', 'khóm', 'thôn'])} "
            f"{written_name(other.short, acc)}, "
            + w.typed(u.type, written_name(u.short, acc), WARD_FORMS)
        )
        expect = answer(g, u.short, u.type, u.province, acc == "full")
        return Case(_finish(w.sentence(place), acc), oa_for(u.province), expect, "two_places")

    def typo_case() -> Case | None:
        use_old = rng.random() < 0.4
        u = g.old_wards[rng.choice(old_codes)] if use_old else g.wards[rng.choice(new_codes)]
        if u.short.isdigit():
            return None
        bad = typo(u.short)
        if bad is None:
            return None
        acc = accents_mode()
        place = w.typed(u.type, written_name(bad, acc), WARD_FORMS)
        expect: tuple[str, ...] = ()
        if use_old and rng.random() < 0.5:
            d = g.old_districts[u.district]
            place += ", " + w.typed(d.type, written_name(d.short, acc), DISTRICT_FORMS)
            expect = whole_district(d)  # the district alone may settle it
        intended = answer(g, u.short, u.type, u.province, False, u.district if use_old else None)
        return Case(_finish(w.sentence(place), acc), oa_for(u.province), expect, "typo", intended)

    def full_name() -> Case | None:
        """A person's or a company's full name that ends in a commune's name."""
        province = rng.choice(list(g.provinces))
        u = g.wards[rng.choice(g.wards_of_province[province])]
        if " " not in u.short or u.short.split()[-1].isdigit():
            return None
        acc = accents_mode()
        text = rng.choice(
            [
                "đối tượng {s} {n} chuyên bán ma túy",
                "nghi ngờ {s} {n} trộm xe",
                "{s} {n} (biệt danh Tí) cho vay nặng lãi",
                "công ty TNHH {n} lừa đảo tuyển dụng",
                "hợp tác xã {n} bán phân bón giả",
                "tiệm cầm đồ {n} nhận xe gian",
                "em bị {s} {n} đánh, nó ở gần nhà",
            ]
        ).format(s=rng.choice(SURNAMES), n=written_name(u.short, acc))
        return Case(_finish(text, acc), oa_for(province), (), "full_name")

    def lowercase_untyped() -> Case | None:
        """A name without a type word, written small: it may be meant, but is not routed."""
        u = g.wards[rng.choice(new_codes)]
        if " " not in u.short or len(g.by_key[key(u.short)]) != 1:
            return None
        acc = accents_mode()
        text = rng.choice(["có trộm ở {p}", "bên {p} có ổ ma túy", "{p} có sòng bạc"])
        text = text.format(p=written_name(u.short, acc).lower())
        return Case(_finish(text, acc), oa_for(u.province), (code(u.code),), "untyped_small")

    def untyped_with_district() -> Case | None:
        """ "ở Phú Hưng, Cái Nước": no type words, the old district settles it."""
        u = g.old_wards[rng.choice(old_codes)]
        d = g.old_districts.get(u.district)
        if d is None or " " not in u.short or u.short.split()[-1].isdigit():
            return None
        acc = accents_mode()
        place = f"{written_name(u.short, acc)}, {written_name(d.short, acc)}"
        expect = answer(g, u.short, u.type, u.province, acc == "full", u.district)
        return Case(_finish(w.sentence(place), acc), oa_for(u.province), expect, "untyped_district")

    numbered = [c for c in old_codes if g.old_wards[c].short.isdigit()]

    def numbered_ward() -> Case | None:
        """Numbered city wards: "P.12 Q.Gò Vấp", "f5 q8", "phường 3 quận 10"."""
        u = g.old_wards[rng.choice(numbered)]
        d = g.old_districts[u.district]
        acc = accents_mode()
        ward = rng.choice(
            [
                f"P.{u.short}",
                f"p{u.short}",
                f"F{u.short}",
                f"phường {u.short}",
                f"P {int(u.short):02d}",
            ]
        )
        district = w.typed(d.type, written_name(d.short, acc), DISTRICT_FORMS)
        if d.short.isdigit():
            district = rng.choice([f"Q{d.short}", f"q.{d.short}", f"quận {d.short}"])
        place = f"{ward} {district}" if rng.random() < 0.5 else f"{ward}, {district}"
        expect = answer(g, u.short, u.type, u.province, False, u.district)
        return Case(_finish(w.sentence(place), acc), oa_for(u.province), expect, "numbered")

    def shouting() -> Case | None:
        """All capitals, no diacritics, teen-code words."""
        u = g.old_wards[rng.choice(old_codes)]
        d = g.old_districts[u.district]
        text = rng.choice(
            [
                "{w} {d} CO NGUOI BAN MA TUY, AE CA XOM BIET MA K AI DAM NOI",
                "e ko bik bao ai, o {w} {d} tui no danh bac dc 3 thang r",
                "{w} {d} co dua xe moi dem mn oi, cong an vao cuoc giup",
            ]
        ).format(
            w=w.typed(u.type, fold(u.short), WARD_FORMS),
            d=w.typed(d.type, fold(d.short), DISTRICT_FORMS),
        )
        expect = answer(g, u.short, u.type, u.province, False, u.district)
        if rng.random() < 0.5:
            text = text.upper()
        return Case(text, oa_for(u.province), expect, "shouting")

    builders = [
        (0.15, old_with_district),
        (0.07, old_alone),
        (0.10, new_ward),
        (0.07, address),
        (0.03, untyped),
        (0.02, lowercase_untyped),
        (0.03, untyped_with_district),
        (0.03, numbered_ward),
        (0.03, shouting),
        (0.05, old_province_end),
        (0.05, landmark_and_commune),
        (0.08, everyday),
        (0.07, below_commune),
        (0.02, person),
        (0.03, full_name),
        (0.04, district_only),
        (0.02, province_only),
        (0.04, plate_district),
        (0.04, split_ward),
        (0.02, two_communes),
        (0.06, typo_case),
    ]
    weights = [b[0] for b in builders]
    out: list[Case] = []
    seen: set[str] = set()
    while len(out) < n:
        build = rng.choices([b[1] for b in builders], weights)[0]
        case = build()
        if case is None or case.text in seen:
            continue
        seen.add(case.text)
        out.append(case)
    return out


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else SIZE
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else SEED
    for item in generate(size, seed):
        print(json.dumps(item.as_json(), ensure_ascii=False))


# --- the hand-written phrases and the score ---------------------------------------------------

PHRASES = __file__.rsplit("/", 1)[0] + "/routing_phrases.tsv"


def phrases() -> list[Case]:
    """The hand-written phrases (routing_phrases.tsv): the issue's five classes and controls."""
    out = []
    with open(PHRASES, encoding="utf-8") as source:
        for line in source:
            if not line.strip() or line.startswith("#"):
                continue
            text, oa, expect, kind = line.rstrip("\n").split("\t")
            out.append(Case(text, oa, () if expect == "-" else (expect,), kind))
    return out


@dataclass
class Score:
    """Scores over decisions in `tipline route --json` form (``unit``, ``auto``, ``candidates``).

    A tip counts as routed when ``auto`` is true and ``unit`` is not the receiving unit."""

    cases: int = 0
    must_not_route: int = 0
    answerable: int = 0
    routed: int = 0
    routed_right: int = 0
    hits: int = 0
    must_not_routed: int = 0
    typos: int = 0
    typo_suggested: int = 0
    wrong: list[tuple[Case, dict[str, object]]] = field(default_factory=list)
    missed: list[tuple[Case, dict[str, object]]] = field(default_factory=list)

    def add(self, case: Case, row: dict[str, object]) -> None:
        self.cases += 1
        unit = row.get("unit")
        routed = bool(row.get("auto")) and unit not in (None, case.oa)
        # Staying with the receiving unit is right when that unit is the answer.
        hit = unit in case.expect and (routed or unit == case.oa)
        if case.must_not_route:
            self.must_not_route += 1
            self.must_not_routed += routed
        else:
            self.answerable += 1
        if routed:
            self.routed += 1
            if unit in case.expect:
                self.routed_right += 1
            else:
                self.wrong.append((case, row))
        if hit:
            self.hits += 1
        elif case.expect:
            self.missed.append((case, row))
        if case.suggest:
            self.typos += 1
            offered = {
                str(c.get("unit")) for c in row.get("candidates") or [] if isinstance(c, dict)
            } | {str(s.get("unit")) for s in row.get("suggestions") or [] if isinstance(s, dict)}
            self.typo_suggested += bool(offered & set(case.suggest))

    @property
    def precision(self) -> float:
        return self.routed_right / self.routed if self.routed else 1.0

    @property
    def recall(self) -> float:
        return self.hits / self.answerable if self.answerable else 1.0

    @property
    def must_not_routed_share(self) -> float:
        return self.must_not_routed / self.must_not_route if self.must_not_route else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "cases": self.cases,
            "must_not_route": self.must_not_route,
            "routed": self.routed,
            "precision": round(self.precision, 4),
            "must_not_route_routed": round(self.must_not_routed_share, 4),
            "recall": round(self.recall, 4),
            "typo_suggested": round(self.typo_suggested / self.typos, 4) if self.typos else None,
        }


def score(cases: list[Case], decide: Callable[[Case], dict[str, object]]) -> Score:
    result = Score()
    for case in cases:
        result.add(case, decide(case))
    return result
