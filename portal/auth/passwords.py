"""Password hashing with argon2 (argon2-cffi), tunable per environment, and the rules a new
password must meet beyond its length: not one of the most common passwords, not made of the
portal's or the person's own names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from portal.tenancy.context import current_partner

MIN_PASSWORD_LENGTH = 10
# How many of the most common passwords (zxcvbn's list, from leaked password corpora, most
# frequent first) a new password is checked against, also with digits and symbols at its end
# taken off ("dragon2026!" is "dragon").
COMMON_PASSWORDS = 10_000
MIN_CONTEXT_WORD = 4  # shorter names ("bob", "hr") are too common inside words to refuse
TOO_COMMON = "This password is one of the most common ones, which are tried first; choose another."
HAS_CONTEXT = (
    "A password must not contain {portal}'s name, nor a word of your own name or email "
    "address; choose another."
)
_TRAILING = re.compile(r"[\d\W_]+$")
_WORDS = re.compile(r"[^\W_]+")


@cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # 30,000 passwords; loaded when needed

    return frozenset(FREQUENCY_LISTS["passwords"][:COMMON_PASSWORDS])


def context_words(*names: str | None) -> set[str]:
    """The words of `names` (a partner's name and address name, a person's email address and
    name) that a password may not contain: each word of at least MIN_CONTEXT_WORD letters."""
    words = set()
    for name in names:
        local, at, domain = (name or "").lower().partition("@")
        text = f"{local} {' '.join(domain.split('.')[:-1])}" if at else local  # no ".com"
        for word in _WORDS.findall(text):
            if len(word) >= MIN_CONTEXT_WORD:
                words.add(word)
    return words


def password_refusal(
    password: str, context: Iterable[str] = (), *, portal: str = "the portal"
) -> str | None:
    """Why `password` may not be chosen, or None: one of the most common passwords (as it is,
    or without the digits and symbols at its end), or containing a word of `context` (see
    `context_words`). The length is the caller's to check."""
    lowered = password.lower()
    if lowered in _common() or _TRAILING.sub("", lowered) in _common():
        return TOO_COMMON
    if any(word in lowered for word in context):
        return HAS_CONTEXT.format(portal=portal)
    return None


def partner_password_refusal(password: str, *, email: str | None, name: str | None) -> str | None:
    """`password_refusal` for a person of the partner in scope: its name and address name and
    the person's own `email` and `name` are the context."""
    context = context_words(current_partner.name, current_partner.slug, email, name)
    return password_refusal(password, context, portal=current_partner.name)


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
