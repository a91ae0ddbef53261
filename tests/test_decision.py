"""The verdict per locale (use the labels or not, and why) and what changed since the previous run."""
from __future__ import annotations

import pandas as pd
import pytest

from selflearn.decision import MIN_LABELS, decide, format_text, label_changes


def manifest(labels: dict[str, int], precision: dict[str, float], target: float = 0.98, changes=None) -> dict:
    return {"config": {"labels": {"target_precision": target}}, "counts": {"labels_per_locale": labels},
            "training": {"estimated_precision": precision},
            "changes_since_previous_run": changes or {"previous_run": False}}


def loop(seed: float, with_weak: float) -> dict:
    """The closed loop's per-locale figures: the verdict reads macro accuracy, not accuracy on traffic."""
    return {"macro_accuracy": {"seed": seed, "seed+weak": with_weak},
            "accuracy": {"seed": seed, "seed+weak": seed + 0.5 * (with_weak - seed) + 0.05}}


def test_verdict_names_its_reason():
    m = manifest({"de-DE": 40, "en-US": 30, "es-ES": MIN_LABELS - 1, "fr-FR": 0, "ja-JP": 25},
                 {"de-DE": 0.991, "en-US": 0.95, "es-ES": 0.999, "ja-JP": 0.99})
    by_locale = {d.locale: d for d in decide(m)}
    assert by_locale["de-DE"].use and by_locale["de-DE"].verdict == \
        "use: 40 labels at estimated precision 0.991 >= target 0.98"
    assert not by_locale["en-US"].use and "estimated precision 0.950 < target 0.98" in by_locale["en-US"].reason
    assert not by_locale["es-ES"].use and "too few labels" in by_locale["es-ES"].reason
    assert by_locale["fr-FR"].verdict == "do not use: no labels"
    assert by_locale["ja-JP"].closed_loop_gain is None


def test_ground_truth_overrules_the_estimate():
    m = manifest({"de-DE": 40, "ja-JP": 25, "en-US": 30}, {"de-DE": 0.991, "ja-JP": 0.99, "en-US": 0.99})
    evaluation = {"weak_labels": {"by_locale": {"de-DE": {"intent_precision": 0.9}, "ja-JP": {"intent_precision": 1.0},
                                                "en-US": {"intent_precision": 1.0}}},
                  "closed_loop": {"by_locale": {"ja-JP": loop(0.90, 0.88), "en-US": loop(0.912, 0.941)}}}
    by_locale = {d.locale: d for d in decide(m, evaluation)}
    assert not by_locale["de-DE"].use and "measured precision 0.900" in by_locale["de-DE"].reason
    assert not by_locale["ja-JP"].use and "closed loop lost macro accuracy (-0.020)" in by_locale["ja-JP"].reason
    assert by_locale["en-US"].use and by_locale["en-US"].reason.endswith("closed-loop macro accuracy +0.029")


def test_changes_count_new_dropped_and_relabeled_labels():
    before = pd.DataFrame({"locale": ["en-US", "en-US", "de-DE"], "utt_norm": ["a", "b", "c"],
                           "intent": ["alarm_set", "play_music", "weather_query"]})
    after = pd.DataFrame({"locale": ["en-US", "en-US", "ja-JP"], "utt_norm": ["a", "b", "d"],
                          "intent": ["alarm_set", "play_radio", "alarm_set"]})
    changes = label_changes(before, after)
    assert (changes["new"], changes["dropped"], changes["changed"]) == (1, 1, 1)
    assert changes["per_locale"]["en-US"] == {"new": 0, "dropped": 0, "changed": 1}
    assert label_changes(None, after) == {"previous_run": False}
    assert label_changes(before, after.iloc[:0])["dropped"] == 3


def test_terminal_panel_lists_every_locale_and_the_changes():
    m = manifest({"de-DE": 40, "fr-FR": 0}, {"de-DE": 0.991},
                 changes={"previous_run": True, "new": 2, "dropped": 1, "changed": 0})
    text = format_text(decide(m), m["changes_since_previous_run"])
    assert "de-DE" in text and "use: 40 labels" in text and "do not use: no labels" in text
    assert "2 new, 1 dropped and 0 relabeled" in text


def test_previous_labels_are_read_from_this_layout_or_the_one_before(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from selflearn.stages.training_set import read_previous_labels

    table = pa.table({"locale": ["en-US"], "utt_norm": ["wake me at 7"], "intent": ["alarm_set"]})
    (tmp_path / "training").mkdir()
    pq.write_table(table, tmp_path / "training" / "weak_labels.parquet")
    assert read_previous_labels(tmp_path) is None  # no manifest: no finished previous run
    (tmp_path / "manifest.json").write_text("{}")
    assert read_previous_labels(tmp_path).to_dict("records") == table.to_pylist()
    (tmp_path / "training" / "parquet").mkdir()
    pq.write_table(table.set_column(2, "intent", pa.array(["alarm_query"])),
                   tmp_path / "training" / "parquet" / "train.parquet")
    assert read_previous_labels(tmp_path)["intent"].tolist() == ["alarm_query"]


def test_an_older_evaluation_without_macro_accuracy_still_decides():
    m = manifest({"en-US": 30}, {"en-US": 0.99})
    evaluation = {"closed_loop": {"by_locale": {"en-US": {"accuracy": {"seed": 0.9, "seed+weak": 0.92}}}}}
    (decision,) = decide(m, evaluation)
    assert decision.use and decision.closed_loop_gain == pytest.approx(0.02)
