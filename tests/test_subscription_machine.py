"""Random sequences of user and admin actions through the real services, checked at each step.

The machine keeps its own model of what DESIGN §5 allows and predicts every outcome; after
every step the stored rows must agree with the model and with the lifecycle's invariants.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import make_user
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, func, select, update
from test_subscriptions import plan

from portal.audit.maintenance import allow_audit_changes
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.roles.models import Role
from portal.subscriptions.models import Plan, PlanStatus, Subscription, SubscriptionEvent
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.plans import set_plan_status
from portal.subscriptions.services import (
    ActorKind,
    SubscriptionRefused,
    accept_terms,
    start_signing,
    transition,
)
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User
from portal.users.services import UserError, change_role

U, A, SYS = ActorKind.USER, ActorKind.ADMIN, ActorKind.SYSTEM
# DESIGN §5, written out again here rather than imported, so the code is checked against it.
DESIGN_MOVES = {
    (S.SIGNING, S.SIGNED): {U, A},
    (S.SIGNING, S.UNSIGNED): {U, A},
    (S.SIGNED, S.SUSPENDED): {A, SYS},
    (S.SUSPENDED, S.SIGNED): {A},
    (S.SIGNED, S.UNSIGNED): {U, A},
    (S.SUSPENDED, S.UNSIGNED): {U, A},
}
LADDER = [Role.GUEST, Role.BASIC, Role.ADVANCED, Role.COMPANY]
PLANS = {  # code: (roles allowed, needs approval)
    "free": ((Role.BASIC, Role.ADVANCED), False),
    "plus": ((Role.BASIC,), True),
    "team": ((Role.ADVANCED, Role.COMPANY), False),
    "corp": ((Role.COMPANY,), True),
}
USERS = ("u0@acme.test", "u1@acme.test")
REASONS = ("", "   ", "unpaid invoice", "chargeback")
TRANSITION_ACTIONS = [f"subscription.{s.value}" for s in S]  # not subscription.terms_accepted


@dataclass
class Sub:
    """What the model expects of one subscription."""

    user: str
    plan: str
    state: S
    terms: bool = False


class SubscriptionMachine(RuleBasedStateMachine):
    def __init__(self, admin_id: int, user_ids: dict[str, int], plan_ids: dict[str, int]) -> None:
        super().__init__()
        self.admin_user = db.session.get(User, admin_id)
        self.user_ids, self.plan_ids = user_ids, plan_ids
        self.roles = dict.fromkeys(USERS, Role.BASIC)
        self.active = dict.fromkeys(PLANS, True)
        self.subs: dict[int, Sub] = {}

    # --- the model -----------------------------------------------------------------------

    def user(self, email: str) -> User:
        return db.session.get(User, self.user_ids[email])

    def plan(self, code: str) -> Plan:
        return db.session.get(Plan, self.plan_ids[code])

    def allows(self, code: str, email: str) -> bool:
        return self.roles[email] in PLANS[code][0]

    def may_act(self, kind: ActorKind, email: str) -> bool:
        return kind != U or self.roles[email] != Role.GUEST  # guests may not manage their own

    def of(self, email: str, *states: S) -> int | None:
        """The user's subscription in one of `states`, else their latest, else None."""
        mine = [i for i, s in self.subs.items() if s.user == email]
        return next((i for i in mine if self.subs[i].state in states), max(mine, default=None))

    def may_move(self, sub: Sub, to: S, kind: ActorKind, reason: str) -> bool:
        if kind not in DESIGN_MOVES.get((sub.state, to), ()) or not self.may_act(kind, sub.user):
            return False
        if (sub.state, to) == (S.SIGNING, S.SIGNED):
            approval = PLANS[sub.plan][1]
            return (
                sub.terms
                and approval == (kind == A)
                and self.active[sub.plan]
                and self.allows(sub.plan, sub.user)
            )
        if (sub.state, to) == (S.SIGNED, S.SUSPENDED):
            return bool(reason.strip())
        if (sub.state, to) == (S.SUSPENDED, S.SIGNED):
            return self.allows(sub.plan, sub.user)
        return True

    def moved(self, sub_id: int, to: S) -> None:
        sub = self.subs[sub_id]
        if to == S.SIGNED and sub.state == S.SIGNING:
            for other in self.subs.values():  # a switch unsigns the plan held so far
                if other.user == sub.user and other.state in (S.SIGNED, S.SUSPENDED):
                    other.state = S.UNSIGNED
        sub.state = to

    # --- running one action --------------------------------------------------------------

    def snapshot(self) -> tuple:
        """Every subscription row and how many events and audit rows exist."""
        subs = db.session.execute(
            select(
                Subscription.id,
                Subscription.state,
                Subscription.version,
                Subscription.terms_accepted_at,
                Subscription.updated_at,
            ).order_by(Subscription.id)
        ).all()
        counts = db.session.execute(
            select(
                select(func.count(SubscriptionEvent.id)).scalar_subquery(),
                select(func.count(AuditEvent.id)).scalar_subquery(),
            )
        ).one()
        return subs, tuple(counts)

    def attempt(self, expected: bool, action: Callable[[], object]) -> object:
        """Run `action`; it must succeed (and commit) exactly when the model expects it to."""
        before = self.snapshot()
        try:
            result = action()
        except (SubscriptionRefused, UserError) as exc:
            db.session.rollback()
            assert not expected, f"refused, but the model allows it: {exc}"
            assert self.snapshot() == before, "a refused move changed something"
            return None
        db.session.commit()
        assert expected, "done, but the model refuses it"
        return result

    # --- user actions ----------------------------------------------------------------------

    @rule(email=st.sampled_from(USERS), code=st.sampled_from(list(PLANS)), by_admin=st.booleans())
    def start(self, email: str, code: str, by_admin: bool) -> None:
        kind = A if by_admin else U
        mine = [s for s in self.subs.values() if s.user == email]
        expected = (
            self.may_act(kind, email)
            and self.active[code]
            and self.allows(code, email)
            and not any(s.state == S.SIGNING for s in mine)
            and not any(s.plan == code and s.state in (S.SIGNED, S.SUSPENDED) for s in mine)
        )
        user = self.user(email)
        actor = self.admin_user if by_admin else user
        sub = self.attempt(
            expected, lambda: start_signing(user, self.plan(code), actor=actor, kind=kind)
        )
        if sub is not None:
            self.subs[sub.id] = Sub(email, code, S.SIGNING)

    @rule(email=st.sampled_from(USERS), code=st.sampled_from(list(PLANS)))
    def subscribe(self, email: str, code: str) -> None:
        """The whole happy path in one step (so random runs reach signed and beyond often)."""
        self.start(email, code, by_admin=False)
        self.confirm(email)
        self.admin_acts(email, "approve", "")

    @rule(email=st.sampled_from(USERS))
    def confirm(self, email: str) -> None:
        sub_id = self.of(email, S.SIGNING)
        if sub_id is None:
            return
        sub = self.subs[sub_id]
        needs_approval = PLANS[sub.plan][1]
        if sub.state != S.SIGNING or not self.may_act(U, email):
            expected = False
        else:
            expected = needs_approval or self.may_move(
                Sub(sub.user, sub.plan, sub.state, terms=True), S.SIGNED, U, ""
            )
        row = db.session.get(Subscription, sub_id)
        if self.attempt(expected, lambda: accept_terms(row, actor=self.user(email))):
            sub.terms = True
            if not needs_approval:
                self.moved(sub_id, S.SIGNED)

    @rule(email=st.sampled_from(USERS), held=st.booleans())
    def abandon_or_cancel(self, email: str, held: bool) -> None:
        states = (S.SIGNED, S.SUSPENDED) if held else (S.SIGNING,)
        self.move(self.of(email, *states), S.UNSIGNED, U, "by the user")

    # --- admin actions ---------------------------------------------------------------------

    @rule(
        email=st.sampled_from(USERS),
        action=st.sampled_from(["approve", "reject", "suspend", "resume", "end"]),
        reason=st.sampled_from(REASONS),
    )
    def admin_acts(self, email: str, action: str, reason: str) -> None:
        states, to = {
            "approve": ((S.SIGNING,), S.SIGNED),
            "reject": ((S.SIGNING,), S.UNSIGNED),
            "suspend": ((S.SIGNED,), S.SUSPENDED),
            "resume": ((S.SUSPENDED,), S.SIGNED),
            "end": ((S.SIGNED, S.SUSPENDED), S.UNSIGNED),
        }[action]
        self.move(self.of(email, *states), to, A, reason)

    def in_state(self, state: S) -> list[int]:
        return sorted(i for i, s in self.subs.items() if s.state == state)

    @precondition(lambda self: self.in_state(S.SIGNED))
    @rule(index=st.integers(0, 20), reason=st.sampled_from(REASONS), then_resume=st.booleans())
    def suspend(self, index: int, reason: str, then_resume: bool) -> None:
        signed = self.in_state(S.SIGNED)
        sub_id = signed[index % len(signed)]
        self.move(sub_id, S.SUSPENDED, A, reason)
        if then_resume:  # swarm runs rarely pair the two rules otherwise
            self.move(sub_id, S.SIGNED, A, "")

    @precondition(lambda self: self.in_state(S.SUSPENDED))
    @rule(index=st.integers(0, 20))
    def resume(self, index: int) -> None:
        suspended = self.in_state(S.SUSPENDED)
        self.move(suspended[index % len(suspended)], S.SIGNED, A, "")

    @rule(
        index=st.integers(0, 20),
        to=st.sampled_from(list(S)),
        kind=st.sampled_from(list(ActorKind)),
        reason=st.sampled_from(REASONS),
        final=st.booleans(),
    )
    def any_move(self, index: int, to: S, kind: ActorKind, reason: str, final: bool) -> None:
        """Any move by anyone on a live subscription (or an unsigned one): most are refused."""
        live = sorted(i for i, s in self.subs.items() if s.state != S.UNSIGNED)
        pool = self.in_state(S.UNSIGNED) if final or not live else live
        if pool:
            self.move(pool[index % len(pool)], to, kind, reason)

    def move(self, sub_id: int | None, to: S, kind: ActorKind, reason: str) -> None:
        if sub_id is None:
            return
        sub = self.subs[sub_id]
        actor = {U: self.user(sub.user), A: self.admin_user, SYS: None}[kind]
        row = db.session.get(Subscription, sub_id)
        expected = self.may_move(sub, to, kind, reason)
        if self.attempt(
            expected, lambda: transition(row, to, actor=actor, kind=kind, reason=reason)
        ):
            self.moved(sub_id, to)

    @rule(email=st.sampled_from(USERS), role=st.sampled_from(LADDER))
    def change_role(self, email: str, role: Role) -> None:
        old = self.roles[email]
        expected = abs(LADDER.index(old) - LADDER.index(role)) == 1
        user = self.user(email)
        self.attempt(
            expected, lambda: change_role(self.admin_user, user, role, confirm_suspension=True)
        )
        if expected:
            self.roles[email] = role
            for sub_id, sub in self.subs.items():
                if sub.user == email and sub.state == S.SIGNED and not self.allows(sub.plan, email):
                    self.moved(sub_id, S.SUSPENDED)

    @rule(code=st.sampled_from(list(PLANS)), active=st.booleans())
    def archive_or_restore(self, code: str, active: bool) -> None:
        status = PlanStatus.ACTIVE if active else PlanStatus.ARCHIVED
        self.attempt(True, lambda: set_plan_status(self.plan(code), status))
        self.active[code] = active

    # --- after every step ------------------------------------------------------------------

    @invariant()
    def stored_rows_agree(self) -> None:
        db.session.expire_all()
        roles = dict(db.session.execute(select(User.email, User.role)).all())
        assert {email: roles[email] for email in USERS} == self.roles
        statuses = dict(db.session.execute(select(Plan.code, Plan.status)).all())
        assert statuses == {
            c: PlanStatus.ACTIVE if a else PlanStatus.ARCHIVED for c, a in self.active.items()
        }

        subs = db.session.execute(
            select(Subscription.id, Subscription.user_id, Subscription.state, Subscription.version)
        ).all()
        assert {s.id: s.state for s in subs} == {i: s.state for i, s in self.subs.items()}
        for email, user_id in self.user_ids.items():
            mine = [s.state for s in subs if s.user_id == user_id]
            held = [s for s in mine if s in (S.SIGNED, S.SUSPENDED)]
            assert len(held) <= 1, f"{email} holds {len(held)} subscriptions"
            assert mine.count(S.SIGNING) <= 1, f"{email} signs two at once"

        chains: dict[int, list[tuple[S | None, S]]] = {}
        for sub_id, frm, to in db.session.execute(
            select(
                SubscriptionEvent.subscription_id,
                SubscriptionEvent.from_state,
                SubscriptionEvent.to_state,
            ).order_by(SubscriptionEvent.id)
        ):
            chains.setdefault(sub_id, []).append((frm, to))
        audited: dict[str, list[str]] = {}
        for target_type, target_id, action in db.session.execute(
            select(AuditEvent.target_type, AuditEvent.target_id, AuditEvent.action)
            .where(AuditEvent.action.in_(TRANSITION_ACTIONS))
            .order_by(AuditEvent.id)
        ):
            assert target_type == "subscriptions"
            audited.setdefault(target_id, []).append(action)
        assert set(chains) == {s.id for s in subs}
        for sub in subs:
            steps = chains[sub.id]
            assert steps[0] == (None, S.SIGNING)
            for (_, to), (frm, _) in itertools.pairwise(steps):
                assert to == frm, f"subscription {sub.id}: broken event chain {steps}"
                assert frm != S.UNSIGNED, f"subscription {sub.id} left unsigned: {steps}"
            assert steps[-1][1] == sub.state, f"subscription {sub.id}: {sub.state} vs {steps}"
            assert sub.version == len(steps), f"subscription {sub.id}: version {sub.version}"
            assert audited[str(sub.id)] == [f"subscription.{to.value}" for _, to in steps]


@pytest.fixture
def machine_world(data, acme: Partner, acme_admin: User) -> dict:
    users = {email: make_user(acme, email).id for email in USERS}
    with partner_scope(acme):
        plans = {
            code: plan(code, roles=roles, approval=approval).id
            for code, (roles, approval) in PLANS.items()
        }
        db.session.commit()
        yield {"admin_id": acme_admin.id, "user_ids": users, "plan_ids": plans}


def _reset(world: dict) -> None:
    """Back to no subscriptions, basic users and active plans before each random run."""
    db.session.rollback()
    allow_audit_changes()  # the audit table is append-only on PostgreSQL otherwise
    db.session.execute(delete(SubscriptionEvent))
    db.session.execute(delete(Subscription))
    db.session.execute(delete(AuditEvent))
    db.session.execute(
        update(User).where(User.id.in_(world["user_ids"].values())).values(role=Role.BASIC)
    )
    db.session.execute(update(Plan).values(status=PlanStatus.ACTIVE))
    db.session.commit()
    db.session.expire_all()


def test_random_action_sequences_keep_the_invariants(machine_world: dict) -> None:
    def fresh_machine() -> SubscriptionMachine:
        _reset(machine_world)
        return SubscriptionMachine(**machine_world)

    run_state_machine_as_test(
        fresh_machine,
        settings=settings(
            max_examples=50,
            stateful_step_count=30,
            derandomize=True,
            database=None,
            deadline=None,
            phases=(Phase.explicit, Phase.generate, Phase.shrink),  # explaining takes minutes
        ),
    )
