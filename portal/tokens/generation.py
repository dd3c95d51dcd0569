"""Random tokens and the hashes stored for them, for session cookies and emailed links alike.

Only the SHA-256 of a token is ever stored, so a copy of the database opens no session and
redeems no link.
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
