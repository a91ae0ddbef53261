"""One self-contained HTML page per run: funnel, per-locale tables, plots, sample labels, evaluation.

    write_report(out_dir) -> out_dir/report.html      (reads manifest.json and the run's outputs)
    markdown_summary(manifest, eval_result) -> str    (funnel and quality tables, e.g. for a Prefect artifact)

Plots are inline SVG written here: no scripts, fonts or stylesheets from anywhere, so the page works offline
and from an e-mail attachment. The page carries no clock time, so equal outputs give an equal page.
"""
from __future__ import annotations

import html
import json
import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from selflearn import outdir
from selflearn.decision import MIN_LABELS, changes_sentence, decide, lifecycle_sentence
from selflearn.io import atomic_write_text
from selflearn.layout import RUN_FILES, RunLayout

FUNNEL_STEPS = ("turns", "pairs", "rephrases", "failing_utterances", "labels")
SAMPLE_LABELS = 30
EMERGING_SHOWN = 5          # phrasings per locale on the page; history/emerging.parquet has them all
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1120px;
color:#1d2430;padding:0 16px}h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid #dde2ea;padding-bottom:4px}.muted{color:#667085}.cards{display:flex;flex-wrap:wrap;
gap:10px;margin:14px 0}.card{border:1px solid #dde2ea;border-radius:8px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border-bottom:1px solid #e6e9ef;padding:3px 9px;text-align:left;vertical-align:top;max-width:240px;
overflow-wrap:break-word}th,td.n,td.name{white-space:nowrap;overflow-wrap:normal}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f6f9}
.plots{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.plot{border:1px solid #e6e9ef;border-radius:8px;padding:8px}
td.evidence{max-width:380px;color:#475467;font-size:12px}
.notice{border-left:4px solid #d9a400;background:#fff8e1;padding:8px 12px}
#decision{border:2px solid #1d2430;border-radius:8px;padding:4px 14px 8px;margin:12px 0}
#decision h2{border:0;margin:6px 0}#decision td.use,#decision td.skip{max-width:560px}td.use{color:#1e7a4c;font-weight:600}td.skip{color:#b42318;font-weight:600}
"""


# ------------------------------------------------------------------------------------------------ entry points

def write_report(out_dir: str | Path, manifest: dict | None = None, eval_result: dict | None = None,
                 run_dir: str | Path | None = None) -> Path:
    """Write report.html atomically into the run folder `run_dir` (default: the run published in out_dir) from
    the run's manifest and outputs; out_dir/eval.json is included if present."""
    out = Path(out_dir)
    run = Path(run_dir) if run_dir is not None else outdir.published_dir(out)
    layout = RunLayout(out, run)
    manifest = manifest if manifest is not None else json.loads(layout.manifest.read_text(encoding="utf-8"))
    stale_eval = False
    if eval_result is None and (eval_result := read_eval(out)) is not None:
        stale_eval = layout.manifest.is_file() and \
            layout.eval_result.stat().st_mtime < layout.manifest.stat().st_mtime
    return atomic_write_text(render(out, manifest, eval_result, stale_eval, run=run), layout.report)


def read_eval(out_dir: str | Path) -> dict | None:
    """out_dir/eval.json (written by `selflearn eval`), or None."""
    path = RunLayout(out_dir).eval_result
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def markdown_summary(manifest: dict, eval_result: dict | None = None) -> str:
    """The funnel per locale and the run's quality figures as Markdown tables."""
    funnel = [[r["locale"], *(r[s] for s in FUNNEL_STEPS)] for r in manifest["funnel"]]
    totals = ["**all**", *(sum(r[i + 1] for r in funnel) for i in range(len(FUNNEL_STEPS)))]
    no_labels = no_labels_reason(manifest)
    lines = ["## selflearn run", "", "### Funnel", "", *_md_table(["locale", *FUNNEL_STEPS], funnel + [totals]),
             *(["", no_labels] if no_labels else []),
             "", "### Quality", "", *_md_table(["figure", "value"], quality_rows(manifest, eval_result))]
    return "\n".join(lines) + "\n"


def no_labels_reason(manifest: dict) -> str | None:
    """One sentence saying why a run emitted no labels, from the furthest funnel step it reached; None when it
    emitted some. A run without labels is a normal outcome (a good day has no failures), not an error."""
    counts, rows = manifest["counts"], manifest["rows"]
    if counts["weak_labels"]:
        return None
    if counts["turns_in_window"] == 0:
        if rows["rows_in"] == 0:
            why = "the logs hold no rows (0 rows in)"
        elif rows["rows_kept"] == 0:
            why = (f"no log row was kept ({rows['rows_in']} rows in: {rows['rows_quarantined']} quarantined, "
                   f"{rows['duplicates']} duplicates)")
        else:
            why = (f"no turn with matchable text falls in the statistics window (last "
                   f"{manifest['config']['run']['window_days']} days; punctuation-only turns carry no text)")
        return f"No labels this run: {why}."
    if counts["failing_nodes"] == 0:
        return (f"No labels this run: no utterance in the window failed (0 failing utterances among "
                f"{counts['nodes']} distinct utterances in {counts['turns_in_window']} turns; only an utterance "
                f"seen from at least {manifest['config']['privacy']['min_users']} users can count as failing).")
    reasons = sorted((-n, reason) for reason, n in counts.get("abstained", {}).items() if n)
    because = ": " + ", ".join(f"{reason.replace('_', ' ')} {-n}" for n, reason in reasons) if reasons else ""
    failing = counts["failing_nodes"]
    return (f"No labels this run: the labeler abstained on {'all ' * (failing > 1)}{failing} failing "
            f"utterance{'s' * (failing > 1)}{because}.")


def funnel_rows(manifest: dict) -> list[dict]:
    return [{"locale": r["locale"], **{s: int(r[s]) for s in FUNNEL_STEPS}} for r in manifest["funnel"]]


def quality_rows(manifest: dict, eval_result: dict | None = None) -> list[list]:
    rows, counts = manifest["rows"], manifest["counts"]
    abstained = counts.get("abstained", {})
    out = [
        ["log rows in / kept / quarantined / duplicates",
         f"{rows['rows_in']} / {rows['rows_kept']} / {rows['rows_quarantined']} / {rows['duplicates']}"],
        ["turns in window", counts["turns_in_window"]],
        ["failing utterances", counts["failing_nodes"]],
        ["weak labels", counts["weak_labels"]],
        ["label yield (labels / failing utterances)", _ratio(counts["weak_labels"], counts["failing_nodes"])],
        ["abstained", ", ".join(f"{k} {v}" for k, v in sorted(abstained.items())) or "0"],
        ["released nodes / edges / rewrite pairs",
         f"{counts['released_nodes']} / {counts['released_edges']} / {counts['released_rewrite_pairs']}"],
        ["graph components / longest chain", f"{counts['components']} / {counts['longest_chain']}"],
        ["texts embedded new / cached", f"{manifest['embedding'].get('embedded', 0)} / "
                                       f"{manifest['embedding'].get('cache_hits', 0)}"],
    ]
    for key, label in (("rephrase", "rephrase F1 (eval)"), ("weak_labels", "label intent precision (eval)")):
        overall = (eval_result or {}).get(key, {}).get("overall", {})
        metric = "f1" if key == "rephrase" else "intent_precision"
        if overall.get(metric) is not None:
            out.append([label, f"{overall[metric]:.3f}"])
    return out


# ------------------------------------------------------------------------------------------------ the page

def render(out: Path, manifest: dict, eval_result: dict | None, stale_eval: bool = False,
           run: Path | None = None) -> str:
    """The page for the run in `run` (default `out`, the output folder, which holds the quarantine)."""
    run = run if run is not None else out
    counts, rows = manifest["counts"], manifest["rows"]
    funnel = pd.DataFrame(manifest["funnel"], columns=["locale", *FUNNEL_STEPS])
    layout = RunLayout(out, run)
    nodes = _read(layout.graph_nodes)
    labels = _read_folder(layout.training_labels)
    scored = _read(layout.scored_pairs, ["rephrase_score", "is_rephrase"])
    rewrites = _read(layout.rewrite_pairs, ["locale"])
    # counts from the manifest: the quarantine rows themselves are private to operators
    quarantine = pd.DataFrame(manifest.get("quarantine", []), columns=["locale", "reason", "rows"])
    cards = [("log rows in", rows["rows_in"], "rows-in"),
             ("turns in window", counts["turns_in_window"], "total-turns"),
             ("rephrases", counts["rephrases"], "rephrases"),
             ("failing utterances", counts["failing_nodes"], "failing"),
             ("weak labels", counts["weak_labels"], "label-count"),
             ("quarantined rows", rows["rows_quarantined"], "quarantined")]
    funnel["label_yield"] = [_ratio(n, d) for n, d in zip(funnel["labels"], funnel["failing_utterances"])]
    abstained = pd.DataFrame(sorted(counts.get("abstained", {}).items()), columns=["abstained because", "utterances"])
    rejected = quarantine.rename(columns={"rows": "log_rows"})
    timings = timings_table(manifest.get("timings_s", {}), manifest.get("stages"))
    embedding = manifest.get("embedding", {})
    no_labels = no_labels_reason(manifest)
    body = [
        "<h1>selflearn run report</h1>",
        f'<p class="muted">{_e(out.resolve())} · selflearn {_e(manifest.get("selflearn_version"))} · engine '
        f'{_e(manifest.get("engine"))} · embedder {_e(embedding.get("embedder"))} · config '
        f'{_e(manifest.get("config_fingerprint"))}</p>',
        decision_panel(manifest, None if stale_eval else eval_result),  # a stale eval judged another run
        '<div class="cards">' + "".join(f'<div class="card"><b id="{i}">{_num(v)}</b>{_e(k)}</div>'
                                        for k, v, i in cards) + "</div>",
        f'<p class="notice" id="no-labels">{_e(no_labels)}</p>' if no_labels else "",
        "<h2>Funnel</h2>",
        '<p class="muted">turns &rarr; turn pairs &rarr; rephrases &rarr; failing utterances &rarr; labels '
        '(bars on a log scale)</p>',
        _plot(_hbars([(s, int(funnel[s].sum())) for s in FUNNEL_STEPS], log=True)),
        _table(funnel),
        "<h2>Per locale</h2>", _table(_per_locale(funnel, nodes, labels, rewrites, quarantine)),
        _emerging_section(run, manifest),
        "<h2>Plots</h2>", '<div class="plots">',
        _plot(_score_histogram(scored, manifest["config"]["rephrase"]["threshold"]),
              "Rephrase score of turn pairs (dashed: threshold)"),
        _plot(_hbars(_defect_by_intent(nodes), fmt="{:.0%}", max_value=1.0),
              "Defect rate by system intent (20 most used intents)"),
        _plot(_hbars(_component_sizes(nodes), log=True), "Graph components by size (utterances per component)"),
        _plot(_hbars(sorted(counts.get("labels_per_locale", {}).items())), "Weak labels per locale"),
        "</div>",
        f"<h2>Sample of emitted labels ({min(len(labels), SAMPLE_LABELS)} of {len(labels)}, most confident first)</h2>",
        _table(_label_sample(labels)) if len(labels) else f"<p>{_e(no_labels or 'No labels were emitted.')}</p>",
        "<h2>Abstentions and quarantine</h2>",
        _table(abstained),
        _table(rejected) if len(quarantine) else "<p>No log rows were quarantined.</p>",
        "<h2>Evaluation</h2>", _eval_section(eval_result, stale_eval),
        "<h2>Timings</h2>", _table(timings),
    ]
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>selflearn run report</title>'
            f'<meta name="viewport" content="width=device-width"><style>{_CSS}</style></head>\n<body>\n'
            + "\n".join(body) + "\n</body></html>\n")


def timings_table(timings: dict[str, float], stages: list[str] | None = None) -> pd.DataFrame:
    """Seconds per stage in run order (`stages`, the manifest's list), then a total row."""
    stages = stages or []
    order = [s for s in stages if s in timings] + sorted(set(timings) - set(stages))
    rows = [(stage, float(timings[stage])) for stage in order]
    return pd.DataFrame(rows + [("total", round(sum(t for _, t in rows), 3))] if rows else [],
                        columns=["stage", "seconds"])


def decision_panel(manifest: dict, eval_result: dict | None) -> str:
    """Per locale: labels, estimated (and measured) precision, closed-loop gain and a verdict with its reason;
    then what changed since the previous run. First on the page: it is what a reader came for."""
    decisions = decide(manifest, eval_result)
    measured = any(d.measured_precision is not None for d in decisions)
    gains = any(d.closed_loop_gain is not None for d in decisions)
    head = ["locale", "labels", "estimated precision", *(["measured precision"] * measured),
            *(["closed-loop gain"] * gains), "verdict"]
    rows = []
    for d in decisions:
        cells = [f'<td class="name">{_e(d.locale)}</td>', f'<td class="n">{d.labels:,}</td>',
                 f'<td class="n">{_opt(d.estimated_precision)}</td>']
        cells += [f'<td class="n">{_opt(d.measured_precision)}</td>'] * measured
        cells += [f'<td class="n">{_opt(d.closed_loop_gain, "{:+.3f}")}</td>'] * gains
        cells.append(f'<td class="{"use" if d.use else "skip"}">{_e(d.verdict)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f'<th class="{"" if h in ("locale", "verdict") else "n"}">{_e(h)}</th>' for h in head)
    target = manifest["config"]["labels"]["target_precision"]
    return (f'<section id="decision"><h2>Decision: train on these labels?</h2>'
            f'<p class="muted">Estimated precision is the mean calibrated confidence of the emitted labels '
            f'(target {target:g}); a locale needs at least {MIN_LABELS} labels. Measured precision and the '
            f'closed-loop gain (intent accuracy with the labels minus without) need ground truth '
            f'(<code>--truth</code>).</p>'
            + (f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>" if rows
               else "<p>No locale in the window.</p>")
            + f'<p id="changes">{_e(changes_sentence(manifest.get("changes_since_previous_run")))}</p>'
            + (f'<p id="lifecycle">{_e(lifecycle_sentence(manifest["lifecycle"]))}</p>' if "lifecycle" in manifest
               else "") + "</section>")


def _emerging_section(run: Path, manifest: dict) -> str:
    """The first EMERGING_SHOWN phrasings per locale of history/emerging.parquet (selflearn/emerging.py)."""
    found = _read(run / RUN_FILES["emerging_phrasings"])
    as_of = (manifest.get("emerging") or {}).get("as_of") or "-"
    head = (f'<h2 id="emerging">Emerging phrasings (as of {_e(as_of)})</h2><p class="muted">Per locale, texts whose '
            f'traffic or failure rate rose sharply in the last {manifest["config"]["emerging"]["recent_days"]} days '
            'against their own history (Poisson burst score), with what the NLU says and the mined label if any; '
            'the full list is history/emerging.parquet (catalog view <code>emerging_phrasings</code>).</p>')
    if found.empty:
        return head + "<p>No phrasing rose sharply in the last days (or the window has no history yet).</p>"
    shown = found[found["rank"] <= EMERGING_SHOWN][["locale", "rank", "utt", "rising", "score", "recent_events",
                                                    "expected_events", "recent_defect_rate", "nlu_intent",
                                                    "mined_intent", "label_state"]]
    return head + _table(shown)


def _opt(value: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def _per_locale(funnel, nodes, labels, rewrites, quarantine) -> pd.DataFrame:
    table = funnel[["locale", "turns", "labels"]].set_index("locale")
    table = table.join(rewrites.groupby("locale").size().rename("released_rewrite_pairs"))
    if len(nodes):
        g = nodes.groupby("locale")
        table = table.join(g.size().rename("released_utterances")).join(
            (g["n_friction"].sum() / g["n_events"].sum()).round(3).rename("defect_rate"))
    if len(labels):
        table = table.join(labels.groupby("locale")["confidence"].mean().round(3).rename("mean_label_confidence"))
    table = table.join(quarantine.groupby("locale")["rows"].sum().rename("quarantined_rows"))
    # a locale missing from a join has none of that output: a count of 0, not a missing float
    counts = [c for c in ("released_rewrite_pairs", "released_utterances", "quarantined_rows") if c in table]
    table[counts] = table[counts].apply(lambda column: pd.to_numeric(column).fillna(0).astype("int64"))
    return table.reset_index()


def _defect_by_intent(nodes: pd.DataFrame) -> list[tuple[str, float]]:
    if not len(nodes):
        return []
    g = nodes.dropna(subset=["top_intent"]).groupby("top_intent")[["n_friction", "n_events"]].sum()
    g = g[g["n_events"] > 0].sort_values(["n_events"], ascending=False).head(20)
    return sorted(((i, r.n_friction / r.n_events) for i, r in g.iterrows()), key=lambda t: (-t[1], t[0]))


def _component_sizes(nodes: pd.DataFrame) -> list[tuple[str, int]]:
    if not len(nodes):
        return []
    sizes = nodes.groupby("component").size()
    edges = [1, 2, 3, 5, 10, 20, 50, 100, 1000]
    out = []
    for lo, hi in zip(edges, edges[1:] + [math.inf]):
        n = int(((sizes >= lo) & (sizes < hi)).sum())
        if n:
            out.append((str(lo) if hi == lo + 1 else f"{lo}+" if hi == math.inf else f"{lo}-{hi - 1}", n))
    return out


def _label_sample(labels: pd.DataFrame) -> pd.DataFrame:
    top = labels.sort_values(["confidence", "n_users", "locale", "utt_norm"],
                             ascending=[False, False, True, True]).head(SAMPLE_LABELS)
    return pd.DataFrame({"locale": top["locale"], "utterance": top["utt"], "system said": top["system_intent"],
                         "label": top["intent"], "confidence": top["confidence"].round(3), "source": top["source"],
                         "users": top["n_users"], "fixed by": top["target_utt"], "evidence": top["evidence"]})


def _eval_section(result: dict | None, stale: bool) -> str:
    if not result:
        return '<p class="muted">No eval.json in this folder (run <code>selflearn eval</code> to add one).</p>'
    parts = ['<p class="muted"><b>eval.json predates this run\'s manifest: figures may be for an earlier run.</b>'
             '</p>'] if stale else []
    sections = [("rephrase", "Rephrase detection", ["tp", "fp", "fn", "precision", "recall", "f1"]),
                ("weak_labels", "Weak labels", ["labels", "correct", "intent_precision", "failing_coverage",
                                                "yield", "slot_f1"]),
                ("naive", "Naive baseline", ["labels", "correct", "intent_precision", "failing_coverage", "yield"])]
    for key, title, cols in sections:
        sec = result.get(key)
        if not isinstance(sec, dict) or "overall" not in sec:
            continue
        rows = [{"locale": loc, **{c: m.get(c) for c in cols}} for loc, m in sec.get("by_locale", {}).items()]
        rows.append({"locale": "ALL", **{c: sec["overall"].get(c) for c in cols}})
        # object columns keep each value's type: a count with a missing value beside it stays an integer
        parts += [f"<h3>{_e(title)}</h3>", _table(pd.DataFrame(rows, dtype=object))]
    confidence = result.get("confidence") or {}
    if confidence.get("curve"):
        parts += ["<h3>Confidence: precision and yield along the cut</h3>",
                  '<div class="plots">',
                  _plot(_curve_svg(confidence["curve"]), "Precision (green) and yield (blue) of labels at or "
                                                         "above each confidence cut"),
                  "</div>",
                  "<p class=\"muted\">Reliability: judged candidates by confidence, and the share that is right "
                  "(calibrated when precision tracks mean confidence).</p>",
                  _table(pd.DataFrame(confidence.get("reliability", [])))]
    loop = result.get("closed_loop") or {}
    if loop and not loop.get("skipped") and "overall" in loop:
        acc = loop["overall"].get("accuracy", {})
        parts += ["<h3>Closed loop: intent accuracy on the test set</h3>",
                  _table(pd.DataFrame([{**acc, "gain_captured": loop["overall"].get("gain_captured")}]))]
    elif loop.get("note"):
        parts.append(f'<p class="muted">Closed loop skipped: {_e(loop["note"])}</p>')
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ SVG and HTML

def _hbars(items: list[tuple[str, float]], log: bool = False, fmt: str = "{:,}", max_value: float | None = None,
           width: int = 520) -> str:
    """Horizontal bars, one per (label, value)."""
    if not items:
        return ""
    bar_h, label_w, value_w = 18, 170, 70
    scale = (lambda v: math.log10(v + 1)) if log else (lambda v: v)
    top = scale(max_value if max_value is not None else max(v for _, v in items)) or 1
    plot_w = width - label_w - value_w
    rows = []
    for i, (label, value) in enumerate(items):
        y, w = i * (bar_h + 4), max(1.0, plot_w * scale(value) / top) if value > 0 else 0
        rows.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{_e(_clip(label, 26))}</text>'
                    f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#4f7cac"/>'
                    f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{_e(fmt.format(value))}</text>')
    height = len(items) * (bar_h + 4)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12" '
            f'font-family="sans-serif" role="img">{"".join(rows)}</svg>')


def _score_histogram(scored: pd.DataFrame, threshold: float, bins: int = 20) -> str:
    if not len(scored):
        return ""
    width, height, pad = 520, 200, 30
    scores = scored["rephrase_score"].clip(0, 1).fillna(0)
    idx = (scores * bins).astype(int).clip(upper=bins - 1)
    counts = idx.value_counts().reindex(range(bins), fill_value=0)
    top, bw, plot_h = max(int(counts.max()), 1), (width - 2 * pad) / bins, height - 2 * pad
    bars = []
    for b, n in enumerate(counts.tolist()):
        colour = "#2e9d6a" if (b + 0.5) / bins >= threshold else "#b5bfcc"
        h = plot_h * n / top
        bars.append(f'<rect x="{pad + b * bw + 1:.1f}" y="{height - pad - h:.1f}" width="{bw - 2:.1f}" '
                    f'height="{h:.1f}" fill="{colour}"><title>{b / bins:.2f}-{(b + 1) / bins:.2f}: {n}</title></rect>')
    x_t = pad + threshold * (width - 2 * pad)
    ticks = "".join(f'<text x="{pad + t * (width - 2 * pad):.1f}" y="{height - pad + 14}" '
                    f'text-anchor="middle">{t:g}</text>' for t in (0, 0.25, 0.5, 0.75, 1))
    rephrases = int(scored["is_rephrase"].fillna(False).astype(bool).sum())
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" '
            f'font-family="sans-serif" role="img">{"".join(bars)}'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#667085"/>'
            f'<line x1="{x_t:.1f}" y1="{pad - 10}" x2="{x_t:.1f}" y2="{height - pad}" stroke="#c0392b" '
            f'stroke-dasharray="4 3"/>{ticks}<text x="{pad}" y="{pad - 14}">max {top:,} pairs per bin; '
            f'{rephrases:,} rephrases of {len(scored):,} pairs</text></svg>')


def _curve_svg(curve: list[dict], width: int = 520, height: int = 220) -> str:
    """Precision and yield (0..1) against the confidence cut, one polyline each."""
    points = [r for r in curve if r.get("precision") is not None]
    if not points:
        return ""
    pad, lo, hi = 34, min(r["cut"] for r in curve), max(r["cut"] for r in curve)
    span = (hi - lo) or 1.0
    x = lambda c: pad + (c - lo) / span * (width - 2 * pad)      # noqa: E731  (local scale helpers)
    y = lambda v: height - pad - v * (height - 2 * pad)          # noqa: E731
    lines = []
    for key, colour in (("precision", "#2e9d6a"), ("yield", "#4f7cac")):
        xy = " ".join(f"{x(r['cut']):.1f},{y(r[key]):.1f}" for r in curve if r.get(key) is not None)
        lines.append(f'<polyline points="{xy}" fill="none" stroke="{colour}" stroke-width="2"/>')
        lines += [f'<circle cx="{x(r["cut"]):.1f}" cy="{y(r[key]):.1f}" r="3" fill="{colour}"><title>cut '
                  f'{r["cut"]:.2f}: {key} {r[key]:.3f}, {r["labels"]} labels</title></circle>'
                  for r in curve if r.get(key) is not None]
    ticks = "".join(f'<text x="{x(r["cut"]):.1f}" y="{height - pad + 14}" text-anchor="middle">{r["cut"]:g}</text>'
                    for r in curve)
    grid = "".join(f'<text x="{pad - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>'
                   f'<line x1="{pad}" y1="{y(v):.1f}" x2="{width - pad}" y2="{y(v):.1f}" stroke="#e6e9ef"/>'
                   for v in (0, 0.25, 0.5, 0.75, 1))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" '
            f'font-family="sans-serif" role="img">{grid}{"".join(lines)}{ticks}</svg>')


def _plot(svg: str, caption: str = "") -> str:
    if not svg:
        return f'<div class="plot"><p class="muted">{_e(caption)}: nothing to plot</p></div>'
    return f'<div class="plot">{f"<p><b>{_e(caption)}</b></p>" if caption else ""}{svg}</div>'


def _table(frame: pd.DataFrame) -> str:
    if frame is None or not len(frame):
        return '<p class="muted">(none)</p>'
    numeric = [_is_numeric(frame[c]) for c in frame.columns]
    head = "".join(f'<th class="{"n" if n else ""}">{_e(c)}</th>' for c, n in zip(frame.columns, numeric))
    body = "".join("<tr>" + "".join(
        f'<td class="{_cell_class(c, n)}">{_e(_cell(v))}</td>'
        for c, v, n in zip(frame.columns, row, numeric)) + "</tr>" for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# columns holding one identifier each (intent names such as `transport_ticket_query`): never broken mid-name
NAME_COLUMNS = frozenset({"locale", "label", "system said", "intent", "system_intent", "rewrite_intent",
                          "top_intent", "stage", "reason", "abstained because"})


def _cell_class(column: str, numeric: bool) -> str:
    return "n" if numeric else "evidence" if column == "evidence" else "name" if column in NAME_COLUMNS else ""


def _is_numeric(column: pd.Series) -> bool:
    """Right-aligned: every present value is a number (object columns included, see _eval_section)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return True
    present = [v for v in column if not _missing(v)]
    return bool(present) and all(isinstance(v, numbers.Number) and not isinstance(v, (bool, np.bool_))
                                 for v in present)


def _missing(value) -> bool:
    return value is None or (not isinstance(value, (str, list, dict)) and bool(pd.isna(value)))


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    esc = lambda v: _cell(v).replace("|", "\\|")  # noqa: E731
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows]


def _read_folder(folder: Path) -> pd.DataFrame:
    """Every Parquet file of a folder in one frame (the training set's splits)."""
    files = sorted(folder.glob("*.parquet"))
    return pd.concat([_read(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    # a file, or a folder of one file a day (work/daily/scored_pairs)
    found = path.is_file() or (path.is_dir() and any(path.glob("*.parquet")))
    return pq.read_table(path, columns=columns).to_pandas() if found else pd.DataFrame(columns=columns or [])


def _cell(value) -> str:
    if value is None or (not isinstance(value, (str, list, dict)) and pd.isna(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):.3f}"
    return str(value)


def _num(value) -> str:
    return f"{int(value):,}"


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _e(value) -> str:
    return html.escape(str(value), quote=True)
