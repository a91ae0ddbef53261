"""Pseudonymous user keys: raw user ids never leave ingest.

A user key is HMAC-SHA256(salt, user_id) truncated to 16 hex characters (64 bits: collisions are
negligible below billions of users). Keep the salt secret: whoever knows it can test guessed user ids.

The salt is `privacy.user_salt` when configured. Otherwise the first run into an output folder generates a
random one and keeps it in <out>/.selflearn-salt (mode 0600); later runs into that folder reuse it. It lives
beside the outputs, not in a per-user folder, because it belongs to the keys stored there: the curated turns
of earlier days must be keyed with the same salt for users to be counted once, whichever account, host,
Prefect worker or Spark driver runs the next day, and the folder can be moved or backed up with its salt.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

USER_KEY_CHARS = 16
SALT_FILE = ".selflearn-salt"


class SaltError(ValueError):
    """The stored salt cannot be used; the message says how to recover."""


def resolve_salt(out_dir: str | Path, configured: str | None, say: Callable[[str], None] = print) -> str:
    """The configured salt, else the one stored in out_dir (generated, and announced through `say`, the first
    time). Raises SaltError for an empty or unreadable salt file (a new salt would re-key every user)."""
    if configured is not None:
        return configured
    path = Path(out_dir) / SALT_FILE
    if not path.exists():
        _create_salt_file(path)
        say(f"note: no privacy.user_salt configured: generated a secret salt in {path} (mode 0600) and will "
            "reuse it for this folder; keep it private and back it up with the folder, or set privacy.user_salt")
    elif path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
        say(f"note: {path} was readable by others; its permissions are now 0600")
    try:
        salt = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SaltError(f"cannot read the salt file {path} ({exc}): restore it from a backup") from None
    if not salt:
        raise SaltError(f"the salt file {path} is empty: restore it from a backup (the user keys under curated/ "
                        "were made with it), or delete it together with curated/ to start over with a new salt")
    return salt


def _create_salt_file(path: Path) -> None:
    """Write a random salt to a private temporary file, then link it into place: readers never see a partial
    file, and if two processes race, the first link wins and both use its salt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def with_salt(cfg, out_dir: str | Path, say: Callable[[str], None] = print):
    """`cfg` (a selflearn.config.Config) with privacy.user_salt resolved for out_dir."""
    if cfg.privacy.user_salt is not None:
        return cfg
    salt = resolve_salt(out_dir, None, say)
    return cfg.model_copy(update={"privacy": cfg.privacy.model_copy(update={"user_salt": salt})})


def redacted(config: dict) -> dict:
    """A dumped config with the salt replaced, for anything written out (manifest, fingerprints)."""
    privacy = {**config.get("privacy", {}), "user_salt": "(secret)"}
    return {**config, "privacy": privacy}


def config_fingerprint(cfg) -> str:
    """16 hex digits naming a run's settings (manifest, dataset card, the flow's ingest cache key). Hashed
    without the salt: a hash of a secret must not travel either."""
    return hashlib.sha256(json.dumps(redacted(cfg.model_dump()), sort_keys=True).encode()).hexdigest()[:16]


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
