"""Script-aware text normalization for matching, PII scrubbing, and cheap lexical similarity.

Normalization must not damage CJK, Devanagari, Arabic or Thai: it removes punctuation and symbols by
Unicode category (P*, S*), never combining marks (M*), which carry vowels in Indic scripts.
"""
from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")
# Unicode categories dropped when normalizing for matching; marks (Mn/Mc) are kept on purpose.
_DROP_CATEGORIES = {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"}
_CONTROL_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
# Scripts written without spaces: tokenise them by character so token overlap still means something.
_NO_SPACE_RANGES = (
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),  # CJK ideographs
    (0x0E00, 0x0E7F),  # Thai
    (0xAC00, 0xD7AF),  # Hangul syllables (spaced, but short words: char tokens help)
)

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")  # separators only between digits: keeps the space after
PHONE = re.compile(r"(?<!\w)(?:\+?\d[\d ().-]{7,}\d)(?!\w)")
# Calendar dates carry 8 digits but are slot values, not phone numbers: shielded while scrubbing.
DATE = re.compile(r"(?<![\w.-])(?:\d{4}([-.])\d{1,2}\1\d{1,2}|\d{1,2}([-.])\d{1,2}\2\d{4})(?![\w-]|\.\d)")
_DIGIT = re.compile(r"\d")
_SHIELD = "\ue000"  # a private-use character: strip_controls removes it from real input before scrubbing
# Presentation-only code points: left orphaned when the emoji they decorate is dropped from a matching key.
_ORPHAN_JOINERS = re.compile(r"[\ufe00-\ufe0f]|(?<!\S)[\u200c\u200d]+|[\u200c\u200d]+(?!\S)")


def strip_controls(text: str) -> str:
    """Drop control/format/unassigned code points (and lone surrogates), keep ZWJ/ZWNJ used by Indic scripts."""
    if text.isprintable():  # C-speed fast path: printable means no character of a control category
        return text
    return "".join(
        ch for ch in text
        if ch in "\u200c\u200d" or ch in "\t\n " or unicodedata.category(ch) not in _CONTROL_CATEGORIES
    )


def scrub_pii(text: str) -> str:
    """Replace e-mail addresses, card numbers and phone numbers with placeholders (dates are kept)."""
    if "@" in text:
        text = EMAIL.sub("<email>", text)
    if not _DIGIT.search(text):  # fast path: cards, dates and phones all need a digit
        return text
    text = CARD.sub(lambda m: "<card>" if _luhn_ok(m.group()) else m.group(), text)
    dates = [] if _SHIELD in text else [m.group() for m in DATE.finditer(text)]
    text = DATE.sub(_SHIELD, text) if dates else text
    text = PHONE.sub(lambda m: "<phone>" if sum(c.isdigit() for c in m.group()) >= 8 else m.group(), text)
    restore = iter(dates)
    return re.sub(_SHIELD, lambda _: next(restore), text) if dates else text


def _luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    checksum = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        checksum += d
    return len(digits) >= 13 and checksum % 10 == 0


def display_text(raw: str) -> str:
    """Text fit to release: control characters removed, whitespace collapsed, PII scrubbed."""
    return _WS.sub(" ", scrub_pii(strip_controls(unicodedata.normalize("NFC", raw)))).strip()


def normalize(raw: str) -> str:
    """Matching key: NFKC, casefold, punctuation/symbols to spaces, whitespace collapsed."""
    return match_key(display_text(raw))


class _MatchChars(dict):
    """str.translate table, filled lazily per code point: punctuation/symbols -> space, the rest kept."""

    def __missing__(self, code_point: int) -> str:
        ch = chr(code_point)
        self[code_point] = value = " " if unicodedata.category(ch) in _DROP_CATEGORIES and ch not in "<>" else ch
        return value


_MATCH_CHARS = _MatchChars()


def match_key(display: str) -> str:
    """normalize() of text already through display_text (saves scrubbing twice when both are needed)."""
    text = unicodedata.normalize("NFKC", display).casefold().translate(_MATCH_CHARS)
    return _WS.sub(" ", _ORPHAN_JOINERS.sub("", text)).strip()


def _is_no_space(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in _NO_SPACE_RANGES)


def tokens(norm: str) -> list[str]:
    """Words for spaced scripts, single characters for CJK/Thai runs."""
    out: list[str] = []
    for word in norm.split():
        if any(_is_no_space(c) for c in word):
            out.extend(c for c in word)
        else:
            out.append(word)
    return out


def char_ngrams(norm: str, n: int = 3) -> set[str]:
    padded = f" {norm} "
    if len(padded) <= n:
        return {padded}
    return {padded[i:i + n] for i in range(len(padded) - n + 1)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def char_similarity(a: str, b: str) -> float:
    return jaccard(char_ngrams(a), char_ngrams(b))


def token_similarity(a: str, b: str) -> float:
    return jaccard(set(tokens(a)), set(tokens(b)))
