"""Text normalisation for place matching: folding, abbreviation expansion, tokens.

Informants type on phones, often without diacritics, with abbreviations and glued forms
("P.Tho Xuong", "Q1", "F12", "TPHCM"). The index is keyed by folded words, so the text is
folded the same way; each token keeps its original spelling so that diacritics can break
ties when the informant used them (research/geo.md §4).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Vietnamese tone marks (combining forms after NFD). Vowel modifiers (circumflex, breve,
# horn) and đ are part of the letter; tones are per syllable and their placement varies
# ("hoà"/"hòa"), so the tie-break signature keeps the tone as a set, not a position.
TONES = frozenset("\u0300\u0301\u0303\u0309\u0323")

_WORD = re.compile(r"[^\W_]+\.?", re.UNICODE)
# "Ea H'Leo", "K' Dang": the apostrophe glues the syllables ("hleo", "kdang") in names and in
# tips alike, so a lone "h" is never mistaken for the abbreviation of huyện.
_APOSTROPHE = re.compile(r"['’‘`ʼ]\s*")
_GLUED = re.compile(r"^(p|q|f|x|h)(\d{1,3})$")

# Written form (lower-case, with or without the trailing dot) → expansion, word by word.
_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "tp": ("thành", "phố"),
    "tp.": ("thành", "phố"),
    "t.p.": ("thành", "phố"),
    "tx": ("thị", "xã"),
    "tx.": ("thị", "xã"),
    "tt": ("thị", "trấn"),
    "tt.": ("thị", "trấn"),
    "p.": ("phường",),
    "p": ("phường",),
    "ph.": ("phường",),
    "q.": ("quận",),
    "q": ("quận",),
    "h.": ("huyện",),
    "h": ("huyện",),
    "x.": ("xã",),
    "x": ("xã",),
    "t.": ("tỉnh",),
    "đk": ("đặc", "khu"),
    "tphcm": ("thành", "phố", "hồ", "chí", "minh"),
    "tp.hcm": ("thành", "phố", "hồ", "chí", "minh"),
    "hcm": ("hồ", "chí", "minh"),
    "sg": ("sài", "gòn"),
    "hn": ("hà", "nội"),
    "tphn": ("thành", "phố", "hà", "nội"),
}
_DIGIT_TYPES = {"p": "phường", "f": "phường", "q": "quận", "x": "xã", "h": "huyện"}

# Licence plates and phone numbers are not place names (issue 17): "59-P2 123.45" is no
# Phường 2, "51F-123.45" no F-ward. A plate is a two-digit province code, a series of one or
# two letters (and a digit), then the serial: "59-P2 123.45", "51F-123.45", "29A1-234.56",
# "59X2 12345", "26-P8", "29A1". The series alone ("59-P2") counts when written with its dash
# or glued to its code ("29A1"); "12 P.5" (house 12, Phường 5) is not a plate.
_PLATE = re.compile(
    r"(?<![\w.])\d{2}(?:-\s?[a-zđ]{1,2}\d?|[a-zđ]{1,2}\d(?![\w])|[a-zđ]{1,2}(?=[\s.-]*\d{3}))"
    r"(?:[\s.-]*\d{3}(?:[\s.]?\d{1,2})?)?(?![\w])",
    re.IGNORECASE,
)
# Phone numbers: 0 or +84, then 8–10 digits in groups ("0909 123 456", "0912.345.678"), and
# any other long run of digits (account numbers, ids).
_PHONE = re.compile(r"(?<![\w.])(?:\+?84|0)(?:[\s.-]?\d){8,10}(?![\w])|\d{6,}")


_TP_DOTTED = re.compile(r"\bt\. p\. ", re.IGNORECASE)
_TP_HCM = re.compile(r"\btp\. hcm\b", re.IGNORECASE)


def strip_numbers(text: str) -> str:
    """Replace plates and phone numbers with a break, so their pieces name nothing."""
    return _PHONE.sub(" , ", _PLATE.sub(" , ", text))


def fold(text: str) -> str:
    """Lower-case, no diacritics, đ→d: what an informant without a Vietnamese keyboard types."""
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d").replace("Đ", "d"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def signature(word: str) -> str:
    """A word's spelling with its tone as a set, so "hoà" and "hòa" compare equal."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    tones = "".join(sorted({ch for ch in decomposed if ch in TONES}))
    letters = "".join(ch for ch in decomposed if ch not in TONES)
    return unicodedata.normalize("NFC", letters) + tones


def has_diacritics(word: str) -> bool:
    return fold(word) != word.lower()


@dataclass(frozen=True, slots=True)
class Token:
    """One word of the tip: folded for lookup, original (lower-case) for tie-breaks."""

    folded: str
    original: str
    # Punctuation (a comma, a full stop) before this word: a name never spans it, so in
    # "Kiến An, Thành phố Hải Phòng" the words "An" and "Thành" are not read as "An Thành".
    after_break: bool = False
    # Written with a capital letter: "ở Lương Thế Trân" names a place, "mất an ninh" does not.
    capital: bool = False


def _number(word: str) -> str:
    return str(int(word)) if word.isdigit() else word


def tokens(text: str) -> list[Token]:
    """Split ``text`` into words, expanding abbreviations and glued forms.

    "P.Thọ Xương" → phường thọ xương; "Q1" → quận 1; "F12" → phường 12; "TPHCM" →
    thành phố hồ chí minh. Sub-commune words (ấp, thôn, tổ, khu phố) are left as they are.
    """
    text = strip_numbers(_APOSTROPHE.sub("", unicodedata.normalize("NFC", text)))
    text = text.replace(".", ". ")
    text = _TP_DOTTED.sub("tp ", text)
    text = _TP_HCM.sub("tphcm", text)
    out: list[Token] = []
    end = 0
    pending_break = False
    for match in _WORD.finditer(text):
        cased = match.group()
        raw = cased.lower()
        capital = cased[:1].isupper()
        gap = text[end : match.start()]
        brk = pending_break or bool(gap.strip(" \t-–—"))  # "Phương Liên - Trung Tự" is one name
        end = match.end()
        # "P." is an abbreviation, not the end of a sentence; other words ending in "." are.
        expansion = _ABBREVIATIONS.get(raw)
        pending_break = raw.endswith(".") and expansion is None and not _GLUED.match(raw[:-1])
        if expansion is not None:
            out.extend(
                Token(fold(word), word, brk and i == 0, capital) for i, word in enumerate(expansion)
            )
            continue
        word = raw.rstrip(".")
        glued = _GLUED.match(word)
        if glued is not None:
            type_word = _DIGIT_TYPES[glued.group(1)]
            out.append(Token(fold(type_word), type_word, brk))
            out.append(Token(_number(glued.group(2)), glued.group(2)))
            continue
        if not word:
            continue
        out.append(Token(_number(fold(word)), word, brk, capital))
    return out


def name_words(name: str) -> tuple[str, ...]:
    """The folded words of an official name (no abbreviation expansion: names have none)."""
    text = _APOSTROPHE.sub("", unicodedata.normalize("NFC", name).lower())
    return tuple(_number(fold(word.rstrip("."))) for word in _WORD.findall(text))


def original_words(name: str) -> tuple[str, ...]:
    """The words of an official name as written, lower-case, for the diacritic tie-break."""
    text = _APOSTROPHE.sub("", unicodedata.normalize("NFC", name).lower())
    return tuple(word.rstrip(".") for word in _WORD.findall(text))
