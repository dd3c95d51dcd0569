"""/reports: the usage report a plan unlocks, as its reader sees it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from conftest import logged_in, make_user
from flask import Flask
from test_subscriptions import plan

from portal.audit.services import record_audit
from portal.extensions import db
from portal.roles.models import Role
from portal.sessions.services import ClientInfo, start_user_session
from portal.subscriptions.services import ActorKind, accept_terms, start_signing
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Safari/605.1.15"
)


def _entitled(partner: Partner, email: str) -> User:
    user = make_user(partner, email, role=Role.BASIC)
    with partner_scope(partner):
        me = db.session.get(User, user.id)
        sub = start_signing(me, plan("rep", ents=("reports",)), actor=me, kind=ActorKind.USER)
        accept_terms(sub, actor=me)
        db.session.commit()
    return user


def _signed_in_at(partner: Partner, user_id: int, at: datetime, agent: str, clock) -> None:
    """A sign-in as the portal records one: the audit event and the session, at `at`."""
    now = clock.now()
    clock.freeze(at)
    with partner_scope(partner):
        user = db.session.get(User, user_id)
        start_user_session(user, ClientInfo("203.0.113.5", agent))
        record_audit("auth.login", target=user, actor=user)
        db.session.commit()
    clock.freeze(now)


def test_the_report_counts_the_users_own_sign_ins_per_day_and_device(
    app: Flask, acme: Partner, globex: Partner, frozen_clock
) -> None:
    rita = _entitled(acme, "rita@acme.test")
    day = frozen_clock.now().replace(hour=0)  # 2026-03-02
    for at, agent in [
        (day - timedelta(hours=14), FIREFOX_LINUX.format(v=120)),
        (day - timedelta(hours=13), FIREFOX_LINUX.format(v=121)),  # another version, one label
        (day + timedelta(hours=8), CHROME_WINDOWS),
        (day - timedelta(days=45), SAFARI_MAC),  # before the 30 days: not counted
    ]:
        _signed_in_at(acme, rita.id, at, agent, frozen_clock)
    colleague = make_user(acme, "colleague@acme.test")
    _signed_in_at(acme, colleague.id, day - timedelta(hours=12), SAFARI_MAC, frozen_clock)
    # Globex's user with the same id-as-text as a target would be Rita's: never counted here.
    twin = make_user(globex, "rita@acme.test")
    _signed_in_at(globex, twin.id, day - timedelta(hours=12), SAFARI_MAC, frozen_clock)

    page = logged_in(app, rita).get("/reports/")
    assert page.status_code == 200
    text = page.text
    assert re.search(r'class="big-number">4<', text)  # three above, and this test's sign-in
    bars = dict(re.findall(r'title="(\d{4}-\d\d-\d\d): (\d+)"', text))
    assert len(bars) == 30 and min(bars) == "2026-02-01" and max(bars) == "2026-03-02"
    assert {d: n for d, n in bars.items() if n != "0"} == {"2026-03-01": "2", "2026-03-02": "2"}
    devices = re.findall(r"<li>(.+?) — (\d+)</li>", text)
    assert devices[0] == ("Firefox on Linux", "2")
    assert set(devices[1:]) == {("Chrome on Windows", "1"), ("Unknown device", "1")}
    assert "Safari" not in text
