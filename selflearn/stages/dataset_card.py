"""The dataset card `training/README.md`: a YAML header that `datasets.load_dataset` reads (configs and their
data files), then what a team needs before training on the set: intent labels, counts per locale and split,
how the labels were made, what a confidence means, and a licence placeholder.

Privacy: the card states intent names and counts only, never an utterance, so it releases nothing that
the min_users rule has not already released. It carries no clock time: equal labels give an equal card.
"""
from __future__ import annotations

import json
import re

import pandas as pd

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


def render_card(labels: pd.DataFrame, per_split: dict[str, dict[str, int]], *, splits: list[str],
                eval_share: float, min_users: int, about: dict) -> str:
    return "\n".join([*_yaml_header(per_split, splits), *_body(labels, per_split, splits, eval_share, min_users,
                                                                about)]) + "\n"


def _q(value) -> str:
    """A YAML double-quoted scalar (JSON string escapes are valid YAML), whatever characters a locale holds."""
    return json.dumps(str(value))


def _yaml_header(per_split: dict[str, dict[str, int]], splits: list[str]) -> list[str]:
    locales = sorted({locale for counts in per_split.values() for locale in counts})
    languages = sorted({loc.split("-")[0].lower() for loc in locales if _LANGUAGE.match(loc.split("-")[0].lower())})
    lines = ["---", "pretty_name: selflearn weak labels",
             "license: other  # placeholder: set the licence your logs and users' consent allow",
             "task_categories:", "- text-classification", "task_ids:", "- intent-classification",
             "tags:", "- weak-supervision", "- nlu", "- massive"]
    if languages:
        lines += ["language:", *(f"- {_q(lang)}" for lang in languages)]
    # One config only: `datasets` picks one builder per folder from the first config's files, so a JSON
    # config beside the Parquet one would fail to load by name; massive/ loads as a folder of its own.
    lines += ["configs:", "- config_name: parquet", "  default: true", "  data_files:"]
    lines += [f"  - split: {split}\n    path: parquet/{split}.parquet" for split in splits]
    return [*lines, "---", ""]


def _body(labels: pd.DataFrame, per_split: dict[str, dict[str, int]], splits: list[str], eval_share: float,
          min_users: int, about: dict) -> list[str]:
    total = len(labels)
    held_out = (f"`test` holds the labels whose hashed (locale, normalized utterance) falls below "
                f"eval_share = {eval_share:g}, so an utterance stays in its split on every run; train on "
                "`train`, check the model on `test`." if "test" in splits else
                "One split, `train` (eval_share = 0; `selflearn run --eval-share 0.1` holds out a `test` split).")
    return [
        "# selflearn weak labels", "",
        f"{total} weakly labeled utterances mined from voice-assistant logs by selflearn "
        f"{about.get('selflearn_version', '?')} (config {about.get('config_fingerprint', '?')}, embedder "
        f"{about.get('embedder', '?')}). Every run rewrites this folder; do not edit it by hand.", "",
        "## Load", "",
        "```python",
        "from datasets import load_dataset",
        'labels = load_dataset("<run>/training")            # Parquet, the card\'s config "parquet"',
        'massive = load_dataset("<run>/training/massive")   # MASSIVE JSONL; splits from train/ and test/',
        "import pandas as pd",
        'frame = pd.read_parquet("<run>/training/parquet")  # every split in one frame',
        "```", "",
        "- `parquet`: one row per (locale, utterance): `utt`, `intent`, `annot_utt` (MASSIVE `[slot : value]`), "
        "`slots`, `confidence`, `source`, `n_users`, `n_events`, `target_utt`, `system_intent`, `evidence`.",
        "- `massive/<split>/<locale>.jsonl`: the same labels in MASSIVE format (`id, locale, partition, "
        "scenario, intent, utt, annot_utt`) plus a `weak_label` record (confidence, source, users, events, "
        "target, evidence), for tools that read MASSIVE.", "",
        "## Splits", "", held_out, "",
        *_md_table(["locale", *splits, "all"], [
            [locale, *(per_split[s].get(locale, 0) for s in splits), sum(per_split[s].get(locale, 0) for s in splits)]
            for locale in sorted({loc for counts in per_split.values() for loc in counts})
        ] + [["all", *(sum(per_split[s].values()) for s in splits), total]]), "",
        "## Intent labels", "",
        *(_md_table(["intent", "scenario", "labels"], _intent_rows(labels)) if total else ["(no labels this run)"]),
        "",
        "## How the labels were made", "",
        "From logged turns only, without human annotation. Each turn gets a friction score (barge-in, error or "
        "unhandled status, low NLU confidence, a quick next turn). A failing utterance (friction on most turns, "
        "or users who keep rephrasing it) gets the interpretation that its users' rephrases point to "
        "(`source` multiturn), supported by similar utterances other users got served well (`cross_user`, "
        "`cross_lingual`). In a small (launch-week) locale, a failing text whose own users' evidence is too thin "
        "may take the interpretation its nearest reliably understood utterances in other locales agree on "
        "(`source` transfer, or multiturn+transfer where its users' rephrases agree). A logistic model over that evidence gives each candidate a calibrated confidence; "
        "labels are emitted from the most confident down while the expected precision stays at the target "
        f"({about.get('target_precision', '?')}), and the labeler abstains where evidence is thin or conflicting. "
        "Slots are projected from the fixing utterance where their values occur in the failing text. "
        "`evidence` says, per label, which users' rewrites support it (as counts).", "",
        "## Confidence", "",
        "`confidence` is the labeler's calibrated probability that `intent` is right: among labels at "
        "confidence 0.9, about nine in ten are expected to be correct. Their mean estimates the set's "
        "precision; `selflearn eval --truth` measures it where ground truth exists. Filter on it to trade "
        "yield for precision, or weight training examples by it.", "",
        "## Privacy", "",
        f"Every released utterance was seen from at least {min_users} distinct users; user ids never leave the "
        "run's private `work/` folder. This card states intent names and counts only.", "",
        "## Licence", "",
        "Placeholder: the logs' owner decides the licence (set `license:` above) and whether users' consent "
        "covers training on their utterances.",
    ]


def _intent_rows(labels: pd.DataFrame) -> list[list]:
    counts = labels.groupby("intent").size()
    return [[intent, intent.split("_", 1)[0], int(n)] for intent, n in
            sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
