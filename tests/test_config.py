"""Config validation: every key has a type and a range, checked when the TOML is loaded, with one line of advice.

Table-driven: each row is a TOML value a user might write and a fragment the message must contain. A test also
checks the table covers every key, so a new key needs its bad values listed here.
"""
from __future__ import annotations

import json

import pytest

from selflearn.config import PUBLIC_SALT, Config, ConfigError, load_config

# (dotted key, bad value as written in TOML, fragment of the expected message)
BAD = [
    ("ingest.max_utterance_chars", -1, "greater than 0"),
    ("ingest.max_utterance_chars", 0, "greater than 0"),
    ("ingest.max_utterance_chars", "2000", "whole number"),
    ("ingest.quarantine_bad_files", "yes", "true or false"),
    ("ingest.quarantine_bad_files", 1, "true or false"),
    ("privacy.user_salt", "", "empty"),
    ("privacy.user_salt", "   ", "empty"),
    ("privacy.user_salt", PUBLIC_SALT, "public"),
    ("privacy.user_salt", 42, "quoted string"),
    ("privacy.min_users", -1, "greater than or equal to 1"),
    ("privacy.min_users", 0, "greater than or equal to 1"),
    ("privacy.min_users", 1, "privacy.allow_k1 = true"),
    ("privacy.min_users", "3", "whole number"),
    ("privacy.min_users", 2.5, "whole number"),
    ("privacy.allow_k1", "yes", "true or false"),
    ("privacy.pii_patterns", ["\\d{9}"], "expected a [section] of keys"),
    ("sessions.inactivity_gap_s", -1, "greater than or equal to 0"),
    ("sessions.inactivity_gap_s", "300", "a number"),
    ("sessions.max_pair_gap_s", -0.5, "greater than or equal to 0"),
    ("friction.low_confidence", 1.5, "less than or equal to 1"),
    ("friction.low_confidence", -0.1, "greater than or equal to 0"),
    ("friction.quick_retry_s", -1, "greater than or equal to 0"),
    ("friction.long_pause_s", -45, "greater than or equal to 0"),
    ("rephrase.threshold", 2, "less than or equal to 1"),
    ("rephrase.threshold", True, "a number"),
    ("rephrase.min_edge_score", -0.1, "greater than or equal to 0"),
    ("embedding.backend", "nope", "'hashing'"),
    ("embedding.model", 3, "quoted string"),
    ("embedding.batch_size", 0, "greater than 0"),
    ("embedding.device", False, "quoted string"),
    ("embedding.cache_dir", 1, "quoted string"),
    ("variants.k", 0, "greater than 0"),
    ("variants.k", "3", "whole number"),
    ("variants.neighbourhood_k", 0, "greater than 0"),
    ("variants.transfer_k", 0, "greater than 0"),
    ("variants.min_similarity", 1.1, "less than or equal to 1"),
    ("variants.cross_lingual_min_similarity", -0.2, "greater than or equal to 0"),
    ("variants.exact_max_vectors", 0, "greater than 0"),
    ("variants.use_gpu", True, "'auto'"),
    ("labels.target_precision", 1.01, "less than or equal to 1"),
    ("labels.min_confidence", -0.01, "greater than or equal to 0"),
    ("labels.failing_defect_rate", 1.5, "less than or equal to 1"),
    ("labels.rephrased_away_share", -1, "greater than or equal to 0"),
    ("labels.success_defect_rate", 2, "less than or equal to 1"),
    ("labels.min_target_share", 1.2, "less than or equal to 1"),
    ("labels.allow_variant_only", "no", "true or false"),
    ("labels.transfer", "yes", "true or false"),
    ("labels.transfer_max_locale_share", 1.5, "less than or equal to 1"),
    ("labels.transfer_min_checks", 0, "greater than or equal to 1"),
    ("labels.transfer_min_confidence", -0.1, "greater than or equal to 0"),
    ("run.engine", "postgres", "'duckdb'"),
    ("training.eval_share", 1.0, "less than 1"),
    ("training.eval_share", -0.1, "greater than or equal to 0"),
    ("training.eval_share", "0.2", "number"),
    ("lifecycle.confirm_days", 0, "greater than or equal to 1"),
    ("lifecycle.retire_defect_rate", 1.5, "less than or equal to 1"),
    ("lifecycle.revive_defect_rate", -0.1, "greater than or equal to 0"),
    ("lifecycle.recent_days", 0, "greater than or equal to 1"),
    ("lifecycle.min_recent_events", 0, "greater than or equal to 1"),
    ("lifecycle.relabel_after_days", -1, "greater than or equal to 0"),
    ("lifecycle.retire_on_read_as", -1, "greater than or equal to 0"),
    ("window.half_life_days", 0, "greater than 0"),
    ("emerging.recent_days", 0, "greater than or equal to 1"),
    ("emerging.min_score", -1.0, "greater than or equal to 0"),
    ("emerging.min_recent_events", 0, "greater than or equal to 1"),
    ("emerging.prior_events", 0.0, "greater than 0"),
    ("emerging.top_per_locale", "10", "whole number"),
    ("run.window_days", 0, "greater than 0"),
    ("run.window_days", -3, "greater than 0"),
    ("run.window_days", "7", "whole number"),
    ("run.spark_master", "", "at least 1 character"),
    ("run.progress", "yes", "true or false"),
    ("run.colour", "blue", "unknown key"),
]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # strings quoted and escaped, numbers as they are


def write_toml(tmp_path, dotted: str, value, extra: str = "") -> str:
    section, key = dotted.split(".")
    path = tmp_path / "run.toml"
    path.write_text(f"[{section}]\n{key} = {toml_value(value)}\n{extra}", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("dotted,value,fragment", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_a_bad_value_is_one_line_of_advice(tmp_path, dotted, value, fragment):
    path = write_toml(tmp_path, dotted, value)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"config {path}: ")
    assert dotted in message and fragment in message, message
    if dotted == "privacy.user_salt" and isinstance(value, str) and value.strip():
        assert value not in message.replace(f"{PUBLIC_SALT!r} is public", "")  # a salt is never echoed


@pytest.mark.parametrize("dotted,value,fragment", BAD[:6], ids=[f"{k}={v!r}" for k, v, _ in BAD[:6]])
def test_flag_overrides_are_checked_like_the_file(dotted, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, {dotted: value})


def test_the_table_covers_every_key():
    covered = {dotted for dotted, _, _ in BAD}
    keys = {f"{section}.{key}" for section, model in Config.model_fields.items()
            for key in model.annotation.model_fields}
    assert keys - covered == set()


def test_a_pii_pattern_that_does_not_compile_is_named(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[privacy.pii_patterns]\n"*" = ["(unclosed"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"privacy.pii_patterns.*'\(unclosed' for '\*' is not a regular expression"):
        load_config(str(path))


def test_good_values_pass():
    cfg = load_config(None, {"sessions.inactivity_gap_s": 300, "labels.target_precision": 1,
                             "rephrase.threshold": 0, "privacy.user_salt": "s3cret", "run.window_days": 1})
    assert cfg.sessions.inactivity_gap_s == 300.0 and isinstance(cfg.sessions.inactivity_gap_s, float)
    assert cfg.privacy.user_salt == "s3cret"


def test_k1_needs_the_explicit_switch(tmp_path):
    path = write_toml(tmp_path, "privacy.min_users", 1, extra="allow_k1 = true\n")
    assert load_config(path).privacy.min_users == 1


def test_no_default_salt_is_configured():
    assert Config().privacy.user_salt is None  # generated per output folder (tests/test_lifecycle.py)
