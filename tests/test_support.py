"""Support impersonation (DESIGN §8): lookup, summary, starting and its refusals, what an agent
may and may not do as the user, the audit trail, expiry, Stop, and everything that ends it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from conftest import (
    PASSWORD,
    HostClient,
    host_client,
    logged_in,
    make_user,
    rows,
    set_feature,
)
from flask import Flask
from mailed import mails_to
from test_route_walk import SAMPLE_ARGS, sample_value
from test_subscriptions import plan

from portal.audit.models import AuditEvent
from portal.audit.services import record_audit
from portal.extensions import db
from portal.roles.models import Role
from portal.sessions.models import LoginMethod, UserSession
from portal.subscriptions.models import Subscription
from portal.subscriptions.services import ActorKind, accept_terms, start_signing
from portal.support.models import EndReason, Impersonation
from portal.support.queries import account_activity
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.tokens.generation import hash_token
from portal.users.models import User, UserStatus

REASON = "Customer cannot find the invoice page"
HOST = "acme.localhost"


@pytest.fixture
def agent(acme: Partner) -> User:
    set_feature(acme, "impersonation", True)
    return make_user(
        acme, "agent@acme.test", role=Role.BASIC, is_support=True, display_name="Sam Support"
    )


@pytest.fixture
def bob(acme: Partner) -> User:
    return make_user(acme, "bob@acme.test", role=Role.BASIC, display_name="Bob Basic")


def cookie(client: HostClient, name: str = "portal_auth") -> str | None:
    found = client.get_cookie(name, domain=HOST)
    return found.value if found is not None else None


def start(client: HostClient, target: int | str, **form: Any) -> Any:
    """Post the start form for the user `target` names (an id, or anything in its place)."""
    data = {"reason": REASON, "ticket": "", **form}
    return client.post_form(f"/support/users/{target}/impersonate", data)


def acting_as(app: Flask, agent: User, target: User, **form: Any) -> HostClient:
    """A client of the agent's, acting as `target`."""
    client = logged_in(app, agent)
    response = start(client, target.id, **form)
    assert response.status_code == 302, response.text
    return client


def nothing_started() -> None:
    assert rows(Impersonation) == []
    assert [s for s in rows(UserSession) if s.impersonator_id is not None] == []
    assert [e for e in rows(AuditEvent) if e.action.startswith("support.")] == []


def open_impersonation() -> Impersonation:
    [imp] = rows(Impersonation)
    assert imp.ended_at is None
    return imp


# --- The lookup and the summary --------------------------------------------------------


def test_lookup_searches_and_filters_within_the_partner(
    app: Flask, acme: Partner, globex: Partner, agent: User, bob: User
) -> None:
    make_user(acme, "carol@acme.test", role=Role.ADVANCED, display_name="Carol Advanced")
    make_user(acme, "gone@acme.test", role=Role.BASIC, status=UserStatus.DEACTIVATED)
    make_user(globex, "bob@globex.test", role=Role.BASIC, display_name="Bob Globex")
    with partner_scope(acme):
        free = plan("free")
        me = db.session.get(User, bob.id)
        accept_terms(start_signing(me, free, actor=me, kind=ActorKind.USER), actor=me)
        db.session.commit()
    client = logged_in(app, agent)

    def emails(query: str) -> set[str]:
        response = client.get(f"/support/?{query}")
        assert response.status_code == 200
        return set(re.findall(r">([\w.-]+@[\w.-]+)</a>", response.text))

    assert emails("q=bob") == {"bob@acme.test"}  # never globex's Bob
    assert emails("q=Advanced") == {"carol@acme.test"}  # by name, any case
    assert emails("role=advanced") == {"carol@acme.test"}
    assert emails("status=deactivated") == {"gone@acme.test"}
    assert emails("subscription=signed") == {"bob@acme.test"}
    assert "bob@acme.test" not in emails("subscription=none")
    assert "carol@acme.test" in emails("subscription=none")
    assert emails("subscription=explode&role=nonsense") >= {"bob@acme.test", "carol@acme.test"}
    page = client.get("/support/?q=bob").text
    assert "Free" in page and "signed" in page  # the subscription column
    fragment = client.get("/support/?q=bob", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "bob@acme.test" in fragment.text
    assert "HX-Request" in fragment.headers["Vary"]


def test_the_lookup_shows_the_subscription_in_force_before_the_one_being_signed(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    carol = make_user(acme, "carol@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        free, plus = plan("free"), plan("plus")
        me = db.session.get(User, bob.id)
        accept_terms(start_signing(me, free, actor=me, kind=ActorKind.USER), actor=me)
        start_signing(me, plus, actor=me, kind=ActorKind.USER)  # switching, not yet signed
        other = db.session.get(User, carol.id)
        start_signing(other, plus, actor=other, kind=ActorKind.USER)
        db.session.commit()
    page = logged_in(app, agent).get("/support/").text
    cells = dict(
        re.findall(r">([\w.-]+@acme\.test)</a>.*?<td class=\"hide-phone\">(.*?)</td>", page, re.S)
    )
    assert "Free" in cells["bob@acme.test"] and "signed" in cells["bob@acme.test"]
    assert "Plus" not in cells["bob@acme.test"]
    assert "Plus" in cells["carol@acme.test"] and "signing" in cells["carol@acme.test"]
    assert "none" in cells["agent@acme.test"]
    assert "3 users." in page


def test_summary_is_read_only_and_complete(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    with partner_scope(acme):
        free = plan("free")
        me = db.session.get(User, bob.id)
        accept_terms(start_signing(me, free, actor=me, kind=ActorKind.USER), actor=me)
        db.session.commit()
    logged_in(app, bob)
    logged_in(app, bob)
    client = logged_in(app, agent)
    before = len(rows(AuditEvent))
    page = client.get(f"/support/users/{bob.id}")
    assert page.status_code == 200
    text = page.text
    for expected in (
        "Bob Basic",
        "bob@acme.test",
        "Basic",  # the role's label
        "Active",
        "2 devices",
        "Free",
        "signing → signed",  # the subscription's history
        "auth.login",  # recent events about the user
        'name="reason"',
        "Act as Bob Basic",
    ):
        assert expected in text, expected
    assert len(rows(AuditEvent)) == before  # reading writes nothing


def test_header_shows_support_only_to_agents_where_it_is_on(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    agent_client, basic = logged_in(app, agent), logged_in(app, bob)
    assert ">Support</a>" in agent_client.get("/").text
    assert ">Support</a>" not in basic.get("/").text
    refused = basic.get("/support/")
    assert refused.status_code == 403 and "Only support agents" in refused.text
    set_feature(acme, "impersonation", False)
    assert ">Support</a>" not in agent_client.get("/").text
    assert agent_client.get("/support/").status_code == 404
    assert agent_client.get(f"/support/users/{bob.id}").status_code == 404


def test_admins_are_no_support_agents(app: Flask, acme: Partner, acme_admin: User) -> None:
    set_feature(acme, "impersonation", True)
    admin = logged_in(app, acme_admin)
    assert admin.get("/support/").status_code == 403
    assert ">Support</a>" not in admin.get("/").text


# --- Starting, and every refusal --------------------------------------------------------


def test_start_switches_this_browser_to_the_user(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    client = logged_in(app, agent)
    own_token = cookie(client)
    response = start(client, bob.id, reason=f"  {REASON}\n", ticket="TCK-42")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = client.get("/").text
    assert "You are now acting as bob@acme.test" in home
    assert "Welcome, Bob Basic" in home
    banner = home[home.index('<aside class="support-banner"') : home.index("</aside>")]
    for part in ("Bob Basic", "bob@acme.test", REASON, "TCK-42", "30 minutes left", "Stop"):
        assert part in banner, part
    assert ">Log out<" not in home  # Stop is the way out

    imp = open_impersonation()
    assert (imp.agent_id, imp.target_id, imp.reason, imp.ticket) == (
        agent.id,
        bob.id,
        REASON,
        "TCK-42",
    )
    assert imp.expires_at == imp.started_at + timedelta(minutes=30)
    support_session = rows(UserSession, id=imp.session_id)[0]
    assert support_session.user_id == bob.id and support_session.impersonator_id == agent.id
    assert support_session.login_method == LoginMethod.IMPERSONATION
    assert support_session.expires_at == imp.expires_at
    own = rows(UserSession, id=imp.agent_session_id)[0]
    assert own.user_id == agent.id and own.revoked_at is None  # kept, to return to
    # The browser carries the support session now, and its own one aside.
    assert hash_token(cookie(client)) == support_session.token_hash
    assert cookie(client, "portal_auth_return") == own_token
    assert rows(User, id=bob.id)[0].last_login_at is None  # not a sign-in of Bob's

    [event] = [e for e in rows(AuditEvent) if e.action == "support.impersonation_start"]
    assert (event.actor_id, event.on_behalf_of_id, event.impersonation_id) == (
        agent.id,
        bob.id,
        imp.id,
    )
    assert event.actor_label == "agent@acme.test" and event.partner_id == acme.id
    assert event.details["reason"] == REASON and event.details["ticket"] == "TCK-42"
    assert event.ip == "127.0.0.1" and event.created_at == imp.started_at
    [mail] = mails_to("bob@acme.test")
    assert "Support accessed your account" in mail.subject
    assert "Sam Support" in mail.body_text and REASON in mail.body_text
    assert "/account/activity" in mail.body_text


def test_the_users_email_is_the_partners_choice(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    acme.session_policy_settings = {"impersonation_notify": False}
    db.session.commit()
    acting_as(app, agent, bob)
    assert mails_to("bob@acme.test") == []


@pytest.mark.parametrize(
    "form, status, message",
    [
        ({"reason": ""}, 422, "at least 10 characters"),
        ({"reason": "help me"}, 422, "at least 10 characters"),
        ({"reason": "   \n\t      "}, 422, "at least 10 characters"),
        ({"reason": "x" * 501}, 422, "at most 500 characters"),
        ({"reason": REASON + "\u202e"}, 422, "text-direction character U+202E"),
        ({"ticket": "T" * 65}, 422, "at most 64 characters"),
        ({"ticket": "T-1\x07"}, 422, "letters, digits, spaces and punctuation"),
    ],
)
def test_a_reason_is_required(
    app: Flask, agent: User, bob: User, form: dict, status: int, message: str
) -> None:
    client = logged_in(app, agent)
    own = cookie(client)
    response = start(client, bob.id, **form)
    assert response.status_code == status
    assert message in response.text
    assert 'aria-invalid="true"' in response.text
    nothing_started()
    assert cookie(client) == own


@pytest.mark.parametrize(
    "who, message",
    [
        ("admin", "Administrators cannot be impersonated."),
        ("other_agent", "support agents cannot act as one another"),
        ("invited", "is invited: only active accounts"),
        ("deactivated", "is deactivated: only active accounts"),
        ("self", "You cannot act as yourself."),
    ],
)
def test_who_cannot_be_impersonated(
    app: Flask, acme: Partner, acme_admin: User, agent: User, who: str, message: str
) -> None:
    target = {
        "admin": lambda: acme_admin,
        "other_agent": lambda: make_user(acme, "a2@acme.test", is_support=True),
        "invited": lambda: make_user(acme, "i@acme.test", status=UserStatus.INVITED),
        "deactivated": lambda: make_user(acme, "d@acme.test", status=UserStatus.DEACTIVATED),
        "self": lambda: agent,
    }[who]()
    client = logged_in(app, agent)
    summary = client.get(f"/support/users/{target.id}").text
    assert message in summary and 'name="reason"' not in summary  # no form to try
    response = start(client, target.id)
    assert response.status_code == 403 and message in response.text
    nothing_started()


def test_get_and_the_wrong_people_are_refused(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    client = logged_in(app, agent)
    assert client.get(f"/support/users/{bob.id}/impersonate").status_code == 405
    basic = logged_in(app, make_user(acme, "plain@acme.test", role=Role.BASIC))
    refused = start(basic, bob.id)
    assert refused.status_code == 403 and "Only support agents" in refused.text
    set_feature(acme, "impersonation", False)
    assert start(client, bob.id).status_code == 404
    nothing_started()


def test_no_impersonation_within_an_impersonation(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    carol = make_user(acme, "carol@acme.test")
    client = acting_as(app, agent, bob)
    for response in (start(client, carol.id), client.get("/support/")):
        assert response.status_code == 403
        assert "You are acting as bob@acme.test" in response.text
    assert len(rows(Impersonation)) == 1


def test_every_trick_to_reach_another_partners_user(
    app: Flask, acme: Partner, globex: Partner, agent: User, bob: User
) -> None:
    """Ids, hosts and form fields: another partner's user is as missing as a missing one."""
    gus = make_user(globex, "gus@globex.test", role=Role.BASIC)
    make_user(globex, "support@globex.test", role=Role.BASIC, is_support=True)
    set_feature(globex, "impersonation", True)
    client = logged_in(app, agent)
    own = cookie(client)
    for path in (f"/support/users/{gus.id}", "/support/users/99999", "/support/users/0"):
        assert client.get(path).status_code == 404, path
    for user_id in (gus.id, 99999, 2**31, "0x1", "-1", f"{bob.id}%20"):
        response = start(client, user_id)
        assert response.status_code in (404, 405), (user_id, response.status_code)
    # Form fields naming globex's user or partner are not read: the id in the path decides.
    tricked = start(client, gus.id, user_id=bob.id, target_id=bob.id, partner="acme")
    assert tricked.status_code == 404
    # A forwarded host is not believed (no trusted proxy): still acme, still no Gus there.
    forwarded = client.post(
        f"/support/users/{gus.id}/impersonate",
        data={"reason": REASON, "csrf_token": client.csrf_token("/")},
        headers={"X-Forwarded-Host": "globex.localhost"},
    )
    assert forwarded.status_code == 404
    # Acme's session on globex's host is nobody's.
    intruder = host_client(app, "globex")
    intruder.set_cookie("portal_auth", own, domain="globex.localhost")
    response = intruder.post(
        f"/support/users/{gus.id}/impersonate",
        data={"reason": REASON, "csrf_token": intruder.csrf_token("/login")},
    )
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    nothing_started()
    assert cookie(client) == own


# --- While acting as the user -----------------------------------------------------------


RESTRICTED = [
    ("GET", "/account/password", {}, "change the password"),
    ("POST", "/account/password", {"current_password": PASSWORD}, "change the password"),
    ("POST", "/account/email", {"new_email": "x@acme.test"}, "change the email address"),
    ("POST", "/account/email/cancel", {}, "change the email address"),
    ("GET", "/account/email/confirm/" + "x" * 43, {}, "change the email address"),
    ("GET", "/account/sessions/", {}, "manage sessions"),
    ("POST", "/account/sessions/revoke-others", {}, "manage sessions"),
    ("POST", "/logout", {}, "Press Stop"),
    ("GET", "/account/identities/", {}, "manage the ways to sign in"),
    ("POST", "/account/identities/link", {}, "manage the ways to sign in"),
    ("POST", "/account/identities/1/unlink", {}, "manage the ways to sign in"),
]


@pytest.mark.parametrize("method, path, form, message", RESTRICTED)
def test_what_only_the_owner_may_do_is_refused(
    app: Flask, agent: User, bob: User, method: str, path: str, form: dict, message: str
) -> None:
    client = acting_as(app, agent, bob)
    before = rows(User, id=bob.id)[0].password_hash
    if method == "GET":
        response = client.get(path)
    else:
        response = client.post_form(path, {**form, "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 403, response.text
    assert message in response.text
    htmx = client.open(
        path, method=method, headers={"HX-Request": "true", "X-CSRFToken": client.csrf_token("/")}
    )
    assert htmx.status_code == 403 and message in htmx.text
    assert rows(User, id=bob.id)[0].password_hash == before
    assert all(s.revoked_at is None for s in rows(UserSession))
    assert "Support session:" in client.get("/").text  # still acting, nothing else happened


def test_the_owner_still_may_do_it(app: Flask, agent: User, bob: User) -> None:
    acting_as(app, agent, bob)
    owner = logged_in(app, bob)
    assert owner.get("/account/password").status_code == 200
    assert owner.get("/account/sessions/").status_code == 200
    new = "another-horse-battery"
    changed = owner.post_form(
        "/account/password", {"current_password": PASSWORD, "password": new, "confirm": new}
    )
    assert changed.status_code == 302


def test_the_pages_hide_what_support_cannot_use(app: Flask, agent: User, bob: User) -> None:
    client = acting_as(app, agent, bob)
    profile = client.get("/account/profile").text
    assert "Support cannot change the email address" in profile
    assert 'name="new_email"' not in profile
    assert ">Password</a>" not in profile and ">Devices</a>" not in profile


def test_what_the_user_may_do_the_agent_may_do_and_it_is_audited(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    with partner_scope(acme):
        free = plan("free")
        db.session.commit()
    client = acting_as(app, agent, bob)
    imp = open_impersonation()
    assert client.post_form("/account/profile", {"display_name": "Bobby"}).status_code == 302
    assert rows(User, id=bob.id)[0].display_name == "Bobby"
    started = client.post_form("/account/subscription/start", {"plan_id": free.id})
    assert started.status_code == 302
    [sub] = rows(Subscription, user_id=bob.id)
    # Through the same permission checks as Bob: an admin page stays closed.
    assert client.get("/admin/users/").status_code == 403
    events = [e for e in rows(AuditEvent) if e.action in ("account.profile_update",)]
    events += [e for e in rows(AuditEvent) if e.target_type == "subscriptions"]
    assert {e.action for e in events} >= {"subscription.signing"}
    for event in events:
        assert (event.actor_id, event.actor_label) == (agent.id, "agent@acme.test")
        assert (event.on_behalf_of_id, event.impersonation_id) == (bob.id, imp.id)
    assert sub.state.value == "signing"


def test_every_write_while_impersonating_names_both_people(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    """Walk every POST route of the partner's host as the agent acting as Bob (a basic user):
    whatever the route writes, every audit event names the agent and Bob."""
    with partner_scope(acme):
        free, other = plan("free"), plan("other")
        me = db.session.get(User, bob.id)
        pending = start_signing(me, free, actor=me, kind=ActorKind.USER)
        db.session.commit()
    client = acting_as(app, agent, bob)
    imp = open_impersonation()
    skip = {"support.stop", "support.start"}  # Stop ends it (tested below); start is refused
    form = {
        "display_name": "Bob Walked",
        "plan_id": other.id,
        "accept_terms": "1",
        "reason": REASON,
        "on": "1",
    }
    written_before = {e.id for e in rows(AuditEvent)}
    walked = 0
    for rule in app.url_map.iter_rules():
        if rule.subdomain != "<partner>" or "POST" not in (rule.methods or ()):
            continue
        if rule.endpoint in skip or rule.endpoint.startswith("health."):
            continue
        real = {"sub_id": pending.id, "user_id": bob.id, "session_id": imp.session_id}
        values = {
            arg: real.get(arg) or sample_value(rule, arg, SAMPLE_ARGS.get(arg, "1"))
            for arg in rule.arguments - {"partner"}
        }
        values["partner"] = "acme"
        path = app.url_map.bind("localhost", subdomain="acme").build(rule.endpoint, values)
        response = client.post_form(path, form)
        assert response.status_code < 500, (rule.endpoint, response.status_code)
        walked += 1
        assert "Support session:" in client.get("/").text, rule.endpoint  # still acting
    new = [e for e in rows(AuditEvent) if e.id not in written_before]
    assert walked >= 20 and len(new) >= 3, (walked, [e.action for e in new])
    for event in new:
        label = (event.action, event.actor_label, event.on_behalf_of_id)
        assert event.actor_id == agent.id and event.actor_label == "agent@acme.test", label
        assert event.on_behalf_of_id == bob.id and event.impersonation_id == imp.id, label
    assert rows(User, id=bob.id)[0].display_name == "Bob Walked"


# --- Time limit, Stop, and every other end ------------------------------------------------


def test_time_left_and_expiry_with_a_controlled_clock(
    app: Flask, agent: User, bob: User, frozen_clock
) -> None:
    client = acting_as(app, agent, bob)
    own = cookie(client, "portal_auth_return")
    frozen_clock.advance(timedelta(minutes=10))
    assert "20 minutes left" in client.get("/").text
    frozen_clock.advance(timedelta(minutes=19, seconds=30))
    page = client.get("/account/profile").text
    assert "1 minute left" in page and "Bob Basic" in page
    imp = open_impersonation()
    frozen_clock.advance(timedelta(seconds=31))  # 30 minutes and one second
    ended = client.get("/account/profile")
    assert ended.status_code == 302 and ended.headers["Location"] == "/"
    home = client.get("/").text
    assert "its time limit was reached. You are back in your own account." in home
    assert "Welcome, Sam Support" in home and "Support session:" not in home
    assert cookie(client) == own and cookie(client, "portal_auth_return") is None
    [ended_imp] = rows(Impersonation)
    assert ended_imp.end_reason == EndReason.EXPIRED
    assert ended_imp.ended_at == imp.expires_at
    assert rows(UserSession, id=imp.session_id)[0].revoked_at is not None
    assert rows(UserSession, id=imp.agent_session_id)[0].revoked_at is None
    [event] = [e for e in rows(AuditEvent) if e.action == "support.impersonation_end"]
    assert event.details["how"] == "expired" and event.details["reason"] == REASON
    assert (event.actor_id, event.on_behalf_of_id, event.impersonation_id) == (
        agent.id,
        bob.id,
        imp.id,
    )


def test_an_expired_support_session_runs_no_form(
    app: Flask, acme: Partner, agent: User, bob: User, frozen_clock
) -> None:
    """A form of Bob's sent after the limit is not run as the agent either."""
    acme.session_policy_settings = {"idle_minutes": 120}
    db.session.commit()
    client = acting_as(app, agent, bob)
    token = client.csrf_token("/")
    frozen_clock.advance(timedelta(minutes=31))
    response = client.post(
        "/account/profile", data={"display_name": "Too Late", "csrf_token": token}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"
    names = {u.display_name for u in rows(User)}
    assert "Too Late" not in names
    htmx = acting_as(app, agent, bob)
    frozen_clock.advance(timedelta(minutes=31))
    answer = htmx.get("/", headers={"HX-Request": "true"})
    assert answer.headers["HX-Redirect"] == "/"


def test_stop_returns_the_agent_to_their_own_session(
    app: Flask, agent: User, bob: User, frozen_clock
) -> None:
    client = acting_as(app, agent, bob)
    own = cookie(client, "portal_auth_return")
    imp = open_impersonation()
    frozen_clock.advance(timedelta(minutes=4))
    stopped = client.post_form("/support/stop")
    assert stopped.status_code == 302
    assert stopped.headers["Location"] == f"/support/users/{bob.id}"
    page = client.get(stopped.headers["Location"]).text
    assert "You are back in your own account." in page and "Support session:" not in page
    assert cookie(client) == own and cookie(client, "portal_auth_return") is None
    assert ">Support</a>" in client.get("/").text  # the agent, on their own session
    [done] = rows(Impersonation)
    assert done.end_reason == EndReason.STOPPED and done.ended_at == imp.started_at + timedelta(
        minutes=4
    )
    [event] = [e for e in rows(AuditEvent) if e.action == "support.impersonation_end"]
    assert event.details["how"] == "stopped" and event.details["minutes"] == 4
    assert (event.actor_id, event.on_behalf_of_id) == (agent.id, bob.id)
    again = client.post_form("/support/stop")
    assert "You are not acting as anyone" in client.get(again.headers["Location"]).text


def admin_posts(app: Flask, admin: User, path: str, form: dict | None = None) -> None:
    client = logged_in(app, admin)
    response = client.post_form(path, form or {})
    assert response.status_code == 302, response.text


def _revoke_agents_own_session(app, acme, admin, agent, bob) -> None:
    own = rows(Impersonation)[0].agent_session_id
    admin_posts(app, admin, f"/admin/sessions/{own}/revoke")


def _deactivate_agent(app, acme, admin, agent, bob) -> None:
    admin_posts(app, admin, f"/admin/users/{agent.id}/deactivate")


def _remove_support(app, acme, admin, agent, bob) -> None:
    admin_posts(app, admin, f"/admin/users/{agent.id}/support", {"enabled": "0"})


def _feature_off(app, acme, admin, agent, bob) -> None:
    set_feature(acme, "impersonation", False)


def _deactivate_user(app, acme, admin, agent, bob) -> None:
    admin_posts(app, admin, f"/admin/users/{bob.id}/deactivate")


def _promote_user(app, acme, admin, agent, bob) -> None:
    admin_posts(app, admin, f"/admin/users/{bob.id}/role", {"role": "advanced"})
    admin_posts(app, admin, f"/admin/users/{bob.id}/role", {"role": "admin"})


def _admin_ends_it(app, acme, admin, agent, bob) -> None:
    admin_posts(app, admin, f"/admin/sessions/{rows(Impersonation)[0].session_id}/revoke")


def _user_signs_everyone_out(app, acme, admin, agent, bob) -> None:
    owner = logged_in(app, bob)
    assert owner.post_form("/account/sessions/revoke-others").status_code == 302


ENDS = [
    (_revoke_agents_own_session, EndReason.AGENT_SESSION_ENDED, False),
    (_deactivate_agent, EndReason.AGENT_DEACTIVATED, False),
    (_remove_support, EndReason.SUPPORT_REMOVED, True),
    (_feature_off, EndReason.FEATURE_OFF, True),
    (_deactivate_user, EndReason.TARGET_UNAVAILABLE, True),
    (_promote_user, EndReason.TARGET_UNAVAILABLE, True),
    (_admin_ends_it, EndReason.SESSION_REVOKED, True),
    (_user_signs_everyone_out, EndReason.SESSION_REVOKED, True),
]


@pytest.mark.parametrize(
    "change, why, back", ENDS, ids=[change.__name__.strip("_") for change, _, _ in ENDS]
)
def test_it_ends_on_the_next_request(
    app: Flask,
    make_app,
    acme: Partner,
    acme_admin: User,
    agent: User,
    bob: User,
    change,
    why: EndReason,
    back: bool,
) -> None:
    """Whatever takes the right away, in another process, ends it on the agent's next request:
    back in their own account when that session still lives, else signed out."""
    client = acting_as(app, agent, bob)
    assert "Support session:" in client.get("/").text
    change(make_app(), acme, acme_admin, agent, bob)
    response = client.get("/account/profile")
    assert response.status_code == 302
    [imp] = rows(Impersonation)
    assert imp.end_reason == why and imp.ended_at is not None
    assert rows(UserSession, id=imp.session_id)[0].revoked_at is not None
    after = client.get(response.headers["Location"], follow_redirects=True).text
    assert "Support session:" not in after and "Bob Basic" not in after
    if back:
        assert response.headers["Location"] == "/"
        assert "You are back in your own account." in after and "Welcome, Sam Support" in after
    else:
        assert response.headers["Location"].startswith("/login")
        assert "Sign in again" in after
        assert cookie(client) is None
    assert len([e for e in rows(AuditEvent) if e.action == "support.impersonation_end"]) == 1


def test_an_admin_sees_and_ends_support_sessions(
    app: Flask, acme: Partner, acme_admin: User, agent: User, bob: User
) -> None:
    acting_as(app, agent, bob)
    imp = open_impersonation()
    admin = logged_in(app, acme_admin)
    page = admin.get("/admin/sessions/").text
    assert "agent@acme.test acting as this user" in page and "End support session" in page
    ended = admin.post_form(f"/admin/sessions/{imp.session_id}/revoke")
    assert (
        "Support session of agent@acme.test as bob@acme.test ended."
        in admin.get(ended.headers["Location"]).text
    )
    [done] = rows(Impersonation)
    assert done.end_reason == EndReason.SESSION_REVOKED and done.ended_by_id == acme_admin.id
    [event] = [e for e in rows(AuditEvent) if e.action == "support.impersonation_end"]
    assert event.actor_id == acme_admin.id and event.impersonation_id == imp.id
    assert event.on_behalf_of_id is None  # the admin acted as themselves


def test_an_impersonation_does_not_count_against_the_users_sessions(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    acme.session_policy_settings = {"max_concurrent": 1, "at_limit": "deny_new"}
    db.session.commit()
    owner = logged_in(app, bob)
    acting_as(app, agent, bob)
    assert owner.get("/").status_code == 200  # Bob's own session was not evicted
    assert "Support session:" not in owner.get("/").text
    devices = owner.get("/account/sessions/").text
    assert devices.count("Sign out</button>") == 1  # the support session is not his device
    assert rows(User, id=bob.id)[0].last_login_at is not None  # Bob's own sign-in only


def test_lapsed_support_sessions_are_closed_on_record(
    app: Flask, acme: Partner, agent: User, bob: User, frozen_clock
) -> None:
    """An agent who never comes back: the end is recorded at the limit, when support is next
    used."""
    acting_as(app, agent, bob)
    imp = open_impersonation()
    frozen_clock.advance(timedelta(hours=2))
    colleague = make_user(acme, "colleague@acme.test", is_support=True)
    assert logged_in(app, colleague).get("/support/").status_code == 200
    [done] = rows(Impersonation)
    assert done.end_reason == EndReason.EXPIRED and done.ended_at == imp.expires_at
    [event] = [e for e in rows(AuditEvent) if e.action == "support.impersonation_end"]
    assert event.actor_type.value == "system" and event.impersonation_id == imp.id


# --- What the user and the admins see ----------------------------------------------------


def test_the_user_sees_when_and_why_support_accessed_the_account(
    app: Flask, acme: Partner, agent: User, bob: User
) -> None:
    client = acting_as(app, agent, bob, ticket="TCK-7")
    client.post_form("/support/stop")
    owner = logged_in(app, bob)
    page = owner.get("/account/activity")
    assert page.status_code == 200
    for part in ("Support access", "Sam Support", REASON, "TCK-7", "2026-03-02 09:00"):
        assert part in page.text, part
    assert ">Activity</a>" in owner.get("/account/profile").text
    other = logged_in(app, make_user(acme, "other@acme.test"))
    assert "Support has never accessed your account." in other.get("/account/activity").text


def test_the_activity_page_lists_accesses_and_sign_ins_newest_first(
    app: Flask, acme: Partner, agent: User, bob: User, frozen_clock
) -> None:
    """Both lists come in one statement; each keeps its own order and its own length."""
    tess = make_user(
        acme, "tess@acme.test", role=Role.BASIC, is_support=True, display_name="Tess Two"
    )
    for who, ticket in ((agent, "TCK-1"), (tess, "TCK-2")):
        acting_as(app, who, bob, ticket=ticket).post_form("/support/stop")
        frozen_clock.advance(timedelta(minutes=5))
    with partner_scope(acme):
        me = db.session.get(User, bob.id)
        for _ in range(12):
            frozen_clock.advance(timedelta(minutes=1))
            record_audit("auth.login", target=me, actor=me)
            db.session.flush()  # stamped now
        db.session.commit()
        assert [a.ticket for a in account_activity(me, accesses=1).accesses] == ["TCK-2"]
    page = logged_in(app, bob).get("/account/activity").text  # a 13th sign-in
    accesses = page[page.index('id="support-access"') : page.index('id="sign-ins"')]
    assert accesses.index("TCK-2") < accesses.index("TCK-1")
    assert accesses.index("Tess Two") < accesses.index("Sam Support")
    times = re.findall(r"<tr><td>(\d{4}-\d\d-\d\d \d\d:\d\d)</td>", page)
    assert len(times) == 10 and times == sorted(times, reverse=True)
    assert (times[0], times[-1]) == ("2026-03-02 09:22", "2026-03-02 09:14")


def test_the_audit_log_filters_what_support_did(
    app: Flask, acme: Partner, acme_admin: User, agent: User, bob: User
) -> None:
    client = acting_as(app, agent, bob, ticket="TCK-9")
    client.post_form("/account/profile", {"display_name": "Bobby"})
    client.post_form("/support/stop")
    admin = logged_in(app, acme_admin)
    everything = admin.get("/admin/audit/").text
    support_only = admin.get("/admin/audit/?support=1").text
    assert "<code>auth.login</code>" in everything
    assert "<code>auth.login</code>" not in support_only
    for action in ("support.impersonation_start", "support.impersonation_end"):
        assert f"<code>{action}</code>" in support_only
    assert "as bob@acme.test" in support_only and "TCK-9" in support_only
    set_feature(acme, "audit_export", True)
    export = admin.get("/admin/audit/export.csv?support=1").text
    header, *lines = export.strip().splitlines()
    assert "on_behalf_of,impersonation_id,support_reason,support_ticket" in header
    assert lines and all(REASON in line and "TCK-9" in line for line in lines)


def test_the_time_limit_is_the_partners_policy(
    app: Flask, acme: Partner, acme_admin: User, agent: User, bob: User
) -> None:
    admin = logged_in(app, acme_admin)
    assert admin.get("/admin/settings/support").status_code == 200
    for value, message in (("3", "between 5 minutes and 4 hours"), ("abc", "whole number")):
        refused = admin.post_form("/admin/settings/support", {"impersonation_minutes": value})
        assert refused.status_code == 422 and message in refused.text
    saved = admin.post_form("/admin/settings/support", {"impersonation_minutes": "10"})
    assert "Support settings saved." in admin.get(saved.headers["Location"]).text
    db.session.refresh(acme)
    policy = acme.session_policy
    assert (policy.impersonation_minutes, policy.impersonation_notify) == (10, False)
    assert "settings.support_policy_update" in [e.action for e in rows(AuditEvent)]
    client = acting_as(app, agent, bob)
    assert "10 minutes left" in client.get("/").text
    assert mails_to("bob@acme.test") == []
    basic = logged_in(app, make_user(acme, "b2@acme.test"))
    assert basic.get("/admin/settings/support").status_code == 403


def test_the_limit_never_outlasts_the_agents_own_session(
    app: Flask, acme: Partner, agent: User, bob: User, frozen_clock
) -> None:
    acme.session_policy_settings = {
        "absolute_hours": 1,
        "idle_minutes": 120,
        "impersonation_minutes": 240,
    }
    db.session.commit()
    client = logged_in(app, agent)
    frozen_clock.advance(timedelta(minutes=50))
    client.get("/")
    assert start(client, bob.id).status_code == 302
    assert "10 minutes left" in client.get("/").text
