"""Two admins of one partner act at the same instant, through the pages, as in production.

Each admin has their own app instance (own connections) and posts from their own thread; a
barrier (tests/racing.py) holds both just before their first write or write lock, after both
have loaded everything they show and check. Whatever the interleaving: the partner keeps an
active admin, of two changes to one user exactly one wins and the other is told of the
conflict, the audit log matches what is stored, and nobody gets a 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import logged_in, make_user, rows
from flask import Flask
from racing import TRIES, race, results, skip_unless_racing

from portal.audit.models import AuditEvent
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus

HTMX = {"HX-Request": "true"}
REFUSED = (403, 409)
pytestmark = pytest.mark.parametrize("attempt", range(TRIES))


@pytest.fixture
def team(data: Flask, make_app: Any, acme: Partner, acme_admin: User) -> dict[str, Any]:
    """Two admins (each signed in on their own app instance) and an ordinary user."""
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN, display_name="Bo Admin")
    user = make_user(acme, "pat@acme.test", role=Role.BASIC)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    return {
        "apps": apps,
        "clients": clients,
        "tokens": [c.csrf_token("/") for c in clients],
        "admins": [acme_admin, second],
        "user": user,
    }


def post_together(team: dict[str, Any], *requests: tuple[str, dict[str, Any]]) -> list[Any]:
    """Admin i posts requests[i] (htmx, so refusals keep their status); both at once."""

    def post(index: int) -> Any:
        path, form = requests[index]
        data = {**form, "csrf_token": team["tokens"][index]}
        return team["clients"][index].post(path, data=data, headers=HTMX)

    return results(race(team["apps"], post))


def seen(user: User) -> dict[str, int]:
    """The version field of the page the admin is looking at: the user as stored now."""
    return {"version": rows(User, id=user.id)[0].version}


def active_admins() -> list[User]:
    return rows(User, role=Role.ADMIN, status=UserStatus.ACTIVE)


def audit(action: str, target: User | None = None) -> list[AuditEvent]:
    events = rows(AuditEvent, action=action)
    return [e for e in events if target is None or e.target_id == str(target.id)]


def codes(responses: list[Any]) -> list[int]:
    assert all(r.status_code < 500 for r in responses), [r.text for r in responses]
    return sorted(r.status_code for r in responses)


def test_admins_demoting_each_other_leave_one_admin(team, attempt) -> None:
    first, second = team["admins"]
    responses = post_together(
        team,
        (f"/admin/users/{second.id}/role", {"role": "company", **seen(second)}),
        (f"/admin/users/{first.id}/role", {"role": "company", **seen(first)}),
    )
    assert codes(responses)[0] == 302 and codes(responses)[1] in REFUSED
    [refusal] = [r for r in responses if r.status_code != 302]
    # Refused by the last-admin rule, or because the actor was just demoted themselves.
    assert any(why in refusal.text for why in ("last active admin", "may not change roles"))
    assert len(active_admins()) == 1
    assert len(audit("user.role_change")) == 1


def test_admins_deactivating_each_other_leave_one_admin(team, attempt) -> None:
    first, second = team["admins"]
    responses = post_together(
        team,
        (f"/admin/users/{second.id}/deactivate", seen(second)),
        (f"/admin/users/{first.id}/deactivate", seen(first)),
    )
    assert codes(responses)[0] == 302 and codes(responses)[1] in REFUSED
    assert len(active_admins()) == 1
    assert len(audit("user.deactivate")) == 1


def test_bulk_deactivations_of_each_other_leave_one_admin(team, attempt) -> None:
    first, second = team["admins"]
    responses = post_together(
        team,
        ("/admin/users/bulk", {"action": "deactivate", "user_ids": [second.id]}),
        ("/admin/users/bulk", {"action": "deactivate", "user_ids": [first.id]}),
    )
    codes(responses)
    assert len(active_admins()) == 1
    assert len(audit("user.deactivate")) == 1
    # Whoever lost was told so: a refusal for the whole request or for their one row.
    loser = [r for r in responses if r.status_code != 200 or "0 of 1 done" in r.text]
    assert len(loser) == 1


def test_demotion_against_deactivation_leaves_one_admin(team, attempt) -> None:
    first, second = team["admins"]
    responses = post_together(
        team,
        (f"/admin/users/{second.id}/role", {"role": "basic", **seen(second)}),
        (f"/admin/users/{first.id}/deactivate", seen(first)),
    )
    assert codes(responses)[0] == 302 and codes(responses)[1] in REFUSED
    assert len(active_admins()) == 1
    assert len(audit("user.role_change")) + len(audit("user.deactivate")) == 1


def test_two_role_changes_of_one_user_one_wins(team, attempt) -> None:
    user = team["user"]
    before = seen(user)["version"]
    responses = post_together(
        team,
        (f"/admin/users/{user.id}/role", {"role": "advanced", **seen(user)}),
        (f"/admin/users/{user.id}/role", {"role": "guest", **seen(user)}),
    )
    assert codes(responses) == [302, 409]
    [refusal] = [r for r in responses if r.status_code == 409]
    assert "was changed by someone else" in refusal.text
    [stored] = rows(User, id=user.id)
    assert stored.role in (Role.ADVANCED, Role.GUEST)
    assert stored.version == before + 1
    [event] = audit("user.role_change", stored)
    assert event.details == {"from": "basic", "to": stored.role.value}


def test_two_invitations_of_one_address(team, attempt) -> None:
    form = {"email": "new@acme.test", "role": "basic"}
    clients = team["clients"]
    responses = post_together(team, ("/admin/users/invite", form), ("/admin/users/invite", form))
    assert codes(responses) == [302, 409]
    [refusal] = [r for r in responses if r.status_code == 409]
    assert "new@acme.test is already invited" in refusal.text
    assert len(rows(User, email="new@acme.test")) == 1
    assert len(audit("invitation.send")) == 1
    assert clients  # both admins stay signed in and can go on
    assert all(c.get("/admin/users/").status_code == 200 for c in clients)


def test_revoking_an_invitation_while_it_is_changed(team, attempt) -> None:
    first = team["admins"][0]
    clients = team["clients"]
    clients[0].post(
        "/admin/users/invite",
        data={"email": "inv@acme.test", "role": "basic", "csrf_token": team["tokens"][0]},
    )
    [invited] = rows(User, email="inv@acme.test")
    assert invited.status == UserStatus.INVITED and first.id != invited.id
    responses = post_together(
        team,
        (f"/admin/users/{invited.id}/invitation/revoke", seen(invited)),
        (f"/admin/users/{invited.id}/role", {"role": "advanced", **seen(invited)}),
    )
    assert codes(responses) == [302, 409]
    stored = rows(User, email="inv@acme.test")
    if stored:  # the change won; the revocation was refused
        assert stored[0].role == Role.ADVANCED and audit("invitation.revoke") == []
    else:  # the revocation won; the change was refused
        assert audit("user.role_change") == []


def test_support_flag_against_promotion_to_admin(team, attempt) -> None:
    """Admins cannot be support agents: granting one while another promotes never makes both."""
    user = team["user"]
    responses = post_together(
        team,
        (f"/admin/users/{user.id}/support", {"enabled": "1", **seen(user)}),
        (f"/admin/users/{user.id}/role", {"role": "admin", **seen(user)}),
    )
    assert codes(responses) == [302, 409]
    [stored] = rows(User, id=user.id)
    assert stored.is_support != (stored.role == Role.ADMIN)  # exactly one change stuck


def test_bulk_demotions_of_each_other_leave_one_admin(team, attempt) -> None:
    first, second = team["admins"]
    responses = post_together(
        team,
        ("/admin/users/bulk", {"action": "role", "role": "company", "user_ids": [second.id]}),
        ("/admin/users/bulk", {"action": "role", "role": "company", "user_ids": [first.id]}),
    )
    codes(responses)
    assert len(active_admins()) == 1
    assert len(audit("user.role_change")) == 1
    # The loser is refused as a whole (no longer an admin) or for their one row.
    loser = [r for r in responses if r.status_code != 200 or "0 of 1 done" in r.text]
    assert len(loser) == 1, [r.text for r in responses]
    [winner] = [r for r in responses if r not in loser]
    assert "1 of 1 done" in winner.text
