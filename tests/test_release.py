"""The release filter (selflearn.release) on inline rows: a row with any text of fewer than k users is withheld."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from selflearn.release import RELEASED_TEXTS, ReleaseFilter

USERS = {("en-US", "play jazz"): 3, ("en-US", "put on some jazz"): 2, ("en-US", "call jane roe"): 1,
         ("de-DE", "spiel jazz"): 2}
RELEASE = ReleaseFilter(USERS, min_users=2)


def label(**changes) -> dict:
    row = {"locale": "en-US", "utt": "Put on some jazz!", "utt_norm": "put on some jazz", "intent": "play_music",
           "annot_utt": "Put on some [genre : jazz]!", "slots": [{"name": "genre", "value": "jazz"}],
           "target_utt": "play jazz", "target_locale": "en-US",
           "evidence": "2 user(s) rephrased to 'play jazz' (strongest rephrase 0.90, LLR 3.1, P(success) 1.00); "
                       "votes play_music=1.00"}
    return row | changes


@pytest.mark.parametrize("changes, released", [
    ({}, True),
    ({"utt": "call jane roe", "utt_norm": "call jane roe", "annot_utt": "call jane roe", "slots": []}, False),
    ({"target_utt": "call jane roe"}, False),                       # a rewrite target of one user
    ({"evidence": "1 user(s) rephrased to 'call jane roe' (strongest rephrase 0.90, LLR 3.1, P(success) 1.00)"},
     False),                                                        # quoted in the evidence
    ({"target_utt": "spiel jazz"}, False),                          # said by two users, but in another locale
    ({"target_utt": "spiel jazz", "target_locale": "de-DE"}, True),
    ({"annot_utt": "Put on some [genre : jazz] for jane roe!"}, False),  # annotation is not the utterance
    ({"slots": [{"name": "person", "value": "jane roe"}]}, False),  # a slot value from elsewhere
    ({"target_utt": math.nan}, False),                              # a failed join is not releasable
])
def test_weak_label_rows(changes, released):
    kept, withheld = RELEASE.keep("weak_labels", pd.DataFrame([label(**changes)]))
    assert (len(kept), withheld) == ((1, 0) if released else (0, 1))


def test_k_is_the_configured_minimum():
    rows = pd.DataFrame([{"locale": "en-US", "utt": "Put on some jazz", "utt_norm": "put on some jazz"}])
    assert len(ReleaseFilter(USERS, 2).keep("graph_nodes", rows)[0]) == 1
    assert len(ReleaseFilter(USERS, 3).keep("graph_nodes", rows)[0]) == 0


def test_every_released_output_names_its_text_columns():
    assert set(RELEASED_TEXTS) == {"weak_labels", "rewrite_pairs", "graph_nodes", "label_history",
                                  "emerging_phrasings"}
    with pytest.raises(KeyError, match="RELEASED_TEXTS"):
        RELEASE.keep("quarantine", pd.DataFrame([{"utterance": "x"}]))
