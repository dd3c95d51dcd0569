"""Query budgets: every page sends a bounded number of statements, however many rows there are.

The first statement of a partner's page finds the partner, the session the cookie names, its
user and the user's plan entitlements; role policy and feature switches come from the
process's copy for the partner's configuration version. A page's own data comes on top.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import host_client, logged_in, make_user, set_feature
from flask import Flask
from querybudget import assert_budget, counted, sqlite_plan

from portal.audit.services import record_audit
from portal.extensions import db
from portal.features.catalogue import PLAN_GATED
from portal.roles.models import Role
from portal.sessions.services import ClientInfo, start_user_session
from portal.subscriptions.models import BillingInterval, Plan
from portal.subscriptions.plans import PlanInput, create_plan
from portal.subscriptions.services import ActorKind, accept_terms, start_signing
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

# Authenticated home and account pages: at most 2 statements; admin lists: at most 3. The
# first is the partner, session, user and entitlements; a page's own data comes in one more
# (two for admin lists).
ACCOUNT_PAGES = {
    "/": 2,
    "/account/profile": 2,
    "/account/password": 2,
    # Support's accesses (with their agents) and the user's sign-ins: the two lists' ids side
    # by side (UNION ALL), each outer-joined to its row.
    "/account/activity": 2,
    "/account/sessions/": 2,
    # The user's row outer-joined to their identities and to the partner's provider.
    "/account/identities/": 2,
    # Every plan, outer-joined to the user's open or recent subscriptions and their history.
    "/account/subscription/": 2,
    # Two grouped aggregates of the user's own sign-ins and devices (UNION ALL).
    "/reports/": 2,
    # The user's prepared copies of their data.
    "/account/data": 2,
}
ADMIN_PAGES = {
    # The page with the count of all (a scalar subquery, in the same statement).
    "/admin/users/": 2,
    "/admin/users/invite": 3,
    # The page of events with their impersonations, then the names of its targets: one
    # statement whatever their kinds.
    "/admin/audit/": 3,
    "/admin/sessions/": 3,
    "/admin/plans/": 3,
    "/admin/plans/new": 3,
    # The page with its users, plans and the count of all; the plans of the filter.
    "/admin/subscriptions/": 3,
    "/admin/features/": 3,
    "/admin/roles/": 3,
    "/admin/roles/transitions": 3,
    "/admin/settings/": 3,
    "/admin/settings/sessions": 3,
    "/admin/settings/support": 3,
    "/admin/settings/login/": 3,
    "/admin/settings/branding/": 3,
    "/admin/settings/retention": 3,
    "/admin/api-clients/": 3,
    # The partner's support sessions whose time ran out unnoticed (their end is recorded
    # when support is next used), then the page with the count and each row's subscription.
    "/support/": 3,
}
# The partner; the login page also its single sign-on provider.
PUBLIC_PAGES = {"/login": 2, "/signup": 2, "/password/forgot": 2, "/developers": 2}


def _everything_on(partner: Partner) -> None:
    keys = (
        "subscriptions",
        "reports",
        "session_self_service",
        "impersonation",
        "self_signup",
        "api_access",
    )
    for key in keys:
        set_feature(partner, key, True)


def test_every_partner_page_has_a_budget(app: Flask) -> None:
    """A new page cannot escape: it needs a budget here (or is not a page: CSV, health, SSO)."""
    not_pages = {
        "/admin/audit/export.csv",
        "/account/data/download",
        "/healthz",
        "/readyz",
        "/sso/callback",
    }
    walked = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.subdomain
        and "GET" in (rule.methods or ())
        and set(rule.arguments) <= {"partner"}
        and not rule.rule.startswith(("/static", "/api/"))  # the API: JSON, not pages
    }
    budgeted = {*ACCOUNT_PAGES, *ADMIN_PAGES, *PUBLIC_PAGES}
    assert walked - not_pages == budgeted


@pytest.mark.parametrize("path", sorted(ACCOUNT_PAGES))
def test_account_pages_keep_their_budget(
    app: Flask, acme: Partner, acme_admin: User, path: str
) -> None:
    _everything_on(acme)
    user = make_user(acme, "sam@acme.test", role=Role.COMPANY, is_support=True)
    _sign_up_for_reports(acme, user)
    clients = [logged_in(app, user)]
    if path != "/reports/":  # the admin holds no plan that includes reports
        clients.append(logged_in(app, acme_admin))
    for client in clients:
        client.get(path)  # this process learns the partner's id and configuration
        assert_budget(client, app, path, ACCOUNT_PAGES[path])


@pytest.mark.parametrize("path", sorted(ADMIN_PAGES))
def test_admin_pages_keep_their_budget(
    app: Flask, acme: Partner, acme_admin: User, path: str
) -> None:
    _everything_on(acme)
    with partner_scope(acme):
        db.session.get(User, acme_admin.id).is_support = False
    admin = logged_in(app, acme_admin)
    admin.get(path)
    if path == "/support/":
        agent = make_user(acme, "agent@acme.test", role=Role.BASIC, is_support=True)
        admin = logged_in(app, agent)
        admin.get(path)
    assert_budget(admin, app, path, ADMIN_PAGES[path])


@pytest.mark.parametrize("path", sorted(PUBLIC_PAGES))
def test_public_pages_keep_their_budget(app: Flask, acme: Partner, path: str) -> None:
    _everything_on(acme)
    client = host_client(app, "acme")
    client.get(path)
    assert_budget(client, app, path, PUBLIC_PAGES[path])


def test_the_home_page_is_one_statement(app: Flask, acme: Partner, acme_admin: User) -> None:
    """Partner, session, user and entitlements in one statement; everything else is cached."""
    _everything_on(acme)
    admin = logged_in(app, acme_admin)
    admin.get("/")
    page, statements = assert_budget(admin, app, "/", 1)
    assert "Welcome, Ada Admin" in page.text and ">Audit log</a>" in page.text
    assert "user_sessions" in statements[0] and "partners.slug" in statements[0]


def _gold(partner: Partner) -> None:
    with partner_scope(partner):
        gold = PlanInput(
            "gold",
            "Gold",
            "",
            100,
            "EUR",
            BillingInterval.MONTH,
            (Role.COMPANY,),
            ("reports",),
            False,
            0,
        )
        create_plan(gold, PLAN_GATED)
        db.session.commit()


def _sign_up_for_reports(partner: Partner, user: User) -> None:
    _gold(partner)
    with partner_scope(partner):
        user = db.session.get(User, user.id)
        plan = db.session.execute(db.select(Plan)).scalars().first()
        sub = start_signing(user, plan, actor=user, kind=ActorKind.USER)
        accept_terms(sub, actor=user)
        db.session.commit()


def _fill(partner: Partner, count: int, tag: str) -> None:
    """`count` more users, each with a session, an audit event and a subscription history."""
    with partner_scope(partner):
        plan = db.session.execute(db.select(Plan)).scalars().first()
        for i in range(count):
            user = make_user(partner, f"{tag}{i}@acme.test", role=Role.COMPANY)
            user = db.session.get(User, user.id)
            start_user_session(user, ClientInfo("203.0.113.9", "Firefox"))
            record_audit("test.event", target=user, actor=None, details={"i": i})
            sub = start_signing(user, plan, actor=user, kind=ActorKind.USER)
            accept_terms(sub, actor=user)
        db.session.commit()


def _counts(app: Flask, client, paths: list[str]) -> dict[str, int]:
    found = {}
    for path in paths:
        client.get(path)
        with counted(app) as statements:
            assert client.get(path).status_code == 200
        found[path] = len(statements)
    return found


def test_no_page_grows_with_its_rows(app: Flask, acme: Partner, acme_admin: User) -> None:
    """Ten times the rows, the same number of statements on every list (no N+1)."""
    _everything_on(acme)
    with partner_scope(acme):
        gold = PlanInput(
            "gold",
            "Gold",
            "",
            100,
            "EUR",
            BillingInterval.MONTH,
            (Role.COMPANY,),
            ("reports",),
            False,
            0,
        )
        create_plan(gold, PLAN_GATED)
        db.session.commit()
    paths = [
        "/admin/users/",
        "/admin/sessions/",
        "/admin/audit/",
        "/admin/subscriptions/",
    ]
    own = ["/account/subscription/", "/account/sessions/", "/account/activity", "/"]
    _fill(acme, 2, "few")
    admin = logged_in(app, acme_admin)
    few = db.session.execute(db.select(User).filter_by(email="few0@acme.test")).scalar_one()
    user = logged_in(app, few)
    before = _counts(app, admin, paths) | _counts(app, user, own)
    _fill(acme, 20, "many")
    after = _counts(app, admin, paths) | _counts(app, user, own)
    # The audit log names the targets of every kind on the page in one statement.
    assert {p: n for p, n in after.items() if after[p] > before[p]} == {}
    budgets = ADMIN_PAGES | ACCOUNT_PAGES
    assert {p: n for p, n in after.items() if n > budgets[p]} == {}


def test_last_seen_costs_one_statement_a_minute(
    app: Flask, acme: Partner, acme_admin: User, frozen_clock
) -> None:
    admin = logged_in(app, acme_admin)
    admin.get("/")
    frozen_clock.advance(timedelta(seconds=59))
    assert_budget(admin, app, "/", 1)  # within the minute: nothing written
    frozen_clock.advance(timedelta(seconds=2))
    with counted(app) as statements:
        assert admin.get("/").status_code == 200
    assert len(statements) == 2, statements.report()
    assert statements[1].lstrip().upper().startswith("UPDATE USER_SESSIONS SET LAST_SEEN_AT")


def test_the_first_statement_finds_the_plan_by_the_users_subscription(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    """The session's statement looks up the user's signed subscription by user, through the
    index of held subscriptions, never by walking the partner's signed ones (thousands at a
    large partner). SQLite's planner, without statistics, is the one to hold to it."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner has no statistics to go by; PostgreSQL's has")
    user = make_user(acme, "sam@acme.test", role=Role.COMPANY)
    _sign_up_for_reports(acme, user)
    client = logged_in(app, user)
    client.get("/")
    plan = sqlite_plan(app, client, "/", "plans.entitlements")
    subscriptions = [step for step in plan if "subscriptions" in step]
    assert subscriptions == [
        "SEARCH subscriptions USING INDEX uq_subscriptions_one_held_per_user (user_id=?)"
    ], plan


def test_only_the_first_statement_keeps_one_plan_on_postgresql(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    """PostgreSQL plans the partner-and-session statement once per connection (unique keys
    all the way: 1.1 ms of planning a request saved) and every other statement for each run's
    own values: a plan made for no partner in particular read a million audit events for a
    page of 50. psycopg prepares a statement on its fifth run; PostgreSQL may settle on a
    generic plan after five more: 15 runs make 10 prepared ones."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("plan_cache_mode is PostgreSQL's")
    for i in range(3):
        record_audit("test.event", target=acme_admin, actor=None, details={"i": i})
    admin = logged_in(app, acme_admin)
    with app.app_context():
        db.engine.dispose()  # from here one connection, taken back by each request in turn
    for _ in range(15):
        assert admin.get("/admin/audit/").status_code == 200
    with app.app_context(), db.engine.connect() as connection:
        plans = connection.exec_driver_sql(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        ).all()

    def runs(*marks: str) -> tuple[int, int]:
        (found,) = [(g, c) for s, g, c in plans if all(mark in s for mark in marks)]
        return found

    first = runs("partners.slug", "user_sessions.token_hash")
    page = runs("FROM audit_events", "ORDER BY audit_events.created_at DESC")
    assert first[0] >= 4, plans  # generic from the sixth prepared run on
    assert page[0] == 0 and page[1] >= 9, plans  # prepared, and still planned each run
    # What it costs: the scope settings go once with the first statement, as before, and
    # once more to set the custom plans back for the page's own statements; a page of one
    # statement (home) sends them once.
    with counted(app) as statements:
        admin.get("/admin/audit/")
    assert statements.settings == 2, statements.report()
    with counted(app) as statements:
        admin.get("/")
    assert len(statements) == 1 and statements.settings == 1, statements.report()
