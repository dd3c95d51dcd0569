"""Two integrations at the same instant (tests/racing.py): If-Match, Idempotency-Key and the
one-subscription-being-signed rule hold."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import Api, api_client_for, error_code, get_token
from conftest import make_user, rows
from flask import Flask
from racing import TRIES, race, results, skip_unless_racing
from test_subscriptions import plan

from portal.api.models import IdempotentRequest
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.roles.models import Role
from portal.subscriptions.models import Subscription, SubscriptionEvent
from portal.subscriptions.models import SubscriptionState as S
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

pytestmark = pytest.mark.parametrize("attempt", range(TRIES))


@pytest.fixture
def two(data: Flask, make_app: Any, acme: Partner, acme_admin: User) -> dict[str, Any]:
    skip_unless_racing()
    client_id, secret, _ = api_client_for(acme, acme_admin)
    apps = [make_app(), make_app()]
    token = get_token(apps[0], "acme", client_id, secret)
    return {"apps": apps, "apis": [Api(app, "acme", token) for app in apps]}


def test_two_role_changes_with_the_same_version(two: dict[str, Any], acme: Partner, attempt):
    user = make_user(acme, "pat@acme.test", role=Role.BASIC)
    version = rows(User, id=user.id)[0].version
    wanted = ["advanced", "advanced"]  # both allowed from basic; whoever is second is stale

    def change(index: int) -> Any:
        return two["apis"][index].post(
            f"/users/{user.id}/role", {"role": wanted[index]}, **{"If-Match": f'"{version}"'}
        )

    answers = results(race(two["apps"], change))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 412], [a.text for a in answers]
    [winner] = [a for a in answers if a.status_code == 200]
    stored = rows(User, id=user.id)[0]
    assert stored.role.value == winner.json["role"] and stored.version == version + 1
    changes = [e for e in rows(AuditEvent) if e.action == "user.role_change"]
    assert len(changes) == 1 and changes[0].details["to"] == stored.role.value


def test_the_same_invitation_retried_at_once(two: dict[str, Any], acme: Partner, attempt):
    body = {"email": "once@acme.test", "role": "basic"}

    def invite(index: int) -> Any:
        return two["apis"][index].post("/users", body, **{"Idempotency-Key": "same"})

    answers = results(race(two["apps"], invite))
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert answers[0].json == answers[1].json
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    assert len(rows(User, email="once@acme.test")) == 1
    assert len(rows(IdempotentRequest)) == 1


def _plans(partner: Partner, *codes: str) -> list[int]:
    with partner_scope(partner):
        made = [plan(code, roles=(Role.BASIC,)) for code in codes]
        db.session.commit()
        return [p.id for p in made]


def test_two_starts_for_the_same_user_make_one_subscription(
    two: dict[str, Any], acme: Partner, attempt
):
    user_id = make_user(acme, "pat@acme.test", role=Role.BASIC).id
    plans = _plans(acme, "free", "plus")  # two plans: no "already your plan" to stop the second

    def start(index: int) -> Any:
        return two["apis"][index].post(
            "/subscriptions", {"user_id": user_id, "plan_id": plans[index]}
        )

    answers = results(race(two["apps"], start))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    [winner] = [a for a in answers if a.status_code == 201]
    [loser] = [a for a in answers if a.status_code == 409]
    assert error_code(loser) == "transition_refused"
    assert loser.json["error"]["details"]["state"] == "signing"
    [stored] = rows(Subscription, user_id=user_id)
    assert stored.id == winner.json["id"] and stored.state == S.SIGNING
    assert len(rows(SubscriptionEvent, subscription_id=stored.id)) == 1
    assert len([e for e in rows(AuditEvent) if e.action == "subscription.signing"]) == 1


def test_the_same_start_retried_at_once(two: dict[str, Any], acme: Partner, attempt):
    user_id = make_user(acme, "pat@acme.test", role=Role.BASIC).id
    [free] = _plans(acme, "free")

    def start(index: int) -> Any:
        return two["apis"][index].post(
            "/subscriptions", {"user_id": user_id, "plan_id": free}, **{"Idempotency-Key": "s"}
        )

    answers = results(race(two["apps"], start))
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert answers[0].json == answers[1].json
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    assert len(rows(Subscription, user_id=user_id)) == 1
    assert len(rows(IdempotentRequest)) == 1
