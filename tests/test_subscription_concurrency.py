"""Two workers race on one subscription: exactly one wins, the other is told, nothing half-done.

A barrier (tests/racing.py) lines the workers up after both have read the subscription and
before either writes, so both start from the same state and version: the compare-and-set (or
the unique index) must decide the race.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import make_user, rows
from flask import Flask
from racing import race, results, skip_unless_racing
from test_subscriptions import plan

from portal.extensions import db
from portal.roles.models import Role
from portal.subscriptions.models import Plan, Subscription, SubscriptionEvent
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.services import (
    ActorKind,
    SubscriptionRefused,
    accept_terms,
    start_signing,
    transition,
)
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.unit_of_work import commit, rollback
from portal.users.models import User


def race_services(apps: list[Flask], partner_id: int, work: Callable[[], Any]) -> list:
    """Each worker runs `work` as one unit of work in the partner: ("won", result) or
    ("refused", the refusal)."""

    def unit(_index: int) -> tuple[str, Any]:
        with partner_scope(db.session.get(Partner, partner_id)):
            try:
                result = work()
                commit()
            except SubscriptionRefused as exc:
                rollback()
                return "refused", exc
            return "won", result

    return results(race(apps, unit))


@pytest.fixture
def racers(make_app: Any, data: Flask) -> list[Flask]:
    return [make_app(), make_app()]


@pytest.fixture
def signed(data: Flask, acme: Partner, acme_admin: User) -> dict:
    """A basic user with a signed subscription to a free plan, all committed."""
    user = make_user(acme, "racer@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        free, other = plan("free"), plan("other")
        db.session.commit()
        me = db.session.get(User, user.id)
        sub = start_signing(me, free, actor=me, kind=ActorKind.USER)
        accept_terms(sub, actor=me)
        db.session.commit()
        return {
            "partner_id": acme.id,
            "user_id": user.id,
            "admin_id": acme_admin.id,
            "sub_id": sub.id,
            "plans": {"free": free.id, "other": other.id},
        }


@pytest.mark.parametrize(
    "to,reason", [(S.SUSPENDED, "chargeback"), (S.UNSIGNED, "ended")], ids=["suspend", "end"]
)
def test_two_admins_move_the_same_subscription(
    data: Flask, racers: list[Flask], signed: dict, to: S, reason: str
) -> None:
    skip_unless_racing()
    before = len(rows(SubscriptionEvent))

    def move() -> S:
        sub = db.session.get(Subscription, signed["sub_id"])
        admin = db.session.get(User, signed["admin_id"])
        assert (sub.state, sub.version) == (S.SIGNED, 2)  # both read the same row
        return transition(sub, to, actor=admin, kind=ActorKind.ADMIN, reason=reason).state

    outcomes = race_services(racers, signed["partner_id"], move)
    assert sorted(kind for kind, _ in outcomes) == ["refused", "won"], outcomes
    [refusal] = [exc for kind, exc in outcomes if kind == "refused"]
    assert "changed meanwhile" in str(refusal) and refusal.state == to
    [stored] = rows(Subscription, id=signed["sub_id"])
    assert (stored.state, stored.version) == (to, 3)
    new = rows(SubscriptionEvent)[before:]
    assert [(e.from_state, e.to_state, e.reason) for e in new] == [(S.SIGNED, to, reason)]


def test_two_starts_for_the_same_user(data: Flask, racers: list[Flask], signed: dict) -> None:
    """Both pass every check in Python; the one-signing-per-user index lets only one in."""
    skip_unless_racing()
    before_subs = {s.id for s in rows(Subscription)}
    before_events = len(rows(SubscriptionEvent))

    def start() -> int:
        me = db.session.get(User, signed["user_id"])
        other = db.session.get(Plan, signed["plans"]["other"])
        return start_signing(me, other, actor=me, kind=ActorKind.USER).id

    outcomes = race_services(racers, signed["partner_id"], start)
    assert sorted(kind for kind, _ in outcomes) == ["refused", "won"], outcomes
    [refusal] = [exc for kind, exc in outcomes if kind == "refused"]
    assert "already being signed" in str(refusal) and refusal.state == S.SIGNING
    [won_id] = [result for kind, result in outcomes if kind == "won"]
    new_subs = [s for s in rows(Subscription) if s.id not in before_subs]
    assert [(s.id, s.state) for s in new_subs] == [(won_id, S.SIGNING)]
    new_events = rows(SubscriptionEvent)[before_events:]
    assert [(e.subscription_id, e.from_state, e.to_state) for e in new_events] == [
        (won_id, None, S.SIGNING)
    ]
    assert rows(Subscription, id=signed["sub_id"])[0].state == S.SIGNED  # the held one untouched
