"""Evaluation against simulator ground truth: rephrase detection, weak-label quality, a naive baseline
and a closed-loop classifier experiment. The public entry point is `selflearn.evaluate`.

    inputs.py       read and check logs, truth and run outputs (EvalInputError: one line of advice)
    truth.py        per-(locale, utt_norm) ground truth: majority intent, failing, recoverable
    metrics.py      precision/recall/F1, MASSIVE slot markup parsing, label and rephrase scoring
    naive.py        the naive "next turn within 30 s says something else" baseline
    closed_loop.py  char n-gram TF-IDF + LogisticRegression trained on seed (+ labels), tested on nlu_test
    report.py       the plain-text report
"""
