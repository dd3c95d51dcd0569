"""A partner's retention settings, within the operator's bounds."""

from __future__ import annotations

from flask import current_app

from portal.audit.services import record_audit
from portal.exceptions import Invalid
from portal.tenancy.context import current_partner
from portal.tenancy.models import RetentionPolicy
from portal.text import counted
from portal.unit_of_work import lock_partner

RETENTION_FIELDS = {
    "sessions_days": "Ended sessions are deleted after (days)",
    "tokens_days": "Used or expired email links are deleted after (days)",
    "outbox_days": "The text of sent emails is deleted after (days)",
    "audit_ip_days": "IP addresses in the audit log are shortened to their network after (days)",
    "audit_years": "Audit events are deleted after (years)",
    "closing_days": "Cooling-off before a closed account is erased (days)",
}


class RetentionError(Invalid):
    """Retention settings that cannot be saved, with the reason."""


def update_retention(values: dict[str, object]) -> RetentionPolicy:
    """Validate and store the partner's retention; the next maintenance run applies it."""
    numbers: dict[str, int] = {}
    for name, label in RETENTION_FIELDS.items():
        raw = str(values.get(name, "")).strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 5):
            raise RetentionError(f"{label}: enter a whole number.")
        numbers[name] = int(raw)
    try:
        policy = RetentionPolicy.from_dict(numbers)
    except ValueError as exc:
        raise RetentionError(str(exc).capitalize() + ".") from exc
    config = current_app.config
    longest = config["RETENTION_MAX_DAYS"]
    for name in ("sessions_days", "tokens_days", "outbox_days", "audit_ip_days"):
        if numbers[name] > longest:
            raise RetentionError(
                f"{RETENTION_FIELDS[name]}: at most {longest} days on this platform."
            )
    if policy.audit_years < config["RETENTION_AUDIT_MIN_YEARS"]:
        raise RetentionError(
            f"Audit events must be kept at least "
            f"{counted(config['RETENTION_AUDIT_MIN_YEARS'], 'year')} on this platform."
        )
    lock_partner()
    partner = current_partner._get_current_object()
    before = partner.retention
    if policy != before:
        partner.retention_settings = policy.to_dict()
        record_audit(
            "settings.retention_update",
            target=partner,
            details={"before": before.to_dict(), "after": policy.to_dict()},
        )
    return policy
