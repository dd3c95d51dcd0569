"""/api/v1 endpoints: the same services and refusals as the pages, one partner's rows only."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import Api, api_client_for, error_code, get_token
from conftest import logged_in, make_user, rows, set_feature
from flask import Flask
from mailed import mails_to
from test_subscriptions import plan

from portal.api.models import IdempotentRequest
from portal.audit.models import ActorType, AuditEvent
from portal.extensions import db
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.subscriptions.models import PlanStatus, Subscription, SubscriptionEvent
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.plans import set_plan_status
from portal.subscriptions.services import ActorKind, accept_terms, start_signing
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus


def _signed(partner: Partner, user: User, code: str, roles=(Role.BASIC,)) -> tuple[int, int]:
    with partner_scope(partner):
        p = plan(code, roles=roles)
        db.session.flush()
        member = db.session.get(User, user.id)
        sub = start_signing(member, p, actor=member, kind=ActorKind.USER)
        accept_terms(sub, actor=member)
        db.session.commit()
        return sub.id, p.id


@pytest.fixture
def world(app: Flask, acme: Partner, globex: Partner, acme_admin: User) -> dict[str, Any]:
    basic = make_user(acme, "basic@acme.test", role=Role.BASIC, display_name="Basil Basic")
    make_user(acme, "adv@acme.test", role=Role.ADVANCED, display_name="Ada Advanced")
    sub_id, plan_id = _signed(acme, basic, "free")
    g_admin = make_user(globex, "admin@globex.test", role=Role.ADMIN)
    g_user = make_user(globex, "basic@globex.test", role=Role.BASIC)
    g_sub, g_plan = _signed(globex, g_user, "gfree")
    logged_in(app, basic)  # a session of basic's
    logged_in(app, g_user)
    client_id, secret, _ = api_client_for(acme, acme_admin)
    api_client_for(globex, g_admin)
    with partner_scope(globex):
        g_session = db.session.query(UserSession).one().id
    with partner_scope(acme):
        session_id = db.session.query(UserSession).filter_by(user_id=basic.id).one().id
    return {
        "api": Api(app, "acme", get_token(app, "acme", client_id, secret)),
        "admin": acme_admin,
        "basic": basic,
        "sub": sub_id,
        "plan": plan_id,
        "session": session_id,
        "globex": {"user": g_user.id, "sub": g_sub, "plan": g_plan, "session": g_session},
    }


def api_events() -> list[AuditEvent]:
    return [e for e in rows(AuditEvent) if e.actor_type == ActorType.API_CLIENT]


def test_users_list_pages_with_a_cursor_and_filters(world) -> None:
    api = world["api"]
    first = api.get("/users?limit=2")
    assert first.status_code == 200
    assert [u["email"] for u in first.json["data"]] == ["root@acme.test", "basic@acme.test"]
    second = api.get(f"/users?limit=2&cursor={first.json['next_cursor']}")
    assert [u["email"] for u in second.json["data"]] == ["adv@acme.test"]
    assert second.json["next_cursor"] is None
    found = api.get("/users?q=basil&role=basic&status=active&subscription=signed")
    assert [u["email"] for u in found.json["data"]] == ["basic@acme.test"]
    assert api.get("/users?role=admin").json["data"][0]["role"] == "admin"
    for bad in ("/users?cursor=nonsense", "/users?limit=0", "/users?limit=101"):
        response = api.get(bad)
        assert response.status_code == 400 and error_code(response) == "bad_request"


def test_get_user_carries_its_version(world) -> None:
    response = world["api"].get(f"/users/{world['basic'].id}")
    assert response.status_code == 200
    assert response.json["email"] == "basic@acme.test"
    assert response.headers["ETag"] == f'"{response.json["version"]}"'


def _foreign_requests(world) -> list[tuple[str, str, dict]]:
    other = world["globex"]
    return [
        ("get", f"/users/{other['user']}", {}),
        ("post", f"/users/{other['user']}/role", {"role": "advanced"}),
        ("post", f"/users/{other['user']}/deactivate", {}),
        ("post", f"/users/{other['user']}/reactivate", {}),
        ("get", f"/users/{other['user']}/sessions", {}),
        ("get", f"/subscriptions/{other['sub']}", {}),
        ("get", f"/subscriptions/{other['sub']}/history", {}),
        ("post", f"/subscriptions/{other['sub']}/transition", {"action": "suspend", "reason": "x"}),
        ("post", f"/sessions/{other['session']}/revoke", {}),
        ("post", "/subscriptions", {"user_id": other["user"], "plan_id": world["plan"]}),
        ("post", "/subscriptions", {"user_id": world["basic"].id, "plan_id": other["plan"]}),
        ("get", "/users/999999", {}),
    ]


def test_another_partners_ids_are_missing_and_nothing_is_written(world) -> None:
    api = world["api"]
    before = (len(rows(AuditEvent)), [u.version for u in rows(User)])
    for method, path, body in _foreign_requests(world):
        response = api.get(path) if method == "get" else api.post(path, body)
        assert response.status_code == 404, (path, response.text)
        assert error_code(response) == "not_found"
        assert "globex" not in response.text
    assert (len(rows(AuditEvent)), [u.version for u in rows(User)]) == before
    assert rows(Subscription, id=world["globex"]["sub"])[0].state == S.SIGNED
    assert rows(UserSession, id=world["globex"]["session"])[0].revoked_at is None
    assert len(rows(Subscription)) == 2  # the two signed in the fixture
    listed = api.get(f"/subscriptions?user_id={world['globex']['user']}")
    assert listed.json["data"] == []


def test_invite_sends_the_invitation_and_names_the_client_in_the_audit_log(world) -> None:
    response = world["api"].post(
        "/users", {"email": "New@Acme.test", "role": "basic", "display_name": "Nia New"}
    )
    assert response.status_code == 201, response.text
    assert response.json["status"] == "invited" and response.json["email"] == "new@acme.test"
    assert response.headers["Location"].endswith(f"/api/v1/users/{response.json['id']}")
    assert len(mails_to("new@acme.test")) == 1
    actions = {e.action: e for e in api_events()}
    assert {"user.create", "invitation.send"} <= set(actions)
    assert actions["invitation.send"].actor_label == "API client Back office"


def test_invite_refusals_are_the_pages_refusals(world) -> None:
    api = world["api"]
    taken = api.post("/users", {"email": "basic@acme.test", "role": "basic"})
    assert taken.status_code == 409 and "already a user" in taken.json["error"]["message"]
    bad = api.post("/users", {"email": "not an address", "role": "basic"})
    assert bad.status_code == 422 and error_code(bad) == "invalid"
    role = api.post("/users", {"email": "x@acme.test", "role": "emperor"})
    assert role.status_code == 422
    not_json = api.http.post(
        "/api/v1/users", data="email=x", headers={"Authorization": f"Bearer {api.token}"}
    )
    assert not_json.status_code == 400 and error_code(not_json) == "bad_request"
    assert not rows(User, email="x@acme.test")


def test_idempotent_retry_creates_one_user_and_another_body_is_refused(world) -> None:
    api = world["api"]
    body = {"email": "once@acme.test", "role": "basic"}
    first = api.post("/users", body, **{"Idempotency-Key": "k-1"})
    again = api.post("/users", body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"]
    assert len(rows(User, email="once@acme.test")) == 1
    assert len(mails_to("once@acme.test")) == 1
    other = api.post(
        "/users", {"email": "twice@acme.test", "role": "basic"}, **{"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"
    assert not rows(User, email="twice@acme.test")
    assert len(rows(IdempotentRequest)) == 1


def test_role_change_checks_if_match_and_the_transition_rules(world) -> None:
    api, user_id = world["api"], world["basic"].id
    version = api.get(f"/users/{user_id}").json["version"]
    stale = api.post(f"/users/{user_id}/role", {"role": "advanced"}, **{"If-Match": '"999"'})
    assert stale.status_code == 412 and error_code(stale) == "precondition_failed"
    assert rows(User, id=user_id)[0].role == Role.BASIC
    # The plan is for basic users only: the pages ask first, so does the API.
    ask = api.post(f"/users/{user_id}/role", {"role": "advanced"}, **{"If-Match": f'"{version}"'})
    assert ask.status_code == 409 and error_code(ask) == "needs_confirmation"
    assert rows(User, id=user_id)[0].role == Role.BASIC
    done = api.post(
        f"/users/{user_id}/role",
        {"role": "advanced", "confirm_suspension": True},
        **{"If-Match": f'"{version}"'},
    )
    assert done.status_code == 200, done.text
    assert done.json["role"] == "advanced" and done.json["version"] == version + 1
    assert done.headers["ETag"] == f'"{version + 1}"'
    assert rows(Subscription, id=world["sub"])[0].state == S.SUSPENDED
    # The same request again with the version it read first: someone changed it since.
    again = api.post(f"/users/{user_id}/role", {"role": "basic"}, **{"If-Match": f'"{version}"'})
    assert again.status_code == 412
    # Own role: the pages' rule.
    own = api.post(f"/users/{world['admin'].id}/role", {"role": "basic"})
    assert own.status_code == 409 and "own role" in own.json["error"]["message"]
    assert {e.action for e in api_events()} >= {"user.role_change"}


def test_deactivate_and_reactivate(world) -> None:
    api, user_id = world["api"], world["basic"].id
    gone = api.post(f"/users/{user_id}/deactivate")
    assert gone.status_code == 200 and gone.json["status"] == "deactivated"
    assert rows(UserSession, id=world["session"])[0].revoked_at is not None
    twice = api.post(f"/users/{user_id}/deactivate")
    assert twice.status_code == 409 and "already deactivated" in twice.json["error"]["message"]
    back = api.post(f"/users/{user_id}/reactivate")
    assert back.status_code == 200 and back.json["status"] == "active"
    self_ = api.post(f"/users/{world['admin'].id}/deactivate")
    assert self_.status_code == 409 and "your own account" in self_.json["error"]["message"]
    assert rows(User, id=world["admin"].id)[0].status == UserStatus.ACTIVE


def test_roles_and_plans(world) -> None:
    roles = world["api"].get("/roles").json["data"]
    assert [r["role"] for r in roles] == ["guest", "basic", "advanced", "company", "admin"]
    plans = world["api"].get("/plans").json["data"]
    assert [p["code"] for p in plans] == ["free"]


def test_subscriptions_list_get_history_and_transition(world) -> None:
    api, sub_id = world["api"], world["sub"]
    listed = api.get("/subscriptions?state=signed")
    assert [s["id"] for s in listed.json["data"]] == [sub_id]
    got = api.get(f"/subscriptions/{sub_id}")
    assert got.json["state"] == "signed" and got.headers["ETag"] == f'"{got.json["version"]}"'
    resume = api.post(f"/subscriptions/{sub_id}/transition", {"action": "resume"})
    assert resume.status_code == 409 and error_code(resume) == "transition_refused"
    assert resume.json["error"]["details"]["state"] == "signed"
    no_reason = api.post(f"/subscriptions/{sub_id}/transition", {"action": "suspend"})
    assert no_reason.status_code in (409, 422)
    stale = api.post(
        f"/subscriptions/{sub_id}/transition",
        {"action": "suspend", "reason": "unpaid invoice"},
        **{"If-Match": f'"{got.json["version"] - 1}"'},
    )
    assert stale.status_code == 412
    moved = api.post(
        f"/subscriptions/{sub_id}/transition",
        {"action": "suspend", "reason": "unpaid invoice"},
        **{"If-Match": got.headers["ETag"]},
    )
    assert moved.status_code == 200 and moved.json["state"] == "suspended"
    history = api.get(f"/subscriptions/{sub_id}/history").json["data"]
    assert [h["to_state"] for h in history] == ["signing", "signed", "suspended"]
    assert history[-1]["reason"] == "unpaid invoice"
    assert rows(SubscriptionEvent)[-1].reason == "unpaid invoice"
    [suspended] = [e for e in api_events() if e.action == "subscription.suspended"]
    assert suspended.actor_label == "API client Back office"
    bad = api.post(f"/subscriptions/{sub_id}/transition", {"action": "explode"})
    assert bad.status_code == 422


def test_sessions_list_and_revoke(world) -> None:
    api = world["api"]
    listed = api.get(f"/users/{world['basic'].id}/sessions").json["data"]
    assert [s["id"] for s in listed] == [world["session"]]
    revoked = api.post(f"/sessions/{world['session']}/revoke")
    assert revoked.status_code == 200 and revoked.json["already_ended"] is False
    assert rows(UserSession, id=world["session"])[0].revoked_at is not None
    assert api.get(f"/users/{world['basic'].id}/sessions").json["data"] == []
    assert api.post(f"/sessions/{world['session']}/revoke").json["already_ended"] is True


def test_audit_events_page_with_a_cursor(world) -> None:
    api = world["api"]
    first = api.get("/audit-events?limit=3")
    assert first.status_code == 200 and len(first.json["data"]) == 3
    ids = [e["id"] for e in first.json["data"]]
    assert ids == sorted(ids, reverse=True)
    rest = api.get(f"/audit-events?limit=100&cursor={first.json['next_cursor']}").json["data"]
    assert rest and max(e["id"] for e in rest) < min(ids)
    seen = {e["id"] for e in first.json["data"]} | {e["id"] for e in rest}
    acme_events = [e for e in rows(AuditEvent) if e.partner_id == world["admin"].partner_id]
    # Every event of acme up to the first page, none of globex's (nor platform ones).
    assert seen == {e.id for e in acme_events if e.id <= max(ids)}
    assert len(rows(AuditEvent)) > len(acme_events)


def test_feature_off_is_a_json_404(world, acme: Partner) -> None:
    set_feature(acme, "api_access", False)
    response = world["api"].get("/users")
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_rate_limit_per_client(make_app: Any, data: Flask, acme: Partner, acme_admin: User) -> None:
    app = make_app(API_LIMIT_PER_CLIENT="3/minute")
    client_id, secret, _ = api_client_for(acme, acme_admin)
    api = Api(app, "acme", get_token(app, "acme", client_id, secret))
    assert [api.get("/roles").status_code for _ in range(3)] == [200, 200, 200]
    limited = api.get("/roles")
    assert limited.status_code == 429 and error_code(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    refused_write = api.post("/users", {"email": "late@acme.test", "role": "basic"})
    assert refused_write.status_code == 429
    assert not rows(User, email="late@acme.test")


# --- Starting a subscription (the admin page's "Start signing for this user") ---------------


def _plan(partner: Partner, code: str, roles=(Role.ADVANCED,), archived: bool = False) -> int:
    with partner_scope(partner):
        p = plan(code, roles=roles)
        db.session.flush()
        if archived:
            set_plan_status(p, PlanStatus.ARCHIVED)
        db.session.commit()
        return p.id


def _adv(world) -> User:
    return rows(User, email="adv@acme.test")[0]


def test_start_subscription_stores_it_and_names_the_client(world, acme: Partner) -> None:
    api, adv = world["api"], _adv(world)
    plus = _plan(acme, "plus")
    response = api.post("/subscriptions", {"user_id": adv.id, "plan_id": plus})
    assert response.status_code == 201, response.text
    body = response.json
    assert (body["user_id"], body["plan_id"], body["state"]) == (adv.id, plus, "signing")
    assert body["terms_accepted_at"] is None
    assert response.headers["ETag"] == f'"{body["version"]}"'
    assert response.headers["Location"].endswith(f"/api/v1/subscriptions/{body['id']}")
    [stored] = rows(Subscription, user_id=adv.id)
    assert (stored.id, stored.plan_id, stored.state) == (body["id"], plus, S.SIGNING)
    assert stored.partner_id == acme.id and stored.version == body["version"]
    [event] = rows(SubscriptionEvent, subscription_id=stored.id)
    assert (event.from_state, event.to_state, event.actor_kind) == (None, S.SIGNING, "admin")
    assert event.actor_id == world["admin"].id  # the client acts with its admin's permissions
    assert event.reason == "started through the partner API"
    [audited] = [e for e in rows(AuditEvent) if e.action == "subscription.signing"
                 and e.target_id == str(stored.id)]  # fmt: skip
    assert audited.actor_type == ActorType.API_CLIENT
    assert audited.actor_label == "API client Back office"
    assert audited.details["user_id"] == adv.id and audited.details["plan"] == "plus"
    # What Location names is the subscription just made, at the version the ETag said.
    got = api.get(response.headers["Location"].split("/api/v1", 1)[1])
    assert got.json == body and got.headers["ETag"] == response.headers["ETag"]


def test_start_subscription_switching_plans_is_allowed_as_on_the_page(world, acme) -> None:
    # basic holds "free" (signed): starting another plan begins the switch, "free" stays held.
    other = _plan(acme, "other", roles=(Role.BASIC,))
    response = world["api"].post("/subscriptions", {"user_id": world["basic"].id, "plan_id": other})
    assert response.status_code == 201 and response.json["state"] == "signing"
    states = {s.plan_id: s.state for s in rows(Subscription, user_id=world["basic"].id)}
    assert states == {world["plan"]: S.SIGNED, other: S.SIGNING}


def test_start_subscription_needs_the_write_scope(
    app: Flask, world, acme: Partner, acme_admin: User
) -> None:
    scopes = ["subscriptions:read", "users:read", "users:write"]
    client_id, secret, _ = api_client_for(acme, acme_admin, scopes, name="Reader")
    reader = Api(app, "acme", get_token(app, "acme", client_id, secret))
    plus = _plan(acme, "plus")
    before = len(rows(AuditEvent))
    refused = reader.post("/subscriptions", {"user_id": _adv(world).id, "plan_id": plus})
    assert refused.status_code == 403 and error_code(refused) == "insufficient_scope"
    assert "subscriptions:write" in refused.json["error"]["message"]
    assert not rows(Subscription, user_id=_adv(world).id)
    assert len(rows(AuditEvent)) == before


def test_start_subscription_foreign_or_missing_ids_are_the_same_404(world, acme) -> None:
    api, adv, other = world["api"], _adv(world), world["globex"]
    plus = _plan(acme, "plus")
    before = (len(rows(Subscription)), len(rows(SubscriptionEvent)), len(rows(AuditEvent)))
    answers = [
        api.post("/subscriptions", {"user_id": other["user"], "plan_id": plus}),
        api.post("/subscriptions", {"user_id": 999999, "plan_id": plus}),
        api.post("/subscriptions", {"user_id": adv.id, "plan_id": other["plan"]}),
        api.post("/subscriptions", {"user_id": adv.id, "plan_id": 999999}),
        api.post("/subscriptions", {"user_id": adv.id, "plan_id": 2**40}),
    ]
    assert [a.status_code for a in answers] == [404] * 5, [a.text for a in answers]
    assert all(a.json == answers[0].json for a in answers), [a.json for a in answers]
    assert error_code(answers[0]) == "not_found"
    after = (len(rows(Subscription)), len(rows(SubscriptionEvent)), len(rows(AuditEvent)))
    assert after == before
    assert not rows(Subscription, user_id=other["user"], plan_id=plus)


def test_start_subscription_refusals_are_the_pages_refusals(world, acme: Partner) -> None:
    api, adv, basic = world["api"], _adv(world), world["basic"]
    plus = _plan(acme, "plus")
    old = _plan(acme, "old", archived=True)
    second, third = _plan(acme, "second"), _plan(acme, "third", roles=(Role.BASIC,))
    pending = api.post("/subscriptions", {"user_id": adv.id, "plan_id": plus})
    assert pending.status_code == 201
    before = (len(rows(Subscription)), len(rows(AuditEvent)))

    def refused(user_id: int, plan_id: int, text: str, state: str | None = None) -> None:
        response = api.post("/subscriptions", {"user_id": user_id, "plan_id": plan_id})
        assert response.status_code == 409, response.text
        assert error_code(response) == "transition_refused"
        assert text in response.json["error"]["message"], response.json
        if state is not None:
            assert response.json["error"]["details"]["state"] == state

    # Only for basic users; basic already holds it (signed); archived; one already being signed.
    refused(adv.id, world["plan"], "not available to the role")
    refused(basic.id, world["plan"], "already your plan", "signed")
    refused(basic.id, old, "archived")
    refused(adv.id, second, "already being signed", "signing")
    assert (len(rows(Subscription)), len(rows(AuditEvent))) == before
    # A deactivated user gets no new subscription either.
    assert api.post(f"/users/{basic.id}/deactivate").status_code == 200
    refused(basic.id, third, "not an active user")
    assert len(rows(Subscription)) == before[0]


def test_start_subscription_bad_input_and_feature_off(world, acme: Partner) -> None:
    api, adv = world["api"], _adv(world)
    plus = _plan(acme, "plus")
    for body in (
        {"user_id": adv.id},
        {"plan_id": plus},
        {"user_id": str(adv.id), "plan_id": plus},
        {"user_id": adv.id, "plan_id": True},
        {"user_id": adv.id, "plan_id": 1.5},
    ):
        response = api.post("/subscriptions", body)
        assert response.status_code == 422 and error_code(response) == "invalid", body
    not_json = api.http.post(
        "/api/v1/subscriptions", data="user_id=1", headers={"Authorization": f"Bearer {api.token}"}
    )
    assert not_json.status_code == 400 and error_code(not_json) == "bad_request"
    # The page's route does not exist while subscriptions are switched off; nor does this one.
    set_feature(acme, "subscriptions", False)
    off = api.post("/subscriptions", {"user_id": adv.id, "plan_id": plus})
    assert off.status_code == 404 and error_code(off) == "not_found"
    assert not rows(Subscription, user_id=adv.id)


def test_start_subscription_idempotent_retry_and_another_body(world, acme: Partner) -> None:
    api, adv = world["api"], _adv(world)
    plus, second = _plan(acme, "plus"), _plan(acme, "second")
    body = {"user_id": adv.id, "plan_id": plus}
    first = api.post("/subscriptions", body, **{"Idempotency-Key": "start-1"})
    again = api.post("/subscriptions", body, **{"Idempotency-Key": "start-1"})
    assert first.status_code == again.status_code == 201, again.text
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Location"] == first.headers["Location"]
    assert len(rows(Subscription, user_id=adv.id)) == 1
    assert len([e for e in api_events() if e.action == "subscription.signing"]) == 1
    other = api.post(
        "/subscriptions", {"user_id": adv.id, "plan_id": second}, **{"Idempotency-Key": "start-1"}
    )
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"
    assert [s.plan_id for s in rows(Subscription, user_id=adv.id)] == [plus]
    assert len(rows(IdempotentRequest)) == 1
