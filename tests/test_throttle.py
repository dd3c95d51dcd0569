"""Login throttling: failed attempts per partner+email and per IP, in memory or in Redis."""

from __future__ import annotations

import secrets

import redis
from conftest import PASSWORD, host_client, make_user, rows
from flask import Flask

from portal.audit.models import AuditEvent
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.users.models import User

THROTTLED = "Too many failed sign-in attempts. Please wait a few minutes and try again."


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
