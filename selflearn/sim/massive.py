"""MASSIVE as the simulator's source of requests: loading, locale checks, slot markup, the bundled excerpt.

A MASSIVE `id` is one request (intent + slot values) phrased in every locale; `annot_utt` marks slots
as `[slot : value]`. The simulator reads the full dev table when given a path, else the small attributed
excerpt in `selflearn/data/massive_excerpt.parquet` (built by `build_excerpt`).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

EXCERPT_PATH = Path(__file__).resolve().parent.parent / "data" / "massive_excerpt.parquet"
COLUMNS = ["id", "locale", "partition", "scenario", "intent", "utt", "annot_utt"]
SLOT_MARKUP = re.compile(r"\[(\w+) : ([^\]]*)\]")
# MASSIVE's ja/zh annotations put spaces around slot brackets that the plain utterance does not have.
_SPACE_BETWEEN_NON_ASCII = re.compile(r"(?<=[^\x00-\x7f]) (?=[^\x00-\x7f])")
NO_SPACE_LOCALES = ("ja-JP", "zh-CN", "zh-TW", "th-TH", "km-KH", "my-MM")


def load(path: str | Path | None, locales: list[str]) -> pd.DataFrame:
    """The MASSIVE rows of `locales` for the ids present in all of them; ValueError names what exists."""
    table = pq.read_table(path or EXCERPT_PATH, columns=COLUMNS).to_pandas()
    available = sorted(table["locale"].unique())
    unknown = [loc for loc in locales if loc not in available]
    if unknown:
        raise ValueError(f"locale(s) {unknown} not in the MASSIVE data {str(path or EXCERPT_PATH)!r}; "
                         f"available: {available}")
    table = table[table["locale"].isin(locales)]
    complete = table.groupby("id")["locale"].nunique()
    table = table[table["id"].isin(complete.index[complete == len(locales)])]
    order = table["id"].astype(str).str.zfill(8)
    return table.assign(_order=order).sort_values(["_order", "locale"]).drop(columns="_order").reset_index(drop=True)


def slots_of(annot: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in SLOT_MARKUP.finditer(annot)]


def plain_text(annot: str, locale: str) -> str:
    """The utterance an annotation stands for (exact for MASSIVE, ja-JP included)."""
    text = SLOT_MARKUP.sub(lambda m: m.group(2), annot)
    if locale in NO_SPACE_LOCALES:
        text = _SPACE_BETWEEN_NON_ASCII.sub("", text)
    return " ".join(text.split())


def substitute(template_annot: str, slots: list[tuple[str, str]]) -> str | None:
    """Fill `template_annot`'s slots with `slots` values (same names, in order); None if the names differ."""
    pending: dict[str, list[str]] = {}
    for name, value in slots:
        pending.setdefault(name, []).append(value)
    needed = [m.group(1) for m in SLOT_MARKUP.finditer(template_annot)]
    if sorted(needed) != sorted(n for n, _ in slots):
        return None
    return SLOT_MARKUP.sub(lambda m: f"[{m.group(1)} : {pending[m.group(1)].pop(0)}]", template_annot)


def build_excerpt(massive_path: str | Path, out_path: str | Path = EXCERPT_PATH, n_ids: int = 450,
                  seed: int = 2023) -> pd.DataFrame:
    """Pick ~`n_ids` parallel ids covering every intent, several per intent, favouring ids that share their
    intent and slot names with another picked id (so slot-substitution paraphrases exist), and write them."""
    full = pq.read_table(massive_path, columns=COLUMNS).to_pandas()
    locales = sorted(full["locale"].unique())
    counts = full.groupby("id")["locale"].nunique()
    full = full[full["id"].isin(counts.index[counts == len(locales)])]
    pivot = full[full["locale"] == "en-US"].set_index("id")
    pivot["signature"] = pivot["annot_utt"].map(lambda a: "|".join(sorted(n for n, _ in slots_of(a))))
    rng = np.random.default_rng(seed)
    per_intent = pivot.groupby("intent").size()
    share = np.sqrt(per_intent) / np.sqrt(per_intent).sum()
    quota = np.minimum(per_intent, np.maximum(3, np.round(share * n_ids))).astype(int)
    picked: list[str] = []
    for intent in sorted(per_intent.index):
        rows = pivot[pivot["intent"] == intent]
        groups = [list(rng.permutation(ids.index.to_numpy())) for _, ids in rows.groupby("signature")]
        rng.shuffle(groups)
        groups.sort(key=lambda g: -min(len(g), 4))  # stable: shared signatures first, random among equals
        chosen: list[str] = []
        while len(chosen) < quota[intent] and any(groups):
            for group in groups:
                take = group[:2] if len(group) >= 2 else group[:1]
                del group[:len(take)]
                chosen.extend(take[: quota[intent] - len(chosen)])
        picked.extend(chosen)
    excerpt = full[full["id"].isin(picked)].copy()
    excerpt = excerpt.assign(_order=excerpt["id"].str.zfill(8)).sort_values(["_order", "locale"])
    excerpt = excerpt.drop(columns="_order").reset_index(drop=True)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(excerpt[COLUMNS], preserve_index=False), out_path, compression="zstd")
    return excerpt
