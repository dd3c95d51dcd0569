"""`flask sso ...`: single sign-on maintenance."""

from __future__ import annotations

from flask.cli import AppGroup

from portal.commands import transactional
from portal.sso.crypto import secret_box
from portal.sso.services import reencrypt_secrets

sso_cli = AppGroup("sso", help="Single sign-on maintenance.")


@sso_cli.command("rotate-keys")
@transactional
def rotate_keys() -> str:
    """Re-encrypt every stored client secret with the current key (the first of
    PORTAL_SSO_KEYS, or the one derived from the secret key)."""
    result = reencrypt_secrets()
    lines = [f"Current key: {secret_box().current_id}"]
    lines.append(f"Re-encrypted: {', '.join(result.reencrypted) or 'none'}")
    lines.append(f"Already current: {', '.join(result.current) or 'none'}")
    if result.unreadable:
        lines.append(
            f"Unreadable with the configured keys (enter the secret again on "
            f"Settings > Sign-in): {', '.join(result.unreadable)}"
        )
    return "\n".join(lines)
