"""In the browser: a basic user subscribes, an admin suspends with a reason and resumes."""

from __future__ import annotations

import pytest
from browser import LiveServer, declining_dialogs, signed_in
from conftest import PASSWORD, make_user, rows
from playwright.sync_api import expect
from test_subscriptions import plan

from portal.extensions import db
from portal.roles.models import Role
from portal.subscriptions.models import Subscription
from portal.subscriptions.models import SubscriptionState as S
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

pytestmark = pytest.mark.browser

PLAN_NAME = """Gold "Best" </script> it's"""  # the page and its cancel prompt must keep it whole


def test_subscribe_suspend_resume(
    live_server: LiveServer, browser, acme: Partner, acme_admin: User
) -> None:
    basic = make_user(acme, "basic@acme.test", role=Role.BASIC, display_name="Basil Basic")
    with partner_scope(acme):
        gold = plan("gold")
        gold.name = PLAN_NAME
        db.session.commit()
    user = signed_in(browser, live_server, basic.email, PASSWORD)
    user.goto(live_server.url("acme", "/account/subscription/"))
    user.get_by_role("button", name=f"Choose {PLAN_NAME}").click()
    expect(user.locator("#pending header")).to_contain_text(f"Being signed: {PLAN_NAME}")
    user.get_by_label(f"I accept the terms of the {PLAN_NAME} plan").check()
    user.get_by_role("button", name="Confirm").click()
    expect(user.get_by_text(f"You are subscribed to {PLAN_NAME}.")).to_be_visible()
    expect(user.locator("#current .badge")).to_have_text("signed")
    [sub] = rows(Subscription)
    assert sub.state == S.SIGNED

    admin = signed_in(browser, live_server, acme_admin.email, PASSWORD)
    admin.goto(live_server.url("acme", "/admin/subscriptions/"))
    row = admin.locator(f"#sub-{sub.id}")
    row.locator("summary", has_text="Suspend").click()
    row.get_by_label("Reason to suspend").fill("Invoice 42 unpaid")
    row.get_by_role("button", name="Suspend", exact=True).click()
    expect(admin.locator(f"#sub-{sub.id} .badge")).to_have_text("suspended")
    assert rows(Subscription, id=sub.id)[0].state == S.SUSPENDED

    user.reload()
    expect(user.locator("#current .badge")).to_have_text("suspended")
    expect(user.locator("#current")).to_contain_text("Reason: Invoice 42 unpaid.")

    admin.locator(f"#sub-{sub.id}").get_by_role("button", name="Resume").click()
    expect(admin.locator(f"#sub-{sub.id} .badge")).to_have_text("signed")
    assert rows(Subscription, id=sub.id)[0].state == S.SIGNED
    user.reload()
    expect(user.locator("#current .badge")).to_have_text("signed")
    expect(user.locator("#current")).not_to_contain_text("Reason:")

    prompts = declining_dialogs(user)
    user.get_by_role("button", name="Cancel subscription").click()
    assert prompts == [f"End your subscription to {PLAN_NAME}?"]
    assert rows(Subscription, id=sub.id)[0].state == S.SIGNED  # declined: nothing sent
    for page in (user, admin):
        page.context.close()
