"""Pseudonymous user keys: raw user ids never leave ingest.

A user key is HMAC-SHA256(salt, user_id) truncated to 16 hex characters (64 bits: collisions are
negligible below billions of users). Keep the salt secret: whoever knows it can test guessed user ids.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

USER_KEY_CHARS = 16


def hash_user(user_id: str, salt: str) -> str:
    """Stable, salted, non-reversible key for one user id."""
    return hmac.new(salt.encode("utf-8"), user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[
        :USER_KEY_CHARS]


def hash_users(user_ids: Iterable[str | None], salt: str) -> list[str | None]:
    """hash_user over many ids (None stays None); reuses the keyed state (faster than a loop of hash_user)."""
    keyed = hmac.new(salt.encode("utf-8"), digestmod=hashlib.sha256)
    out: list[str | None] = []
    for user_id in user_ids:
        if user_id is None:
            out.append(None)
            continue
        h = keyed.copy()
        h.update(user_id.encode("utf-8", "surrogatepass"))
        out.append(h.hexdigest()[:USER_KEY_CHARS])
    return out
