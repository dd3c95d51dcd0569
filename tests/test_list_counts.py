"""Lists count their matches up to a limit: past it they say "more than", page on without a
last page number, and count everything when the admin asks ("Count all")."""

from __future__ import annotations

import re

import pytest
from conftest import logged_in, make_user, set_feature
from flask import Flask
from querybudget import counted

from portal import paging
from portal.extensions import db
from portal.roles.models import Role
from portal.subscriptions import admin_routes as subscription_admin
from portal.subscriptions.models import Plan, Subscription, SubscriptionState
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User


@pytest.fixture
def few(monkeypatch) -> int:
    """Count up to 27 (past a first page of 25): thirty-one users are "more than 27"."""
    monkeypatch.setattr(paging, "COUNT_UP_TO", 27)
    return 27


@pytest.fixture
def people(acme: Partner) -> list[User]:
    return [make_user(acme, f"user{i:02d}@acme.test", role=Role.BASIC) for i in range(30)]


def count_line(page: str) -> str:
    return re.sub(
        r"<[^>]+>", "", re.search(r'<p class="muted result-count">(.*?)</p>', page).group(1)
    )


def pager(page: str) -> str:
    found = re.search(r'<nav class="pager".*?</nav>', page, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0))).strip() if found else ""


def test_the_users_list_says_more_than_and_counts_all_when_asked(
    app: Flask, acme_admin: User, people, few
) -> None:
    admin = logged_in(app, acme_admin)
    first = admin.get("/admin/users/").text
    assert count_line(first) == "More than 27 users. Count all"
    assert pager(first) == "Page 1 Next →"
    link = re.search(r'<a href="([^"]+)"[^>]*>Count all</a>', first).group(1)
    assert "count=all" in link
    everything = admin.get(link.replace("&amp;", "&")).text
    assert count_line(everything) == "31 users."
    assert pager(everything) == "Page 1 of 2 Next →"
    # Its pages keep counting all.
    assert "count=all" in re.search(r'href="([^"]+)"[^>]*rel="next"', everything).group(1)
    # The second page counts to its own end and further: every row it needs is counted.
    second = admin.get("/admin/users/?page=2").text
    assert count_line(second) == "31 users."
    assert pager(second) == "← Previous Page 2 of 2"
    # A filter counts the same way.
    assert count_line(admin.get("/admin/users/?role=basic").text) == (
        "More than 27 users match. Count all"
    )
    assert count_line(admin.get("/admin/users/?role=basic&count=all").text) == "30 users match."
    # A page past the end is the last page, counted exactly.
    past = admin.get("/admin/users/?page=9").text
    assert count_line(past) == "31 users." and pager(past) == "← Previous Page 2 of 2"


def test_a_list_under_the_limit_counts_exactly(app: Flask, acme_admin: User, people) -> None:
    page = logged_in(app, acme_admin).get("/admin/users/").text
    assert count_line(page) == "31 users." and "Count all" not in page


def test_counting_all_costs_no_extra_statement(app: Flask, acme_admin: User, people, few) -> None:
    admin = logged_in(app, acme_admin)
    admin.get("/admin/users/")
    with counted(app) as capped:
        admin.get("/admin/users/")
    with counted(app) as everything:
        admin.get("/admin/users/?count=all")
    assert len(capped) == len(everything)


def test_the_support_lookup_counts_the_same_way(app: Flask, acme: Partner, people, few) -> None:
    set_feature(acme, "impersonation", True)
    agent = make_user(acme, "agent@acme.test", role=Role.BASIC, is_support=True)
    client = logged_in(app, agent)
    page = client.get("/support/?q=user").text
    assert count_line(page) == "More than 27 users match. Count all"
    assert count_line(client.get("/support/?q=user&count=all").text) == "30 users match."


def test_the_subscriptions_list_counts_the_same_way(
    app: Flask, acme: Partner, acme_admin: User, people, few, monkeypatch
) -> None:
    monkeypatch.setattr(subscription_admin, "PER_PAGE", 10)
    with partner_scope(acme):
        plan = Plan(partner_id=acme.id, code="std", name="Standard", allowed_roles=["basic"])
        db.session.add(plan)
        db.session.flush()
        for person in people:
            db.session.add(
                Subscription(
                    partner_id=acme.id,
                    user_id=person.id,
                    plan_id=plan.id,
                    state=SubscriptionState.SIGNED,
                )
            )
        db.session.commit()
    admin = logged_in(app, acme_admin)
    page = admin.get("/admin/subscriptions/").text
    assert "More than 27 subscriptions (all but ended)." in page
    assert pager(page) == "Page 1 Next →"
    everything = admin.get("/admin/subscriptions/?count=all").text
    assert "30 subscriptions (all but ended)." in everything and "Count all" not in everything
