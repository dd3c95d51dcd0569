"""Sign-up and password-reset mail: no address oracle, and limits per address, client and partner.

Through the real pages. "The same work" is shown by what a request costs (password hashes,
mail templates rendered, emails stored) rather than by timing it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from argon2 import PasswordHasher
from conftest import HostClient, host_client, make_user, rows, set_feature
from flask import Flask, template_rendered
from mailed import mails_to

from portal.audit.models import AuditEvent
from portal.mail.models import OutboxMessage
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus

CSRF_TOKEN = re.compile(r'(?<="X-CSRFToken": ")[^"]+|(?<=name="csrf_token" value=")[^"]+')


def sign_up(client: HostClient, email: str, ip: str = "10.0.0.1") -> Any:
    return client.post_form(
        "/signup", {"email": email, "display_name": "Some One"}, environ_base={"REMOTE_ADDR": ip}
    )


def ask_for_reset(client: HostClient, email: str, ip: str = "10.0.0.1") -> Any:
    return client.post_form("/password/forgot", {"email": email}, environ_base={"REMOTE_ADDR": ip})


def answer(client: HostClient, response: Any) -> tuple[int, str, str]:
    """What the visitor sees: status, where it leads and that page (CSRF tokens aside)."""
    page = client.get(response.headers["Location"])
    return response.status_code, response.headers["Location"], CSRF_TOKEN.sub("", page.text)


def outcomes(action: str) -> list[Any]:
    return [
        e.details.get("outcome", e.details.get("limit")) for e in rows(AuditEvent, action=action)
    ]


@pytest.fixture
def work(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """What requests cost: argon2 hashes and verifications, mail templates rendered."""
    cost: Counter[str] = Counter()
    for name in ("hash", "verify"):
        original = getattr(PasswordHasher, name)

        def counting(self: PasswordHasher, *args: Any, _name=name, _original=original, **kw: Any):
            cost[_name] += 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(PasswordHasher, name, counting)

    def rendered(_sender: Flask, template: Any, context: Any, **extra: Any) -> None:
        if "/mail/" in template.name:  # "@<theme>/mail/…"
            cost["mail templates"] += 1

    with template_rendered.connected_to(rendered, app):
        yield cost


@pytest.fixture
def signup_on(acme: Partner) -> Partner:
    set_feature(acme, "self_signup")
    return acme


# --- No address oracle ------------------------------------------------------------------------


def known_address(app: Flask, acme: Partner, kind: str, clock: Any) -> None:
    if kind == "pending sign-up":
        sign_up(host_client(app, "acme"), "known@acme.test", ip="10.7.7.7")
        clock.advance(timedelta(minutes=2))  # past the one-minute "link on its way" interval
        return
    status = {
        "active": UserStatus.ACTIVE,
        "invited": UserStatus.INVITED,
        "deactivated": UserStatus.DEACTIVATED,
    }[kind]
    password = None if status == UserStatus.INVITED else "correct-horse-battery"
    make_user(acme, "known@acme.test", status=status, password=password)


@pytest.mark.parametrize("kind", ["active", "invited", "pending sign-up", "deactivated"])
def test_a_known_address_and_a_new_one_cost_and_answer_the_same(
    app: Flask, signup_on: Partner, work: Counter[str], frozen_clock: Any, kind: str
) -> None:
    known_address(app, signup_on, kind, frozen_clock)
    seen = {}
    for address in ("known@acme.test", "new@acme.test"):
        client = host_client(app, "acme")
        work.clear()
        mails = len(rows(OutboxMessage))
        response = sign_up(client, address)
        cost = dict(work)
        seen[address] = (answer(client, response), cost, len(rows(OutboxMessage)) - mails)
    assert seen["known@acme.test"] == seen["new@acme.test"]
    # No password hashed on either path; one email rendered (text and HTML) and stored.
    assert seen["new@acme.test"][1:] == ({"mail templates": 2}, 1)


def test_when_the_client_is_limited_nothing_is_sent_and_the_answer_is_the_same(
    app: Flask,
    signup_on: Partner,
    acme_user: User,
    work: Counter[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = host_client(app, "acme")
    # Ten requests an hour from one address may send mail: sign-ups and resets together.
    for i in range(8):
        sign_up(client, f"filler{i}@acme.test", ip="10.9.9.9")
    ask_for_reset(client, "alice@acme.test", ip="10.9.9.9")
    ask_for_reset(client, "nobody@acme.test", ip="10.9.9.9")
    users, mails = len(rows(User)), len(rows(OutboxMessage))
    assert mails == 9

    work.clear()
    seen = {
        address: answer(client, sign_up(client, address, ip="10.9.9.9"))
        for address in ("alice@acme.test", "brand-new@acme.test")
    }
    assert seen["alice@acme.test"] == seen["brand-new@acme.test"]
    resets = {
        address: answer(client, ask_for_reset(client, address, ip="10.9.9.9"))
        for address in ("alice@acme.test", "nobody@acme.test")
    }
    assert resets["alice@acme.test"] == resets["nobody@acme.test"]
    assert (len(rows(User)), len(rows(OutboxMessage))) == (users, mails)
    assert work == Counter()
    assert outcomes("account.signup_limited") == ["client address", "client address"]
    assert (
        outcomes("account.password_reset_request")[-2:]
        == ["limit per client address reached, nothing sent"] * 2
    )
    assert any("mail limit per client address reached" in r.getMessage() for r in caplog.records)

    # Another client address is not affected.
    sign_up(client, "brand-new@acme.test", ip="10.1.1.1")
    assert len(mails_to("brand-new@acme.test")) == 1


def test_the_partner_limit_holds_across_client_addresses_and_stays_on_its_partner(
    make_app: Any, data: Flask, signup_on: Partner, globex: Partner, acme_user: User
) -> None:
    app = make_app(MAIL_LIMIT_PER_PARTNER="3/hour")
    set_feature(globex, "self_signup")
    acme = host_client(app, "acme")
    for i in range(3):
        sign_up(acme, f"p{i}@acme.test", ip=f"10.2.{i}.1")
    assert len(rows(OutboxMessage)) == 3
    limited = answer(acme, sign_up(acme, "p3@acme.test", ip="10.2.3.1"))
    assert limited == answer(acme, sign_up(acme, "alice@acme.test", ip="10.2.4.1"))
    ask_for_reset(acme, "alice@acme.test", ip="10.2.5.1")
    assert len(rows(OutboxMessage)) == 3
    assert outcomes("account.signup_limited") == ["partner", "partner"]
    # Globex's visitors are not held up by acme's.
    sign_up(host_client(app, "globex"), "g@globex.test", ip="10.2.0.1")
    assert len(mails_to("g@globex.test")) == 1


# --- Per address ------------------------------------------------------------------------------


def test_one_notice_per_address_per_hour(
    app: Flask, signup_on: Partner, acme_user: User, windows_follow_the_clock: Any
) -> None:
    client = host_client(app, "acme")
    for i in range(5):
        assert sign_up(client, "alice@acme.test", ip=f"10.3.{i}.1").status_code == 302
        windows_follow_the_clock.advance(timedelta(minutes=5))
    [notice] = mails_to("alice@acme.test")
    assert notice.subject.startswith("Someone tried to sign up with your address")
    assert "at most once an hour" in notice.body_text
    assert (
        outcomes("account.signup_existing")
        == ["notice sent"] + ["notice sent within the hour, nothing sent"] * 4
    )
    windows_follow_the_clock.advance(timedelta(minutes=36))  # an hour after the first
    sign_up(client, "alice@acme.test", ip="10.3.9.1")
    assert len(mails_to("alice@acme.test")) == 2


def test_links_to_one_pending_address_are_limited(
    app: Flask, signup_on: Partner, windows_follow_the_clock: Any
) -> None:
    client = host_client(app, "acme")
    for i in range(5):
        sign_up(client, "sam@acme.test", ip=f"10.4.{i}.1")
        windows_follow_the_clock.advance(timedelta(minutes=2))
    assert len(mails_to("sam@acme.test")) == 3  # the first link and two more, per hour
    assert (
        outcomes("account.signup_existing")[-2:]
        == ["limit of links per address reached, nothing sent"] * 2
    )
    windows_follow_the_clock.advance(timedelta(hours=1))
    sign_up(client, "sam@acme.test", ip="10.4.9.1")
    assert len(mails_to("sam@acme.test")) == 4


def test_reset_links_to_one_address_are_limited(
    app: Flask, acme_user: User, windows_follow_the_clock: Any
) -> None:
    client = host_client(app, "acme")
    for i in range(5):
        assert ask_for_reset(client, "alice@acme.test", ip=f"10.5.{i}.1").status_code == 302
        windows_follow_the_clock.advance(timedelta(minutes=2))
    assert len(mails_to("alice@acme.test")) == 3
    assert (
        outcomes("account.password_reset_request")[-2:]
        == ["limit per address reached, nothing sent"] * 2
    )


def test_limits_count_in_redis_across_processes(
    make_app: Any, data: Flask, signup_on: Partner, acme_user: User, redis_url: str
) -> None:
    prefix = f"portal-test-{secrets.token_hex(4)}"
    first = make_app(fresh=True, RATELIMIT_STORAGE_URL=redis_url, RATELIMIT_KEY_PREFIX=prefix)
    second = make_app(fresh=True, RATELIMIT_STORAGE_URL=redis_url, RATELIMIT_KEY_PREFIX=prefix)
    try:
        sign_up(host_client(first, "acme"), "alice@acme.test", ip="10.6.0.1")
        sign_up(host_client(second, "acme"), "alice@acme.test", ip="10.6.0.2")
        assert len(mails_to("alice@acme.test")) == 1  # one notice an hour, in either process
        assert list(redis.Redis.from_url(redis_url).scan_iter(f"*{prefix}*")), "not in Redis"
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)


def test_a_deactivated_owner_is_told_too(app: Flask, signup_on: Partner) -> None:
    make_user(signup_on, "gone@acme.test", status=UserStatus.DEACTIVATED)
    sign_up(host_client(app, "acme"), "gone@acme.test")
    [notice] = mails_to("gone@acme.test")
    assert "Your account is deactivated" in notice.body_text
    assert rows(User, email="gone@acme.test")[0].status == UserStatus.DEACTIVATED


@pytest.mark.parametrize("known", [True, False], ids=["known-address", "new-address"])
def test_answers_wait_for_the_floor_whatever_the_address(
    make_app, data: Flask, acme: Partner, known: bool
) -> None:
    """With a floor, a sign-up takes at least that long, committed work included, so its
    timing cannot tell a known address from a new one (the work itself still differs)."""
    floored = make_app(ANSWER_FLOOR=0.25)
    set_feature(acme, "self_signup")
    if known:
        make_user(acme, "someone@acme.test")
    client = host_client(floored, "acme")
    token = CSRF_TOKEN.search(client.get("/signup").text).group(0)
    started = time.monotonic()
    response = client.post(
        "/signup", data={"email": "someone@acme.test", "display_name": "S", "csrf_token": token}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 302 and elapsed >= 0.25
    assert client.get("/signup").status_code == 200  # a page that needs no floor does not wait


def test_email_change_mail_is_limited_like_sign_up(app: Flask, acme: Partner) -> None:
    """Changing one's address mails the new one: the same limits, per client and partner."""
    from conftest import logged_in

    user = make_user(acme, "pat@acme.test")
    client = logged_in(app, user)
    victims = [f"victim{n}@example.org" for n in range(12)]
    for address in victims:
        response = client.post_form(
            "/account/email",
            {"new_email": address, "password": "correct-horse-battery"},
            environ_base={"REMOTE_ADDR": "10.0.0.9"},
        )
        assert response.status_code == 302  # the same answer, limited or not
    sent = [m for m in rows(OutboxMessage) if m.to_address.startswith("victim")]
    assert len(sent) == 10  # PORTAL_MAIL_LIMIT_PER_IP: 10 an hour
    limited = [e for e in rows(AuditEvent, action="account.email_change_request")]
    assert sum("nothing sent" in e.details["outcome"] for e in limited) == 2
