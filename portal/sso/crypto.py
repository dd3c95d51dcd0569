"""Client secrets at rest: Fernet (AES-128-CBC with HMAC-SHA256), several keys for rotation.

`PORTAL_SSO_KEYS` lists Fernet keys, comma-separated: the first encrypts, every one decrypts.
A key derived from `PORTAL_SECRET_KEY` (HKDF-SHA256) always decrypts too, and encrypts when
the variable is unset. Each ciphertext is stored with the id of its key (a fingerprint, never
the key), so `flask sso rotate-keys` can re-encrypt what an older key made.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app

from portal.config import ConfigError
from portal.exceptions import PortalError


class SecretUnreadable(PortalError):
    """A stored secret no configured key can decrypt (a key was removed or the secret key
    changed): an administrator has to enter the secret again."""

    status = 503

    def __init__(self) -> None:
        super().__init__(
            "Single sign-on is not working: the stored client secret cannot be decrypted with "
            "the configured keys. An administrator has to enter the client secret again."
        )


def derived_key(secret_key: str) -> bytes:
    """A Fernet key from the app's secret key; never used for anything but client secrets."""
    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"portal sso client secrets v1"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


def key_id(key: bytes) -> str:
    """A short public fingerprint naming a key in the database."""
    return hashlib.sha256(b"portal-sso-key:" + key).hexdigest()[:16]


def parse_keys(raw: str) -> list[bytes]:
    """The keys of `PORTAL_SSO_KEYS`; one that is not a Fernet key stops start-up."""
    keys = []
    for position, text in enumerate(part.strip() for part in raw.split(",")):
        if not text:
            continue
        try:
            Fernet(text.encode())
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"PORTAL_SSO_KEYS: key {position + 1} is not a Fernet key (32 url-safe base64 "
                "bytes); make one with python3 -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from exc
        keys.append(text.encode())
    return keys


class SecretBox:
    """Encrypts with the current key, decrypts with whichever key a ciphertext names."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = {key_id(k): Fernet(k) for k in keys}
        self.current_id = key_id(keys[0])

    def encrypt(self, plain: str) -> tuple[str, str]:
        """(key id, ciphertext) of `plain`."""
        return self.current_id, self.keys[self.current_id].encrypt(plain.encode()).decode()

    def decrypt(self, kid: str, token: str) -> str:
        fernet = self.keys.get(kid)
        if fernet is None:
            raise SecretUnreadable()
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable() from exc


def secret_box() -> SecretBox:
    return current_app.extensions["portal_sso_box"]


def init_app(app: Flask) -> None:
    keys = parse_keys(app.config["SSO_KEYS"])
    derived = derived_key(app.config["SECRET_KEY"])
    app.extensions["portal_sso_box"] = SecretBox([*keys, derived] if keys else [derived])
