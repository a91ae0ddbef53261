"""Should a team train on this run's labels? One verdict per locale, with its reason, from the manifest (and
eval.json when there is one); plus what changed since the previous run in the same output folder.

    decide(manifest, eval_result) -> [LocaleDecision]    shown at the top of report.html and by `selflearn run`
    label_changes(previous, current) -> dict               new / dropped / changed labels against the last run

Estimated precision is the mean calibrated confidence of the emitted labels (a confidence of 0.9 means about
nine in ten such labels are right), so it needs no ground truth. With ground truth, the measured precision and
the closed loop (intent accuracy of a model trained on the seed set with and without the labels) can overrule it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# Fewer labels than this in a locale move a retrained model by noise only; the verdict says so.
MIN_LABELS = 5
LABEL_KEY = ["locale", "utt_norm"]


@dataclass(frozen=True)
class LocaleDecision:
    locale: str
    labels: int
    estimated_precision: float | None
    measured_precision: float | None
    closed_loop_gain: float | None      # macro accuracy(seed + labels) - macro accuracy(seed), truth's test set
    use: bool
    reason: str

    @property
    def verdict(self) -> str:
        return f"{'use' if self.use else 'do not use'}: {self.reason}"


def decide(manifest: dict, eval_result: dict | None = None) -> list[LocaleDecision]:
    target = float(manifest["config"]["labels"]["target_precision"])
    labels = manifest["counts"].get("labels_per_locale", {})
    estimated = manifest.get("training", {}).get("estimated_precision", {})
    measured = (eval_result or {}).get("weak_labels", {}).get("by_locale", {})
    loop = (eval_result or {}).get("closed_loop") or {}
    loop_by_locale = {} if loop.get("skipped") else loop.get("by_locale", {})
    decisions = []
    for locale in sorted(labels):
        n = int(labels[locale])
        precision = estimated.get(locale)
        truth_precision = measured.get(locale, {}).get("intent_precision") if n else None
        gain = _gain(loop_by_locale.get(locale, {}))
        use, reason = _verdict(n, precision, truth_precision, gain, target)
        decisions.append(LocaleDecision(locale, n, precision, truth_precision, gain, use, reason))
    return decisions


def _gain(locale_loop: dict) -> float | None:
    # macro accuracy, the closed loop's headline (an eval.json from before it has only accuracy on traffic)
    accuracy = locale_loop.get("macro_accuracy") or locale_loop.get("accuracy", {})
    if accuracy.get("seed") is None or accuracy.get("seed+weak") is None:
        return None
    return round(accuracy["seed+weak"] - accuracy["seed"], 4)


def _verdict(n: int, precision: float | None, truth_precision: float | None, gain: float | None,
             target: float) -> tuple[bool, str]:
    if n == 0:
        return False, "no labels"
    if n < MIN_LABELS:
        return False, f"too few labels ({n} < {MIN_LABELS}) to change a model"
    if truth_precision is not None and truth_precision < target:
        return False, f"measured precision {truth_precision:.3f} < target {target:g}"
    if precision is not None and precision < target:
        return False, f"estimated precision {precision:.3f} < target {target:g}"
    if gain is not None and gain < 0:
        return False, f"the closed loop lost macro accuracy ({gain:+.3f})"
    reason = f"{n} labels at estimated precision {precision:.3f} >= target {target:g}"
    if gain is not None:
        reason += f", closed-loop macro accuracy {gain:+.3f}"
    return True, reason


def label_changes(previous: pd.DataFrame | None, current: pd.DataFrame) -> dict:
    """Labels new since the previous run, dropped from it, and relabeled (same utterance, other intent), per
    locale and in all; {"previous_run": False} when there was no previous run in the folder."""
    if previous is None:
        return {"previous_run": False}
    before = previous[LABEL_KEY + ["intent"]].drop_duplicates(LABEL_KEY)
    after = current[LABEL_KEY + ["intent"]].drop_duplicates(LABEL_KEY) if len(current) else before.iloc[:0]
    both = before.merge(after, on=LABEL_KEY, how="outer", suffixes=("_before", "_after"), indicator=True)
    kinds = pd.Series("same", index=both.index)
    kinds[both["_merge"] == "right_only"] = "new"
    kinds[both["_merge"] == "left_only"] = "dropped"
    kinds[(both["_merge"] == "both") & (both["intent_before"] != both["intent_after"])] = "changed"
    table = pd.crosstab(both["locale"], kinds) if len(both) else pd.DataFrame()
    per_locale = {str(locale): {k: int(row.get(k, 0)) for k in ("new", "dropped", "changed")}
                  for locale, row in table.iterrows()}
    totals = {k: sum(v[k] for v in per_locale.values()) for k in ("new", "dropped", "changed")}
    return {"previous_run": True, **totals, "per_locale": dict(sorted(per_locale.items()))}


def changes_sentence(changes: dict | None) -> str:
    if not changes or not changes.get("previous_run"):
        return "Since the previous run: no previous run in this folder."
    return (f"Since the previous run in this folder: {changes['new']} new, {changes['dropped']} dropped and "
            f"{changes['changed']} relabeled labels.")


def lifecycle_sentence(life: dict | None) -> str:
    """The label lifecycle (manifest "lifecycle", selflearn/lifecycle.py) in one line."""
    if not life:
        return "Label lifecycle: not recorded by this run."
    states = ", ".join(f"{n} {s}" for s, n in life.get("states", {}).items()) or "no labels"
    changes = ", ".join(f"{n} {c}" for c, n in life.get("changes", {}).items()) or "no changes"
    return (f"Label lifecycle as of {life.get('as_of')}: {states}; this run: {changes}; "
            f"{life.get('withheld_from_training', 0)} labels withheld from training (retired or contested); "
            "history/ has every change.")


def format_text(decisions: list[LocaleDecision], changes: dict | None, life: dict | None = None) -> str:
    """The decision panel as plain text for the terminal."""
    rows = [["locale", "labels", "est. precision", "closed loop", "verdict"]]
    rows += [[d.locale, str(d.labels), _fmt(d.estimated_precision), _fmt(d.closed_loop_gain, signed=True),
              d.verdict] for d in decisions]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))), r[-1]])
             for r in rows]
    return "\n".join(["decision (train on these labels?):", *("  " + line for line in lines),
                      changes_sentence(changes), *([lifecycle_sentence(life)] if life else [])])


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
