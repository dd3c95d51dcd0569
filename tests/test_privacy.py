"""Data protection: a user's export and closing, erasure, retention, offboarding (issue 17)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PASSWORD, across_partners, host_client, make_user, rows, set_feature
from flask import Flask
from flask_migrate import upgrade
from test_subscriptions import plan
from test_support import acting_as

from portal.api.models import ApiClient, ApiToken, IdempotentRequest
from portal.audit.models import AuditEvent
from portal.audit.services import record_audit
from portal.auth.passwords import hash_password
from portal.branding.models import PartnerLogo
from portal.clock import clock
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.operator.models import Operator
from portal.privacy import cli as privacy_cli
from portal.privacy.models import DataExport
from portal.privacy.offboarding import read_archive
from portal.privacy.services import build_export
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.subscriptions.services import ActorKind, start_signing
from portal.tenancy.models import Partner, PartnerStatus
from portal.tenancy.scope import partner_scope
from portal.tokens.models import ActionToken
from portal.users.models import User, UserStatus
from portal.users.services import change_role

USER_IP, ADMIN_IP, OTHER_IP = "203.0.113.77", "198.51.100.9", "192.0.2.44"


def client_from(app: Flask, user: User, ip: str) -> Any:
    with across_partners():
        slug, email = user.partner.slug, user.email
    client = host_client(app, slug)
    client.environ_base["REMOTE_ADDR"] = ip
    agent = "PrivacyTestBrowser/1.0 (unique-agent-xyz)" if ip == USER_IP else "OtherBrowser/2.0"
    client.environ_base["HTTP_USER_AGENT"] = agent
    assert client.login(email).status_code == 302
    return client


MAIL = {"from_address": "portal@acme.test", "body_text": "Hello", "body_html": ""}


def make_operator() -> None:
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()


def maintenance(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=["maintenance", "run", *args])
    assert result.exit_code == 0, result.output
    return result.output


# --- Export -------------------------------------------------------------------------------------


def test_export_holds_everything_about_me_and_nothing_about_others(
    app: Flask, acme: Partner, globex: Partner, acme_user: User, acme_admin: User
) -> None:
    other = make_user(acme, "olga@acme.test", display_name="Olga Other")
    twin = make_user(globex, "alice@acme.test", display_name="Alice Twin")
    other_client = client_from(app, other, OTHER_IP)
    other_client.post_form("/account/profile", {"display_name": "Olga Renamed"})
    twin_client = client_from(app, twin, OTHER_IP)
    twin_client.post_form("/password/forgot", {"email": "alice@acme.test"})
    admin = client_from(app, acme_admin, ADMIN_IP)
    admin.post_form(f"/admin/users/{acme_user.id}/password-reset")  # an email to me
    me = client_from(app, acme_user, USER_IP)

    page = me.get("/account/data")
    assert page.status_code == 200 and "Prepare a copy of my data" in page.text
    asked = me.post_form("/account/data/export", follow_redirects=True)
    assert "is being prepared" in asked.text
    assert me.get("/account/data/download", follow_redirects=True).text.count("There is no copy")
    assert "exports_prepared" in maintenance(app)
    download = me.get("/account/data/download")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    data = json.loads(download.data)

    assert data["profile"]["email"] == "alice@acme.test"
    assert data["profile"]["display_name"] == "Alice Acme"
    assert {s["ip"] for s in data["sessions"]} == {USER_IP}
    assert data["sessions"][0]["user_agent"].startswith("PrivacyTestBrowser")
    assert any(e["action"] == "auth.login" for e in data["audit_events"])
    assert any(e["action"] == "privacy.export_request" for e in data["audit_events"])
    assert [m["to"] for m in data["emails"]] and {m["to"] for m in data["emails"]} == {
        "alice@acme.test"
    }
    for key in ("role_history", "subscriptions", "identities", "support_accesses"):
        assert key in data
    text = download.data.decode()
    for foreign in ("olga@acme.test", "Olga", "Alice Twin", OTHER_IP, str(globex.slug)):
        assert foreign not in text
    # Kept for a limited time: gone after EXPORT_KEEP_HOURS, deleted by maintenance.
    clock.advance(timedelta(hours=app.config["EXPORT_KEEP_HOURS"] + 1))
    assert me.get("/account/data/download").status_code == 302
    assert "exports_expired" in maintenance(app)
    assert rows(DataExport) == []


def test_make_run_prepares_the_copy_asked_for_in_the_browser(
    app: Flask, acme: Partner, acme_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` starts the maintenance run on repeat beside the server; its next round
    prepares the copy a person asked for, and the page offers it."""
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert "MAINTENANCE_EVERY ?= 5\n" in makefile
    assert "$(FLASK) maintenance run --every $(MAINTENANCE_EVERY) &" in makefile
    waits: list[float] = []
    monkeypatch.setattr(privacy_cli, "sleep", waits.append)  # the rounds follow at once
    real = privacy_cli.run_maintenance
    calls: list[datetime] = []

    def first_round_fails(now: datetime, **kwargs: Any) -> Any:
        calls.append(now)
        if len(calls) == 1:
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        return real(now, **kwargs)

    monkeypatch.setattr(privacy_cli, "run_maintenance", first_round_fails)
    me = client_from(app, acme_user, USER_IP)
    asked = me.post_form("/account/data/export", follow_redirects=True)
    assert "is being prepared" in asked.text and "Download my data" not in asked.text

    every = ["maintenance", "run", "--every", "5"]
    result = app.test_cli_runner().invoke(args=[*every, "--rounds", "3"])
    assert result.exit_code == 0, result.output
    assert "maintenance: running every 5 s" in result.output
    assert "maintenance: OperationalError" in result.stderr  # said, and the loop went on
    assert result.stdout.count("exports_prepared") == 1  # in the second round, once
    assert "Nothing to do" not in result.output  # a round with nothing done stays quiet
    assert result.output.rstrip().endswith("maintenance: stopped")
    assert waits == [5.0, 5.0] and len(calls) == 3

    page = me.get("/account/data")
    assert "Download my data" in page.text and "being prepared" not in page.text
    download = me.get("/account/data/download")
    assert download.status_code == 200
    assert json.loads(download.data)["profile"]["email"] == "alice@acme.test"

    for args, problem in (
        (["--rounds", "1"], "--rounds goes with --every"),
        ([*every[2:], "--dry-run"], "--dry-run runs once"),
        (["--every", "0"], "0.5<=x<=86400"),
    ):
        refused = app.test_cli_runner().invoke(args=["maintenance", "run", *args])
        assert refused.exit_code == 2 and problem in refused.output, refused.output


def test_the_export_fills_every_kind_of_record(
    app: Flask, acme: Partner, acme_user: User, acme_admin: User, frozen_clock
) -> None:
    """A role change, a subscription with its history, a support session, and the mail of an
    address the user had: each shows in the copy; mail sent to that address after the change
    (someone else's by then) does not."""
    set_feature(acme, "impersonation", True)
    agent = make_user(acme, "agent@acme.test", is_support=True, display_name="Sam Support")
    acting_as(app, agent, acme_user, reason="Checking the invoice address", ticket="T-42")
    with partner_scope(acme):
        me = db.session.get(User, acme_user.id)
        admin = db.session.get(User, acme_admin.id)
        change_role(admin, me, Role.ADVANCED)
        starter = plan("starter", roles=(Role.ADVANCED,))
        start_signing(me, starter, actor=me, kind=ActorKind.USER)
        db.session.add(OutboxMessage(**MAIL, to_address="old.alice@acme.test", subject="Before"))
        db.session.commit()
        frozen_clock.advance(timedelta(minutes=1))
        record_audit(
            "account.email_change",
            target=me,
            actor=me,
            details={"from": "old.alice@acme.test", "to": "alice@acme.test"},
        )
        db.session.commit()
        frozen_clock.advance(timedelta(minutes=1))
        db.session.add(OutboxMessage(**MAIL, to_address="old.alice@acme.test", subject="After"))
        db.session.commit()
        data = build_export(db.session.get(User, acme_user.id))
    [changed] = data["role_history"]
    assert changed["to"] == "advanced"
    [subscription] = data["subscriptions"]
    assert subscription["plan"] == "Starter" and subscription["state"] == "signing"
    assert [h["to"] for h in subscription["history"]] == ["signing"]
    [access] = data["support_accesses"]
    assert access["agent"] == "agent@acme.test" and access["ticket"] == "T-42"
    assert access["reason"] == "Checking the invoice address"
    subjects = {m["subject"] for m in data["emails"] if m["to"] == "old.alice@acme.test"}
    assert subjects == {"Before"}


# --- Closing one's account ----------------------------------------------------------------------


def test_closing_needs_the_password_and_can_be_cancelled_by_me_or_an_admin(
    app: Flask, acme: Partner, acme_user: User, acme_admin: User
) -> None:
    me = client_from(app, acme_user, USER_IP)
    wrong = me.post_form("/account/data/close", {"password": "nope"}, follow_redirects=True)
    assert "Your password is not correct." in wrong.text
    assert rows(User, id=acme_user.id)[0].closing_at is None
    done = me.post_form("/account/data/close", {"password": PASSWORD})
    page = me.get("/account/data")
    assert done.status_code == 302 and "Your account closes on" in page.text
    me.post_form("/account/data/close/cancel")
    assert rows(User, id=acme_user.id)[0].closing_at is None
    me.post_form("/account/data/close", {"password": PASSWORD})
    admin = client_from(app, acme_admin, ADMIN_IP)
    assert "Cancel the closure" in admin.get(f"/admin/users/{acme_user.id}").text
    admin.post_form(f"/admin/users/{acme_user.id}/closure/cancel")
    assert rows(User, id=acme_user.id)[0].closing_at is None


def test_a_closed_account_is_erased_after_the_cooling_off(
    app: Flask, acme: Partner, acme_user: User
) -> None:
    me = client_from(app, acme_user, USER_IP)
    me.post_form("/account/data/close", {"password": PASSWORD})
    maintenance(app)
    assert rows(User, id=acme_user.id)[0].email == "alice@acme.test"  # cooling off
    clock.advance(timedelta(days=14, minutes=1))
    assert "accounts_closed" in maintenance(app)
    user = rows(User, id=acme_user.id)[0]
    assert user.email == f"erased-{user.id}@erased.invalid"
    assert user.status == UserStatus.DEACTIVATED


def test_the_last_admin_cannot_close_their_account(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = client_from(app, acme_admin, ADMIN_IP)
    page = admin.post_form("/account/data/close", {"password": PASSWORD}, follow_redirects=True)
    assert "You are the last active admin" in page.text
    assert rows(User, id=acme_admin.id)[0].closing_at is None


# --- Erasure ------------------------------------------------------------------------------------


def _every_value(engine_rows: Any) -> list[str]:
    return [str(v) for row in engine_rows for v in row if v is not None]


def scan_everything(owner_engine: Any) -> str:
    """Every column of every table, as text (the database owner reads past row security)."""
    engine, _url = owner_engine
    with engine.connect() as conn:
        found = []
        # SQLite's contentless full-text index of users (0017) cannot be read row by row; its
        # shadow tables, which hold what it indexed, are.
        virtual = set()
        if conn.dialect.name == "sqlite":
            virtual = set(
                conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'"
                ).scalars()
            )
        for table in sa.inspect(engine).get_table_names():
            if table == "alembic_version" or table in virtual:
                continue
            found += _every_value(conn.execute(sa.text(f'SELECT * FROM "{table}"')))
    return "\n".join(found).lower()


def test_erasure_leaves_no_personal_data_in_any_table(
    app: Flask, acme: Partner, acme_user: User, acme_admin: User, owner_engine: Any
) -> None:
    me = client_from(app, acme_user, USER_IP)
    me.post_form("/account/profile", {"display_name": "Zelda Zyx"})
    me.post_form("/account/data/export")
    maintenance(app)
    admin = client_from(app, acme_admin, ADMIN_IP)
    admin.post_form(f"/admin/users/{acme_user.id}/password-reset")
    with partner_scope(acme):  # an API client's stored answer about her (Idempotency-Key)
        client = ApiClient(
            name="Back office",
            client_id="pp_test",
            secret_hash="0" * 64,
            created_by_id=acme_admin.id,
        )
        db.session.add(client)
        db.session.flush()
        db.session.add(
            IdempotentRequest(
                api_client_id=client.id,
                key="k1",
                request_hash="0" * 64,
                status=200,
                body={"email": "alice@acme.test", "display_name": "Zelda Zyx"},
            )
        )
        db.session.commit()
    before = scan_everything(owner_engine)
    assert "alice@acme.test" in before and USER_IP in before and "zelda zyx" in before
    events_before = len(rows(AuditEvent))

    refused = admin.post_form(f"/admin/users/{acme_user.id}/erase", follow_redirects=True)
    assert "Tick the confirmation" in refused.text
    done = admin.post_form(
        f"/admin/users/{acme_user.id}/erase", {"confirm": "erase"}, follow_redirects=True
    )
    assert "data is erased; the account is kept" in done.text

    after = scan_everything(owner_engine)
    for secret in ("alice@acme.test", "zelda zyx", "alice acme", USER_IP, "unique-agent-xyz"):
        assert secret not in after, secret
    # The records stay, pointing at the placeholder; the erasure itself is on record.
    assert len(rows(AuditEvent)) > events_before
    user = rows(User, id=acme_user.id)[0]
    assert user.display_name == "Erased user"
    erasure = rows(AuditEvent, action="privacy.erasure")
    assert len(erasure) == 1 and erasure[0].actor_id == acme_admin.id
    assert erasure[0].target_id == str(acme_user.id)
    assert rows(UserSession, user_id=acme_user.id) == []
    assert rows(ActionToken, user_id=acme_user.id) == []
    assert any(e.target_id == str(acme_user.id) for e in rows(AuditEvent, action="auth.login"))


def test_erasure_leaves_no_trigram_of_the_person_in_the_sqlite_search_index(
    app: Flask, acme: Partner, acme_user: User, acme_admin: User, owner_engine: Any
) -> None:
    """The users index (0017) keeps what it indexed in its shadow tables: a deleted entry's
    trigrams stay there until the index is merged, so erasure merges it."""
    engine, _url = owner_engine
    if engine.dialect.name != "sqlite":
        pytest.skip("the trigram index is SQLite's (PostgreSQL's trigram indexes hold no copy)")

    def indexed_text() -> str:
        with engine.connect() as conn:
            blocks = conn.exec_driver_sql("SELECT block FROM users_search_data").scalars()
            return b"".join(b for b in blocks if b).decode("latin-1").lower()

    me = client_from(app, acme_user, USER_IP)
    me.post_form("/account/profile", {"display_name": "Zelda Quxwell"})
    # Trigrams found in no other indexed text (the other users, the placeholder).
    unique = ("lda", "eld", "uxw", "xwe")
    assert any(t in indexed_text() for t in unique)
    admin = client_from(app, acme_admin, ADMIN_IP)
    done = admin.post_form(
        f"/admin/users/{acme_user.id}/erase", {"confirm": "erase"}, follow_redirects=True
    )
    assert "data is erased; the account is kept" in done.text
    left = indexed_text()
    assert [t for t in unique if t in left] == []
    # The index still finds who is left, and the erased account under its placeholder.
    found = admin.get("/admin/users/?q=root@acme").text
    assert "root@acme.test" in found


def test_erasure_scrubs_the_operators_rows_and_failed_sign_ins_that_name_the_person(
    app: Flask, acme: Partner, globex: Partner, acme_user: User, acme_admin: User
) -> None:
    runner = app.test_cli_runner()
    for args in (
        ["partner", "grant-admin", "acme", "alice@acme.test"],
        ["partner", "suspend", "acme", "--reason", "complaint by Alice Acme"],
        ["partner", "reactivate", "acme"],
        ["partner", "grant-admin", "globex", "alice@acme.test"],  # another partner's business
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    host_client(app, "acme").login("alice@acme.test", "not-her-password")

    def platform_rows(partner: Partner) -> list[AuditEvent]:
        events = rows(AuditEvent, target_type="partners", target_id=str(partner.id))
        return [e for e in events if e.partner_id is None]

    named = [e for e in platform_rows(acme) if "alice" in json.dumps(e.details).lower()]
    assert {e.action for e in named} == {"partner.admin_granted", "partner.suspend"}
    [failed] = rows(AuditEvent, action="auth.login_failed")
    assert failed.target_id == "alice@acme.test"

    admin = client_from(app, acme_admin, ADMIN_IP)
    done = admin.post_form(f"/admin/users/{acme_user.id}/erase", {"confirm": "erase"})
    assert done.status_code == 302

    for event in platform_rows(acme):
        assert "alice" not in json.dumps(event.details).lower(), event.action
    granted = [e for e in platform_rows(acme) if e.action == "partner.admin_granted"]
    assert [e.details for e in granted] == [{"email": "[erased]"}]
    suspended = [e.details for e in platform_rows(acme) if e.action == "partner.suspend"]
    assert {"reason": "[erased]", "sessions": 0} in suspended
    [failed] = rows(AuditEvent, action="auth.login_failed")
    assert failed.target_id == f"erased-{acme_user.id}@erased.invalid"
    # Globex's record of its own admin, who has the same address, is Globex's.
    [other] = [e for e in platform_rows(globex) if e.action == "partner.admin_granted"]
    assert other.details == {"email": "alice@acme.test"}
    [erasure] = rows(AuditEvent, action="privacy.erasure")
    assert erasure.details["audit_events"] >= 4


def test_erasure_from_the_command_line(app: Flask, acme: Partner, acme_user: User) -> None:
    result = app.test_cli_runner().invoke(
        args=["privacy", "erase", "acme", "alice@acme.test", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert "Erased user" in result.output
    assert rows(User, id=acme_user.id)[0].email.endswith("@erased.invalid")
    missing = app.test_cli_runner().invoke(
        args=["privacy", "erase", "acme", "x@acme.test", "--yes"]
    )
    assert missing.exit_code == 1 and "has no user" in missing.output


# --- Retention ----------------------------------------------------------------------------------


def test_retention_settings_within_the_operator_bounds(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = client_from(app, acme_admin, ADMIN_IP)
    assert admin.get("/admin/settings/retention").status_code == 200
    values = {
        "sessions_days": "7",
        "tokens_days": "7",
        "outbox_days": "10",
        "audit_ip_days": "30",
        "audit_years": "0",
        "closing_days": "3",
    }
    bad = admin.post_form("/admin/settings/retention", values)
    assert bad.status_code == 422 and "audit years must be between" in bad.text.lower()
    too_long = admin.post_form(
        "/admin/settings/retention", {**values, "audit_years": "2", "tokens_days": "999"}
    )
    assert too_long.status_code == 422 and "at most 365 days" in too_long.text
    ok = admin.post_form("/admin/settings/retention", {**values, "audit_years": "2"})
    assert ok.status_code == 302
    assert rows(Partner, id=acme.id)[0].retention.tokens_days == 7
    assert rows(AuditEvent, action="settings.retention_update")


def _seed_old_records(partner: Partner, user: User, start: datetime) -> None:
    with partner_scope(partner):
        for i in range(5):
            db.session.add(
                UserSession(
                    user_id=user.id,
                    token_hash=f"{partner.slug}-{i}".ljust(64, "0"),
                    created_at=start,
                    last_seen_at=start,
                    expires_at=start + timedelta(hours=1),
                    ip=USER_IP,
                )
            )
            db.session.add(
                OutboxMessage(
                    to_address=user.email,
                    from_address="x@portal.test",
                    subject="Old",
                    body_text="old body",
                    body_html="<p>old body</p>",
                    created_at=start,
                )
            )
            db.session.add(
                AuditEvent(
                    actor_type="system",
                    action="test.old",
                    ip=USER_IP,
                    created_at=start,
                    details={},
                )
            )
        db.session.commit()


def test_each_policy_removes_exactly_what_it_should_in_batches(
    app: Flask, acme: Partner, globex: Partner, acme_user: User, globex_user: User
) -> None:
    start = clock.now()
    _seed_old_records(acme, acme_user, start - timedelta(days=3 * 365))
    _seed_old_records(globex, globex_user, start)
    dry = maintenance(app, "--dry-run")
    assert "acme" in dry and "would process 5" in dry
    assert len(rows(UserSession)) == 10  # nothing changed
    out = maintenance(app, "--batch", "2")
    assert "acme                     sessions_deleted       processed 5" in out
    assert "globex" not in out
    assert len(rows(UserSession)) == 5
    bodies = {m.body_text for m in rows(OutboxMessage) if m.subject == "Old"}
    assert bodies == {"", "old body"}
    acme_ips = {e.ip for e in rows(AuditEvent, action="test.old", partner_id=acme.id)}
    assert acme_ips == {"203.0.113.0/24"}
    assert {e.ip for e in rows(AuditEvent, action="test.old", partner_id=globex.id)} == {USER_IP}
    truncations = rows(AuditEvent, action="retention.audit_ips_truncated")
    assert [e.details["count"] for e in truncations] == [2, 2, 1]  # batches of 2, each recorded
    # Six years later every acme event of that time is deleted, never below the operator's
    # minimum (one year) and never another partner's.
    clock.advance(timedelta(days=4 * 365))
    maintenance(app)
    assert rows(AuditEvent, action="test.old", partner_id=acme.id) == []
    assert len(rows(AuditEvent, action="test.old", partner_id=globex.id)) == 5


def test_tokens_are_deleted_after_their_days(app: Flask, acme: Partner, acme_user: User) -> None:
    now = clock.now()
    with partner_scope(acme):
        for i, (used, expires) in enumerate(
            [
                (now - timedelta(days=31), now + timedelta(days=1)),
                (None, now - timedelta(days=29)),
                (None, now + timedelta(days=1)),
            ]
        ):
            db.session.add(
                ActionToken(
                    user_id=acme_user.id,
                    purpose="invite",
                    token_hash=f"t{i}".ljust(64, "0"),
                    used_at=used,
                    expires_at=expires,
                )
            )
        db.session.commit()
    maintenance(app)
    assert len(rows(ActionToken)) == 2


def test_api_tokens_and_idempotency_keys_go_after_the_tokens_days(
    app: Flask, acme: Partner, acme_admin: User
) -> None:
    now = clock.now()
    with partner_scope(acme):
        client = ApiClient(
            name="Back office",
            client_id="pp_test",
            secret_hash="0" * 64,
            created_by_id=acme_admin.id,
        )
        db.session.add(client)
        db.session.flush()
        for i, (expires, revoked) in enumerate(
            [
                (now - timedelta(days=31), None),  # expired long ago: deleted
                (now + timedelta(hours=1), now - timedelta(days=31)),  # revoked long ago: deleted
                (now - timedelta(days=29), None),  # expired recently: kept
            ]
        ):
            db.session.add(
                ApiToken(
                    api_client_id=client.id,
                    token_hash=f"a{i}".ljust(64, "0"),
                    expires_at=expires,
                    revoked_at=revoked,
                )
            )
        for i, age in enumerate((31, 29)):
            db.session.add(
                IdempotentRequest(
                    api_client_id=client.id,
                    key=f"k{i}",
                    request_hash="0" * 64,
                    status=201,
                    body={"email": "new@acme.test"},
                    created_at=now - timedelta(days=age),
                )
            )
        db.session.commit()
    maintenance(app)
    assert [t.token_hash[:2] for t in rows(ApiToken)] == ["a2"]
    assert [k.key for k in rows(IdempotentRequest)] == ["k1"]


# --- Offboarding --------------------------------------------------------------------------------


def count_per_partner(owner_engine: Any, partner_id: int) -> dict[str, int]:
    engine, _url = owner_engine
    counts = {}
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            columns = {c["name"] for c in sa.inspect(engine).get_columns(table)}
            if "partner_id" in columns:
                counts[table] = conn.execute(
                    sa.text(f'SELECT count(*) FROM "{table}" WHERE partner_id = :p'),
                    {"p": partner_id},
                ).scalar_one()
    return counts


def test_offboarding_archive_close_and_delete(
    app: Flask,
    acme: Partner,
    globex: Partner,
    acme_user: User,
    globex_user: User,
    acme_admin: User,
    owner_engine: Any,
    root: Any,
) -> None:
    make_operator()
    client_from(app, acme_user, USER_IP)
    client_from(app, globex_user, OTHER_IP)
    image = b"\x89PNG\r\n\x1a\n not really an image, bytes all the same \x00\xff"
    with partner_scope(acme):  # a logo: the one binary column of a partner's tables
        db.session.add(
            PartnerLogo(digest=hashlib.sha256(image).hexdigest(), data=image, width=2, height=1)
        )
        db.session.commit()
    globex_before = count_per_partner(owner_engine, globex.id)
    out = app.test_cli_runner().invoke(args=["partner", "export", "acme", "-o", "/dev/null"])
    assert out.exit_code == 0, out.output
    acme_before = count_per_partner(owner_engine, acme.id)  # with the export's own event

    assert root.login("op@portal.test").status_code == 302
    archive = root.post_form(f"/operator/partners/{acme.id}/archive")
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    manifest, tables = read_archive(archive.data)
    assert manifest["partner"] == "acme" and manifest["exported_at"].endswith("Z")
    assert all(u["created_at"].endswith("Z") for u in tables["users"])  # times say they are UTC
    for table, count in acme_before.items():
        assert len(tables[table]) == count, table  # every row of the partner, per table
    assert {u["email"] for u in tables["users"]} == {"alice@acme.test", "root@acme.test"}
    assert all(u["partner_id"] == acme.id for t in tables.values() for u in t if "partner_id" in u)
    [logo] = tables["partner_logos"]
    assert base64.b64decode(logo["data"]) == image  # binary columns as base64 text

    refused = root.post_form(
        f"/operator/partners/{acme.id}/close",
        {"grace_days": "7", "confirm": "wrong"},
        follow_redirects=True,
    )
    assert "address name to confirm" in refused.text
    root.post_form(f"/operator/partners/{acme.id}/close", {"grace_days": "7", "confirm": "acme"})
    assert rows(Partner, id=acme.id)[0].status == PartnerStatus.CLOSED
    closed = host_client(app, "acme").get("/login")
    assert closed.status_code == 410 and "is closed" in closed.text

    early = root.post_form(
        f"/operator/partners/{acme.id}/delete",
        {"understood": "1", "confirm": "acme"},
        follow_redirects=True,
    )
    assert "when its grace period ends" in early.text
    clock.advance(timedelta(days=7, minutes=1))
    assert root.login("op@portal.test").status_code == 302  # the console session timed out
    once = root.post_form(
        f"/operator/partners/{acme.id}/delete", {"confirm": "acme"}, follow_redirects=True
    )
    assert "Tick that you understand" in once.text
    gone = root.post_form(
        f"/operator/partners/{acme.id}/delete",
        {"understood": "1", "confirm": "acme"},
        follow_redirects=True,
    )
    assert "Acme Corp is deleted" in gone.text
    assert set(count_per_partner(owner_engine, acme.id).values()) == {0}
    assert count_per_partner(owner_engine, globex.id) == globex_before
    assert rows(Partner, id=acme.id) == []
    assert host_client(app, "acme").get("/login").status_code == 404
    assert rows(AuditEvent, action="partner.delete")


def test_the_partners_own_trail_shows_the_operators_export_closing_and_reopening(
    app: Flask, acme: Partner, acme_admin: User, root: Any
) -> None:
    """What the platform did to the whole partner is on the partner's own audit log too, for
    its admins to read once it is back: who took a copy of everything, closed it, reopened it."""
    make_operator()
    assert root.login("op@portal.test").status_code == 302
    assert root.post_form(f"/operator/partners/{acme.id}/archive").status_code == 200
    root.post_form(f"/operator/partners/{acme.id}/close", {"grace_days": "7", "confirm": "acme"})
    assert rows(Partner, id=acme.id)[0].status == PartnerStatus.CLOSED
    root.post_form(f"/operator/partners/{acme.id}/reopen")
    root.post_form(f"/operator/partners/{acme.id}/reactivate")
    assert rows(Partner, id=acme.id)[0].status == PartnerStatus.ACTIVE
    own = [e for e in rows(AuditEvent, partner_id=acme.id) if e.action.startswith("partner.")]
    assert [e.action for e in own] == [
        "partner.export",
        "partner.close",
        "partner.reopen",
        "partner.reactivate",
    ]
    assert {e.actor_label for e in own} == {"op@portal.test"}
    log = client_from(app, acme_admin, ADMIN_IP).get("/admin/audit/").text
    for label in (
        "All of the partner&#39;s data exported",
        "Partner closed",
        "Partner reopened",
        "Partner reactivated",
    ):
        assert label in log, label


def test_closing_refuses_bad_grace_periods(app: Flask, acme: Partner, root: Any) -> None:
    make_operator()
    assert root.login("op@portal.test").status_code == 302
    page = root.post_form(
        f"/operator/partners/{acme.id}/close",
        {"grace_days": "0", "confirm": "acme"},
        follow_redirects=True,
    )
    assert "between 1 and 365 days" in page.text
    assert rows(Partner, id=acme.id)[0].status == PartnerStatus.ACTIVE


# --- Refusals and isolation ---------------------------------------------------------------------


def test_another_partners_user_cannot_be_erased_or_touched(
    app: Flask, acme: Partner, globex: Partner, acme_admin: User, globex_user: User
) -> None:
    admin = client_from(app, acme_admin, ADMIN_IP)
    for path in (
        f"/admin/users/{globex_user.id}/erase",
        f"/admin/users/{globex_user.id}/closure/cancel",
    ):
        assert admin.post_form(path, {"confirm": "erase"}).status_code == 404
    assert rows(User, id=globex_user.id)[0].email == "gus@globex.test"
    erased_self = admin.post_form(
        f"/admin/users/{acme_admin.id}/erase", {"confirm": "erase"}, follow_redirects=True
    )
    assert "You cannot erase your own account here" in erased_self.text


def test_the_last_admin_cannot_be_erased(app: Flask, acme: Partner, acme_admin: User) -> None:
    result = app.test_cli_runner().invoke(
        args=["privacy", "erase", "acme", "root@acme.test", "--yes"]
    )
    assert result.exit_code == 1 and "last active admin" in result.output
    assert rows(User, id=acme_admin.id)[0].email == "root@acme.test"


def test_support_agents_cannot_export_or_close_the_account_they_act_in(
    app: Flask, acme: Partner, acme_user: User
) -> None:
    set_feature(acme, "impersonation", True)
    agent = make_user(acme, "agent@acme.test", is_support=True, display_name="Sam Support")
    client = acting_as(app, agent, acme_user, reason="Checking the invoice address")
    assert client.get("/account/data").status_code == 403
    assert client.post_form("/account/data/export").status_code == 403
    assert client.post_form("/account/data/close", {"password": PASSWORD}).status_code == 403
    assert rows(DataExport) == [] and rows(User, id=acme_user.id)[0].closing_at is None


def test_an_account_without_password_needs_a_recent_sign_in_to_close(
    app: Flask, acme: Partner, acme_user: User, acme_admin: User
) -> None:
    me = client_from(app, acme_user, USER_IP)
    with partner_scope(acme):
        user = db.session.get(User, acme_user.id)
        user.password_hash = None
        db.session.commit()
    assert "has no password" in me.get("/account/data").text
    clock.advance(timedelta(minutes=11))
    late = me.post_form("/account/data/close", follow_redirects=True)
    assert "Sign in again" in late.text
    assert rows(User, id=acme_user.id)[0].closing_at is None


def test_offboarding_from_the_command_line(
    app: Flask,
    acme: Partner,
    globex: Partner,
    acme_admin: User,
    globex_user: User,
    owner_engine: Any,
    tmp_path: Any,
) -> None:
    runner = app.test_cli_runner()
    acme_id = acme.id
    globex_before = count_per_partner(owner_engine, globex.id)
    archive = tmp_path / "acme.zip"
    assert runner.invoke(args=["partner", "export", "acme", "-o", str(archive)]).exit_code == 0
    manifest, tables = read_archive(archive.read_bytes())
    assert manifest["tables"]["users"] == 1 and tables["users"][0]["email"] == "root@acme.test"
    closed = runner.invoke(args=["partner", "close", "acme", "--grace-days", "2"])
    assert closed.exit_code == 0 and "acme is closed" in closed.output
    early = runner.invoke(args=["partner", "delete", "acme", "--confirm", "acme"], input="y\n")
    assert early.exit_code == 1 and "grace period ends" in early.output
    clock.advance(timedelta(days=2, seconds=1))
    wrong = runner.invoke(args=["partner", "delete", "acme", "--confirm", "acm"], input="y\n")
    assert wrong.exit_code == 1 and "exactly to confirm" in wrong.output
    gone = runner.invoke(args=["partner", "delete", "acme", "--confirm", "acme"], input="y\n")
    assert gone.exit_code == 0, gone.output
    assert set(count_per_partner(owner_engine, acme_id).values()) == {0}
    assert count_per_partner(owner_engine, globex.id) == globex_before


def test_the_maintenance_run_gives_sqlite_its_planner_statistics(
    app: Flask, make_app: Any, acme: Partner, tmp_path: Path
) -> None:
    """On SQLite the run ends with ANALYZE (a dry run does not); PostgreSQL's autovacuum keeps
    its own statistics, so there the run says nothing about them. On a database of its own:
    statistics in the suite's shared one would change the plans of every later test."""
    if db.engine.dialect.name != "sqlite":
        assert "statistics" not in maintenance(app)
        return
    own = make_app(fresh=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/own.sqlite3")
    with own.app_context():
        upgrade(directory=str(Path(__file__).parent.parent / "migrations"))
        db.session.add(Partner(slug="acme", name="Acme"))
        db.session.commit()

        def statistics() -> list[str]:
            with db.engine.connect() as connection:
                return [
                    row[0]
                    for row in connection.exec_driver_sql(
                        "SELECT DISTINCT tbl FROM sqlite_stat1 ORDER BY tbl"
                    )
                ]

        assert "Query planner statistics" not in maintenance(own, "--dry-run")
        with db.engine.connect() as connection:
            assert not connection.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).all()
        assert "Query planner statistics refreshed (SQLite ANALYZE): " in maintenance(own)
        assert "partners" in statistics() and "users" not in statistics()  # no users yet
        # Nothing has changed: nothing is analyzed again.
        assert "Query planner statistics are current (SQLite)." in maintenance(own)
        # A table whose count moves by a tenth, or that gets rows, is analyzed, and only it.
        partner = db.session.execute(sa.select(Partner)).scalar_one()
        with partner_scope(partner):
            for n in range(12):
                db.session.add(User(email=f"u{n}@acme.test", role=Role.BASIC))
            db.session.commit()
        said = maintenance(own).split("Query planner statistics refreshed (SQLite ANALYZE): ")
        analyzed = said[1].strip().rstrip(".").split(", ")
        # The users and their search index's own tables; not the partners, which are as many.
        assert "users" in analyzed and "partners" not in analyzed, analyzed
        assert "users" in statistics()
        db.engine.dispose()
