"""In the browser: the pages work under the Content-Security-Policy, with no inline script."""

from __future__ import annotations

import pytest
from browser import LiveServer, declining_dialogs, signed_in
from conftest import PASSWORD, make_user, set_feature

from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User

pytestmark = pytest.mark.browser

PAGES = [
    "/",
    "/admin/users/",
    "/admin/users/invite",
    "/admin/roles/",
    "/admin/plans/",
    "/admin/subscriptions/",
    "/admin/features/",
    "/admin/sessions/",
    "/admin/audit/",
    "/admin/settings/sessions",
    "/account/profile",
    "/account/sessions/",
    "/account/subscription/",
]


def test_pages_raise_no_policy_violations_and_the_small_scripts_work(
    live_server: LiveServer, browser, acme: Partner, acme_admin: User
) -> None:
    set_feature(acme, "subscriptions", True)
    make_user(acme, "bea@acme.test", role=Role.BASIC)
    page = signed_in(browser, live_server, acme_admin.email, PASSWORD)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    for path in PAGES:
        response = page.goto(live_server.url("acme", path))
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
    # <select data-autosubmit>: choosing a state filters the list at once.
    page.goto(live_server.url("acme", "/admin/subscriptions/"))
    page.get_by_label("State").select_option("suspended")
    page.wait_for_url("**/admin/subscriptions/?*state=suspended*")
    # <form data-confirm>: declining the question keeps everyone signed in.
    page.goto(live_server.url("acme", "/admin/sessions/"))
    questions = declining_dialogs(page)
    page.get_by_role("button", name="Sign out everyone else").click()
    assert questions == ["Sign out everyone except you?"]
    assert page.url.endswith("/admin/sessions/")
    assert problems == []
    page.context.close()
