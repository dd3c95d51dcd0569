"""Login throttling through the real sign-in pages: failures per account and client address, per
account from anywhere, per client address on each host; in memory or in Redis."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import timedelta
from typing import Any

import redis
from conftest import PASSWORD, host_client, make_user, rows
from flask import Flask

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.users.models import User

THROTTLED = "Too many failed sign-in attempts. Please wait a few minutes and try again."
WRONG = "wrong-password!"


def signer(app: Flask, slug: str | None, ip: str) -> Any:
    """Sign-in attempts through /login from one client address, each answered with its status."""
    browser: dict[str, Any] = {}

    def attempt(email: str, password: str = WRONG) -> int:
        if not browser:  # a new browser after each sign-in
            browser["client"] = client = host_client(app, slug)
            browser["token"] = client.csrf_token()
        data = {"email": email, "password": password, "csrf_token": browser["token"]}
        response = browser["client"].post("/login", data=data, environ_base={"REMOTE_ADDR": ip})
        if response.status_code == 302:
            browser.clear()
        return response.status_code

    return attempt


def fail(app: Flask, slug: str, email: str, times: int, ip: str = "10.0.0.1") -> list[int]:
    client = host_client(app, slug)
    return [
        client.login(email, "wrong-password!", environ_base={"REMOTE_ADDR": ip}).status_code
        for _ in range(times)
    ]


def test_sixth_wrong_password_is_refused_even_with_the_right_one(
    app: Flask, acme_user: User
) -> None:
    assert fail(app, "acme", acme_user.email, 5) == [422] * 5
    client = host_client(app, "acme")
    response = client.login(acme_user.email, PASSWORD, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert response.status_code == 429
    assert THROTTLED in response.text
    assert rows(UserSession) == []
    assert "auth.login_throttled" in [e.action for e in rows(AuditEvent)]


def test_the_limit_is_per_account_and_per_partner(
    app: Flask, acme: Partner, globex: Partner, acme_user: User
) -> None:
    make_user(globex, acme_user.email)  # the same address in another partner
    bob = make_user(acme, "bob@acme.test")
    fail(app, "acme", acme_user.email, 5, ip="10.0.0.2")
    assert host_client(app, "acme").login(bob.email).status_code == 302
    assert host_client(app, "globex").login(acme_user.email).status_code == 302
    # Successful logins do not count: a real user is never locked out by their own use.
    for _ in range(8):
        assert host_client(app, "acme").login(bob.email).status_code == 302


def test_the_limit_per_ip_spans_accounts(app: Flask, acme: Partner, acme_user: User) -> None:
    for i in range(6):
        fail(app, "acme", f"guess{i}@acme.test", 5, ip="10.9.9.9")
    client = host_client(app, "acme")
    refused = client.login(acme_user.email, PASSWORD, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert refused.status_code == 429
    ok = client.login(acme_user.email, PASSWORD, environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert ok.status_code == 302


def test_the_limit_per_ip_is_per_host(
    app: Flask, acme: Partner, globex: Partner, acme_user: User, data: Flask
) -> None:
    """30 failures on acme from one address lock neither globex's admin nor the operator out."""
    boss = make_user(globex, "boss@globex.test", role=Role.ADMIN)
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    on_acme = signer(app, "acme", "10.9.9.9")
    statuses = [on_acme(f"guess{i}@acme.test") for i in range(6) for _ in range(5)]
    assert statuses == [422] * 30
    assert on_acme(acme_user.email, PASSWORD) == 429  # the address is used up on acme...
    assert signer(app, "globex", "10.9.9.9")(boss.email, PASSWORD) == 302  # ...not on globex
    assert signer(app, None, "10.9.9.9")("op@portal.test", PASSWORD) == 302  # nor on the root
    # And the other way round: the operator console's failures stay there.
    on_root = signer(app, None, "10.8.8.8")
    assert [on_root(f"guess{i}@portal.test") for i in range(6) for _ in range(5)] == [422] * 30
    assert on_root("op@portal.test", PASSWORD) == 429
    assert signer(app, "acme", "10.8.8.8")(acme_user.email, PASSWORD) == 302


def test_an_attacker_on_one_address_never_keeps_the_owner_out(
    app: Flask, acme_user: User, windows_follow_the_clock: Any
) -> None:
    """One wrong password every 5 s for 20 minutes; the owner signs in every minute meanwhile."""
    attacker = signer(app, "acme", "203.0.113.7")
    owner = signer(app, "acme", "198.51.100.20")
    attempts: Counter[int] = Counter()
    owner_statuses = []
    for second in range(0, 20 * 60, 5):
        attempts[attacker(acme_user.email)] += 1
        if second % 60 == 30:
            owner_statuses.append(owner(acme_user.email, PASSWORD))
        windows_follow_the_clock.advance(timedelta(seconds=5))
    assert owner_statuses == [302] * 20
    # The attacker's own address got five guesses per window and nothing more: attempts
    # refused meanwhile did not count, so they did not renew anything either.
    assert 5 <= attempts[422] <= 5 * 5 and attempts[429] >= 240 - 25
    assert set(attempts) == {422, 429}


def test_refused_attempts_do_not_count_and_many_addresses_lock_the_account(
    app: Flask, acme: Partner, acme_user: User, windows_follow_the_clock: Any
) -> None:
    """The account-wide bound: 20 failures in 5 minutes, from however many addresses."""
    bob = make_user(acme, "bob@acme.test")
    first = signer(app, "acme", "203.0.113.1")
    assert [first(acme_user.email) for _ in range(100)] == [422] * 5 + [429] * 95
    # Only those five count towards the account: 14 more from three addresses leave it at 19.
    for i, times in enumerate((5, 5, 4), start=2):
        attacker = signer(app, "acme", f"203.0.113.{i}")
        assert [attacker(acme_user.email) for _ in range(times)] == [422] * times
    assert signer(app, "acme", "198.51.100.1")(acme_user.email, PASSWORD) == 302
    # The twentieth failure, from a fifth address, locks the account for every address...
    assert signer(app, "acme", "203.0.113.5")(acme_user.email) == 422
    owner = signer(app, "acme", "198.51.100.2")
    assert owner(acme_user.email, PASSWORD) == 429
    assert owner(bob.email, PASSWORD) == 302  # ...and that account only
    # ...until the window has moved past the failures.
    windows_follow_the_clock.advance(timedelta(minutes=5, seconds=1))
    assert owner(acme_user.email, PASSWORD) == 302


def test_redis_storage_holds_the_limit_across_two_app_instances(
    make_app, data: Flask, acme_user: User, redis_url: str
) -> None:
    prefix = f"portal-test-{secrets.token_hex(4)}"
    first = make_app(fresh=True, RATELIMIT_STORAGE_URL=redis_url, RATELIMIT_KEY_PREFIX=prefix)
    second = make_app(fresh=True, RATELIMIT_STORAGE_URL=redis_url, RATELIMIT_KEY_PREFIX=prefix)
    try:
        assert fail(first, "acme", acme_user.email, 3) == [422] * 3
        assert fail(second, "acme", acme_user.email, 2) == [422] * 2
        response = host_client(first, "acme").login(
            acme_user.email, PASSWORD, environ_base={"REMOTE_ADDR": "10.0.0.1"}
        )
        assert response.status_code == 429
        assert list(redis.Redis.from_url(redis_url).scan_iter(f"*{prefix}*")), "not in Redis"
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)


def test_a_stolen_session_cannot_guess_the_current_password(app: Flask, acme_user: User) -> None:
    """The current-password checks of the password and email forms count as failed sign-ins."""
    from conftest import logged_in

    thief = logged_in(app, acme_user)
    where = {"REMOTE_ADDR": "10.0.0.66"}
    statuses = [
        thief.post_form(
            "/account/password",
            {"current_password": f"guess-{n}-xxxxxxxx", "password": "n" * 12, "confirm": "n" * 12},
            environ_base=where,
        ).status_code
        for n in range(5)
    ]
    assert statuses == [422] * 5
    right = thief.post_form(
        "/account/email",
        {"new_email": "thief@example.org", "password": PASSWORD},
        environ_base=where,
    )
    assert right.status_code == 422 and THROTTLED in right.text  # even the right one, now
    assert rows(User, id=acme_user.id)[0].email == "alice@acme.test"
    # The owner, elsewhere, is not locked out by it.
    owner = host_client(app, "acme")
    assert owner.login(acme_user.email, environ_base={"REMOTE_ADDR": "10.0.0.3"}).status_code == 302
