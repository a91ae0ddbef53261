"""CLINC150 as a source of real phrasing and of a real NLU's mistakes (for selflearn.sim.clinc_world).

CLINC150 (Larson et al., EMNLP 2019; CC BY 3.0) holds English queries in 150 intents, ten domains of 15,
plus out-of-scope (`oos`) queries; every query was written by a crowd worker, so the queries of one intent
are real paraphrases of one request by different people. A production NLU is a real few-shot classifier:
TF-IDF char and word n-grams + logistic regression trained on a small seed split; its predictions on
the other queries are its real mistakes.

Roles of the queries (disjoint after deduplication by normalized text):
    seed       SEED_PER_INTENT `train` queries per intent: what the production NLU was trained on
    retrain    `retrain_extra` more `train` queries per intent (0 unless a world retrains its NLU): the
               retrained NLU learns the seed plus these; nobody says them, so every text it now gets right
               it gets right by generalizing, as the first NLU does
    test       every in-scope `test` query: held out from the logs and the seed (the closed loop tests on them)
    phrasings  every other in-scope query (`train` minus seed, `val`): what users say
    oos        every out-of-scope query: asked now and then, rejected by the system
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union

from selflearn.text import normalize

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "shared" / "data" / "clinc150" / "clinc150.parquet"
OOS = "oos"
# 10 per intent misreads ~16% of the other queries: in the band of a production NLU with little data.
SEED_PER_INTENT = 10
# Large C: few-shot logistic regression over 150 classes otherwise spreads its probability so thin that
# almost every answer falls below the pipeline's low-confidence cut, right or wrong.
CLASSIFIER_C = 20.0

# CLINC150's own ten domains (Larson et al. 2019, Table 1), 15 intents each.
DOMAINS: dict[str, tuple[str, ...]] = {
    "banking": ("transfer", "transactions", "balance", "freeze_account", "pay_bill", "bill_balance",
                "bill_due", "interest_rate", "routing", "min_payment", "order_checks", "pin_change",
                "report_fraud", "account_blocked", "spending_history"),
    "credit_cards": ("credit_score", "report_lost_card", "credit_limit", "rewards_balance", "new_card",
                     "application_status", "card_declined", "international_fees", "apr", "redeem_rewards",
                     "credit_limit_change", "damaged_card", "replacement_card_duration",
                     "improve_credit_score", "expiration_date"),
    "kitchen_and_dining": ("recipe", "restaurant_reviews", "calories", "nutrition_info",
                           "restaurant_suggestion", "ingredients_list", "ingredient_substitution", "cook_time",
                           "food_last", "meal_suggestion", "restaurant_reservation", "confirm_reservation",
                           "how_busy", "cancel_reservation", "accept_reservations"),
    "home": ("shopping_list", "shopping_list_update", "next_song", "play_music", "update_playlist", "todo_list",
             "todo_list_update", "calendar", "calendar_update", "what_song", "order", "order_status", "reminder",
             "reminder_update", "smart_home"),
    "auto_and_commute": ("traffic", "directions", "gas", "gas_type", "distance", "current_location", "mpg",
                         "oil_change_when", "oil_change_how", "jump_start", "uber", "schedule_maintenance",
                         "last_maintenance", "tire_pressure", "tire_change"),
    "travel": ("book_flight", "book_hotel", "car_rental", "travel_suggestion", "travel_alert",
               "travel_notification", "carry_on", "timezone", "vaccines", "translate", "flight_status",
               "international_visa", "lost_luggage", "plug_type", "exchange_rate"),
    "utility": ("time", "alarm", "share_location", "find_phone", "weather", "text", "spelling", "make_call",
                "timer", "date", "calculator", "measurement_conversion", "flip_coin", "roll_dice", "definition"),
    "work": ("direct_deposit", "pto_request", "taxes", "payday", "w2", "pto_balance", "pto_request_status",
             "next_holiday", "insurance", "insurance_change", "schedule_meeting", "pto_used", "meeting_schedule",
             "rollover_401k", "income"),
    "small_talk": ("greeting", "goodbye", "tell_joke", "where_are_you_from", "how_old_are_you",
                   "what_is_your_name", "who_made_you", "thank_you", "what_can_i_ask_you",
                   "what_are_your_hobbies", "do_you_have_pets", "are_you_a_bot", "meaning_of_life",
                   "who_do_you_work_for", "fun_fact"),
    "meta": ("change_ai_name", "change_user_name", "cancel", "user_name", "reset_settings", "whisper_mode",
             "repeat", "no", "yes", "maybe", "change_language", "change_accent", "change_volume", "change_speed",
             "sync_device"),
}
DOMAIN_OF = {intent: domain for domain, intents in DOMAINS.items() for intent in intents}


@dataclass(frozen=True)
class ClincNLU:
    """The queries in their roles and the production NLU's reading of every query users can say."""
    intents: list[str]              # in-scope intents, sorted
    seed: pd.DataFrame              # text, intent
    test: pd.DataFrame              # text, intent
    phrasings: pd.DataFrame         # text, intent (OOS included), predicted (None for OOS), confidence, and the
                                    # retrained NLU's reading: retrained_predicted, retrained_confidence
    classifier_error: float         # share of in-scope phrasings the classifier misreads
    retrain: pd.DataFrame | None = None       # text, intent: what the retrained NLU learnt beyond the seed
    retrained_error: float | None = None      # share of in-scope phrasings the retrained classifier misreads


def load_queries(path: str | Path | None = None) -> pd.DataFrame:
    """CLINC queries (split, text, intent), one row per normalized text: a text written under two intents
    is ambiguous and dropped; exact repeats keep their first row, so no text can play two roles."""
    path = Path(path or DEFAULT_PATH)
    if not path.is_file():
        raise FileNotFoundError(f"CLINC150 parquet not found at {path}: pass clinc_path (columns split, text, intent)")
    queries = pd.read_parquet(path, columns=["split", "text", "intent"])
    unknown = sorted(set(queries["intent"]) - set(DOMAIN_OF) - {OOS})
    if unknown:
        raise ValueError(f"{path}: intents without a domain in clinc_nlu.DOMAINS: {unknown}")
    queries = queries.assign(key=queries["text"].map(normalize))
    queries = queries[queries["key"].ne("")]
    ambiguous = queries.groupby("key")["intent"].nunique().loc[lambda n: n > 1].index
    queries = queries[~queries["key"].isin(ambiguous)].drop_duplicates("key")
    return queries.drop(columns="key").reset_index(drop=True)


@functools.lru_cache(maxsize=4)
def production_nlu(path: str | None, seed: int, retrain_extra: int = 0) -> ClincNLU:
    """Split the queries into roles with `seed`, train the production NLU on the seed split and read every
    phrasing with it; with `retrain_extra` > 0, also train the retrained NLU on the seed plus that many more
    `train` queries per intent (withheld from the phrasings) and read every phrasing with it too (without, the
    retrained reading is the first one). Deterministic in (path, seed, retrain_extra); cached because training
    is the slow part. retrain_extra 0 gives the roles and readings it gave before retraining existed."""
    if retrain_extra < 0:
        raise ValueError(f"retrain_extra must be >= 0, got {retrain_extra}")
    queries = load_queries(path)
    rng = np.random.default_rng([seed, 150])
    in_scope = queries[queries["intent"].ne(OOS)]
    train = in_scope[in_scope["split"].eq("train")]
    shuffled = train.iloc[rng.permutation(len(train))]
    position = shuffled.groupby("intent").cumcount()
    seed_set = shuffled[position < SEED_PER_INTENT].sort_values(["intent", "text"])
    # the next queries of the same shuffled order: the retrained NLU's extra data is drawn like its seed
    retrain_set = shuffled[position.between(SEED_PER_INTENT, SEED_PER_INTENT + retrain_extra - 1)]
    retrain_set = retrain_set.sort_values(["intent", "text"])
    test = in_scope[in_scope["split"].eq("test")].sort_values(["intent", "text"])
    rest = queries[~queries.index.isin(seed_set.index) & ~queries.index.isin(test.index)
                   & ~queries.index.isin(retrain_set.index)]
    phrasings = rest.sort_values(["intent", "text"]).reset_index(drop=True)
    is_oos = phrasings["intent"].eq(OOS).to_numpy()

    def read(train_set: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        model = _classifier().fit(train_set["text"], train_set["intent"])
        proba = model.predict_proba(phrasings["text"])
        # out-of-scope queries are rejected, not misread
        return np.where(is_oos, None, model.classes_[proba.argmax(axis=1)]), np.round(proba.max(axis=1), 4)

    predicted, confidence = read(seed_set)
    retrained, retrained_confidence = (read(pd.concat([seed_set, retrain_set])) if retrain_extra
                                       else (predicted, confidence))
    phrasings = phrasings.assign(predicted=predicted, confidence=confidence, retrained_predicted=retrained,
                                 retrained_confidence=retrained_confidence)
    truth = phrasings["intent"].to_numpy()[~is_oos]
    return ClincNLU(intents=sorted(in_scope["intent"].unique()),
                    seed=seed_set[["text", "intent"]].reset_index(drop=True),
                    test=test[["text", "intent"]].reset_index(drop=True),
                    phrasings=phrasings[["text", "intent", "predicted", "confidence", "retrained_predicted",
                                         "retrained_confidence"]],
                    classifier_error=float((predicted[~is_oos] != truth).mean()),
                    retrain=retrain_set[["text", "intent"]].reset_index(drop=True) if retrain_extra else None,
                    retrained_error=float((retrained[~is_oos] != truth).mean()) if retrain_extra else None)


def _classifier():
    return make_pipeline(
        make_union(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
                   TfidfVectorizer(analyzer="word", sublinear_tf=True)),
        LogisticRegression(C=CLASSIFIER_C, max_iter=1000))
