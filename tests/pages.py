"""The demo, seeded into a test database, and its main pages per person: what the accessibility
checks and the persona journeys walk."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.api.models import ApiClient
from portal.audit.models import AuditEvent
from portal.demo.seed import DEMO_PASSWORD, OPERATOR_EMAIL
from portal.extensions import db
from portal.features.services import switch_feature
from portal.mail.models import MailStatus, OutboxMessage
from portal.roles.models import Role
from portal.tenancy.models import Partner, Theme
from portal.tenancy.scope import partner_scope, unscoped
from portal.users.models import User
from portal.users.services import create_user

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# The audit log page belongs to another change (issue 14), which makes it pass; until it is
# merged it is checked on its own, as an expected failure that says so.
AUDIT_LOG = "/admin/audit/"
# A third partner on the sidebar theme (the demo's two use the default and midnight ones), and
# the demo partner that lets visitors sign up themselves (neither does as seeded).
SIDEBAR = "hooli"
SELF_SIGNUP = "globex"


def seed(app: Flask) -> dict[str, Any]:
    """The demo data (as `make run` has it) and the ids the pages need."""
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    with app.app_context(), unscoped():
        partners = {p.slug: p.id for p in db.session.execute(sa.select(Partner)).scalars()}
        users = {
            (u.email, u.partner_id): u.id for u in db.session.execute(sa.select(User)).scalars()
        }
    # A set-password link for the demo operator (opening it uses nothing up).
    link = app.test_cli_runner().invoke(args=["operator", "link", OPERATOR_EMAIL])
    assert link.exit_code == 0, link.output
    found = re.search(r"(/operator/password/\S+)", link.output)
    assert found, link.output
    with app.app_context(), unscoped():
        sidebar = _seed_for_newer_pages(partners)
        users |= sidebar
        partners[SIDEBAR] = next(iter(sidebar))[1]
        audit_event = db.session.execute(
            sa.select(sa.func.max(AuditEvent.id)).where(AuditEvent.partner_id == partners["acme"])
        ).scalar_one()
    return {
        "partners": partners,
        "users": users,
        "operator_link": found.group(1),
        "audit_event": audit_event,
    }


def _seed_for_newer_pages(partners: dict[str, int]) -> dict[tuple[str, int], int]:
    """What the newer pages need beyond the demo: self sign-up on at one partner, a message
    that failed (so the operator's mail page shows its table), and a partner on the sidebar
    theme with an admin. The demo's API client already fills Acme's API clients table."""
    acme, other = (db.session.get(Partner, partners[slug]) for slug in ("acme", SELF_SIGNUP))
    with partner_scope(acme):
        assert db.session.execute(sa.select(ApiClient.id)).first() is not None
        db.session.add(
            OutboxMessage(
                to_address="basic@acme.test",
                from_address="portal@acme.test",
                subject="Your invitation",
                body_text="Hello",
                body_html="<p>Hello</p>",
                status=MailStatus.FAILED,
                attempts=5,
                error="550 mailbox unavailable",
            )
        )
    with partner_scope(other):
        switch_feature("self_signup", True)
    theme = Theme(base="sidebar", primary_color="#7c3aed", accent_color="#3b0764")
    sidebar = Partner(slug=SIDEBAR, name="Hooli", theme_settings=theme.to_dict())
    db.session.add(sidebar)
    db.session.flush()
    with partner_scope(sidebar):
        admin = create_user(
            f"admin@{SIDEBAR}.test",
            role=Role.ADMIN,
            password=DEMO_PASSWORD,
            display_name="Admin",
            actor=None,
            source="seed-demo",
        )
    db.session.commit()
    return {(admin.email, sidebar.id): admin.id}


def user_id(ids: dict[str, Any], slug: str, email: str) -> int:
    return ids["users"][(email, ids["partners"][slug])]


def partner_pages(ids: dict[str, Any], slug: str) -> dict[str, list[str]]:
    """Every main page of a partner's portal, by who opens it (the email signs them in)."""
    basic = user_id(ids, slug, f"basic@{slug}.test")
    return {
        "": ["/login", "/password/forgot", "/no-such-page"]
        + (["/signup", "/signup?sent=1"] if slug == SELF_SIGNUP else []),
        f"admin@{slug}.test": [
            "/",
            "/account/profile",
            "/account/password",
            "/account/sessions/",
            "/account/activity",
            "/account/identities/",
            "/admin/users/",
            "/admin/users/?sort=role&direction=desc",
            f"/admin/users/{basic}",
            "/admin/users/invite",
            "/admin/roles/",
            "/admin/roles/transitions",
            "/admin/plans/",
            "/admin/plans/new",
            "/admin/subscriptions/",
            "/admin/features/",
            "/admin/settings/",
            "/admin/settings/sessions",
            "/admin/settings/support",
            "/admin/settings/login/",
            "/admin/sessions/",
            "/admin/settings/branding/",
            BRANDING_PREVIEW,
            "/developers",
        ]
        # Acme's: the partner API is on there, with the demo's client, and the audit event.
        + (["/admin/api-clients/", f"/admin/audit/{ids['audit_event']}"] if slug == "acme" else []),
        f"basic@{slug}.test": ["/", "/account/subscription/", "/account/activity"],
        f"guest@{slug}.test": ["/"],
        f"support@{slug}.test": ["/support/", f"/support/users/{basic}"],
        acting_as(f"support@{slug}.test", basic): ["/", "/account/profile"],
    }


def sidebar_pages(ids: dict[str, Any]) -> dict[str, list[str]]:
    """The partner on the sidebar theme: its sign-in, and its admin's pages of each kind."""
    return {
        "": ["/login"],
        f"admin@{SIDEBAR}.test": [
            "/",
            "/account/profile",
            "/admin/users/",
            "/admin/settings/",
            "/admin/settings/branding/",
            "/no-such-page",
        ],
    }


def root_pages(ids: dict[str, Any]) -> dict[str, list[str]]:
    acme = ids["partners"]["acme"]
    return {
        "": [
            "/",
            "/login",
            "/no-such-page",
            ids["operator_link"],
            "/operator/password/not-a-link",
        ],
        "operator@portal.test": [
            "/operator/",
            "/operator/partners/new",
            f"/operator/partners/{acme}/admins",
            f"/operator/partners/{acme}/features",
            f"/operator/partners/{acme}/branding",
            f"/operator/partners/{acme}/offboarding",
            "/operator/mail",
        ],
    }


# The branding page with its live preview redrawn for another theme than the stored one.
BRANDING_PREVIEW = "/admin/settings/branding/ (preview: sidebar)"
ACTING = " acting as user "


def acting_as(agent: str, user: int) -> str:
    """Who opens the pages: a support agent acting as the user with that id."""
    return f"{agent}{ACTING}{user}"


def open_as(page: Any, base: str, who: str) -> None:
    """Sign in as `who` (an email, or a support agent acting as a user): for the user, the
    support banner then shows on every page."""
    email, acting, target = who.partition(ACTING)
    sign_in(page, base, email)
    if acting:
        page.goto(f"{base}/support/users/{target}")
        page.fill("#reason", "Checking the pages as the user sees them")
        page.click("main form button[type=submit]:has-text('Act as')")
        page.wait_for_selector(".support-banner")


# The pages that answer with an error on purpose; every other one must answer 200.
ERROR_PAGES = {"/no-such-page", "/operator/password/not-a-link"}
# What must show on a page for its check to mean something (a table with its rows' actions).
MUST_SHOW = {"/admin/api-clients/": "table button", "/operator/mail": "table button"}


def open_page(page: Any, base: str, path: str) -> list[str]:
    """Open the page (for the branding preview: choose the sidebar theme in the form and wait
    for the live preview to follow and settle; nothing is saved) and say what is wrong with it
    before axe looks: an error answer, or the part that should show missing. Colours are only
    final once transitions are over: the browser context should ask for reduced motion
    (AXE_CONTEXT), which the stylesheets honour with no transitions at all."""
    if path == BRANDING_PREVIEW:
        response = page.goto(base + "/admin/settings/branding/")
        page.check("input[name=base][value=sidebar]")
        # htmx settles the swap: for 20 ms the new #preview-box wears the old box's style (its
        # colour variables), then its own. Only after that are the colours the preview's.
        page.wait_for_selector(
            "#branding-preview:not(.htmx-settling) #preview-box[data-base=sidebar]"
        )
    else:
        response = page.goto(base + path)
    wrong = []
    if path not in ERROR_PAGES and response.status != 200:
        wrong.append(f"answered {response.status}")
    if path in MUST_SHOW and page.locator(MUST_SHOW[path]).count() == 0:
        wrong.append(f"{MUST_SHOW[path]} is missing")
    return wrong


def sign_in(page: Any, base: str, email: str, password: str = DEMO_PASSWORD) -> None:
    page.goto(base + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form.login-form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def axe_source() -> str:
    """axe-core as npm installed it into tests/ (`make test` runs `npm ci` there)."""
    if not AXE.exists():
        reason = f"{AXE} is missing: run `npm ci` in tests/ (make test does)"
        if os.environ.get("PORTAL_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return AXE.read_text()


# How axe's browser contexts are made: with reduced motion, so no colour is measured halfway
# through a transition (a link's colour changing with the preview's theme, a hover).
AXE_CONTEXT: dict[str, Any] = {"reduced_motion": "reduce"}

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter(v => v.impact === "critical" || v.impact === "serious")
    .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 4).map(
      n => n.target.join(" ") + " " + (n.failureSummary || "").split("\\n")[1])}));
}"""


def serious_violations(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's critical and serious findings on the page as it is now. Evaluated through
    the DevTools protocol, so the page's Content-Security-Policy stays as it is. A context
    that has axe as an init script (`context.add_init_script(source)`, compiled once, not
    parsed again per page) has it on every page already."""
    if not page.evaluate("() => typeof axe !== 'undefined'"):
        page.evaluate(source)
    return page.evaluate(AXE_RUN)


OFF_SCREEN = """() => [...document.querySelectorAll(
    "main button, main a, main input:not([type=hidden]), main select, main summary")]
  .filter(e => e.tagName === "SUMMARY" || !e.closest("details:not([open])"))  // shown
  .filter(e => { const r = e.getBoundingClientRect();
                 return r.width > 0 && (r.right > window.innerWidth + 1 || r.left < -1); })
  .map(e => e.outerHTML.slice(0, 100))"""


def off_screen(page: Any) -> list[str]:
    """The controls of the page that lie past its left or right edge (cut off or only reached
    by scrolling a table sideways): none may, at any width."""
    return page.evaluate(OFF_SCREEN)
