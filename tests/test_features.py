"""Feature toggles: lock -> partner switch -> plan entitlement, everywhere and at once."""

from __future__ import annotations

import itertools

import pytest
from apikit import api_client_for
from conftest import host_client, logged_in, make_user, rows, set_feature
from flask import Flask
from sqlalchemy import select
from test_subscriptions import plan

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.features.catalogue import CATALOGUE, Feature, Scope
from portal.features.evaluation import decide, evaluate
from portal.features.models import FeatureSetting, Lock
from portal.features.services import FeatureError, lock_feature, switch_feature
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.subscriptions.models import Plan, Subscription
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.services import ActorKind, accept_terms, start_signing, transition
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

PARTNER_FEATURE = Feature("demo", "Demo", "", default=False)
PLAN_FEATURE = Feature("gated", "Gated", "", default=True, scope=Scope.PLAN)


def expected(feature: Feature, lock: Lock, switch, entitled) -> bool:
    """The specification, written out independently of the implementation."""
    if lock == Lock.OFF:
        return False
    partner_level = True if lock == Lock.ON else (feature.default if switch is None else switch)
    if not partner_level:
        return False
    if feature.scope == Scope.PLAN and entitled is not None:
        return entitled
    return True


COMBINATIONS = list(
    itertools.product(
        [PARTNER_FEATURE, PLAN_FEATURE], list(Lock), [None, True, False], [None, True, False]
    )
)


@pytest.mark.parametrize(
    "feature,lock,switch,entitled",
    COMBINATIONS,
    ids=[f"{f.key}-{lk.value}-{s}-{e}" for f, lk, s, e in COMBINATIONS],
)
def test_evaluation_table(feature, lock, switch, entitled) -> None:
    result = decide(feature, lock, switch, entitled)
    assert result.on is expected(feature, lock, switch, entitled)
    if lock != Lock.NONE:
        assert "operator" in result.reason
    elif switch is not None and not result.on and entitled is not False:
        assert "by the partner" in result.reason


def _reports_world(acme: Partner) -> User:
    """A basic user in acme subscribed (signed) to a plan that includes `reports`."""
    user = make_user(acme, "r@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        reports_plan = plan("rep", ents=("reports",))
        me = db.session.get(User, user.id)
        sub = start_signing(me, reports_plan, actor=me, kind=ActorKind.USER)
        accept_terms(sub, actor=me)
        db.session.commit()
    return user


def test_plan_gated_feature_through_the_database(app: Flask, acme: Partner) -> None:
    entitled = _reports_world(acme)
    other = make_user(acme, "o@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        assert evaluate("reports", db.session.get(User, entitled.id)).on
        assert not evaluate("reports", db.session.get(User, other.id)).on
        assert evaluate("reports").on  # partner level: on (default)
    set_feature(acme, "reports", False)
    with partner_scope(acme):
        assert not evaluate("reports", db.session.get(User, entitled.id)).on


def flagged_rules(app: Flask):
    for rule in app.url_map.iter_rules():
        key = getattr(app.view_functions[rule.endpoint], "required_feature", None)
        if key is not None and rule.subdomain == "<partner>":
            yield rule, key


def _second_plan(acme: Partner) -> int:
    """Another plan with reports, so that a switch to it keeps the user entitled."""
    with partner_scope(acme):
        second = plan("rep2", ents=("reports",))
        db.session.commit()
        return second.id


def _real_values(app: Flask, acme: Partner, rule, user: User, plan_id: int) -> dict:
    """Real, own targets for the route's id arguments, made afresh for each route."""
    values: dict = {}
    for name in rule.arguments - {"partner"}:
        if name == "session_id":  # another device of the same user
            logged_in(app, user)
            values[name] = max(s.id for s in rows(UserSession, user_id=user.id))
        elif name == "sub_id":  # a switch being signed, next to the signed plan
            with partner_scope(acme):
                for pending in db.session.scalars(
                    select(Subscription).where(
                        Subscription.user_id == user.id, Subscription.state == S.SIGNING
                    )
                ):
                    transition(pending, S.UNSIGNED, actor=pending.user, kind=ActorKind.USER)
                me = db.session.get(User, user.id)
                target = db.session.get(Plan, plan_id)
                values[name] = start_signing(me, target, actor=me, kind=ActorKind.USER).id
                db.session.commit()
        elif name == "client_id":  # an API client of the partner, made for this route
            admin = rows(User, email="root@acme.test")[0]
            values[name] = api_client_for(acme, admin, name=rule.endpoint)[2]
        elif name == "user_id":  # another user of the partner, made for this route
            email = f"target-{rule.endpoint.replace('.', '-')}@acme.test"
            values[name] = make_user(acme, email, role=Role.BASIC).id
        else:
            raise AssertionError(f"no real target for <{name}> in {rule.rule}")
    return values


def test_flagged_routes_are_404_when_off_and_work_when_on(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    """Walk every flagged route with real targets: 404 while off, a real answer when on."""
    entitled = _reports_world(acme)
    agent = make_user(acme, "agent@acme.test", role=Role.BASIC, is_support=True)
    plan_id = _second_plan(acme)
    form = {"plan_id": plan_id, "user_id": entitled.id}
    walked = set()
    for rule, key in flagged_rules(app):
        method = "GET" if "GET" in rule.methods else "POST"
        admin_route = rule.endpoint.split(".")[0].endswith("_admin")
        user = acme_admin if admin_route else agent if key == "impersonation" else entitled
        set_feature(acme, key, True)
        path = app.url_map.bind("localhost", subdomain="acme").build(
            rule.endpoint, {**_real_values(app, acme, rule, user, plan_id), "partner": "acme"}
        )
        client = logged_in(app, user)
        token = client.csrf_token("/")
        set_feature(acme, key, False)
        off = client.open(path, method=method, data=form, headers={"X-CSRFToken": token})
        assert off.status_code == 404, (rule.endpoint, key)
        set_feature(acme, key, True)
        on = client.open(path, method=method, data=form, headers={"X-CSRFToken": token})
        assert on.status_code not in (403, 404), (rule.endpoint, on.status_code)
        assert on.status_code < 500, (rule.endpoint, on.status_code)
        assert not on.headers.get("Location", "").startswith("/login"), rule.endpoint
        walked.add(rule.endpoint)
    assert {"self_signup", "subscriptions", "session_self_service", "reports", "impersonation"} <= {
        key for _, key in flagged_rules(app)
    }
    assert {
        "sessions.revoke",
        "subscription.confirm",
        "subscriptions_admin.start_for_user",
        "support.index",
        "support.user",
        "support.start",
    } <= walked


def test_reports_need_the_plan(app: Flask, acme: Partner) -> None:
    entitled = logged_in(app, _reports_world(acme))
    assert entitled.get("/reports/").status_code == 200
    assert "Usage report" in entitled.get("/reports/").text
    assert "Reports" in entitled.get("/").text
    plain = logged_in(app, make_user(acme, "plain@acme.test", role=Role.BASIC))
    assert plain.get("/reports/").status_code == 404
    assert ">Reports<" not in plain.get("/").text
    # A partner that stops running subscriptions stops plan entitlements with them.
    set_feature(acme, "subscriptions", False)
    assert entitled.get("/reports/").status_code == 404
    assert ">Reports<" not in entitled.get("/").text


def test_a_toggle_in_one_partner_changes_nothing_in_the_other(
    app: Flask, acme: Partner, globex: Partner
) -> None:
    set_feature(acme, "self_signup", True)
    assert host_client(app, "acme").get("/signup").status_code == 200
    assert host_client(app, "globex").get("/signup").status_code == 404
    assert {r.partner_id for r in rows(FeatureSetting)} == {acme.id}


def test_a_toggle_in_one_process_is_seen_by_another(
    app: Flask, make_app, acme: Partner, acme_admin: User
) -> None:
    other_process = make_app()
    visitor = host_client(app, "acme")
    assert visitor.get("/signup").status_code == 404  # warms anything app 1 might cache
    admin = logged_in(other_process, acme_admin)
    response = admin.post_form(
        "/admin/features/self_signup", {"on": "1"}, headers={"HX-Request": "1"}
    )
    assert response.status_code == 200 and "switched on by the partner" in response.text.lower()
    assert visitor.get("/signup").status_code == 200
    admin.post_form("/admin/features/self_signup", {"on": "0"})
    assert visitor.get("/signup").status_code == 404


def test_admin_page_and_locks(app: Flask, acme: Partner, acme_admin: User) -> None:
    admin = logged_in(app, acme_admin)
    page = admin.get("/admin/features/").text
    for feature in CATALOGUE.values():
        assert feature.label in page
    operator = Operator(email="op@portal.test", password_hash="x")
    db.session.add(operator)
    db.session.commit()
    lock_feature(operator, acme, "self_signup", Lock.OFF)
    db.session.commit()
    refused = admin.post_form(
        "/admin/features/self_signup", {"on": "1"}, headers={"HX-Request": "1"}
    )
    assert refused.status_code == 409
    assert "locked off by the platform operator" in refused.text
    assert host_client(app, "acme").get("/signup").status_code == 404
    lock_feature(operator, acme, "self_signup", Lock.ON)
    db.session.commit()
    assert host_client(app, "acme").get("/signup").status_code == 200
    actions = [(e.action, e.partner_id) for e in rows(AuditEvent) if e.action == "feature.lock"]
    assert (("feature.lock", acme.id) in actions) and (("feature.lock", None) in actions)


def test_password_login_cannot_be_switched_off_alone(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = logged_in(app, acme_admin)
    response = admin.post_form(
        "/admin/features/password_login", {"on": "0"}, headers={"HX-Request": "1"}
    )
    assert response.status_code == 409
    assert "lock everyone out" in response.text
    with partner_scope(acme), pytest.raises(FeatureError, match="lock everyone out"):
        switch_feature("password_login", False)
    db.session.rollback()
    assert host_client(app, "acme").login(acme_admin.email).status_code == 302


def test_switching_is_audited_and_needs_the_permission(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = logged_in(app, acme_admin)
    admin.post_form("/admin/features/audit_export", {"on": "1"})
    [event] = [e for e in rows(AuditEvent) if e.action == "feature.switch"]
    assert event.target_id == "audit_export" and event.details["on"] is True
    basic = logged_in(app, make_user(acme, "b@acme.test", role=Role.BASIC))
    assert basic.post_form("/admin/features/audit_export", {"on": "0"}).status_code == 403
    assert admin.post_form("/admin/features/warp_drive", {"on": "1"}).status_code == 404
    assert len([e for e in rows(AuditEvent) if e.action == "feature.switch"]) == 1


def test_operator_feature_page(app: Flask, root, acme: Partner) -> None:
    from portal.auth.passwords import hash_password

    db.session.add(
        Operator(email="op@portal.test", password_hash=hash_password("correct-horse-battery"))
    )
    db.session.commit()
    root.login("op@portal.test")
    page = root.get(f"/operator/partners/{acme.id}/features")
    assert page.status_code == 200 and "Usage reports" in page.text
    assert "<h1>Features of Acme Corp</h1>" in page.text  # the page's partner, not the host's
    root.post_form(f"/operator/partners/{acme.id}/features", {"key": "reports", "lock": "off"})
    [row] = rows(FeatureSetting, key="reports")
    assert row.lock == Lock.OFF and row.partner_id == acme.id
    bad = root.post_form(f"/operator/partners/{acme.id}/features", {"key": "nope", "lock": "off"})
    assert "Choose a feature and a lock." in root.get(bad.headers["Location"]).text
    assert root.get("/operator/partners/999/features").status_code == 404
