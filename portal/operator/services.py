"""Operator actions on partners; each one audited, in the partner's trail and the platform's."""

from __future__ import annotations

from portal.audit.services import record_audit
from portal.operator.models import Operator
from portal.sessions.services import revoke_partner_sessions
from portal.tenancy.models import Partner, PartnerStatus
from portal.tenancy.scope import partner_scope


class PartnerStateError(ValueError):
    """The partner is not in a state where this action makes sense."""


def suspend_partner(operator: Operator, partner: Partner, reason: str) -> int:
    """Suspend a partner: its portal shows "unavailable" and every session ends at once."""
    reason = " ".join(reason.split())[:200]
    if not reason:
        raise PartnerStateError("Give a reason for the suspension.")
    if partner.status == PartnerStatus.SUSPENDED:
        raise PartnerStateError(f"{partner.name} is already suspended.")
    partner.status = PartnerStatus.SUSPENDED
    with partner_scope(partner):
        ended = revoke_partner_sessions(by=None, reason=f"partner suspended: {reason}")
        record_audit("partner.suspend", target=partner, actor=operator, details={"reason": reason})
    record_audit(
        "partner.suspend",
        target=partner,
        actor=operator,
        details={"reason": reason, "sessions": ended},
    )
    return ended


def reactivate_partner(operator: Operator, partner: Partner) -> None:
    if partner.status != PartnerStatus.SUSPENDED:
        raise PartnerStateError(f"{partner.name} is not suspended.")
    partner.status = PartnerStatus.ACTIVE
    with partner_scope(partner):
        record_audit("partner.reactivate", target=partner, actor=operator)
    record_audit("partner.reactivate", target=partner, actor=operator)
