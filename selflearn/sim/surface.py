"""Surface forms: locale-aware light edits of an annotation, ASR-like noise, PII-like insertions.

Edits work on `annot_utt` with slots masked, so a variant keeps exact slot markup. Randomness comes in as
numbers drawn by the caller (numpy streams), which keeps every output reproducible.
"""
from __future__ import annotations

import re
from functools import lru_cache

from selflearn.sim.massive import SLOT_MARKUP, plain_text

POLITE = {  # (word, where it goes when added)
    "en-US": ("please", "suffix"), "de-DE": ("bitte", "suffix"), "fr-FR": ("s'il te plaît", "suffix"),
    "es-ES": ("por favor", "suffix"), "ja-JP": ("お願いします", "suffix"), "hi-IN": ("कृपया", "prefix"),
}
POLITE_FORMS = {
    "en-US": ["please"], "de-DE": ["bitte"], "fr-FR": ["s'il te plaît", "s'il vous plaît"],
    "es-ES": ["por favor"], "ja-JP": ["お願いします", "お願い", "ください"], "hi-IN": ["कृपया"],
}
FILLERS = {  # words a speaker drops without changing the request
    "en-US": ["can you", "could you", "i want to", "just", "the", "hey", "olly", "my"],
    "de-DE": ["kannst du", "mal", "doch", "bitte", "die", "der", "das", "olly"],
    "fr-FR": ["est-ce que", "peux-tu", "tu peux", "le", "la", "les", "olly"],
    "es-ES": ["puedes", "podrías", "el", "la", "los", "olly"],
    "ja-JP": ["ちょっと", "今", "olly", "へい"],
    "hi-IN": ["ज़रा", "जरा", "मुझे", "क्या", "olly"],
}
HOMOPHONES = {
    "en-US": [("to", "two"), ("for", "four"), ("right", "write"), ("there", "their"), ("weather", "whether"),
              ("hour", "our"), ("new", "knew"), ("no", "know"), ("by", "buy"), ("week", "weak"),
              ("meet", "meat"), ("one", "won"), ("where", "wear"), ("some", "sum"), ("light", "lite")],
    "de-DE": [("das", "dass"), ("seit", "seid"), ("wieder", "wider"), ("ist", "isst"), ("mehr", "meer"),
              ("wahr", "war"), ("viel", "fiel"), ("stadt", "statt"), ("ende", "ente"), ("licht", "nicht")],
    "fr-FR": [("et", "est"), ("a", "à"), ("ou", "où"), ("ces", "ses"), ("mer", "mère"), ("vert", "verre"),
              ("cent", "sans"), ("sept", "cette"), ("quand", "quant"), ("mets", "mais"), ("heure", "heur")],
    "es-ES": [("haber", "a ver"), ("hola", "ola"), ("vaya", "valla"), ("hecho", "echo"), ("tuvo", "tubo"),
              ("casa", "caza"), ("si", "sí"), ("tu", "tú"), ("el", "él"), ("mas", "más"), ("pon", "bon")],
    "ja-JP": [("天気", "転機"), ("聞", "効"), ("暑い", "熱い"), ("会う", "合う"), ("電気", "電機"),
              ("時間", "じかん"), ("音楽", "おんがく"), ("ください", "下さい"), ("して", "シテ")],
    "hi-IN": [("की", "कि"), ("है", "हैं"), ("में", "मैं"), ("नहीं", "नही"), ("बजे", "बजें"), ("करो", "करों"),
              ("ि", "ी"), ("ु", "ू"), ("े", "ै"), ("ो", "ौ")],
}
PII_PHRASES = {  # (email lead-in, phone lead-in)
    "en-US": ("my email is", "call me at"), "de-DE": ("meine mail ist", "ruf mich an unter"),
    "fr-FR": ("mon mail est", "appelle-moi au"), "es-ES": ("mi correo es", "llámame al"),
    "ja-JP": ("メールは", "電話番号は"), "hi-IN": ("मेरा ईमेल है", "मुझे इस नंबर पर कॉल करो"),
}
_NAMES = ["anna", "maria", "john.smith", "k.tanaka", "priya", "luc.martin", "jens", "carmen.r", "amit"]
_DOMAINS = ["gmail.com", "example.org", "web.de", "yahoo.fr", "outlook.com", "mail.jp"]
_LATIN = re.compile(r"[a-zà-ÿ]", re.IGNORECASE)


def _masked(annot: str) -> tuple[str, list[str]]:
    found: list[str] = []

    def keep(m: re.Match) -> str:
        found.append(m.group(0))
        return f"\x00{len(found) - 1}\x00"
    return SLOT_MARKUP.sub(keep, annot), found


def _unmask(text: str, found: list[str]) -> str:
    text = re.sub(r"\x00(\d+)\x00", lambda m: found[int(m.group(1))], text)
    return " ".join(text.split())


def _remove_phrase(text: str, phrase: str, locale: str) -> str | None:
    if locale == "ja-JP":
        return text.replace(phrase, "", 1) if phrase in text else None
    pattern = re.compile(rf"(?<![\w']){re.escape(phrase)}(?![\w'])")
    new, n = pattern.subn("", text, count=1)
    return new if n else None


def light_edits(annot: str, locale: str) -> list[str]:
    """Variants of an annotation: politeness word toggled, one filler dropped. Each keeps the slots."""
    masked, found = _masked(annot)
    variants: list[str] = []
    polite = [p for p in POLITE_FORMS.get(locale, []) if _remove_phrase(masked, p, locale) is not None]
    if polite:
        variants.append(_remove_phrase(masked, polite[0], locale))
    elif locale in POLITE:
        word, where = POLITE[locale]
        if locale == "ja-JP" and masked.endswith("て"):
            word = "ください"
        sep = "" if locale == "ja-JP" else " "
        variants.append(f"{word}{sep}{masked}" if where == "prefix" else f"{masked}{sep}{word}")
    for filler in FILLERS.get(locale, []):
        if filler in POLITE_FORMS.get(locale, []):
            continue
        dropped = _remove_phrase(masked, filler, locale)
        if dropped is not None:
            variants.append(dropped)
            break
    out = []
    for v in variants:
        v = _unmask(v, found)
        if v and v != annot and SLOT_MARKUP.sub("", v).strip() and v not in out:
            out.append(v)
    return out


def asr_noise(text: str, locale: str, u: tuple[float, float, float]) -> str:
    """An ASR-like misrecognition of `text` (homophone, word drop, char drop/swap); differs from `text`
    whenever any edit applies. `u` holds three uniforms in [0, 1)."""
    ops = ["homophone", "word_drop", "char_drop", "char_swap"]
    start = int(u[0] * len(ops))
    for op in ops[start:] + ops[:start]:
        noisy = _apply(op, text, locale, u[1], u[2])
        if noisy and noisy != text:
            return " ".join(noisy.split())
    return text


def _apply(op: str, text: str, locale: str, u1: float, u2: float) -> str | None:
    if op == "homophone":
        pattern, partner = _homophones(locale)
        found = list(pattern.finditer(text)) if pattern else []
        if not found:
            return None
        m = found[int(u1 * len(found))]
        return text[:m.start()] + partner[m.group()] + text[m.end():]
    if op == "word_drop":
        words = text.split()
        if len(words) < 3:
            return None
        i = 1 + int(u1 * (len(words) - 1))
        return " ".join(words[:i] + words[i + 1:])
    if op == "char_drop":
        positions = [i for i, ch in enumerate(text) if ch.isalpha()]
        if len(text) < (3 if locale == "ja-JP" else 6) or not positions:
            return None
        i = positions[int(u1 * len(positions))]
        return text[:i] + text[i + 1:]
    if op == "char_swap":
        positions = [i for i in range(len(text) - 1)
                     if _LATIN.match(text[i]) and _LATIN.match(text[i + 1]) and text[i] != text[i + 1]]
        if not positions:
            return None
        i = positions[int(u1 * len(positions))]
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return None


@lru_cache(maxsize=None)
def _homophones(locale: str) -> tuple[re.Pattern | None, dict[str, str]]:
    """One regex for all of a locale's confusable words (both directions) and the word -> partner map."""
    partner: dict[str, str] = {}
    for a, b in HOMOPHONES.get(locale, []):
        partner.setdefault(a, b)
        partner.setdefault(b, a)
    if not partner:
        return None, partner
    words = "|".join(re.escape(w) for w in sorted(partner, key=len, reverse=True))
    if locale in ("ja-JP", "hi-IN"):   # no word boundaries to rely on (no spaces / combining marks)
        return re.compile(words), partner
    return re.compile(rf"(?<![\w'])(?:{words})(?![\w'])"), partner


def with_pii(annot: str, locale: str, u: tuple[float, float, float]) -> tuple[str, str]:
    """(annot, text) with an e-mail address or phone number appended, as a dictating user would say it."""
    email_lead, phone_lead = PII_PHRASES.get(locale, PII_PHRASES["en-US"])
    if u[0] < 0.5:
        name = _NAMES[int(u[1] * len(_NAMES))]
        pii = f"{email_lead} {name}{int(u[2] * 90) + 10}@{_DOMAINS[int(u[2] * 997) % len(_DOMAINS)]}"
    else:
        digits = f"{int(u[1] * 1e8):08d}{int(u[2] * 100):02d}"
        pii = f"{phone_lead} +{1 + int(u[2] * 90)} {digits[:3]} {digits[3:6]} {digits[6:]}"
    new_annot = f"{annot} {pii}"
    return new_annot, plain_text(new_annot, locale)
