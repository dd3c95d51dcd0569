"""Starting an impersonation while an admin changes one of the two people, with two real
writers at once (SQLite and PostgreSQL): nobody is ever left acting as someone who may not be
impersonated, nor as someone after losing the right to."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import host_client, logged_in, make_user, rows, set_feature
from flask import Flask
from racing import TRIES, race, results, skip_unless_racing

from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.support.models import Impersonation
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus

REASON = "The customer asked for help with a plan"
HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.parametrize("attempt", range(TRIES))


@pytest.fixture
def people(acme: Partner, acme_admin: User) -> tuple[User, User, User]:
    set_feature(acme, "impersonation", True)
    agent = make_user(acme, "agent@acme.test", role=Role.BASIC, is_support=True)
    bob = make_user(acme, "bob@acme.test", role=Role.BASIC)
    return agent, bob, acme_admin


def together(apps: list[Flask], clients: list, *requests: tuple[str, dict]) -> list[Any]:
    tokens = [c.csrf_token("/") for c in clients]

    def post(index: int) -> Any:
        path, form = requests[index]
        return clients[index].post(path, data={**form, "csrf_token": tokens[index]}, headers=HTMX)

    responses = results(race(apps, post))
    assert all(r.status_code < 500 for r in responses), [r.text[:300] for r in responses]
    return responses


def start_against(make_app, agent: User, admin: User, path: str, form: dict) -> list[Any]:
    """The agent starts acting as Bob while the admin posts `form` to `path`."""
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], agent), logged_in(apps[1], admin)]
    [bob] = rows(User, email="bob@acme.test")
    return together(
        apps,
        clients,
        (f"/support/users/{bob.id}/impersonate", {"reason": REASON}),
        (path, form),
    )


def still_open() -> list[Impersonation]:
    open_ = [i for i in rows(Impersonation) if i.ended_at is None]
    for imp in rows(Impersonation):
        [session] = rows(UserSession, id=imp.session_id)
        assert (session.revoked_at is None) == (imp.ended_at is None), imp
    return open_


def test_start_while_the_user_is_made_admin(data: Flask, make_app, people, attempt) -> None:
    skip_unless_racing()
    agent, bob, admin = people
    version = rows(User, id=bob.id)[0].version
    started, promoted = start_against(
        make_app, agent, admin, f"/admin/users/{bob.id}/role", {"role": "admin", "version": version}
    )
    [stored] = rows(User, id=bob.id)
    assert stored.role == Role.ADMIN and promoted.status_code == 302
    assert still_open() == []  # refused, or ended by the promotion that came after it
    if started.status_code == 302:
        [imp] = rows(Impersonation)
        assert imp.end_reason.value == "target_unavailable"
    else:
        assert started.status_code == 403 and "Administrators cannot" in started.text


def test_start_while_the_user_is_deactivated(data: Flask, make_app, people, attempt) -> None:
    skip_unless_racing()
    agent, bob, admin = people
    version = rows(User, id=bob.id)[0].version
    started, _ = start_against(
        make_app, agent, admin, f"/admin/users/{bob.id}/deactivate", {"version": version}
    )
    assert rows(User, id=bob.id)[0].status == UserStatus.DEACTIVATED
    assert still_open() == []
    assert started.status_code in (302, 403)


def test_start_while_the_agent_loses_the_capability(data: Flask, make_app, people, attempt) -> None:
    skip_unless_racing()
    agent, _bob, admin = people
    version = rows(User, id=agent.id)[0].version
    started, _ = start_against(
        make_app,
        agent,
        admin,
        f"/admin/users/{agent.id}/support",
        {"enabled": "0", "version": version},
    )
    assert rows(User, id=agent.id)[0].is_support is False
    assert still_open() == []
    assert started.status_code in (302, 403)


def test_two_starts_from_one_browser(data: Flask, make_app, people, attempt) -> None:
    """A double click: one support session, the other click refused."""
    skip_unless_racing()
    agent, bob, _admin = people
    apps = [make_app(), make_app()]
    first = logged_in(apps[0], agent)
    second = host_client(apps[1], "acme")  # the same browser: the same session cookie
    own = first.get_cookie("portal_auth", domain="acme.localhost").value
    second.set_cookie("portal_auth", own, domain="acme.localhost")
    path = f"/support/users/{bob.id}/impersonate"
    responses = together(
        apps, [first, second], (path, {"reason": REASON}), (path, {"reason": REASON})
    )
    assert sorted(r.status_code for r in responses) == [302, 409]
    assert len(rows(Impersonation)) == 1 and len(still_open()) == 1
