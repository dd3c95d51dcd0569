"""Configuration cached per process is never stale: a change made through one worker is seen by
every other on its very next request, because each request reads the partner's configuration
version in its first statement (tenancy/configuration.py)."""

from __future__ import annotations

from conftest import logged_in, make_user, rows

from portal.extensions import db
from portal.features.models import FeatureSetting, Lock
from portal.features.services import lock_feature
from portal.roles.models import Role
from portal.roles.permissions import DEFAULT_LABELS, DEFAULT_PERMISSIONS
from portal.roles.services import RoleInput, save_roles
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User


def _two_workers(make_app, user: User):
    """Two app instances (their own engines, caches and connections), both signed in as
    `user` and both warmed up, so each has the partner's configuration cached."""
    first, second = make_app(), make_app()
    one, two = logged_in(first, user), logged_in(second, user)
    for client in (one, two):
        for _ in range(2):
            assert client.get("/").status_code == 200
    return one, two


def test_a_feature_switched_in_one_worker_is_off_in_the_other(
    make_app, acme: Partner, acme_admin: User
) -> None:
    one, two = _two_workers(make_app, acme_admin)
    assert two.get("/account/sessions/").status_code == 200
    assert ">Devices</a>" in two.get("/account/profile").text
    answer = one.post_form("/admin/features/session_self_service", {"on": "0"})
    assert answer.status_code in (200, 302), answer.text
    assert [r.enabled for r in rows(FeatureSetting, key="session_self_service")] == [False]
    # The other worker's very next request: the devices page is gone.
    assert two.get("/account/sessions/").status_code == 404
    assert ">Devices</a>" not in two.get("/account/profile").text


def test_an_operator_lock_reaches_every_worker_at_once(
    make_app, acme: Partner, acme_admin: User
) -> None:
    one, two = _two_workers(make_app, acme_admin)
    devices = 'href="/account/sessions/"'
    assert devices in two.get("/").text
    with partner_scope(acme):
        lock_feature(None, db.session.get(Partner, acme.id), "session_self_service", Lock.OFF)
        db.session.commit()
    for client in (one, two):
        assert devices not in client.get("/").text
        assert client.get("/account/sessions/").status_code == 404
    with partner_scope(acme):
        lock_feature(None, db.session.get(Partner, acme.id), "session_self_service", Lock.NONE)
        db.session.commit()
    assert devices in two.get("/").text
    assert two.get("/account/sessions/").status_code == 200


def test_a_permission_removed_in_one_worker_is_refused_by_the_other(
    make_app, acme: Partner, acme_admin: User
) -> None:
    company = make_user(acme, "cora@acme.test", role=Role.COMPANY)
    one, two = _two_workers(make_app, company)
    assert two.get("/account/profile").status_code == 200
    before = rows(Partner)[0].config_version
    with partner_scope(acme):
        roles = {r: RoleInput(True, DEFAULT_LABELS[r], DEFAULT_PERMISSIONS[r]) for r in Role}
        roles[Role.COMPANY] = RoleInput(True, "Company", frozenset())
        save_roles(roles)
        db.session.commit()
    assert rows(Partner)[0].config_version != before
    # Neither worker shows the account page it may no longer use, from the next request on.
    for client in (two, one):
        assert client.get("/account/profile").status_code == 403
        assert 'href="/account/profile"' not in client.get("/").text


def test_a_rename_reaches_the_other_worker(make_app, acme: Partner, acme_admin: User) -> None:
    one, two = _two_workers(make_app, acme_admin)
    with partner_scope(acme):
        roles = {r: RoleInput(True, DEFAULT_LABELS[r], DEFAULT_PERMISSIONS[r]) for r in Role}
        roles[Role.ADMIN] = RoleInput(True, "Chief", DEFAULT_PERMISSIONS[Role.ADMIN])
        save_roles(roles)
        db.session.commit()
    assert "<dd>Chief</dd>" in two.get("/").text
    assert "<dd>Chief</dd>" in one.get("/").text
