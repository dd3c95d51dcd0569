"""Password hashing with argon2 (argon2-cffi), tunable per environment."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

MIN_PASSWORD_LENGTH = 10


@cache
def _hasher(profile: str) -> PasswordHasher:
    # Tests use the cheapest profile so thousands of hashes stay fast; everything else RFC 9106.
    if profile == "cheapest":
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    return PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)


def hasher() -> PasswordHasher:
    return _hasher(current_app.config.get("PASSWORD_HASH_PROFILE", "default"))


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; an absent hash still costs one verification (timing)."""
    h = hasher()
    try:
        return h.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return hasher().check_needs_rehash(password_hash)


def _dummy_hash() -> str:
    profile = current_app.config.get("PASSWORD_HASH_PROFILE", "default")
    return _dummy_for(profile)


@cache
def _dummy_for(profile: str) -> str:
    return _hasher(profile).hash("not-a-real-password-just-for-timing")
