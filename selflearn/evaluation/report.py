"""The evaluation result as a plain-text report: one table per figure, a row per locale and ALL."""
from __future__ import annotations


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def _rows(section: dict, columns: list[str], pick) -> list[list]:
    per = [(loc, m) for loc, m in section["by_locale"].items()] + [("ALL", section["overall"])]
    return [[loc] + [pick(m, c) for c in columns] for loc, m in per]


def _get(m: dict, c: str):
    return m.get(c)


def format_report(result: dict) -> str:
    inputs = result["inputs"]
    counts = inputs["counts"]
    out = [
        "selflearn evaluation",
        f"  logs:  {inputs['logs']}  ({counts['log_events']} events, {counts['log_events_with_truth']} with truth)",
        f"  truth: {inputs['truth_dir']}  ({counts['truth_pairs']} pairs, {counts['truth_rephrase_pairs']} rephrases)",
        f"  run:   {inputs['run_dir']}  ({counts['weak_labels']} weak labels, {counts['run_pairs']} scored pairs)",
        "",
        "1. Rephrase detection: run pairs is_rephrase vs truth pairs (truth rephrases missing from the run = FN)",
    ]
    cols = ["tp", "fp", "fn", "precision", "recall", "f1", "truth_rephrases_missing_from_run"]
    out.append(table(["locale", "tp", "fp", "fn", "precision", "recall", "f1", "missing_in_run"],
                     _rows(result["rephrase"], cols, _get)))

    out += ["", "2. Weak labels (ours), judged against the majority true intent of the utterance's log events",
            f"   recoverable = failing, seen from >= {inputs['min_users']} users, with a truth rephrase to a "
            "system-correct turn"]
    cols = ["labels", "unjudged", "correct", "intent_precision", "failing_precision", "failing_coverage",
            "recoverable", "recovered", "yield", "slot_f1"]
    out.append(table(["locale", "labels", "unjudged", "correct", "precision", "fail_prec", "fail_cover",
                      "recoverable", "recovered", "yield", "slot_f1"], _rows(result["weak_labels"], cols, _get)))

    out += ["", "3. Naive baseline: next turn of the same user within 30 s with a different non-null intent "
                "(no min_users filter)"]
    cols = ["labels", "correct", "intent_precision", "failing_precision", "failing_coverage", "recovered", "yield"]
    out.append(table(["locale", "labels", "correct", "precision", "fail_prec", "fail_cover", "recovered", "yield"],
                     _rows(result["naive"], cols, _get)))

    conf = result.get("confidence", {"skipped": True, "note": "not measured"})
    out += ["", "4. Confidence: labels at or above each cut (precision-yield curve), and confidence vs precision"]
    if conf.get("skipped"):
        out.append(f"  skipped: {conf['note']}")
    else:
        out.append(table(["cut", "labels", "precision", "yield"],
                         [[f"{r['cut']:.2f}", r["labels"], r["precision"], r["yield"]] for r in conf["curve"]]))
        out.append("")
        out.append(table(["confidence", "judged", "mean_conf", "precision"],
                         [[r["bin"], r["n"], r["mean_confidence"], r["precision"]] for r in conf["reliability"]]))

    loop = result["closed_loop"]
    out += ["", "5. Closed loop: intent accuracy on nlu_test"]
    if loop.get("skipped"):
        out.append(f"  skipped: {loop['note']}")
    else:
        out.append(f"  model: {loop['model']}; {loop['n_seed']} seed rows, {loop['n_test']} test rows, added "
                   + ", ".join(f"{k} {v}" for k, v in loop["added"].items()))
        conds = ["seed", "seed+weak", "seed+naive", "seed+perfect"]
        for title, key, gains in (
                ("macro accuracy (per intent, averaged): the headline", "macro_accuracy",
                 ["gain_captured", "naive_gain_captured"]),
                ("accuracy on traffic (head intents dominate; class-weight swings, not learning)", "accuracy",
                 ["traffic_gain_captured", "naive_traffic_gain_captured"])):
            pick = (lambda m, c, key=key: m[key][c] if c in conds else m.get(c))
            out.append(f"  {title}")
            out.append(table(["locale", "n_test", "seed", "+weak", "+naive", "+perfect", "gain_captured",
                              "naive_gain"], _rows(loop, ["n_test"] + conds + gains, pick)))
    if result.get("notes"):
        out += ["", "Notes"] + [f"  - {n}" for n in result["notes"]]
    return "\n".join(out) + "\n"
