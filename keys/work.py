"""Proof of work for the anonymous web form, and passphrases people can write down.

No third party (no CAPTCHA service sees informants): the server issues a random challenge,
the browser finds a nonce such that SHA-256(challenge ":" nonce) starts with ``bits`` zero
bits (``tipline/web/static/pow.js``, with ``crypto.subtle``), and :func:`work_is_valid` checks it
with one hash.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata

from keys.random import new_token

# 16 onsets x 16 rhymes: 256 Vietnamese syllables without diacritics (8 bits each), easy to
# read, type on any keyboard and say over the phone.
_ONSETS = ("b", "c", "d", "g", "h", "kh", "l", "m", "n", "ph", "s", "t", "th", "tr", "v", "x")
_RHYMES = (
    "a", "ai", "an", "anh", "ao", "en", "ep", "ieu",
    "inh", "oa", "on", "ong", "ua", "uan", "ung", "uy",
)  # fmt: skip
WORDS = tuple(onset + rhyme for onset in _ONSETS for rhyme in _RHYMES)
PASSPHRASE_WORDS = 7  # 56 bits, behind Argon2id and a per-code throttle


def new_challenge() -> str:
    """A fresh challenge: 26 Crockford characters (130 bits)."""
    return new_token(26)


def work_is_valid(challenge: str, nonce: str, bits: int) -> bool:
    """True when SHA-256(challenge ":" nonce) starts with ``bits`` zero bits."""
    if not nonce or len(nonce) > 32 or not nonce.isdigit():
        return False
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    return int.from_bytes(digest) >> (256 - bits) == 0 if bits > 0 else True


def solve_work(challenge: str, bits: int) -> str:
    """What the browser script does, for tests and scripts."""
    nonce = 0
    while not work_is_valid(challenge, str(nonce), bits):
        nonce += 1
    return str(nonce)


def new_passphrase(words: int = PASSPHRASE_WORDS) -> str:
    """Random words separated by spaces, e.g. "thon lai xuy bep mong tran hoa"."""
    return " ".join(secrets.choice(WORDS) for _ in range(words))


def normalise_passphrase(text: str) -> str:
    """What people type: any case, extra spaces, dashes or commas, and the diacritics a
    Vietnamese phone keyboard adds to syllables ("thôn lại" for "thon lai"). The words are
    plain ASCII syllables, so folding loses nothing."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join("".join(c if c.isalnum() else " " for c in bare.lower()).split())
