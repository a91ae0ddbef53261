"""Evaluation worlds: named simulator settings that differ from the default the way real logs do.

A miner fitted on one simulated world can learn its quirks. Real logs differ: friction is often not
logged, confidences are missing or uninformative, failing phrasings are spread thin over few users, users
chat on quickly with related requests, and a rephrase often fails too. Each `World` knob moves one of these;
`World()` is today's simulator, knob for knob (its defaults are the constants the simulator always used),
and gives byte-identical output for the same seed.

Knobs that only change what gets logged (friction_coverage, confidence) leave the simulated behaviour
untouched: a world that differs only there has the very same turns as "simulator" for a seed.

    simulate(out, turns=20000, seed=11, world="real-like")     # or world=World(friction_coverage=0.5)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

CONFIDENCE_MODES = ("informative", "absent", "uninformative")


@dataclass(frozen=True)
class World:
    # Share of failing turns (NLU wrong or unhandled, or a backend error) whose friction gets logged. A
    # covered turn logs what the simulator always logged (its status; a barge-in if the user barged in and
    # the device reports it); an uncovered one logs response_status "success" (the wrong action "worked")
    # and no barge-in (null where the device never reports one). nlu_intent stays as the NLU produced it.
    friction_coverage: float = 1.0
    # nlu_confidence: "informative" (higher when the NLU is right), "absent" (the column is all null) or
    # "uninformative" (every text's score drawn from the same distribution, right or wrong).
    confidence: Literal["informative", "absent", "uninformative"] = "informative"
    # Share of each locale's traffic, on its most-said phrasings, that the NLU never gets wrong: failures
    # many users hit show up on dashboards and get fixed, so what still fails is said by few users. At 0
    # (today) even the most-said phrasings fail ~2% of the time (catalog.phrasing_error_rate).
    fixed_head_share: float = 0.0
    # Usage of a request's k-th most used phrasing ~ (k + 1) ** -decay: lower spreads a request's traffic
    # over more of its phrasings, so each (failing) phrasing is said by fewer users.
    phrasing_decay: float = 1.6
    # What a later goal in a session is: (unrelated within seconds, related but different within seconds
    # ("play X" -> "louder"), a later different request).
    follow_up: tuple[float, float, float] = (0.22, 0.15, 0.63)
    # How a user retries after the NLU got it wrong: (another phrasing, the same words again, a retry the
    # ASR misrecognizes). The same words again fail again (the NLU is deterministic per text) and
    # misrecognized retries fail more, so shifting weight off paraphrase makes double failures.
    misread_retry_mix: tuple[float, float, float] = (0.55, 0.25, 0.20)
    # Share of first tries said as a near-duplicate seen about once: the ASR garbles them with one to three
    # edits (a homophone, a dropped word or character, a swap). Real traffic has a long tail of such texts
    # (a fifth of turns and more); the default simulator has few, which hides the cost of embedding many
    # distinct texts (benchmarks/throughput.py --diverse). Drawn from its own random stream: at 0 nothing
    # else in the world changes.
    once_seen_share: float = 0.0
    # Drift over time (sim/drift.py), all off by default; days count from the start date (day 0). From
    # `emerging_day` on, `emerging_entities` requests per locale that nobody asked before (a new title, a
    # new app name) take `emerging_traffic` of each locale's goals, and `emerging_wordings` requests per
    # locale get a wording nobody used before that takes `emerging_wording_use` of their goals; the NLU never
    # saw either, so their texts fail with probability `emerging_error`.
    emerging_day: int | None = None
    emerging_entities: int = 0
    emerging_traffic: float = 0.0
    emerging_wordings: int = 0
    emerging_wording_use: float = 0.0
    emerging_error: float = 0.6
    # From `retrain_day` on, sessions are served by a retrained NLU that gets `retrain_fix_share` of the texts
    # the old one got wrong right (chosen per text, so the truth can say which).
    retrain_day: int | None = None
    retrain_fix_share: float = 0.0
    # `launch_locale` has no traffic before `launch_day`, then about `launch_share` of all traffic.
    launch_locale: str | None = None
    launch_day: int = 0
    launch_share: float = 0.02
    # One line on why the values; not part of the world's identity.
    description: str = field(default="", compare=False)

    def __post_init__(self):
        if not 0.0 <= self.friction_coverage <= 1.0:
            raise ValueError(f"friction_coverage must be in [0, 1], got {self.friction_coverage}")
        if self.confidence not in CONFIDENCE_MODES:
            raise ValueError(f"confidence must be one of {CONFIDENCE_MODES}, got {self.confidence!r}")
        if not 0.0 <= self.once_seen_share <= 1.0:
            raise ValueError(f"once_seen_share must be in [0, 1], got {self.once_seen_share}")
        if not 0.0 <= self.fixed_head_share <= 1.0:
            raise ValueError(f"fixed_head_share must be in [0, 1], got {self.fixed_head_share}")
        if self.phrasing_decay <= 0:
            raise ValueError(f"phrasing_decay must be positive, got {self.phrasing_decay}")
        for name in ("emerging_traffic", "emerging_wording_use", "emerging_error", "retrain_fix_share",
                     "launch_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("emerging_day", "retrain_day", "launch_day", "emerging_entities", "emerging_wordings"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be a day index or count >= 0, got {getattr(self, name)}")
        for name in ("follow_up", "misread_retry_mix"):
            shares = tuple(getattr(self, name))
            object.__setattr__(self, name, shares)   # a list given would break equality with the registry
            if len(shares) != 3 or min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-9:
                raise ValueError(f"{name} must be three non-negative shares summing to 1, got {shares}")

    def knobs(self) -> dict:
        """The knob values (what makes the world), JSON-ready."""
        values = asdict(self)
        del values["description"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @property
    def drifts(self) -> bool:
        """Whether anything changes over the days (new phrasings, a retrained NLU, a launched locale)."""
        return self.emerging_day is not None or self.retrain_day is not None or self.launch_locale is not None


# Values are round points chosen from the phenomenon each world isolates, not fitted to any log.
_LONG_TAIL = {"fixed_head_share": 0.8, "phrasing_decay": 0.8}
_CHATTY = {"follow_up": (0.22, 0.41, 0.37)}
_DOUBLE_FAILURE = {"misread_retry_mix": (0.25, 0.45, 0.30)}

WORLDS: dict[str, World] = {
    "simulator": World(description="today's simulator: friction logged whenever it happens, informative confidence"),
    "sparse-friction": World(
        friction_coverage=0.3,
        description="7 in 10 failing turns log no friction (devices without barge-in reports, wrong actions "
                    "logged as success): the low end of the 0.3-1.0 range real fleets span"),
    "half-friction": World(
        friction_coverage=0.5, description="half of the failing turns log their friction: mid-range"),
    "no-confidence": World(
        confidence="absent", description="nlu_confidence all null: an NLU or a logger that keeps no score"),
    "uninformative-confidence": World(
        confidence="uninformative",
        description="an overconfident NLU: scores drawn from the right-answer distribution, right or wrong"),
    "long-tail": World(
        **_LONG_TAIL,
        description="the phrasings carrying 80% of the traffic never fail (the Pareto head a team can curate) "
                    "and a request's phrasings decay half as fast (1.6 -> 0.8): fewer failing turns, their "
                    "texts said by 1-3 users, not dozens"),
    "chatty": World(
        **_CHATTY,
        description="within-seconds follow-ups and later ones swap shares (0.37 <-> 0.63), the gain all "
                    "going to related-but-different requests ('play X' -> 'louder')"),
    "double-failure": World(
        **_DOUBLE_FAILURE,
        description="after a misread, saying it again is the first reaction and reformulating the last: "
                    "paraphrase 0.55 -> 0.25, same words 0.25 -> 0.45, misrecognized 0.20 -> 0.30"),
    "real-like": World(
        friction_coverage=0.4, confidence="uninformative", **_LONG_TAIL, **_CHATTY, **_DOUBLE_FAILURE,
        description="all at once: 40% of failures logged, uninformative confidence, long tail, chatty, "
                    "double failures"),
    "drift": World(
        emerging_day=3, emerging_entities=6, emerging_traffic=0.06, emerging_wordings=6, emerging_wording_use=0.5,
        emerging_error=0.6, retrain_day=6, retrain_fix_share=0.6, launch_locale="hi-IN", launch_day=4,
        description="a lexicon that moves: from day 3 new entities (6 requests per locale, 6% of goals) and new "
                    "wordings (6 requests per locale, half their goals) the NLU fails on 60% of the time; from "
                    "day 6 a retrained NLU fixes 60% of the texts it got wrong; hi-IN launches on day 4 with 2% "
                    "of the traffic (truth/drift_texts.parquet says what appeared when and what the retraining fixed)"),
}
DEFAULT_WORLD = "simulator"


def resolve(world: str | World | None) -> tuple[str, World]:
    """(name, World) for a registry name or a World; a World equal to a registered one takes its name."""
    if world is None:
        world = DEFAULT_WORLD
    if isinstance(world, str):
        if world not in WORLDS:
            raise ValueError(f"unknown world {world!r}; known worlds: {', '.join(WORLDS)}")
        return world, WORLDS[world]
    if not isinstance(world, World):
        raise TypeError(f"world must be a name or a World, got {type(world).__name__}")
    return next((name for name, known in WORLDS.items() if known == world), "custom"), world

# Worlds whose NLU errors come from a real trained classifier on real data (not knobs of the simulator).
REAL_NLU_WORLDS = {
    "clinc-real": "CLINC150 queries: a few-shot TF-IDF classifier's real mistakes are the failures, other "
                  "crowd workers' real paraphrases the rephrases; 50% of failures logged (sim/clinc_world.py)",
}
