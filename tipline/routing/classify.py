"""Suggested category and priority from a tip's words, at dispatch.

A suggestion for the duty officer, who can change it; keyword lists rather than a model so
that the rules are readable and work on text with or without diacritics (both are folded).
"hỏi thủ tục" marks procedure questions (ID cards, residence registration…) that are not tips:
they get a pointer to guidance and stay out of the tip queue.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from tipline.models import Category, Priority
from tipline.routing.normalise import fold

# Category → keywords (folded when compiled). The order breaks ties. The labels officers see
# are the staff UI's (tipline.web.labels); procedure questions and "other" have no keywords.
CATEGORIES: dict[Category, tuple[str, ...]] = {
    Category.DRUGS: (
        "ma túy",
        "ma tuý",
        "heroin",
        "ma tuy đá",
        "thuốc lắc",
        "cần sa",
        "cỏ mỹ",
        "chơi đá",
        "hàng trắng",
        "bồ đà",
        "bay lắc",
        "nước vui",
        "tụ điểm sử dụng",
    ),
    Category.GAMBLING: (
        "đánh bạc",
        "cờ bạc",
        "sới bạc",
        "lô đề",
        "ghi đề",
        "xóc đĩa",
        "cá độ",
        "đá gà",
        "bài bạc",
        "tài xỉu",
        "casino",
        "bầu cua",
    ),
    Category.THEFT: (
        "trộm",
        "ăn cắp",
        "móc túi",
        "bẻ khóa",
        "mất xe",
        "câu trộm",
        "dắt chó",
        "bắt trộm",
    ),
    Category.ROBBERY: ("cướp", "giật", "trấn lột", "cưỡng đoạt"),
    Category.FRAUD: (
        "lừa đảo",
        "lừa tiền",
        "bị lừa",
        "chiếm đoạt",
        "giả danh",
        "mạo danh",
        "việc nhẹ lương cao",
        "chuyển khoản",
        "đa cấp",
        "sàn ảo",
    ),
    Category.LOAN_SHARKING: (
        "tín dụng đen",
        "cho vay nặng lãi",
        "vay nặng lãi",
        "góp ngày",
        "app vay",
        "đòi nợ",
        "khủng bố đòi nợ",
        "bốc họ",
        "vay lãi",
    ),
    Category.VIOLENCE: (
        "đánh nhau",
        "hỗn chiến",
        "gây rối",
        "đánh người",
        "bạo lực",
        "hành hung",
        "đâm chém",
        "chém",
        "say xỉn",
        "quậy phá",
        "đua xe",
        "bạo hành",
        "ẩu đả",
        "giết",
    ),
    Category.PROSTITUTION: (
        "mại dâm",
        "bán dâm",
        "mua dâm",
        "gái gọi",
        "chứa mại dâm",
        "massage kích dục",
        "tú bà",
        "gái bán hoa",
    ),
    Category.SMUGGLING: (
        "buôn lậu",
        "hàng lậu",
        "hàng giả",
        "hàng nhái",
        "thuốc lá lậu",
        "xăng giả",
        "vận chuyển trái phép",
        "pháo nổ",
        "không rõ nguồn gốc",
    ),
    Category.WANTED_PERSON: (
        "truy nã",
        "đối tượng bỏ trốn",
        "trốn truy nã",
        "lệnh truy nã",
        "đang lẩn trốn",
    ),
    Category.ENVIRONMENT: (
        "môi trường",
        "xả thải",
        "nước thải",
        "rác thải",
        "khai thác cát",
        "cát lậu",
        "phá rừng",
        "chặt phá rừng",
        "ô nhiễm",
        "đổ trộm rác",
        "đốt rác",
    ),
    Category.TRAFFIC: (
        "tai nạn",
        "giao thông",
        "lạng lách",
        "nồng độ cồn",
        "vượt đèn đỏ",
        "ùn tắc",
        "xe quá tải",
        "chạy quá tốc độ",
        "bỏ chạy sau tai nạn",
    ),
}
# Procedure questions: administrative services, not crime.
_PROCEDURE_WORDS = (
    "thủ tục",
    "làm căn cước",
    "căn cước công dân",
    "cccd",
    "cmnd",
    "định danh điện tử",
    "vneid",
    "tạm trú",
    "thường trú",
    "tạm vắng",
    "hộ chiếu",
    "đăng ký xe",
    "sang tên xe",
    "giấy xác nhận",
    "lý lịch tư pháp",
    "hồ sơ",
    "cấp đổi",
    "cấp lại",
    "làm giấy",
)
_QUESTION_WORDS = (
    "hỏi",
    "cho hỏi",
    "xin hỏi",
    "làm sao",
    "như thế nào",
    "ở đâu",
    "bao lâu",
    "cần gì",
    "thế nào",
    "được không",
    "?",
)
# Signs that something is happening now or that someone is in danger.
_URGENT_WORDS = (
    "ngay lúc này",
    "khẩn cấp",
    "cứu với",
    "cứu tôi",
    "kêu cứu",
    "cấp cứu",
    "súng",
    "cầm dao",
    "dao găm",
    "dao phay",
    "mã tấu",
    "vũ khí",
    "lựu đạn",
    "chất nổ",
    "trẻ em",
    "cháu bé",
    "em bé",
    "bé gái",
    "bé trai",
    "học sinh",
    "trẻ nhỏ",
    "bắt cóc",
    "hỏa hoạn",
    "hoả hoạn",
    "bốc cháy",
    "cháy nhà",
    "sắp giao hàng",
)
# "đang" alone is too common ("đang ở nhà"); count it only with an action after it.
_DANG_ACTIONS = (
    "đánh",
    "chém",
    "đâm",
    "cháy",
    "cướp",
    "trộm",
    "giao",
    "đuổi",
    "đập",
    "phá",
    "tụ tập",
    "sử dụng",
    "chơi",
    "bắn",
    "đốt",
    "bắt",
    "hút",
    "đua",
)
_HIGH_CATEGORIES = frozenset(
    {Category.ROBBERY, Category.VIOLENCE, Category.WANTED_PERSON, Category.DRUGS}
)


class _Words:
    """A keyword list matched with diacritics when the tip has them, folded when it has none.

    Folding alone confuses "cháy" (fire) with "chạy" (run) and "lừa" (cheat) with "lúa"
    (rice); an informant who types diacritics gets the exact match.
    """

    def __init__(self, words: tuple[str, ...] | list[str]) -> None:
        words = [w for w in words if w != "?"]
        self.exact = self._compile({w.lower() for w in words})
        self.folded = self._compile({fold(w) for w in words})

    @staticmethod
    def _compile(words: set[str]) -> re.Pattern[str]:
        ordered = sorted(words, key=len, reverse=True)
        alternatives = "|".join(re.escape(w) for w in ordered)
        return re.compile(r"(?<!\w)(?:" + alternatives + r")(?!\w)")

    def count(self, text: _Text) -> int:
        return len((self.exact if text.accented else self.folded).findall(text.value))


@dataclass(frozen=True)
class _Text:
    value: str
    accented: bool


def _prepare(text: str) -> _Text:
    lower = " ".join(unicodedata.normalize("NFC", text).lower().split())
    folded = fold(lower)
    return _Text(lower, True) if folded != lower else _Text(folded, False)


_CATEGORY_PATTERNS = {category: _Words(words) for category, words in CATEGORIES.items()}
_PROCEDURE = _Words(_PROCEDURE_WORDS)
_QUESTION = _Words(_QUESTION_WORDS)
_URGENT = _Words(_URGENT_WORDS)
_DANG = _Words(["đang " + action for action in _DANG_ACTIONS] + ["ngay bây giờ"])


@dataclass(frozen=True)
class Suggestion:
    category: Category
    priority: Priority
    urgent_signals: int
    scores: dict[Category, int]

    @property
    def is_procedure(self) -> bool:
        return self.category is Category.PROCEDURE_QUESTION


def classify(text: str) -> Suggestion:
    """Category with the most keyword hits (ties: the order above), priority from signals."""
    prepared = _prepare(text)
    scores = {category: p.count(prepared) for category, p in _CATEGORY_PATTERNS.items()}
    scores = {category: n for category, n in scores.items() if n}
    urgent = _URGENT.count(prepared) + _DANG.count(prepared)
    if not scores:
        asks = bool(_QUESTION.count(prepared)) or "?" in text
        if _PROCEDURE.count(prepared) and asks:
            return Suggestion(Category.PROCEDURE_QUESTION, Priority.LOW, 0, {})
        priority = Priority.URGENT if urgent else Priority.NORMAL
        return Suggestion(Category.OTHER, priority, urgent, {})
    order = list(CATEGORIES)
    category = max(scores, key=lambda c: (scores[c], -order.index(c)))
    if urgent:
        priority = Priority.URGENT
    elif category in _HIGH_CATEGORIES:
        priority = Priority.HIGH
    else:
        priority = Priority.NORMAL
    return Suggestion(category, priority, urgent, scores)


PROCEDURE_REPLY = (
    "Tin nhắn của bạn là câu hỏi về thủ tục hành chính, không phải tin báo tội phạm, nên "
    "không được chuyển vào hàng đợi tin báo.\n"
    "Bạn có thể tra cứu và nộp hồ sơ trực tuyến tại Cổng dịch vụ công Bộ Công an "
    "(https://dichvucong.bocongan.gov.vn) hoặc ứng dụng VNeID, hoặc liên hệ trực tiếp "
    "Công an xã/phường nơi cư trú.\n"
    "Nếu bạn muốn báo tin về tội phạm, hãy nhắn lại nội dung sự việc."
)
