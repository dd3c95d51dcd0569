"""Session control: policy, expiry, limits, revocation that bites on the next request."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import PASSWORD, HostClient, host_client, logged_in, make_user, rows
from flask import Flask

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.operator.models import Operator
from portal.operator.services import reactivate_partner, suspend_partner
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner, SessionPolicy
from portal.users.models import User

UA_PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def set_policy(partner: Partner, **changes) -> None:
    partner.session_policy_settings = {**partner.session_policy.to_dict(), **changes}
    db.session.commit()


def is_in(client: HostClient) -> bool:
    response = client.get("/")
    return response.status_code == 200


def test_idle_timeout_with_a_controlled_clock(app: Flask, acme_user: User, frozen_clock) -> None:
    client = logged_in(app, acme_user)
    frozen_clock.advance(timedelta(minutes=29))
    assert is_in(client)  # activity moves "last seen"
    frozen_clock.advance(timedelta(minutes=29))
    assert is_in(client)
    frozen_clock.advance(timedelta(minutes=30))
    assert not is_in(client)


def test_absolute_lifetime_ends_even_an_active_session(
    app: Flask, acme: Partner, acme_user: User, frozen_clock
) -> None:
    set_policy(acme, idle_minutes=60, absolute_hours=1)
    client = logged_in(app, acme_user)
    for _ in range(5):
        frozen_clock.advance(timedelta(minutes=11))
        assert is_in(client)
    frozen_clock.advance(timedelta(minutes=6))
    assert not is_in(client)


def test_last_seen_is_written_at_most_once_a_minute(
    app: Flask, acme_user: User, frozen_clock
) -> None:
    client = logged_in(app, acme_user)
    [record] = rows(UserSession)
    start = record.last_seen_at
    frozen_clock.advance(timedelta(seconds=30))
    client.get("/")
    client.get("/")
    assert rows(UserSession)[0].last_seen_at == start
    frozen_clock.advance(timedelta(seconds=31))
    client.get("/")
    assert rows(UserSession)[0].last_seen_at == start + timedelta(seconds=61)


def test_policy_change_applies_on_the_next_request(
    app: Flask, acme: Partner, acme_user: User, frozen_clock
) -> None:
    client = logged_in(app, acme_user)
    frozen_clock.advance(timedelta(minutes=10))
    set_policy(acme, idle_minutes=5)
    assert not is_in(client)


def test_evict_oldest_at_the_limit(
    app: Flask, acme: Partner, acme_user: User, frozen_clock
) -> None:
    set_policy(acme, max_concurrent=2, at_limit="evict_oldest")
    first = logged_in(app, acme_user)
    frozen_clock.advance(timedelta(minutes=1))
    second = logged_in(app, acme_user)
    frozen_clock.advance(timedelta(minutes=1))
    third = logged_in(app, acme_user)
    assert [is_in(c) for c in (first, second, third)] == [False, True, True]
    evicted = [s for s in rows(UserSession) if s.revoked_at]
    assert len(evicted) == 1 and "session limit" in evicted[0].revoked_reason


def test_deny_new_at_the_limit(app: Flask, acme: Partner, acme_user: User) -> None:
    set_policy(acme, max_concurrent=2, at_limit="deny_new")
    first, second = logged_in(app, acme_user), logged_in(app, acme_user)
    third = host_client(app, "acme")
    response = third.login(acme_user.email)
    assert response.status_code == 409
    assert "already signed in on 2 devices" in response.text
    assert len(rows(UserSession)) == 2
    assert is_in(first) and is_in(second) and not is_in(third)
    assert "session.limit_denied" in [e.action for e in rows(AuditEvent)]
    # Signing out one device makes room.
    first.post_form("/logout")
    assert third.login(acme_user.email).status_code == 302


def test_revoked_in_another_process_fails_on_the_next_request(
    app: Flask, make_app, acme: Partner, acme_user: User, acme_admin: User
) -> None:
    victim = logged_in(app, acme_user)
    other_process = make_app()
    admin = logged_in(other_process, acme_admin)
    [record] = [s for s in rows(UserSession) if s.user_id == acme_user.id]
    response = admin.post_form(f"/admin/sessions/{record.id}/revoke", {"reason": "lost phone"})
    assert response.status_code == 302
    assert not is_in(victim)
    [stored] = rows(UserSession, id=record.id)
    assert stored.revoked_by_id == acme_admin.id
    assert stored.revoked_reason == "revoked by an administrator: lost phone"


REVOKERS = ["user", "admin", "password_change", "deactivation", "partner_suspension"]


@pytest.mark.parametrize("revoker", REVOKERS)
def test_every_revocation_bites_on_the_next_request_in_another_process(
    app: Flask, make_app, acme: Partner, acme_user: User, acme_admin: User, revoker: str
) -> None:
    """Revoked through a second app instance (another worker); the victim's next click fails."""
    victim = logged_in(app, acme_user)
    [record] = [s for s in rows(UserSession) if s.user_id == acme_user.id]
    other_process = make_app()
    if revoker == "user":  # the same user, from another device
        response = logged_in(other_process, acme_user).post_form("/account/sessions/revoke-others")
    elif revoker == "admin":
        response = logged_in(other_process, acme_admin).post_form(
            f"/admin/sessions/user/{acme_user.id}/revoke"
        )
    elif revoker == "password_change":
        response = logged_in(other_process, acme_user).post_form(
            "/account/password",
            {
                "current_password": PASSWORD,
                "password": "n3w-passphrase!",
                "confirm": "n3w-passphrase!",
            },
        )
    elif revoker == "deactivation":
        response = logged_in(other_process, acme_admin).post_form(
            f"/admin/users/{acme_user.id}/deactivate"
        )
    else:
        db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
        db.session.commit()
        operator = host_client(other_process, None)
        assert operator.login("op@portal.test").status_code == 302
        response = operator.post_form(
            f"/operator/partners/{acme.id}/suspend", {"reason": "contract ended"}
        )
    assert response.status_code == 302, response.text
    assert not is_in(victim)
    if revoker != "partner_suspension":
        assert victim.get("/").headers["Location"].startswith("/login")
    assert rows(UserSession, id=record.id)[0].revoked_at is not None


def test_user_revokes_own_sessions(app: Flask, acme_user: User) -> None:
    laptop = logged_in(app, acme_user)
    phone = host_client(app, "acme")
    phone.login(acme_user.email, environ_base={"HTTP_USER_AGENT": UA_PHONE})
    page = laptop.get("/account/sessions/")
    assert "Mobile Safari on iOS" in page.text and "this device" in page.text
    phone_record = next(s for s in rows(UserSession) if s.user_agent == UA_PHONE)
    response = laptop.post_form(
        f"/account/sessions/{phone_record.id}/revoke", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and "Mobile Safari" not in response.text
    assert not is_in(phone) and is_in(laptop)
    third = logged_in(app, acme_user)
    laptop.post_form("/account/sessions/revoke-others")
    assert not is_in(third) and is_in(laptop)


def test_signing_out_the_current_session_from_the_list(app: Flask, acme_user: User) -> None:
    client = logged_in(app, acme_user)
    [record] = rows(UserSession)
    response = client.post_form(
        f"/account/sessions/{record.id}/revoke", headers={"HX-Request": "true"}
    )
    assert response.headers["HX-Redirect"] == "/login"
    assert not is_in(client)


def test_nobody_touches_other_users_sessions(
    app: Flask, acme: Partner, acme_user: User, acme_admin: User, globex_user: User
) -> None:
    neighbour = make_user(acme, "bob@acme.test")
    alice = logged_in(app, acme_user)
    bob = logged_in(app, neighbour)
    gus = logged_in(app, globex_user)
    bob_record = next(s for s in rows(UserSession) if s.user_id == neighbour.id)
    gus_record = next(s for s in rows(UserSession) if s.user_id == globex_user.id)
    assert "bob@acme.test" not in alice.get("/account/sessions/").text
    assert alice.post_form(f"/account/sessions/{bob_record.id}/revoke").status_code == 404
    assert alice.get("/admin/sessions/").status_code == 403
    assert alice.post_form(f"/admin/sessions/{bob_record.id}/revoke").status_code == 403
    admin = logged_in(app, acme_admin)
    assert admin.post_form(f"/admin/sessions/{gus_record.id}/revoke").status_code == 404
    assert admin.post_form(f"/admin/sessions/user/{globex_user.id}/revoke").status_code == 404
    assert "gus@globex.test" not in admin.get("/admin/sessions/").text
    assert is_in(bob) and is_in(gus)
    assert all(s.revoked_at is None for s in rows(UserSession))


def test_admin_revokes_per_user_and_everyone(
    app: Flask, acme: Partner, acme_user: User, acme_admin: User, globex_user: User
) -> None:
    alice1, alice2 = logged_in(app, acme_user), logged_in(app, acme_user)
    bob = logged_in(app, make_user(acme, "bob@acme.test"))
    gus = logged_in(app, globex_user)
    admin = logged_in(app, acme_admin)
    listing = admin.get("/admin/sessions/?user=alice").text
    assert listing.count("alice@acme.test") == 2 and "bob@acme.test" not in listing
    admin.post_form(f"/admin/sessions/user/{acme_user.id}/revoke")
    assert not is_in(alice1) and not is_in(alice2) and is_in(bob)
    admin.post_form("/admin/sessions/revoke-all")
    assert not is_in(bob) and is_in(admin) and is_in(gus)
    actions = [e.action for e in rows(AuditEvent)]
    assert "session.revoke_all" in actions and "session.revoke_partner" in actions


def test_partner_suspension_ends_sessions(app: Flask, acme: Partner, acme_user: User) -> None:
    client = logged_in(app, acme_user)
    operator = Operator(email="op@portal.test", password_hash="x")
    db.session.add(operator)
    db.session.commit()
    suspend_partner(operator, acme, "unpaid invoices")
    db.session.commit()
    page = client.get("/")
    assert page.status_code == 403 and "unavailable" in page.text
    reactivate_partner(operator, acme)
    db.session.commit()
    assert not is_in(client)  # suspension ended it for good
    assert rows(UserSession)[0].revoked_reason == "partner suspended: unpaid invoices"


def test_cookie_attributes_in_development(acme_client: HostClient, acme_user: User) -> None:
    header = acme_client.login(acme_user.email).headers["Set-Cookie"]
    assert re.match(r"portal_auth=[A-Za-z0-9_-]{43}; ", header)
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Domain" not in header and "Secure" not in header and "Expires" not in header


def test_cookie_attributes_in_production(make_app, acme: Partner, acme_user: User) -> None:
    prod = make_app(PORTAL_ENV="production", PASSWORD_HASH_PROFILE="cheapest")
    client = prod.test_client()
    base = "https://acme.localhost"
    page = client.get("/login", base_url=base).text
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    response = client.post(
        "/login",
        base_url=base,
        data={"email": acme_user.email, "password": PASSWORD, "csrf_token": token},
        headers={"Referer": f"{base}/login"},  # Flask-WTF checks it strictly over HTTPS
    )
    cookies = response.headers.getlist("Set-Cookie")
    auth = next(c for c in cookies if c.startswith("__Host-portal_auth="))
    assert "Secure" in auth and "HttpOnly" in auth and "SameSite=Lax" in auth
    assert "Path=/" in auth and "Domain" not in auth
    assert any(c.startswith("__Host-portal=") and "Secure" in c for c in cookies)


def test_remember_me(
    app: Flask, acme: Partner, acme_user: User, globex: Partner, frozen_clock
) -> None:
    client = host_client(app, "acme")
    assert "Keep me signed in" not in client.get("/login").text
    set_policy(acme, remember_me_allowed=True, remember_me_days=14)
    assert "Keep me signed in on this device for 14 days" in client.get("/login").text
    token = client.csrf_token()
    response = client.post(
        "/login",
        data={"email": acme_user.email, "password": PASSWORD, "remember": "y", "csrf_token": token},
    )
    assert "Expires=" in response.headers["Set-Cookie"]
    [record] = rows(UserSession)
    assert record.remember and record.expires_at == frozen_clock.now() + timedelta(days=14)
    frozen_clock.advance(timedelta(days=3))  # far past the idle timeout
    assert is_in(client)
    stolen = client.get_cookie("portal_auth", domain="acme.localhost").value
    elsewhere = host_client(app, "globex")
    elsewhere.set_cookie("portal_auth", stolen, domain="globex.localhost")
    assert not is_in(elsewhere)
    frozen_clock.advance(timedelta(days=11, seconds=1))
    assert not is_in(client)


def test_remember_me_ignored_when_not_allowed(app: Flask, acme_user: User) -> None:
    client = host_client(app, "acme")
    token = client.csrf_token()
    client.post(
        "/login",
        data={"email": acme_user.email, "password": PASSWORD, "remember": "y", "csrf_token": token},
    )
    assert rows(UserSession)[0].remember is False


def test_session_policy_page(app: Flask, acme: Partner, acme_admin: User) -> None:
    admin = logged_in(app, acme_admin)
    good = {
        "idle_minutes": "45",
        "absolute_hours": "8",
        "max_concurrent": "3",
        "at_limit": "deny_new",
        "remember_me_allowed": "1",
        "remember_me_days": "30",
    }
    for field, value, message in [
        ("idle_minutes", "2", "idle timeout must be between 5 minutes and 24 hours"),
        ("absolute_hours", "abc", "enter a whole number"),
        ("max_concurrent", "0", "between 1 and 100"),
        ("at_limit", "explode", "evict_oldest or deny_new"),
        ("remember_me_days", "365", "between 1 and 90 days"),
    ]:
        response = admin.post_form("/admin/settings/sessions", {**good, field: value})
        assert response.status_code == 422, field
        assert message in response.text.lower(), field
    db.session.refresh(acme)
    assert acme.session_policy == SessionPolicy()
    assert admin.post_form("/admin/settings/sessions", good).status_code == 302
    db.session.refresh(acme)
    assert acme.session_policy == SessionPolicy(
        idle_minutes=45,
        absolute_hours=8,
        max_concurrent=3,
        at_limit="deny_new",
        remember_me_allowed=True,
        remember_me_days=30,
    )
    assert "settings.session_policy_update" in [e.action for e in rows(AuditEvent)]
    basic = logged_in(app, make_user(acme, "b@acme.test", role=Role.BASIC))
    assert basic.post_form("/admin/settings/sessions", good).status_code == 403


def test_device_labels() -> None:
    from portal.sessions.devices import device_label

    assert device_label(UA_PHONE) == "Mobile Safari on iOS (iPhone)"
    assert device_label(None) == "Unknown device"
    assert device_label("") == "Unknown device"
