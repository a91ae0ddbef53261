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

# Every pattern is anchored at a word start and bounded in length, so scrubbing is linear in the text:
# an unanchored `[\w.+-]+@` retried at every position of "aaa…a@" made it quadratic (21.7 s at 80 k chars).
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")  # separators only between digits: keeps the space after
PHONE = re.compile(r"(?<!\w)(?:\+?\d[\d ().-]{7,24}\d)(?!\w)")
# Calendar dates carry 8 digits but are slot values, not phone numbers: shielded while scrubbing.
DATE = re.compile(r"(?<![\w.-])(?:\d{4}([-.])\d{1,2}\1\d{1,2}|\d{1,2}([-.])\d{1,2}\2\d{4})(?![\w-]|\.\d)")

# ASR writes what people say: "jane dot doe at gmail dot com", "five five five one two three four".
_SAY_DOT = r"(?:dot|punkt|point|punto)"
_SAY_SEP = rf"(?:\s*[._-]\s*|\s+(?:{_SAY_DOT}|underscore|dash|unterstrich|tiret|guion|bindestrich)\s+)"
_SAY_AT = r"(?:\s*@\s*|\s+(?:at|ät|arobase|arroba|chez)\s+)"
_TLD = r"(?:com|net|org|edu|gov|info|io|co|uk|de|at|ch|fr|be|es|it|nl|in|jp|mx|ar|br)"
SPOKEN_EMAIL = re.compile(
    rf"(?<!\w)[^\W_]{{1,40}}(?:{_SAY_SEP}[^\W_]{{1,40}}){{0,4}}{_SAY_AT}[^\W_][\w-]{{0,40}}"
    rf"(?:(?:\s*\.\s*|\s+{_SAY_DOT}\s+)[^\W_][\w-]{{0,40}}){{0,3}}(?:\s*\.\s*|\s+{_SAY_DOT}\s+){_TLD}(?!\w)",
    re.IGNORECASE)
_DIGIT_WORDS = (  # spoken digits; 'oh' is how English speakers read a zero in a phone number
    "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "null", "eins", "zwei", "zwo", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
    "zéro", "un", "deux", "trois", "quatre", "cinq", "sept", "huit", "neuf",
    "cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve")
_WORD_ALTERNATIVES = "|".join(sorted(_DIGIT_WORDS, key=len, reverse=True))  # longest first: "uno" before "un"
_SPOKEN_DIGIT = rf"(?:(?:double|triple|doppel)\s+)?(?:{_WORD_ALTERNATIVES}|\d{{1,4}})"
SPOKEN_NUMBER = re.compile(rf"(?<!\w){_SPOKEN_DIGIT}(?:[\s,-]+{_SPOKEN_DIGIT}){{3,24}}(?!\w)", re.IGNORECASE)
_SPOKEN_MIN_DIGITS = 7  # a phone number without its area code; "five thirty" and "one two three" stay

# Street addresses, as said in the assistant's larger languages (number + street name, or the reverse).
_STREET_EN = r"(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|terrace|court|ct|place|way|close)"
_DE_STREET = r"[^\W\d_]{2,40}(?:straße|strasse|str\.|weg|gasse|allee|platz|ring|damm|ufer)"
ADDRESS = re.compile(
    rf"(?<!\w){_DE_STREET}\s+\d{{1,4}}[a-z]?\b(?:,?\s+\d{{5}}(?:\s+[^\W\d_][\w-]{{1,30}})?)?"
    rf"|(?<!\w)\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|chemin|allée|impasse|quai)"
    rf"(?:\s+(?:de|du|des|la|le|l'|d')){{0,2}}\s*[^\W\d_][\w'-]{{0,30}}(?:\s+[^\W\d_][\w'-]{{0,30}})?"
    rf"(?:,?\s+\d{{5}}(?:\s+[^\W\d_][\w-]{{1,30}})?)?"
    rf"|(?<!\w)(?:calle|c/|avenida|avda\.?|plaza|paseo|camino|carrera)(?:\s+(?:de|del|la|las|los)){{0,2}}"
    rf"(?:\s+[^\W\d_][\w'-]{{0,30}}){{1,3}},?\s+(?:n[º°o]\.?\s*)?\d{{1,4}}\b(?:,?\s+\d{{5}})?"
    # English last: "8 bis avenue des champs" is French, and the French form must get the whole of it
    rf"|(?<!\w)\d{{1,5}}[a-z]?(?:\s+[^\W\d_][\w'-]{{0,30}}){{1,3}}\s+{_STREET_EN}\b\.?",
    re.IGNORECASE)
# A date said right after a birth keyword is a date of birth (other dates are slot values and are kept).
_MONTHS = (r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
           r"januar|februar|märz|mai|juni|juli|oktober|dezember|janvier|février|mars|avril|juin|juillet|août|"
           r"septembre|octobre|novembre|décembre|enero|febrero|marzo|abril|mayo|junio|julio|agosto|"
           r"septiembre|octubre|noviembre|diciembre)")
_ANY_DATE = (rf"(?:\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{2,4}}"
             rf"|\d{{1,2}}(?:st|nd|rd|th|er|\.)?(?:\s+(?:of|de))?\s+{_MONTHS}(?:\s+(?:of|de))?,?\s+\d{{4}}"
             rf"|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{4}})")
DATE_OF_BIRTH = re.compile(
    rf"(?<!\w)((?:born(?:\s+(?:on|in))?|birthday(?:\s+is)?|date\s+of\s+birth(?:\s+is)?|d\.?o\.?b\.?|"
    rf"geboren(?:\s+(?:am|im))?|geburtsdatum(?:\s+ist)?|geburtstag(?:\s+ist)?|née?(?:\s+(?:le|en))?|"
    rf"date\s+de\s+naissance(?:\s+est)?|nacid[oa](?:\s+(?:el|en))?|fecha\s+de\s+nacimiento(?:\s+es)?)"
    rf"[\s:,]+){_ANY_DATE}(?!\w)", re.IGNORECASE)
# IBAN: country, check digits, 3-8 groups; or a fragment right after the word "iban".
IBAN = re.compile(r"(?<![^\W_])[a-z]{2}\d{2}(?:\s?[a-z0-9]{4}){2,7}(?:\s?[a-z0-9]{1,4})?(?![^\W_])"
                  r"|(?<!\w)(iban(?:\s+(?:is|ist|est|es|number|nummer|numéro|número))?[\s:]+)"
                  r"(?=[a-z0-9 ]{0,8}\d)[a-z0-9]{2,4}(?:\s?[a-z0-9]{2,4}){0,8}(?![^\W_])", re.IGNORECASE)
# Longer texts are cut before any pattern runs; callers that must keep more cut it themselves.
SCRUB_MAX_CHARS = 100_000
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


def scrub_pii(text: str, extra: tuple[re.Pattern, ...] = ()) -> str:
    """Replace e-mail addresses (also spelled out), card, IBAN and phone numbers (also spelled out), street
    addresses and dates of birth with placeholders; other dates are kept (slot values). `extra`: configured
    patterns (privacy.pii_patterns), replaced by <pii>. Text beyond SCRUB_MAX_CHARS is cut first."""
    text = text[:SCRUB_MAX_CHARS]
    for pattern in extra:
        text = pattern.sub("<pii>", text)
    if "@" in text:
        text = EMAIL.sub("<email>", text)
    text = SPOKEN_EMAIL.sub("<email>", text)
    text = SPOKEN_NUMBER.sub(_spoken_number, text)
    if not _DIGIT.search(text):  # fast path: what follows all needs a digit
        return text
    text = IBAN.sub(lambda m: f"{m.group(1) or ''}<iban>", text)
    text = DATE_OF_BIRTH.sub(lambda m: f"{m.group(1)}<dob>", text)
    text = ADDRESS.sub("<address>", text)
    text = CARD.sub(lambda m: "<card>" if _luhn_ok(m.group()) else m.group(), text)
    dates = [] if _SHIELD in text else [m.group() for m in DATE.finditer(text)]
    text = DATE.sub(_SHIELD, text) if dates else text
    text = PHONE.sub(lambda m: "<phone>" if sum(c.isdigit() for c in m.group()) >= 8 else m.group(), text)
    restore = iter(dates)
    return re.sub(_SHIELD, lambda _: next(restore), text) if dates else text


def _spoken_number(m: re.Match) -> str:
    """<phone> for a run of spoken digits (or digit groups) with at least 7 digits and at least one word."""
    digits, words = 0, 0
    times = 1
    for token in re.split(r"[\s,-]+", m.group().casefold()):
        if token in ("double", "doppel"):
            times = 2
        elif token == "triple":
            times = 3
        elif token.isdigit():
            digits, times = digits + len(token) * times, 1
        else:
            digits, words, times = digits + times, words + 1, 1
    return "<phone>" if digits >= _SPOKEN_MIN_DIGITS and words else m.group()


def preview(text: str, max_chars: int) -> str:
    """At most max_chars of `text`, PII scrubbed, for the private quarantine. Cut first (scrubbing a 150 k
    character text costs time for nothing), with a margin so PII that crosses the cut is scrubbed whole."""
    return scrub_pii(text[:max_chars + 100])[:max_chars]


def _luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    checksum = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        checksum += d
    return len(digits) >= 13 and checksum % 10 == 0


def display_text(raw: str, extra: tuple[re.Pattern, ...] = ()) -> str:
    """Text fit to release: control characters removed, whitespace collapsed, PII scrubbed."""
    return _WS.sub(" ", scrub_pii(strip_controls(unicodedata.normalize("NFC", raw)), extra)).strip()


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


# one character class instead of a Python test per character (tokens() ran ~10 us per text in rephrase scoring)
_NO_SPACE_CHAR = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _NO_SPACE_RANGES) + "]")


def tokens(norm: str) -> list[str]:
    """Words for spaced scripts, single characters for CJK/Thai runs."""
    out: list[str] = []
    for word in norm.split():
        if _NO_SPACE_CHAR.search(word):
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
