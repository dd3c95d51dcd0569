"""Random tokens and the hashes stored for them, for session cookies and emailed links alike.

Only the SHA-256 of a token is stored with its session or link record, so the session and
token tables open no session and redeem no link. The emails themselves, links included, are
kept in the outbox table (docs/security.md says what that exposes).
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
