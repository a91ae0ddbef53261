"""Closed loop: does adding mined labels to a seed set make an intent classifier better on a test set?

The headline is macro accuracy (per intent, then averaged), as intent benchmarks report it. Accuracy on
traffic (each test row once) is kept beside it but does not judge labels: where a few head intents carry
most of the traffic, adding any rows to one of them moves that intent's class weight, and the swing on it
outweighs everything the labels teach. Seen in the CLINC real-NLU world: a perfect miner's labels lost 132 of
780 "thank you" test rows, and random halves of the perfect labels scored above the whole set.

One model per locale: char_wb 2-4 TF-IDF + LogisticRegression, trained on the locale's seed rows plus
the added labels of that locale, scored on its nlu_test rows. Per-locale models keep one locale's
labels from moving another locale's accuracy, and cost the same as one joint model. Texts go through
text.normalize first, so a label's display text and a seed's raw text are treated alike. Each condition
fits its own TF-IDF vocabulary on its own training texts, as a team retraining on seed + labels would:
4,000 naive labels must not reshape the features the seed + weak model sees.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from selflearn.evaluation.metrics import ratio
from selflearn.text import normalize

MAX_ITER = 200
MODEL = ("per-locale, per-condition TF-IDF(char_wb 2-4, sublinear) + LogisticRegression(C=1, saga, "
         "class_weight=balanced, random_state=seed), on normalized text")
CONDITIONS = ("seed", "seed+weak", "seed+naive", "seed+perfect")


def _predict(features, train_idx: np.ndarray, intents: np.ndarray, test_features, seed: int,
             stats: dict) -> np.ndarray:
    """Predicted intents of `test_features` from a model fit on rows `train_idx` of `features`/`intents`."""
    n_test = test_features.shape[0]
    if len(train_idx) == 0:
        return np.array([None] * n_test, dtype=object)
    classes = np.unique(intents[train_idx])
    if len(classes) == 1:
        return np.array([classes[0]] * n_test, dtype=object)
    # saga is several times faster than lbfgs on many-class sparse TF-IDF; random_state makes it repeatable.
    # balanced: mined labels pile up on popular intents; without it the added rows move the class prior
    # more than the decision boundaries, and even a perfect miner's labels can lower accuracy
    model = LogisticRegression(C=1.0, solver="saga", max_iter=MAX_ITER, random_state=seed, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted below instead
        model.fit(features[train_idx], intents[train_idx])
    stats["fits"] += 1
    stats["fits_at_max_iter"] += int(np.max(model.n_iter_) >= MAX_ITER)
    return model.predict(test_features)


def _per_intent_mean(correct: np.ndarray, intents: np.ndarray) -> float | None:
    """Accuracy per intent, averaged over the intents present (each intent counts once)."""
    if len(correct) == 0:
        return None
    return float(pd.Series(correct).groupby(intents).mean().mean())


def _sorted(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order, so that two identical label sets give identical models."""
    return rows.sort_values(["text", "intent"], kind="mergesort").reset_index(drop=True)


def _train_and_predict(train: pd.DataFrame, test_texts: list[str], seed: int, stats: dict) -> np.ndarray:
    """Fit the vocabulary and the model on one condition's training rows only (as a team retraining on
    seed + labels would: another condition's texts must not shape this one's features), predict test_texts."""
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, dtype=np.float32)
    try:
        features = vectorizer.fit_transform(train["text"])
        test_features = vectorizer.transform(test_texts)
    except ValueError:  # no training text at all (or only empty ones): nothing to learn from
        return np.array([None] * len(test_texts), dtype=object)
    return _predict(features, np.arange(len(train)), train["intent"].to_numpy(), test_features, seed, stats)


def _as_training(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"locale": rows["locale"].astype(str), "text": rows["utt"].astype(str).map(normalize),
                         "intent": rows["intent"].astype(str)})


def run_closed_loop(seed_set: pd.DataFrame, test_set: pd.DataFrame, added: dict[str, pd.DataFrame],
                    seed: int = 0) -> dict:
    """Accuracy on test_set of models trained on seed_set alone and on seed_set + each of `added`.

    added: {"weak": ..., "naive": ..., "perfect": ...}, each with locale, utt, intent.
    gain_captured = (macro_weak - macro_seed) / (macro_perfect - macro_seed) over macro accuracy, None when
    the denominator <= 0; naive_gain_captured likewise for the naive labels; traffic_gain_captured and
    naive_traffic_gain_captured the same over accuracy on traffic.
    """
    started = time.perf_counter()
    base = _as_training(seed_set)
    extra = {name: _as_training(rows.dropna(subset=["locale", "utt", "intent"])) for name, rows in added.items()}
    test = _as_training(test_set)
    correct = {c: np.zeros(len(test), dtype=bool) for c in CONDITIONS}
    n_train = {c: 0 for c in CONDITIONS}
    stats = {"fits": 0, "fits_at_max_iter": 0}
    for locale, idx in test.groupby("locale").indices.items():
        test_texts, gold = test["text"].iloc[idx].tolist(), test["intent"].iloc[idx].to_numpy()
        seed_rows = _sorted(base[base["locale"] == locale])
        seed_pred = _train_and_predict(seed_rows, test_texts, seed, stats)
        correct["seed"][idx] = seed_pred == gold
        n_train["seed"] += len(seed_rows)
        for name, rows in extra.items():
            added_rows = _sorted(rows[rows["locale"] == locale])
            train = pd.concat([seed_rows, added_rows], ignore_index=True)
            pred = seed_pred if added_rows.empty else _train_and_predict(train, test_texts, seed, stats)
            correct[f"seed+{name}"][idx] = pred == gold
            n_train[f"seed+{name}"] += len(train)

    test_intents = test["intent"].to_numpy()

    def measure(mask: np.ndarray, locale: str | None) -> dict:
        acc = {c: ratio(float(correct[c][mask].sum()), float(mask.sum())) for c in CONDITIONS}
        macro = {c: _per_intent_mean(correct[c][mask], test_intents[mask]) for c in CONDITIONS}
        out = {"n_test": int(mask.sum()), "macro_accuracy": macro, "accuracy": acc}
        if locale is not None:
            out["added"] = {name: int((extra[name]["locale"] == locale).sum()) for name in extra}
        for measured, gains in ((macro, (("gain_captured", "seed+weak"), ("naive_gain_captured", "seed+naive"))),
                                (acc, (("traffic_gain_captured", "seed+weak"),
                                       ("naive_traffic_gain_captured", "seed+naive")))):
            a, d = measured["seed"], measured["seed+perfect"]
            headroom = None if a is None or d is None else d - a
            for key, cond in gains:
                out[key] = None if headroom is None or headroom <= 0 else (measured[cond] - a) / headroom
        return out

    everything = np.ones(len(test), dtype=bool)
    result = {
        "skipped": False, "model": MODEL, "seed": seed,
        "n_seed": int(len(base)), "n_test": int(len(test)),
        "added": {name: int(len(rows)) for name, rows in extra.items()},
        "seed_locales_missing_from_test": sorted(set(base["locale"]) - set(test["locale"])),
        "test_locales_without_seed": sorted(set(test["locale"]) - set(base["locale"])),
        "overall": measure(everything, None),
        "by_locale": {loc: measure((test["locale"] == loc).to_numpy(), loc) for loc in sorted(set(test["locale"]))},
    }
    result["n_train"] = n_train
    result.update(stats)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
