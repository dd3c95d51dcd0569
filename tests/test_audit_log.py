"""The partner's audit log page and its CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from conftest import (
    PASSWORD,
    across_partners,
    host_client,
    logged_in,
    make_user,
    rows,
    set_feature,
)
from flask import Flask
from querybudget import counted, sqlite_plan
from test_reports import FIREFOX_LINUX
from test_subscriptions import plan
from test_support import REASON, acting_as

from portal.audit.models import AuditEvent
from portal.audit.presentation import target_label, target_names
from portal.audit.routes import neutralise
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.sessions.services import ClientInfo, start_user_session
from portal.subscriptions.services import ActorKind, start_signing
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User


def test_admin_reads_only_their_partners_trail(
    app: Flask, acme: Partner, acme_admin: User, globex_user: User
) -> None:
    admin = logged_in(app, acme_admin)
    admin.post_form("/admin/users/invite", {"email": "=cmd@acme.test", "role": "basic"})
    page = admin.get("/admin/audit/").text
    assert "invitation.send" in page and "auth.login" in page
    assert "gus@globex.test" not in page
    only = admin.get("/admin/audit/?action=invitation.send").text
    assert "invitation.send" in only and "<code>auth.login</code>" not in only
    assert admin.get("/admin/audit/?page=abc&actor=%25").status_code == 200


def test_audit_needs_the_permission(app: Flask, acme: Partner) -> None:
    company = logged_in(app, make_user(acme, "c@acme.test", role=Role.COMPANY))
    assert company.get("/admin/audit/").status_code == 403


def test_csv_export_is_a_feature(app: Flask, acme: Partner, acme_admin: User) -> None:
    admin = logged_in(app, acme_admin)
    admin.post_form("/admin/users/invite", {"email": "=cmd@acme.test", "role": "basic"})
    assert admin.get("/admin/audit/export.csv").status_code == 404
    assert "Download CSV" not in admin.get("/admin/audit/").text
    set_feature(acme, "audit_export", True)
    response = admin.get("/admin/audit/export.csv?action=invitation.send")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["action"] for r in rows] == ["invitation.send"]
    assert rows[0]["actor"] == "root@acme.test"
    assert all(not cell.startswith("=") for r in rows for cell in r.values())


FORMULA = '=HYPERLINK("http://evil.test","x")'


def test_csv_export_neutralises_every_cell(app: Flask, acme: Partner, acme_admin: User) -> None:
    """The address and request id are the sender's text too: no cell starts a formula."""
    set_feature(acme, "audit_export", True)
    admin = host_client(app, "acme")
    token = admin.csrf_token()
    signed_in = admin.post(
        "/login",
        data={"email": acme_admin.email, "password": PASSWORD, "csrf_token": token},
        headers={"X-Request-ID": "-2-3.cmd.exe"},  # the id's pattern allows a leading '-'
        environ_base={"REMOTE_ADDR": FORMULA},  # what a lax proxy could hand on
    )
    assert signed_in.status_code == 302
    [event] = rows(AuditEvent, action="auth.login")
    assert (event.ip, event.request_id) == (FORMULA, "-2-3.cmd.exe")  # stored as received
    exported = admin.get("/admin/audit/export.csv?action=auth.login")
    [row] = list(csv.DictReader(io.StringIO(exported.text)))
    assert row["ip"] == "'" + FORMULA
    assert row["request_id"] == "'-2-3.cmd.exe"
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())


@pytest.mark.parametrize(
    "value,exported",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1+1", "'  =1+1"),
        ("10.0.0.1", "10.0.0.1"),
        ("alice@acme.test", "alice@acme.test"),
        ("", ""),
    ],
)
def test_formula_cells_become_text(value: str, exported: str) -> None:
    assert neutralise(value) == exported


# --- The audit log people can use (issue 14) ------------------------------------------------

from datetime import timedelta  # noqa: E402

from portal.audit.services import record_audit  # noqa: E402


def _event(partner: Partner, action: str, target=None, details=None, actor=None) -> None:
    with partner_scope(partner):
        record_audit(action, target=target, details=details, actor=actor)
        db.session.commit()


def results(page: str) -> str:
    """The results part of the page (the filter's option list names every action)."""
    return page.split('id="audit-results"', 1)[-1]


@pytest.fixture
def trail(acme: Partner, globex: Partner, acme_admin: User, frozen_clock):
    """Events on three days at Acme, one at Globex."""
    bob = make_user(acme, "bob@acme.test", display_name="Bob")
    frozen_clock.advance(timedelta(days=1))
    _event(acme, "user.role_change", bob, {"from": "basic", "to": "advanced"}, acme_admin)
    frozen_clock.advance(timedelta(days=1))
    _event(acme, "user.deactivate", bob, {"sessions": 2}, acme_admin)
    _event(globex, "user.deactivate", ("users", "999"), {"sessions": 7})
    return bob


def test_filters_apply_without_javascript(app: Flask, acme_admin: User, trail: User) -> None:
    admin = logged_in(app, acme_admin)
    page = admin.get("/admin/audit/").text
    assert '<button type="submit">Filter</button>' in page  # Enter and the button both submit
    by_target = results(admin.get("/admin/audit/?target=bob@acme.test").text)
    assert "Role changed" in by_target and "User deactivated" in by_target
    assert "user bob@acme.test" in by_target  # the target by name, not `users 3`
    assert "User created" in by_target  # the fixture's own creation of Bob
    assert "Signed in" not in by_target
    by_who = results(admin.get("/admin/audit/?who=root@acme&action=user.deactivate").text)
    assert "User deactivated" in by_who and "Role changed" not in by_who
    assert "<dt>Sessions</dt><dd>2</dd>" in by_who  # details as key/value
    shown = by_who.split("<tbody>")[1].split("</tbody>")[0]
    assert "<dd>7</dd>" not in shown and "users 999" not in shown  # never Globex's


def test_date_range_and_support_filters(
    app: Flask, acme_admin: User, trail: User, frozen_clock
) -> None:
    admin = logged_in(app, acme_admin)
    day = (frozen_clock.now() - timedelta(days=1)).date().isoformat()
    one_day = results(admin.get(f"/admin/audit/?from={day}&to={day}").text)
    assert "Role changed" in one_day and "User deactivated" not in one_day
    before = (frozen_clock.now() - timedelta(days=3)).date().isoformat()
    wrong = admin.get(f"/admin/audit/?from={day}&to={before}")
    assert wrong.status_code == 422 and "after the" in wrong.text
    bad = admin.get("/admin/audit/?from=yesterday")
    assert bad.status_code == 422 and "must be a date" in bad.text
    support = admin.get("/admin/audit/?support=1").text
    assert "No events match." in support


def test_filters_with_htmx_return_the_results_only(
    app: Flask, acme_admin: User, trail: User
) -> None:
    admin = logged_in(app, acme_admin)
    response = admin.get("/admin/audit/?action=user.role_change", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert "<html" not in response.text and "Role changed" in response.text
    assert "User deactivated" not in response.text
    page = admin.get("/admin/audit/").text
    assert 'hx-target="#audit-results"' in page and 'id="audit-results"' in page


def test_keyset_pages_walk_every_event_once(
    app: Flask, acme: Partner, acme_admin: User, frozen_clock, monkeypatch
) -> None:
    import portal.audit.routes as routes

    monkeypatch.setattr(routes, "PER_PAGE", 3)
    for n in range(7):
        _event(acme, "plan.update", ("plans", str(n)), {"n": n})
        if n % 2:
            frozen_clock.advance(timedelta(seconds=1))  # ties in time too
    admin = logged_in(app, acme_admin)
    seen, path = [], "/admin/audit/?action=plan.update"
    while path:
        page = admin.get(path).text
        seen += [int(n) for n in __import__("re").findall(r"<dt>N</dt><dd>(\d+)</dd>", page)]
        found = __import__("re").search(r'href="([^"]*before=[^"]*)" rel="next"', page)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == [6, 5, 4, 3, 2, 1, 0]


def test_event_detail_page_and_another_partners_event(
    app: Flask, acme_admin: User, trail: User, globex: Partner
) -> None:
    admin = logged_in(app, acme_admin)
    [mine] = [e for e in rows(AuditEvent, action="user.role_change")]
    [theirs] = [e for e in rows(AuditEvent, action="user.deactivate") if e.partner_id == globex.id]
    page = admin.get(f"/admin/audit/{mine.id}")
    assert page.status_code == 200
    assert "Role changed" in page.text and "user bob@acme.test" in page.text
    assert (
        "<dt>From</dt><dd>basic</dd>" in page.text and "<dt>To</dt><dd>advanced</dd>" in page.text
    )
    assert admin.get(f"/admin/audit/{theirs.id}").status_code == 404
    assert admin.get("/admin/audit/999999").status_code == 404


def test_csv_streams_every_matching_event_and_no_other_partners(
    app: Flask, acme: Partner, acme_admin: User, trail: User
) -> None:
    set_feature(acme, "audit_export", True)
    admin = logged_in(app, acme_admin)
    response = admin.get("/admin/audit/export.csv?target=bob@acme.test")
    assert response.is_streamed and response.status_code == 200
    exported = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["action"] for r in exported] == ["user.deactivate", "user.role_change", "user.create"]
    assert {r["target"] for r in exported} == {"user bob@acme.test"}
    assert exported[0]["action_description"] == "User deactivated"
    everything = list(csv.DictReader(io.StringIO(admin.get("/admin/audit/export.csv").text)))
    assert '"sessions": 7' not in str(everything)  # Globex's event
    assert len(everything) == len([e for e in rows(AuditEvent) if e.partner_id == acme.id])


def test_targets_of_every_kind_are_named_in_one_statement(
    app: Flask, acme: Partner, globex: Partner
) -> None:
    """Every kind a page may show is named (in one statement: the budget test counts it);
    another partner's rows, ids that are no ids and rows that are gone keep bare names."""
    bob = make_user(acme, "bob@acme.test", role=Role.BASIC)
    gus_id = make_user(globex, "gus@globex.test").id
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    with across_partners():
        operator_id = db.session.execute(db.select(Operator.id)).scalar_one()
    with partner_scope(acme):
        me = db.session.get(User, bob.id)
        gold = plan("gold")
        sub = start_signing(me, gold, actor=me, kind=ActorKind.USER)
        record, _token = start_user_session(
            me, ClientInfo("203.0.113.1", FIREFOX_LINUX.format(v=120))
        )
        db.session.commit()
        targets = [
            ("users", bob.id),
            ("user_sessions", record.id),
            ("plans", gold.id),
            ("subscriptions", sub.id),
            ("partners", acme.id),
            ("operators", operator_id),
            ("users", gus_id),  # Globex's
            ("users", "x1"),
            ("plans", 999_999),
        ]
        events = [AuditEvent(target_type=kind, target_id=str(ident)) for kind, ident in targets]
        events.append(AuditEvent(target_type="email", target_id="someone@else.test"))
        names = target_names(events)
        labels = [target_label(e, names) for e in events]
    assert labels == [
        "user bob@acme.test",
        "session on Firefox on Linux",
        "plan Gold",
        f"subscription #{sub.id} (Gold)",
        "partner Acme Corp",
        "operator op@portal.test",
        f"user #{gus_id}",
        "user #x1",
        "plan #999999",
        "someone@else.test",
    ]


def test_targets_are_named_by_one_statement_text_whatever_their_number(
    data: Flask, acme: Partner
) -> None:
    """On PostgreSQL a kind's ids travel as one array: the statement that names them reads
    the same for one target as for sixty, so it is compiled once and prepared by the driver
    (an IN list is written out again for every run; SQLite keeps it, having no arrays)."""
    made = [make_user(acme, f"u{n:02d}@acme.test", role=Role.BASIC) for n in range(60)]
    users = [(u.id, u.email) for u in made]
    sent: list[str] = []
    with partner_scope(acme), counted(data) as statements:
        for some in (users[:1], users):
            events = [AuditEvent(target_type="users", target_id=str(ident)) for ident, _ in some]
            names = target_names(events)
            assert [target_label(e, names) for e in events] == [f"user {e}" for _, e in some]
            sent.append(statements[-1])
    assert len(statements) == 2
    if db.engine.dialect.name == "postgresql":
        assert sent[0] == sent[1]
        assert "ANY" in sent[0]
    else:
        assert sent[0] != sent[1]  # the IN list, written out for each number of ids


def test_a_row_names_the_support_session_and_links_to_its_event(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    """A change made while support acted as a user: its row shows the agent, whom they acted
    as, the reason and the ticket; its link opens that event's page. A change made for a user
    outside a support session shows only whom it was for."""
    set_feature(acme, "impersonation", True)
    agent = make_user(acme, "agent@acme.test", role=Role.BASIC, is_support=True)
    bob = make_user(acme, "bob@acme.test", role=Role.BASIC)
    client = acting_as(app, agent, bob, ticket="TCK-7")
    client.post_form("/account/profile", {"display_name": "Bobby"})
    client.post_form("/support/stop")
    with partner_scope(acme):
        record_audit("user.reactivate", target=("users", str(bob.id)), actor=None, on_behalf_of=bob)
        db.session.commit()
    [change] = rows(AuditEvent, action="account.profile_update")
    [for_bob] = rows(AuditEvent, action="user.reactivate")
    assert (change.actor_label, change.on_behalf_of_id) == ("agent@acme.test", bob.id)

    page = results(logged_in(app, acme_admin).get("/admin/audit/").text)
    row = next(r for r in page.split("<tr>") if "<code>account.profile_update</code>" in r)
    assert f'href="/admin/audit/{change.id}"' in row
    assert (
        '<td data-label="Who">agent@acme.test' in row
        and '<span class="badge badge-support">support</span>' in row
    )
    assert f"as bob@acme.test · {REASON} · ticket TCK-7" in row
    other = next(r for r in page.split("<tr>") if "<code>user.reactivate</code>" in r)
    assert f'href="/admin/audit/{for_bob.id}"' in other
    assert f'<small class="muted">as user #{bob.id}</small>' in other and "badge" not in other

    event_page = logged_in(app, acme_admin).get(f"/admin/audit/{change.id}").text
    assert f"<dt>While acting as</dt><dd>bob@acme.test — support session: “{REASON}”" in event_page
    assert ", ticket TCK-7</dd>" in event_page


def test_who_as_a_whole_address_is_that_person_through_their_index(
    app: Flask, acme: Partner, acme_admin: User, frozen_clock
) -> None:
    """A whole address finds that person's events (any case), not a longer address holding
    it; part of one still finds every actor containing it. On SQLite the page reads the
    person's events through the (partner, actor, time) index, however long the log."""
    bob = make_user(acme, "bob@acme.test", display_name="Bob")
    jim = make_user(acme, "jim.bob@acme.test", display_name="Jim")
    _event(acme, "user.role_change", jim, {"from": "basic", "to": "guest"}, bob)
    _event(acme, "user.deactivate", bob, {"sessions": 1}, jim)
    admin = logged_in(app, acme_admin)

    def actions(who: str) -> set[str]:
        page = results(admin.get(f"/admin/audit/?who={who}").text)
        return {name for name in ("Role changed", "User deactivated") if name in page}

    assert actions("bob@acme.test") == {"Role changed"}
    assert actions("BOB@Acme.Test") == {"Role changed"}
    assert actions("jim.bob@acme.test") == {"User deactivated"}
    assert actions("bob@acme") == {"Role changed", "User deactivated"}  # part of an address
    if db.engine.dialect.name != "sqlite":
        return
    plan = sqlite_plan(app, admin, "/admin/audit/?who=bob@acme.test", "FROM audit_events")
    assert any("ix_audit_events_partner_actor_time" in step for step in plan), plan


def test_every_action_the_portal_records_has_a_name_people_read() -> None:
    """Each action a service records (found in the source) reads as words in the "What"
    column and in the action filter, not as its code."""
    import ast
    from pathlib import Path

    from portal.audit.presentation import ACTIONS
    from portal.privacy.retention import POLICIES
    from portal.subscriptions.models import SubscriptionState

    computed = {  # actions whose name the code computes, as the code computes them
        "f'retention.{policy.name}'": [f"retention.{p.name}" for p in POLICIES],
        "f'subscription.{to.value}'": [f"subscription.{s.value}" for s in SubscriptionState],
        "action": ["user.signup_remove", "invitation.revoke"],  # remove_pending_user
    }
    recorded: set[str] = set()
    root = Path(__file__).resolve().parent.parent / "portal"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            called = getattr(node, "func", None)
            name = getattr(called, "id", getattr(called, "attr", None))
            if not (isinstance(node, ast.Call) and name in ("record_audit", "audit_maintenance")):
                continue
            if not node.args:
                continue
            first = node.args[0]
            options = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
            for option in options:
                if isinstance(option, ast.Constant):
                    recorded.add(option.value)
                else:
                    source = ast.unparse(option)
                    assert source in computed, f"{path.name}: say which actions {source} names"
                    recorded.update(computed[source])
    assert len(recorded) > 80
    assert sorted(recorded - set(ACTIONS)) == []


def test_back_from_an_event_returns_to_the_list_as_it_was_left(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = logged_in(app, acme_admin)
    [event] = [e for e in rows(AuditEvent) if e.action == "user.create"][:1]
    filtered = "http://acme.localhost/admin/audit/?who=root%40acme.test&page=2"
    page = admin.get(f"/admin/audit/{event.id}", headers={"Referer": filtered})
    assert page.text.count('href="/admin/audit/?who=root%40acme.test&amp;page=2"') == 2
    for elsewhere in (
        "http://globex.localhost/admin/audit/?who=x",  # another partner's host
        "http://evil.test/admin/audit/?who=x",
        "http://acme.localhost/admin/users/?q=x",  # another page of this host
        "",
    ):
        plain = admin.get(f"/admin/audit/{event.id}", headers={"Referer": elsewhere})
        assert '<li><a href="/admin/audit/">Audit log</a></li>' in plain.text, elsewhere
        assert '<p class="back-link"><a href="/admin/audit/">' in plain.text, elsewhere
        assert "who=x" not in plain.text and "q=x" not in plain.text
