"""What people read after things happen to them (issue 16): why a session ended, what a refused
sign-in means, and never a dead end after signing in again."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from conftest import PASSWORD, HostClient, host_client, logged_in, make_user, rows
from flask import Flask

from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.operator.models import Operator
from portal.operator.services import reactivate_partner, suspend_partner
from portal.roles.models import Role
from portal.sessions.models import OperatorSession, UserSession
from portal.sessions.services import revoke_user_session
from portal.subscriptions.models import Subscription
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus
from portal.users.services import deactivate_user

FLASH_RE = re.compile(r'<p class="flash flash-info" role="status">([^<]*)</p>')
ERROR_RE = re.compile(r'<p class="form-error"[^>]*>([^<]*)</p>')


def landing(client: HostClient, path: str = "/account/profile") -> tuple[str, str]:
    """Where the browser ends up opening `path`, and the message it reads there."""
    response = client.get(path)
    assert response.status_code == 302, response.status_code
    where = response.headers["Location"]
    page = client.get(where)
    messages = [unescape(m) for m in FLASH_RE.findall(page.text)]
    return where, " ".join(messages)


def test_idle_and_absolute_expiry_say_why(
    app: Flask, acme: Partner, acme_user: User, frozen_clock
) -> None:
    client = logged_in(app, acme_user)
    frozen_clock.advance(timedelta(minutes=31))
    where, said = landing(client)
    assert where.startswith("/login?next=/account/profile")
    assert said == "You were signed out after 30 minutes without activity. Please sign in again."
    # said once: the dead cookie is forgotten
    assert FLASH_RE.findall(client.get("/login").text) == []

    acme.session_policy_settings = {"idle_minutes": 120, "absolute_hours": 1}
    db.session.commit()
    client = logged_in(app, acme_user)
    for _ in range(4):
        frozen_clock.advance(timedelta(minutes=16))
        client.get("/")
    where, said = landing(client)
    assert said == "Your session reached its limit of 1 hour. Please sign in again."


def test_revocations_say_why(app: Flask, acme: Partner, acme_user: User) -> None:
    admin = make_user(acme, "root@acme.test", role=Role.ADMIN)
    for reason, expected in [
        ("revoked by an administrator", "An administrator ended your session."),
        ("signed out by the user", "This device was signed out from another of your devices."),
        ("password change", "Your password was changed, so this device was signed out."),
    ]:
        client = logged_in(app, acme_user)
        record = rows(UserSession, revoked_at=None)[-1]
        with partner_scope(acme):
            revoke_user_session(db.session.get(UserSession, record.id), by=admin, reason=reason)
            db.session.commit()
        _where, said = landing(client)
        assert said.startswith(expected), said


def test_password_change_elsewhere_says_so(app: Flask, acme_user: User) -> None:
    phone = logged_in(app, acme_user)
    laptop = logged_in(app, acme_user)
    new = "a-brand-new-password-2026"
    changed = laptop.post_form(
        "/account/password",
        {"current_password": PASSWORD, "password": new, "confirm": new},
    )
    assert changed.status_code == 302, changed.text
    _where, said = landing(phone)
    assert said == (
        "Your password was changed, so this device was signed out. Sign in with the new password."
    )


def test_deactivation_says_so_and_the_right_password_then_hears_it_again(
    app: Flask, acme: Partner, acme_user: User
) -> None:
    admin = make_user(acme, "root@acme.test", role=Role.ADMIN)
    client = logged_in(app, acme_user)
    with partner_scope(acme):
        deactivate_user(db.session.get(User, admin.id), db.session.get(User, acme_user.id))
        db.session.commit()
    _where, said = landing(client)
    assert said.startswith("Your account has been deactivated, so you were signed out.")
    refused = client.login(acme_user.email)
    assert refused.status_code == 403
    assert ERROR_RE.search(refused.text).group(1) == (
        "This account has been deactivated. Ask your Acme Corp administrator if you need "
        "access again."
    )
    # A wrong password learns nothing: the same answer as for an unknown address.
    wrong = client.login(acme_user.email, "not-the-password")
    unknown = client.login("nobody@acme.test", "not-the-password")
    assert wrong.status_code == unknown.status_code == 422
    assert ERROR_RE.search(wrong.text).group(1) == ERROR_RE.search(unknown.text).group(1)
    assert rows(UserSession, revoked_at=None) == []


def test_a_pending_sign_up_is_told_where_its_password_comes_from(
    acme_client: HostClient, acme: Partner
) -> None:
    make_user(acme, "new@acme.test", password=None, status=UserStatus.INVITED)
    pending = acme_client.login("new@acme.test", "whatever-it-is")
    unknown = acme_client.login("nobody@acme.test", "whatever-it-is")
    assert pending.status_code == unknown.status_code == 422
    for page in (pending, unknown):
        assert "Incorrect email or password." in page.text
        assert "Open the link in the email we sent you and choose your password" in page.text


def test_partner_suspension_says_so(app: Flask, acme: Partner, acme_user: User) -> None:
    client = logged_in(app, acme_user)
    operator = Operator(email="op@portal.test", password_hash="x")
    db.session.add(operator)
    db.session.commit()
    suspend_partner(operator, acme, "unpaid invoices")
    db.session.commit()
    assert client.get("/").status_code == 403
    reactivate_partner(operator, acme)
    db.session.commit()
    _where, said = landing(client)
    assert said.startswith("Acme Corp's portal was suspended for a while")


def test_signing_out_oneself_says_only_that(app: Flask, acme_user: User) -> None:
    client = logged_in(app, acme_user)
    out = client.post_form("/logout", follow_redirects=True)
    assert FLASH_RE.findall(out.text) == ["You have signed out."]


# --- `next`: only ever a page ------------------------------------------------------------------


def test_a_form_post_on_an_expired_session_returns_to_its_page(
    app: Flask, acme: Partner, acme_user: User, frozen_clock
) -> None:
    client = logged_in(app, acme_user)
    token = client.csrf_token("/account/profile")
    frozen_clock.advance(timedelta(hours=1))
    posted = client.post(
        "/account/profile",
        data={"csrf_token": token, "display_name": "Late"},
        headers={"Referer": "http://acme.localhost/account/profile?tab=1"},
    )
    assert posted.status_code == 302
    assert posted.headers["Location"] == "/login?next=/account/profile?tab%3D1"


def test_htmx_on_an_expired_session_goes_to_sign_in_and_back_to_its_page(
    app: Flask, acme: Partner, frozen_clock
) -> None:
    admin = make_user(acme, "root@acme.test", role=Role.ADMIN)
    client = logged_in(app, admin)
    token = client.csrf_token("/admin/features")
    frozen_clock.advance(timedelta(hours=1))
    answer = client.post(
        "/admin/features/reports",
        headers={
            "X-CSRFToken": token,
            "HX-Request": "true",
            "HX-Current-URL": "http://acme.localhost/admin/features",
        },
    )
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"] == "/login?next=/admin/features"
    # signing in there leads back to the page, not to the switch's address
    token = client.csrf_token(answer.headers["HX-Redirect"])
    back = client.post(
        answer.headers["HX-Redirect"],
        data={"email": admin.email, "password": PASSWORD, "csrf_token": token},
    )
    assert back.headers["Location"] == "/admin/features"


@pytest.mark.parametrize("target", ["/logout", "/admin/features/reports", "//evil.test/x"])
def test_a_next_that_is_no_page_leads_home(acme_client: HostClient, acme_user: User, target):
    token = acme_client.csrf_token()
    signed_in = acme_client.post(
        f"/login?next={target}",
        data={"email": acme_user.email, "password": PASSWORD, "csrf_token": token},
    )
    assert signed_in.headers["Location"] == "/"


def test_accepting_an_invitation_leads_to_sign_in_with_the_address_filled_in(
    app: Flask, acme: Partner
) -> None:
    from portal.tokens.models import TokenPurpose
    from portal.tokens.services import issue_token

    invited = make_user(acme, "invited@acme.test", password=None, status=UserStatus.INVITED)
    with partner_scope(acme):
        token = issue_token(db.session.get(User, invited.id), TokenPurpose.INVITE)
        db.session.commit()
    client = host_client(app, "acme")
    csrf = client.csrf_token(f"/invite/{token}")
    new = "leafy-garden-path-2026"  # nothing of "invited@acme.test" in it
    accepted = client.post(
        f"/invite/{token}",
        data={"csrf_token": csrf, "display_name": "Ivy", "password": new, "confirm": new},
    )
    assert accepted.headers["Location"] == "/login"
    page = client.get("/login").text
    assert 'value="invited@acme.test"' in page
    assert re.search(r'id="password"[^>]*autofocus', page)


# --- Error pages on a partner host ---------------------------------------------------------------

ASSET_RE = re.compile(r'(?:src|href)="([^"]+\.(?:js|css))"')


@pytest.mark.parametrize("method, path", [("GET", "/no-such-page"), ("DELETE", "/account/profile")])
def test_error_pages_keep_the_partners_look_navigation_and_own_assets(
    app: Flask, acme_user: User, method: str, path: str
) -> None:
    client = logged_in(app, acme_user)
    page = client.open(path, method=method, headers={"X-CSRFToken": client.csrf_token("/")})
    assert page.status_code in (404, 405)
    assert "<title>Page not found · Acme Corp</title>" in page.text or (
        "· Acme Corp</title>" in page.text
    )
    assert "--brand: #2563eb" in page.text  # the partner's colour
    assert 'aria-label="Main"' in page.text and ">Home</a>" in page.text  # the navigation
    assets = ASSET_RE.findall(page.text)
    assert assets and all(a.startswith("/static/") for a in assets), assets


def test_an_unknown_partners_404_loads_assets_from_its_own_host(app: Flask) -> None:
    page = host_client(app, "nobody").get("/anything")
    assert page.status_code == 404
    assets = ASSET_RE.findall(page.text)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    with host_client(app, "nobody").get(assets[0]) as asset:
        assert asset.status_code == 200


# --- Subscription history, plan cards, plan list labels ---------------------------------------


def _history_plans(page: str) -> list[str]:
    table = page[page.index("<h2>History</h2>") :]
    return re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td>", table)


def test_history_names_the_plan_and_cancelling_says_what_ended(app: Flask, acme: Partner) -> None:
    from dataclasses import replace

    from test_subscriptions import plan

    from portal.roles.policy import current_policy
    from portal.roles.services import RoleInput, save_roles

    user = make_user(acme, "b@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        company = plan("company", roles=(Role.COMPANY,))
        free = plan("free", roles=(Role.BASIC,))
        company.position, free.position = 0, 1  # the one the user cannot buy comes first
        policy = current_policy()
        roles = {
            r: RoleInput(c.enabled, c.label, frozenset(c.permissions))
            for r, c in policy.roles.items()
        }
        save_roles({**roles, Role.BASIC: replace(roles[Role.BASIC], label="Starter")})
        db.session.commit()
    client = logged_in(app, user)
    page = client.get("/account/subscription/").text
    cards = re.findall(r'<article class="plan-card[^"]*">\s*<header><strong>([^<]*)', page)
    assert cards == ["Free", "Company"]  # what the user can choose first
    client.post_form("/account/subscription/start", {"plan_id": free.id})
    [sub] = rows(Subscription)
    client.post_form(f"/account/subscription/{sub.id}/confirm", {"accept_terms": "1"})
    client.post_form(f"/account/subscription/{sub.id}/cancel")
    page = client.get("/account/subscription/").text
    assert _history_plans(page) == ["Free", "Free", "Free"]
    assert "You have no subscription yet" not in page
    assert re.search(r"You have no subscription now: <strong>Free</strong> ended on \d{4}-", page)
    admin = make_user(acme, "root@acme.test", role=Role.ADMIN)
    plans = logged_in(app, admin).get("/admin/plans/").text
    assert "<td>Starter</td>" in plans and "<td>basic</td>" not in plans


# --- Every form error at once -------------------------------------------------------------------


def test_the_session_policy_form_flags_every_bad_value(app: Flask, acme: Partner) -> None:
    admin = logged_in(app, make_user(acme, "root@acme.test", role=Role.ADMIN))
    values = {
        "idle_minutes": "1",
        "absolute_hours": "9999",
        "max_concurrent": "lots",
        "remember_me_days": "14",
        "at_limit": "evict_oldest",
    }
    page = admin.post_form("/admin/settings/sessions", values)
    assert page.status_code == 422
    flagged = re.findall(r'<small class="field-error" id="([a-z_]+)-error">', page.text)
    assert flagged == ["idle_minutes", "absolute_hours", "max_concurrent"]
    assert "3 values below need changing" in page.text
    values.update(idle_minutes="30", absolute_hours="12", max_concurrent="5")
    assert admin.post_form("/admin/settings/sessions", values).status_code == 302


def test_the_plan_form_flags_every_bad_field(app: Flask, acme: Partner) -> None:
    admin = logged_in(app, make_user(acme, "root@acme.test", role=Role.ADMIN))
    page = admin.post_form(
        "/admin/plans/new",
        {"code": "X!", "name": "", "price": "abc", "currency": "euro", "interval": "month"},
    )
    assert page.status_code == 422
    flagged = set(re.findall(r'<small id="([a-z_]+)-error" class="field-error">', page.text))
    assert flagged == {"code", "name", "price", "currency", "allowed_roles"}


def test_the_invitation_form_keeps_the_passwords_when_only_the_name_is_missing(
    app: Flask, acme: Partner
) -> None:
    from portal.tokens.models import TokenPurpose
    from portal.tokens.services import issue_token

    invited = make_user(acme, "invited@acme.test", password=None, status=UserStatus.INVITED)
    with partner_scope(acme):
        token = issue_token(db.session.get(User, invited.id), TokenPurpose.INVITE)
        db.session.commit()
    client = host_client(app, "acme")
    csrf = client.csrf_token(f"/invite/{token}")
    new = "invited-password-2026"
    page = client.post(
        f"/invite/{token}",
        data={"csrf_token": csrf, "display_name": "", "password": new, "confirm": new},
    )
    assert page.status_code == 422
    assert "Enter your name." in page.text
    assert page.text.count(f'value="{new}"') == 2
    short = client.post(
        f"/invite/{token}",
        data={"csrf_token": csrf, "display_name": "", "password": "x", "confirm": "x"},
    )
    assert 'value="x"' not in short.text  # a refused password is typed again


def test_a_new_guest_is_shown_what_to_do(app: Flask, acme: Partner) -> None:
    guest = logged_in(app, make_user(acme, "g@acme.test", role=Role.GUEST))
    home = guest.get("/").text
    assert "What you can do here" in home
    assert "gives access to your own account. If you need more, ask an administrator" in home
    links = re.findall(r'<li><a href="([^"]+)"', home[home.index("What you can do here") :])
    assert links and all(guest.get(link).status_code == 200 for link in links), links
    basic = logged_in(app, make_user(acme, "b@acme.test", role=Role.BASIC))
    home = basic.get("/").text
    for link in re.findall(r'<li><a href="([^"]+)"', home[home.index("What you can do") :]):
        assert basic.get(link).status_code == 200, link


# --- Operators on the root domain -------------------------------------------------------------


@pytest.fixture
def operator_console(app: Flask, data: Flask) -> HostClient:
    """An operator signed in on the root domain."""
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    client = host_client(app, None)
    assert client.login("op@portal.test").status_code == 302
    return client


def test_an_operator_signed_out_by_time_is_told_why(
    app: Flask, operator_console: HostClient, frozen_clock
) -> None:
    frozen_clock.advance(timedelta(minutes=31))
    where, said = landing(operator_console, "/operator/")
    assert where.startswith("/login")
    assert said == "You were signed out after 30 minutes without activity. Please sign in again."
    assert FLASH_RE.findall(operator_console.get("/login").text) == []  # said once

    assert operator_console.login("op@portal.test").status_code == 302
    for _ in range(25):  # busy all the time, until the session's lifetime is over
        frozen_clock.advance(timedelta(minutes=29))
        operator_console.get("/operator/")
    _where, said = landing(operator_console, "/operator/")
    assert said == "Your session reached its limit of 12 hours. Please sign in again."


def test_a_deactivated_operator_is_told_why_and_signing_out_says_nothing(
    app: Flask, operator_console: HostClient
) -> None:
    # A session the operator signed out of themselves, presented again: nothing to explain.
    second = host_client(app, None)
    assert second.login("op@portal.test").status_code == 302
    token = second.get_cookie("portal_auth", domain="localhost").value
    signed_out = second.post_form("/logout")
    assert "You have signed out." in second.get(signed_out.headers["Location"]).text
    second.set_cookie("portal_auth", token, domain="localhost")
    where, said = landing(second, "/operator/")
    assert where.startswith("/login") and said == ""

    result = app.test_cli_runner().invoke(args=["operator", "deactivate", "op@portal.test"])
    assert result.exit_code == 0, result.output
    _where, said = landing(operator_console, "/operator/")
    assert said == (
        "Your operator account has been deactivated, so you were signed out. Ask another "
        "operator if you need access again."
    )
    assert sorted(s.revoked_reason for s in rows(OperatorSession)) == [
        "logout",
        "operator deactivated",
    ]
