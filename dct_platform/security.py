"""Password and token hashing."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from collections.abc import Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import get_default_parameters
from flask_babel import lazy_gettext as _l


def _cost(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


def hasher_from_env(env: Mapping[str, str]) -> PasswordHasher:
    """Argon2 at the cost the environment asks for; argon2-cffi's defaults when unset.

    Only the test suite lowers the cost, to stop argon2's deliberate slowness from
    dominating its run. The parameters are stored in each hash, so a hash made at another
    cost still verifies, and `needs_rehash` moves it to the current one at sign-in.
    """
    default = get_default_parameters()
    parallelism = _cost(env, "PASSWORD_HASH_PARALLELISM", default.parallelism, 1)
    return PasswordHasher(
        time_cost=_cost(env, "PASSWORD_HASH_TIME_COST", default.time_cost, 1),
        # Argon2 itself refuses less than 8 KiB per lane.
        memory_cost=_cost(env, "PASSWORD_HASH_MEMORY_KIB", default.memory_cost, 8 * parallelism),
        parallelism=parallelism,
    )


# Read once: one process hashes at one cost, so a rehash decision never flips back and forth.
_hasher = hasher_from_env(os.environ)
# Verified against when the username is unknown, so that a miss costs the same time as a hit;
# made by `_hasher`, so it costs what a real hash costs at the configured parameters.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 10
# Argon2 hashes any length, but a huge "password" only costs hashing time; the token
# endpoint and the forms accept at most this many characters, so the policy matches them.
MAX_PASSWORD_LENGTH = 1024


@functools.cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn's list of the 30,000 most used passwords (from leaked password dumps), kept up to
    # date by its maintainers; loaded on first use because the module is several megabytes.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


def is_common_password(password: str) -> bool:
    return password.casefold() in _common_passwords()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def password_problems(password: str, username: str | None = None) -> list[str]:
    """What makes `password` unacceptable, in words for its owner; empty when it is fine."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(_l("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH))
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(_l("Use at most %(n)d characters.", n=MAX_PASSWORD_LENGTH))
    if password.strip() != password:
        problems.append(_l("Do not start or end the password with spaces."))
    if "\x00" in password:
        problems.append(_l("The password contains a character that cannot be typed."))
    if password and len(set(password)) == 1:
        problems.append(_l("Do not repeat one character only."))
    if username and password.casefold() == username.strip().casefold():
        problems.append(_l("Do not use your username as your password."))
    if is_common_password(password):
        problems.append(_l("This is one of the most common passwords; choose a rarer one."))
    return problems
