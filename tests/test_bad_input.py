"""Hostile or odd input that must end in a clear 4xx, never a 500 or a foreign redirect."""

from __future__ import annotations

import pytest
from conftest import PASSWORD, host_client, logged_in, make_user, rows, set_feature
from flask import Flask
from test_operator import console  # noqa: F401  - the operator's signed-in client
from test_subscriptions import plan
from werkzeug.routing import IntegerConverter

from portal.extensions import db
from portal.roles.models import Role
from portal.subscriptions.models import Plan, Subscription
from portal.subscriptions.services import ActorKind, accept_terms, start_signing
from portal.tenancy.context import MAX_ID, parse_id, parse_ids
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus

HUGE = 10**25


def id_routes(app: Flask, subdomain: str):
    for rule in app.url_map.iter_rules():
        if rule.subdomain == subdomain and any(
            isinstance(c, IntegerConverter) for c in rule._converters.values()
        ):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield rule, method


def url_with(app: Flask, rule, slug: str | None, ident: int) -> str:
    values = {}
    for name, converter in rule._converters.items():
        if name == "partner":
            values[name] = slug
        elif isinstance(converter, IntegerConverter):
            values[name] = ident
        else:  # `<any(approve, …):action>`
            values[name] = sorted(converter.items)[0]
    path = app.url_map.bind("localhost", subdomain=slug or "").build(rule.endpoint, values)
    return path


def test_parse_id() -> None:
    assert parse_id("42") == 42 and parse_id(7) == 7
    for bad in ("", " ", "0", "-1", "1.5", "²", "٣", "0x10", str(MAX_ID + 1), str(HUGE), None):
        assert parse_id(bad) is None, bad
    assert parse_id(str(MAX_ID)) == MAX_ID
    assert parse_ids(["3", "1", "3", str(HUGE)]) == [3, 1, str(HUGE)]
    assert parse_ids(["3", "x"]) is None


@pytest.mark.parametrize("ident", [HUGE, MAX_ID + 1, 0])
def test_every_id_route_answers_404_for_impossible_ids(
    app: Flask, acme: Partner, acme_admin: User, ident: int
) -> None:
    set_feature(acme, "subscriptions", True)
    client = logged_in(app, acme_admin)
    token = client.csrf_token("/")
    walked = []
    for rule, method in id_routes(app, "<partner>"):
        response = client.open(
            url_with(app, rule, "acme", ident), method=method, headers={"X-CSRFToken": token}
        )
        walked.append(rule.endpoint)
        assert response.status_code == 404, (rule.rule, method, response.status_code)
    assert len(walked) >= 15  # the walk really covered the id routes


def test_operator_id_routes_answer_404_for_impossible_ids(app: Flask, console) -> None:  # noqa: F811
    token = console.csrf_token("/operator/")
    rules = list(id_routes(app, ""))
    assert rules
    for rule, method in rules:
        response = console.open(
            url_with(app, rule, None, HUGE), method=method, headers={"X-CSRFToken": token}
        )
        assert response.status_code == 404, (rule.rule, method, response.status_code)


def test_ids_in_forms_and_queries(app: Flask, acme: Partner, acme_admin: User) -> None:
    set_feature(acme, "subscriptions", True)
    victim = make_user(acme, "v@acme.test", role=Role.BASIC)
    client = logged_in(app, acme_admin)
    token = {"X-CSRFToken": client.csrf_token("/")}
    bulk = client.post(
        "/admin/users/bulk",
        data={"action": "deactivate", "user_ids": [str(HUGE), str(victim.id)]},
        headers={**token, "HX-Request": "1"},
    )
    assert bulk.status_code == 200
    assert "No such user." in bulk.text and "Deactivated" in bulk.text
    assert rows(User, id=victim.id)[0].status == UserStatus.DEACTIVATED
    subs_bulk = client.post(
        "/admin/subscriptions/bulk",
        data={"action": "resume", "ids": str(HUGE)},
        headers={**token, "HX-Request": "1"},
    )
    assert subs_bulk.status_code == 200 and "No such subscription." in subs_bulk.text
    for path, data in (
        ("/admin/subscriptions/start", {"user_id": str(HUGE), "plan_id": str(HUGE)}),
        ("/admin/subscriptions/start", {"user_id": "²", "plan_id": "1"}),
    ):
        assert client.post(path, data=data, headers=token).status_code == 404
    for query in (f"?plan={HUGE}", "?plan=%C2%B2", f"?page={HUGE}", "?page=-3&state=nope"):
        listing = client.get(f"/admin/subscriptions/{query}")
        assert listing.status_code == 200, query
    user = logged_in(app, make_user(acme, "u@acme.test", role=Role.BASIC))
    for plan_id in (str(HUGE), "²", ""):
        response = user.post_form("/account/subscription/start", {"plan_id": plan_id})
        assert response.status_code == 404, plan_id
    assert rows(Subscription) == []


@pytest.mark.parametrize(
    "next_", ["/%09/evil.com", "/%0a/evil.com", "/%0d/evil.com", "/%20/evil.com", "/\\evil.com"]
)
def test_next_with_control_characters_stays_on_the_host(
    app: Flask, acme: Partner, next_: str
) -> None:
    user = make_user(acme, "n@acme.test")
    client = host_client(app, "acme")
    token = client.csrf_token()
    response = client.post(
        f"/login?next={next_}",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    again = client.get(f"/login?next={next_}")  # already signed in: redirected at once
    assert again.headers["Location"] == "/"


def test_a_local_next_is_followed(app: Flask, acme: Partner) -> None:
    user = make_user(acme, "n@acme.test")
    client = host_client(app, "acme")
    response = client.post(
        "/login?next=/account/profile",
        data={"email": user.email, "password": PASSWORD, "csrf_token": client.csrf_token()},
    )
    assert response.headers["Location"] == "/account/profile"


def test_unknown_feature_key_is_404(app: Flask, acme_admin: User) -> None:
    client = logged_in(app, acme_admin)
    assert client.post_form("/admin/features/nope", {"on": "1"}).status_code == 404
    htmx = client.post_form("/admin/features/nope", {"on": "1"}, headers={"HX-Request": "1"})
    assert htmx.status_code == 404


def test_admins_start_no_subscription_while_subscriptions_are_off(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    set_feature(acme, "subscriptions", False)
    basic = make_user(acme, "b@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        free = plan("free")
        db.session.commit()
        plan_id = free.id
    client = logged_in(app, acme_admin)
    assert "Start signing for this user" not in client.get(f"/admin/users/{basic.id}").text
    started = client.post_form(
        "/admin/subscriptions/start", {"user_id": basic.id, "plan_id": plan_id}
    )
    assert started.status_code == 404
    assert rows(Subscription) == []
    set_feature(acme, "subscriptions", True)
    assert "Start signing for this user" in client.get(f"/admin/users/{basic.id}").text


@pytest.mark.parametrize("back", ["/admin/\nx", "/admin/\tx", "//evil.com/admin/", "/account/"])
def test_back_fields_stay_under_admin_and_never_break_the_redirect(
    app: Flask, acme: Partner, acme_admin: User, back: str
) -> None:
    set_feature(acme, "subscriptions", True)
    other = make_user(acme, "o@acme.test", role=Role.BASIC)
    logged_in(app, other)  # a session to end
    with partner_scope(acme):
        free = plan("free")
        db.session.commit()
        me = db.session.get(User, other.id)
        sub = start_signing(me, free, actor=me, kind=ActorKind.USER)
        accept_terms(sub, actor=me)
        db.session.commit()
        sub_id = sub.id
    client = logged_in(app, acme_admin)
    ended = client.post_form(f"/admin/sessions/user/{other.id}/revoke", {"back": back})
    assert ended.status_code == 302 and ended.headers["Location"] == "/admin/sessions/"
    moved = client.post_form(f"/admin/subscriptions/{sub_id}/end", {"back": back})
    assert moved.status_code == 302 and moved.headers["Location"] == "/admin/subscriptions/"


@pytest.mark.parametrize("price", ["inf", "-inf", "1e400", "nan", "1e300"])
def test_impossible_prices_are_form_errors(app: Flask, acme_admin: User, price: str) -> None:
    client = logged_in(app, acme_admin)
    response = client.post_form(
        "/admin/plans/new",
        {"code": "odd", "name": "Odd", "price": price, "currency": "EUR", "interval": "month"},
    )
    assert response.status_code == 422
    assert "price" in response.text.lower()
    assert rows(Plan) == []


def test_command_line_refuses_impossible_ids(data: Flask, acme: Partner) -> None:
    runner = data.test_cli_runner()
    for args in (
        ["subscription", "history", "acme", str(HUGE)],
        ["subscription", "move", "acme", "0", "end", "--as", "x@acme.test"],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 2 and "is not in the range" in result.output, result.output
