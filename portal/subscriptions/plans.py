"""Managing a partner's plans (validated input in, audited changes out)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from sqlalchemy import func, select

from portal.audit.services import record_audit
from portal.exceptions import Invalid
from portal.extensions import db
from portal.roles.models import Role
from portal.subscriptions.models import BillingInterval, Plan, PlanStatus

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,39}$")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class PlanError(Invalid):
    """Plan input that cannot be saved; `field` names the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.fields = {field: message}

    @classmethod
    def of(cls, problems: dict[str, str]) -> PlanError:
        """Several fields at fault at once: each keeps its message (`field` is the first)."""
        field, message = next(iter(problems.items()))
        error = cls(field, message)
        error.fields = dict(problems)
        return error


@dataclass(frozen=True)
class PlanInput:
    code: str
    name: str
    description: str
    price_cents: int
    currency: str
    interval: BillingInterval
    allowed_roles: tuple[Role, ...]
    entitlements: tuple[str, ...]
    needs_approval: bool
    position: int

    def problems(self, known_entitlements: frozenset[str]) -> dict[str, str]:
        """Every field that cannot be saved, with its reason (all of them, not the first)."""
        problems: dict[str, str] = {}
        if not CODE_RE.match(self.code.strip().lower()):
            problems["code"] = "Use 2 to 40 lowercase letters, digits, - or _ for the code."
        if not 1 <= len(" ".join(self.name.split())) <= 80:
            problems["name"] = "The name must be 1 to 80 characters."
        if len(self.description) > 2000:
            problems["description"] = "The description must be at most 2,000 characters."
        if not 0 <= self.price_cents <= 100_000_000:
            problems["price"] = "The price must be between 0 and 1,000,000."
        if not CURRENCY_RE.match(self.currency.strip().upper()):
            problems["currency"] = "Use a three-letter currency code such as EUR."
        if not self.allowed_roles:
            problems["allowed_roles"] = "Choose at least one role that may subscribe."
        unknown = [k for k in self.entitlements if k not in known_entitlements]
        if unknown:
            problems["entitlements"] = f"Unknown feature(s): {', '.join(unknown)}."
        if not -1000 <= self.position <= 1000:
            problems["position"] = "The order must be between -1000 and 1000."
        return problems

    def validated(self, known_entitlements: frozenset[str]) -> PlanInput:
        problems = self.problems(known_entitlements)
        if problems:
            raise PlanError.of(problems)
        code = self.code.strip().lower()
        name = " ".join(self.name.split())
        currency = self.currency.strip().upper()
        return PlanInput(
            code,
            name,
            self.description.strip(),
            self.price_cents,
            currency,
            self.interval,
            tuple(sorted(set(self.allowed_roles), key=lambda r: r.rank)),
            tuple(sorted(set(self.entitlements))),
            self.needs_approval,
            self.position,
        )


def _code_taken(code: str, except_id: int | None = None) -> bool:
    stmt = select(func.count(Plan.id)).where(Plan.code == code)
    if except_id is not None:
        stmt = stmt.where(Plan.id != except_id)
    return db.session.execute(stmt).scalar_one() > 0


def _apply(plan: Plan, data: PlanInput) -> None:
    plan.code = data.code
    plan.name = data.name
    plan.description = data.description
    plan.price_cents = data.price_cents
    plan.currency = data.currency
    plan.interval = data.interval
    plan.allowed_roles = [r.value for r in data.allowed_roles]
    plan.entitlements = list(data.entitlements)
    plan.needs_approval = data.needs_approval
    plan.position = data.position


def _summary(data: PlanInput) -> dict:
    out = asdict(data)
    out["interval"] = data.interval.value
    out["allowed_roles"] = [r.value for r in data.allowed_roles]
    out["entitlements"] = list(data.entitlements)
    return out


def create_plan(data: PlanInput, known_entitlements: frozenset[str]) -> Plan:
    data = data.validated(known_entitlements)
    if _code_taken(data.code):
        raise PlanError("code", f"A plan with the code {data.code} already exists.")
    plan = Plan()
    _apply(plan, data)
    db.session.add(plan)
    db.session.flush()
    record_audit("plan.create", target=plan, details=_summary(data))
    return plan


def update_plan(plan: Plan, data: PlanInput, known_entitlements: frozenset[str]) -> Plan:
    """Edit a plan; existing subscriptions keep running on the edited plan."""
    data = data.validated(known_entitlements)
    if _code_taken(data.code, except_id=plan.id):
        raise PlanError("code", f"A plan with the code {data.code} already exists.")
    _apply(plan, data)
    record_audit("plan.update", target=plan, details=_summary(data))
    return plan


def set_plan_status(plan: Plan, status: PlanStatus) -> None:
    """Archive (no new subscriptions; existing ones stay as they are) or restore a plan."""
    if plan.status == status:
        return
    plan.status = status
    record_audit("plan.archive" if status == PlanStatus.ARCHIVED else "plan.restore", target=plan)
