"""Every write is audited: walk every POST route of a partner's host, each from a state
where it succeeds, with exactly the audit events it must write (by whom, in which partner);
the same for the partner API's writes (by the API client) and for every POST route of the
root domain (the operator console). A route none of the tables lists fails the walk."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from apikit import Api, api_client_for, get_token, token_response
from conftest import (
    PASSWORD,
    HostClient,
    host_client,
    logged_in,
    make_partner,
    make_user,
    rows,
    set_feature,
)
from flask import Flask
from mailed import mailed_link
from oidc import ACME_CLIENT, ALICE, NEWBIE, Flow, ProviderServer
from test_authz_matrix import session_alive, signed_in
from test_route_walk import is_bearer
from test_sso_logout import logout_token

from portal.audit.models import ActorType, AuditEvent
from portal.auth.passwords import hash_password
from portal.clock import clock
from portal.extensions import db
from portal.features.catalogue import CATALOGUE, PLAN_GATED, Scope
from portal.features.models import FeatureSetting
from portal.mail.models import MailStatus, OutboxMessage
from portal.operator.models import Operator
from portal.operator.services import set_password_link
from portal.privacy.services import is_erased, request_closure
from portal.roles.models import Role
from portal.roles.permissions import DEFAULT_PERMISSIONS, default_transitions
from portal.sessions.models import UserSession
from portal.sso.models import SsoIdentity
from portal.subscriptions.models import BillingInterval, Plan, PlanStatus, Subscription
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.plans import PlanInput, create_plan, set_plan_status
from portal.subscriptions.services import ActorKind, accept_terms, start_signing, transition
from portal.tenancy.models import Partner, PartnerStatus, Theme
from portal.tenancy.scope import partner_scope, unscoped
from portal.users.models import User, UserStatus

# Bookkeeping a request keeps without it being anyone's action: when a session was last used,
# when a user last signed in; and the trail and the mail themselves.
NOT_ACTIONS = {"last_seen_at", "last_login_at", "last_used_at"}
SKIPPED_TABLES = {"audit_events", "outbox_messages"}


def stored(partner_id: int) -> dict[str, set]:
    """Every row of the partner, its own settings row too, without bookkeeping columns: one
    statement, each row as a JSON array (binary columns by their length)."""
    with unscoped():
        connection = db.session.connection()  # a plain statement: no ORM hook to run
        as_json = (
            sa.func.json_build_array
            if connection.dialect.name == "postgresql"
            else sa.func.json_array
        )
        parts = []
        for table in db.metadata.sorted_tables:
            if table.name in SKIPPED_TABLES:
                continue
            if table.name == Partner.__tablename__:
                key = table.c.id
            elif "partner_id" in table.c:
                key = table.c.partner_id
            else:
                continue
            columns = [
                sa.func.length(c) if isinstance(c.type, sa.LargeBinary) else c
                for c in table.c
                if c.name not in NOT_ACTIONS
            ]
            row = sa.cast(as_json(*columns), sa.Text)
            parts.append(sa.select(sa.literal(table.name), row).where(key == partner_id))
        state: dict[str, set] = {}
        for name, row in connection.execute(sa.union_all(*parts)):
            state.setdefault(name, set()).add(row)
        db.session.rollback()
        return state


def audit_ids(partner_id: int) -> set[int]:
    with unscoped():
        ids = set(
            db.session.execute(
                sa.select(AuditEvent.id).where(AuditEvent.partner_id == partner_id)
            ).scalars()
        )
        db.session.rollback()
        return ids


@dataclass
class Write:
    """One write driven from a state where it succeeds, and what the trail must then hold."""

    path: str
    form: dict[str, Any]
    actions: list[str]  # exactly these new events, in any order: at least one
    client: HostClient | None = None  # default: the walking admin's
    actor: User | None = None  # default: the walking admin; None with `anonymous`
    anonymous: bool = False  # nobody signed in: the event names no user
    check: Callable[[], object] | None = None  # the stored change, where cheap to read
    says: str = ""  # the confirming message, on the page or the one it redirects to
    status: tuple[int, ...] = (302,)
    then: Callable[[Any], Any] | None = None  # the rest of a flow the POST starts (a callback)
    send: Callable[[], Any] | None = None  # a request other than a form with its CSRF token
    by: tuple[ActorType, int | None] | None = None  # an actor other than a user


# POST routes of a partner host that write no audit event, with the reason.
NOT_WRITES = {
    "branding_admin.preview": "renders the form's branding without saving anything",
}


class Walk:
    """Acme with every feature on, a walking admin, a support agent, fresh users."""

    def __init__(self, app: Flask, acme: Partner) -> None:
        self.app, self.acme = app, acme
        self.admin = make_user(acme, "walker@acme.test", role=Role.ADMIN)
        # Admins cannot hold the support capability: an agent of their own.
        self.agent = make_user(acme, "agent@acme.test", role=Role.BASIC, is_support=True)
        make_user(acme, "keeper@acme.test", role=Role.ADMIN)  # never the last admin
        for key, item in CATALOGUE.items():
            if key != "password_login" and item.scope == Scope.PARTNER:
                set_feature(acme, key, True)
        self.counter = itertools.count()
        self._client: HostClient | None = None
        self._token = ""

    def walker(self) -> HostClient:
        return self.signed_in_admin()[0]

    def signed_in_admin(self) -> tuple[HostClient, str]:
        """The admin's client and its CSRF token, signed in again after a walk that ended its
        session (the partner's sessions all revoked)."""
        if self._client is None or not session_alive(self._client):
            self._client, self._token = signed_in(self.app, self.admin)
        return self._client, self._token

    def user(self, role: Role = Role.BASIC, **kw: Any) -> User:
        return make_user(self.acme, f"u{next(self.counter)}@acme.test", role=role, **kw)

    def me(self, role: Role = Role.BASIC) -> tuple[User, HostClient]:
        user = self.user(role)
        return user, logged_in(self.app, user)

    def visitor(self) -> HostClient:
        return host_client(self.app, "acme")

    def address(self) -> str:
        return f"new{next(self.counter)}@acme.test"

    def scoped(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        with partner_scope(self.acme):
            result = fn(*args, **kw)
            db.session.commit()
            return result

    def reload(self, model: type, row_id: int) -> Any:
        [row] = rows(model, id=row_id)
        return row

    def becomes(self, model: type, row_id: int, **values: Any) -> Callable[[], bool]:
        """A check that the stored row now holds `values`."""

        def check() -> bool:
            row = self.reload(model, row_id)
            return all(getattr(row, name) == value for name, value in values.items())

        return check

    def plan(self, approval: bool = False) -> Plan:
        return self.scoped(
            create_plan,
            PlanInput(
                f"p{next(self.counter)}",
                "Walk plan",
                "",
                0,
                "EUR",
                BillingInterval.MONTH,
                (Role.BASIC, Role.ADVANCED),
                (),
                approval,
                0,
            ),
            PLAN_GATED,
        )

    def subscription(self, user: User, state: S, approval: bool = False) -> Subscription:
        plan = self.plan(approval)
        with partner_scope(self.acme):
            subscriber = db.session.get(User, user.id)
            admin = db.session.get(User, self.admin.id)
            sub = start_signing(
                subscriber, db.session.get(Plan, plan.id), actor=subscriber, kind=ActorKind.USER
            )
            if state != S.SIGNING:
                accept_terms(sub, actor=subscriber)
            if state == S.SUSPENDED:
                transition(sub, S.SUSPENDED, actor=admin, kind=ActorKind.ADMIN, reason="unpaid")
            db.session.commit()
            return sub

    def invited(self) -> tuple[str, int]:
        email = self.address()
        response = self.walker().post_form("/admin/users/invite", {"email": email, "role": "basic"})
        assert response.status_code == 302, response.text
        [user] = rows(User, email=email)
        return email, user.id

    def other_session(self, user: User) -> int:
        """A second sign-in of `user` (another browser): its session's id."""
        logged_in(self.app, user)
        return rows(UserSession, user_id=user.id)[-1].id


NEW_PASSWORD = "a-new-horse-battery-staple"
BRANDING = {
    "brand_name": "Walked Rockets",
    "base": "default",
    "primary_color": "#2563eb",
    "accent_color": "#0f172a",
    "support_email": "",
    "support_url": "",
}
PLAN_FORM = {
    "name": "Gold",
    "price": "12.50",
    "currency": "eur",
    "interval": "month",
    "allowed_roles": ["advanced"],
    "position": "3",
}


def partner_writes(w: Walk) -> dict[str, Callable[[], list[Write]]]:
    """Per POST endpoint of a partner host (sign-in pages, admin pages, the user's own): set up
    the state its write needs and return the request(s) that succeed and what they record."""

    def login() -> list[Write]:
        user = w.user()
        form = {"email": user.email, "password": PASSWORD}
        return [Write("/login", form, ["session.start", "auth.login"], w.visitor(), user)]

    def logout() -> list[Write]:
        user, client = w.me()
        return [Write("/logout", {}, ["session.revoke", "auth.logout"], client, user)]

    def profile() -> list[Write]:
        user, client = w.me()
        check = w.becomes(User, user.id, display_name="Walked Name")
        form = {"display_name": "Walked Name"}
        return [
            Write("/account/profile", form, ["account.profile_update"], client, user, check=check)
        ]

    def email_change(confirm: bool = False, cancel: bool = False) -> Callable[[], list[Write]]:
        def prepare() -> list[Write]:
            user, client = w.me()
            new = w.address()
            form = {"new_email": new, "password": PASSWORD}
            if not (confirm or cancel):
                return [
                    Write("/account/email", form, ["account.email_change_request"], client, user)
                ]
            assert client.post_form("/account/email", form).status_code == 302
            if cancel:
                return [
                    Write(
                        "/account/email/cancel", {}, ["account.email_change_cancel"], client, user
                    )
                ]
            path = mailed_link(new, "/account/email/confirm/")
            check = w.becomes(User, user.id, email=new)
            return [Write(path, {}, ["account.email_change"], client, user, check=check)]

        return prepare

    def password() -> list[Write]:
        user, client = w.me()
        form = {"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        return [Write("/account/password", form, ["account.password_change"], client, user)]

    def forgot() -> list[Write]:
        user = w.user()
        form = {"email": user.email}
        return [
            Write(
                "/password/forgot",
                form,
                ["account.password_reset_request"],
                w.visitor(),
                None,
                anonymous=True,
            )
        ]

    def reset() -> list[Write]:
        user = w.user()
        assert w.visitor().post_form("/password/forgot", {"email": user.email}).status_code == 302
        path = mailed_link(user.email, "/password/reset/")
        form = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        return [Write(path, form, ["account.password_reset"], w.visitor(), user)]

    def signup() -> list[Write]:
        form = {"email": w.address(), "display_name": "Walk In"}
        return [
            Write(
                "/signup",
                form,
                ["user.create", "account.signup"],
                w.visitor(),
                None,
                anonymous=True,
            )
        ]

    def verify_signup() -> list[Write]:
        email = w.address()
        visitor = w.visitor()
        assert (
            visitor.post_form("/signup", {"email": email, "display_name": "Walk In"}).status_code
            == 302
        )
        path = mailed_link(email, "/signup/verify/")
        [user] = rows(User, email=email)
        form = {"display_name": "Walk In", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        return [Write(path, form, ["account.signup_verified"], visitor, user)]

    def export() -> list[Write]:
        user, client = w.me()
        return [Write("/account/data/export", {}, ["privacy.export_request"], client, user)]

    def close(cancel: bool = False) -> Callable[[], list[Write]]:
        def prepare() -> list[Write]:
            user, client = w.me()
            if not cancel:
                form = {"password": PASSWORD}
                return [
                    Write("/account/data/close", form, ["privacy.closure_request"], client, user)
                ]
            assert (
                client.post_form("/account/data/close", {"password": PASSWORD}).status_code == 302
            )
            return [
                Write("/account/data/close/cancel", {}, ["privacy.closure_cancel"], client, user)
            ]

        return prepare

    def accept() -> list[Write]:
        email, user_id = w.invited()
        path = mailed_link(email, "/invite/")
        form = {"display_name": "Invited", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        user = w.reload(User, user_id)
        return [Write(path, form, ["invitation.accept"], w.visitor(), user)]

    def invite() -> list[Write]:
        form = {"email": w.address(), "role": "basic"}
        return [Write("/admin/users/invite", form, ["user.create", "invitation.send"])]

    def on_invited(suffix: str, action: str) -> Callable[[], list[Write]]:
        def prepare() -> list[Write]:
            _, user_id = w.invited()
            return [Write(f"/admin/users/{user_id}/invitation/{suffix}", {}, [action])]

        return prepare

    def on_user(
        suffix: str,
        form: dict,
        actions: list[str],
        prep: str = "",
        done: Callable[[User], bool] | None = None,
    ) -> Callable[[], list[Write]]:
        def prepare() -> list[Write]:
            target = w.user()
            if prep:
                assert w.walker().post_form(f"/admin/users/{target.id}/{prep}").status_code == 302
            check = done and (lambda: done(w.reload(User, target.id)))
            return [Write(f"/admin/users/{target.id}/{suffix}", form, actions, check=check)]

        return prepare

    def bulk() -> list[Write]:
        one, two = w.user(), w.user()
        form = {"action": "role", "role": "advanced", "user_ids": [one.id, two.id]}
        check = lambda: {w.reload(User, u.id).role for u in (one, two)} == {Role.ADVANCED}  # noqa: E731
        return [
            Write("/admin/users/bulk", form, ["user.role_change"] * 2, status=(200,), check=check)
        ]

    def erase() -> list[Write]:
        target = w.user()
        check = lambda: is_erased(w.reload(User, target.id))  # noqa: E731
        path, form = f"/admin/users/{target.id}/erase", {"confirm": "erase"}
        return [Write(path, form, ["privacy.erasure"], check=check)]

    def cancel_closure() -> list[Write]:
        target = w.user()
        with partner_scope(w.acme):
            request_closure(db.session.get(User, target.id), password=PASSWORD, signed_in_at=None)
            db.session.commit()
        path = f"/admin/users/{target.id}/closure/cancel"
        check = w.becomes(User, target.id, closing_at=None)
        return [Write(path, {}, ["privacy.closure_cancel"], check=check)]

    def roles() -> list[Write]:
        form: dict[str, Any] = {f"enabled_{r.value}": "1" for r in Role}
        form |= {f"label_{r.value}": f"Walked {r.value}" for r in Role}
        form |= {f"perm_{r.value}": [p.value for p in DEFAULT_PERMISSIONS[r]] for r in Role}
        return [Write("/admin/roles/", form, ["roles.update"])]

    def transitions() -> list[Write]:
        edges = {
            f"edge_{f.value}_{t.value}": m.value for (f, t), m in default_transitions().items()
        }
        edges["edge_guest_advanced"] = "company"
        return [Write("/admin/roles/transitions", edges, ["roles.transitions_update"])]

    def retention() -> list[Write]:
        form = {
            "sessions_days": "7",
            "tokens_days": "7",
            "outbox_days": "10",
            "audit_ip_days": "30",
            "audit_years": "2",
            "closing_days": "3",
        }
        check = lambda: w.reload(Partner, w.acme.id).retention.tokens_days == 7  # noqa: E731
        return [
            Write("/admin/settings/retention", form, ["settings.retention_update"], check=check)
        ]

    def session_policy() -> list[Write]:
        form = {
            "idle_minutes": "30",
            "absolute_hours": "12",
            "max_concurrent": "50",
            "remember_me_days": "14",
            "at_limit": "evict_oldest",
        }
        return [Write("/admin/settings/sessions", form, ["settings.session_policy_update"])]

    def api_client(suffix: str, action: str, status: int, says: str) -> Callable[[], list[Write]]:
        def prepare() -> list[Write]:
            _, _, row_id = api_client_for(w.acme, w.admin, name=f"Walk {next(w.counter)}")
            path = f"/admin/api-clients/{row_id}/{suffix}"
            return [Write(path, {}, [action], status=(status,), says=says)]

        return prepare

    def plan_edit(suffix: str, action: str, archived: bool = False) -> Callable[[], list[Write]]:
        def prepare() -> list[Write]:
            plan = w.plan()
            if archived:
                w.scoped(set_plan_status, db.session.get(Plan, plan.id), PlanStatus.ARCHIVED)
            form = {**PLAN_FORM, "code": plan.code} if suffix == "edit" else {}
            after = {
                "edit": {"name": "Gold"},
                "archive": {"status": PlanStatus.ARCHIVED},
                "restore": {"status": PlanStatus.ACTIVE},
            }[suffix]
            check = w.becomes(Plan, plan.id, **after)
            return [Write(f"/admin/plans/{plan.id}/{suffix}", form, [action], check=check)]

        return prepare

    def own_subscription(
        suffix: str, state: S | None, actions: list[str]
    ) -> Callable[[], list[Write]]:
        def prepare() -> list[Write]:
            user, client = w.me()
            if state is None:
                plan = w.plan()
                path, form = "/account/subscription/start", {"plan_id": plan.id}
            else:
                sub = w.subscription(user, state)
                path = f"/account/subscription/{sub.id}/{suffix}"
                form = {"accept_terms": "1"} if suffix == "confirm" else {}
            return [Write(path, form, actions, client, user)]

        return prepare

    def act() -> list[Write]:
        """Every action of the one endpoint, each from the state it needs (an approval plan's
        subscription with its terms accepted waits for the admin's approve or reject)."""
        writes = []
        for action, state, approval, to in [
            ("approve", S.SIGNED, True, "signed"),
            ("reject", S.SIGNED, True, "unsigned"),
            ("suspend", S.SIGNED, False, "suspended"),
            ("resume", S.SUSPENDED, False, "signed"),
            ("end", S.SIGNED, False, "unsigned"),
        ]:
            sub = w.subscription(w.user(), state, approval)
            form = {"reason": "walking every route"}
            path = f"/admin/subscriptions/{sub.id}/{action}"
            check = w.becomes(Subscription, sub.id, state=S(to))
            writes.append(Write(path, form, [f"subscription.{to}"], check=check))
        return writes

    def subs_bulk() -> list[Write]:
        ids = [w.subscription(w.user(), S.SIGNED).id for _ in range(2)]
        form = {"action": "suspend", "reason": "walking every route", "ids": ids}
        return [
            Write(
                "/admin/subscriptions/bulk",
                form,
                ["subscription.suspended"] * 2,
                status=(200, 302),
                check=lambda: {w.reload(Subscription, i).state for i in ids} == {S.SUSPENDED},
            )
        ]

    def start_for_user() -> list[Write]:
        form = {"user_id": w.user().id, "plan_id": w.plan().id}
        return [Write("/admin/subscriptions/start", form, ["subscription.signing"])]

    def own_sessions(all_others: bool) -> list[Write]:
        user, client = w.me()
        other = w.other_session(user)
        if all_others:
            return [
                Write(
                    "/account/sessions/revoke-others",
                    {},
                    ["session.revoke_all"],
                    client,
                    user,
                    says="Signed out 1 other session.",
                )
            ]
        check = w.becomes(UserSession, other, revoked_at=clock.now())
        path = f"/account/sessions/{other}/revoke"
        says = "That device is signed out."
        return [Write(path, {}, ["session.revoke"], client, user, check=check, says=says)]

    def admin_sessions(which: str) -> list[Write]:
        target = w.user()
        session_id = w.other_session(target)
        form = {"reason": "walking every route"}
        path = {
            "one": f"/admin/sessions/{session_id}/revoke",
            "user": f"/admin/sessions/user/{target.id}/revoke",
            "all": "/admin/sessions/revoke-all",
        }[which]
        action = {
            "one": "session.revoke",
            "user": "session.revoke_all",
            "all": "session.revoke_partner",
        }[which]
        check = w.becomes(UserSession, session_id, revoked_at=clock.now())
        return [Write(path, form, [action], check=check)]

    def support_start() -> list[Write]:
        target = w.user()
        agent = logged_in(w.app, w.agent)
        form = {"reason": "walking every route", "ticket": ""}
        path = f"/support/users/{target.id}/impersonate"
        return [Write(path, form, ["support.impersonation_start"], agent, w.agent)]

    def support_stop() -> list[Write]:
        target = w.user()
        agent = logged_in(w.app, w.agent)
        started = agent.post_form(
            f"/support/users/{target.id}/impersonate", {"reason": "walking every route"}
        )
        assert started.status_code == 302, started.text
        return [Write("/support/stop", {}, ["support.impersonation_end"], agent, w.agent)]

    def token() -> list[Write]:
        client_id, secret, row_id = api_client_for(w.acme, w.admin, name="Token walk")
        visitor = w.visitor()
        return [
            Write(
                "/oauth/token",
                {},
                ["api_token.issue"],
                send=lambda: token_response(visitor, client_id, secret),
                by=(ActorType.API_CLIENT, row_id),
                status=(200,),
            )
        ]

    def feature_switch() -> list[Write]:
        check = lambda: [r.enabled for r in rows(FeatureSetting, key="audit_export")] == [False]  # noqa: E731
        return [Write("/admin/features/audit_export", {"on": "0"}, ["feature.switch"], check=check)]

    return {
        "auth.login": login,
        "auth.logout": logout,
        "account.profile": profile,
        "account.request_email_change": email_change(),
        "account.cancel_email_change": email_change(cancel=True),
        "account.confirm_email": email_change(confirm=True),
        "account.password": password,
        "account.forgot_password": forgot,
        "account.reset_password": reset,
        "account.signup": signup,
        "account.verify_signup": verify_signup,
        "account_data.export": export,
        "account_data.close": close(),
        "account_data.cancel": close(cancel=True),
        "invitations.accept": accept,
        "users_admin.invite": invite,
        "users_admin.resend_invitation": on_invited("resend", "invitation.resend"),
        "users_admin.revoke_invitation": on_invited("revoke", "invitation.revoke"),
        "users_admin.change_role": on_user(
            "role",
            {"role": "advanced"},
            ["user.role_change"],
            done=lambda u: u.role == Role.ADVANCED,
        ),
        "users_admin.deactivate": on_user(
            "deactivate",
            {},
            ["user.deactivate"],
            done=lambda u: u.status == UserStatus.DEACTIVATED,
        ),
        "users_admin.reactivate": on_user(
            "reactivate",
            {},
            ["user.reactivate"],
            "deactivate",
            done=lambda u: u.status == UserStatus.ACTIVE,
        ),
        "users_admin.password_reset": on_user(
            "password-reset", {}, ["account.password_reset_send"]
        ),
        "users_admin.support": on_user(
            "support", {"enabled": "1"}, ["user.support_grant"], done=lambda u: u.is_support
        ),
        "users_admin.bulk": bulk,
        "privacy_admin.erase": erase,
        "privacy_admin.cancel_user_closure": cancel_closure,
        "privacy_admin.retention": retention,
        "roles_admin.index": roles,
        "roles_admin.transitions": transitions,
        "settings_admin.index": lambda: [
            Write(
                "/admin/settings/", {"default_role": "advanced"}, ["settings.default_role_update"]
            )
        ],
        "settings_admin.sessions": session_policy,
        "settings_admin.support": lambda: [
            Write(
                "/admin/settings/support",
                {"impersonation_minutes": "45", "impersonation_notify": "1"},
                ["settings.support_policy_update"],
            )
        ],
        "branding_admin.index": lambda: [
            Write("/admin/settings/branding/", BRANDING, ["branding.update"])
        ],
        "branding_admin.reset": lambda: [
            Write("/admin/settings/branding/reset", {}, ["branding.reset"], says="Branding reset")
        ],
        "api_clients_admin.create": lambda: [
            Write(
                "/admin/api-clients/",
                {"name": "Walked", "scopes": ["users:read"]},
                ["api_client.create"],
                status=(201,),
            )
        ],
        "api_clients_admin.rotate": api_client(
            "rotate", "api_client.rotate_secret", 200, "stopped working"
        ),
        "api_clients_admin.revoke": api_client(
            "revoke", "api_client.revoke", 302, "revoked: its secret and tokens no longer work"
        ),
        "plans_admin.new": lambda: [
            Write("/admin/plans/new", {**PLAN_FORM, "code": "gold"}, ["plan.create"])
        ],
        "plans_admin.edit": plan_edit("edit", "plan.update"),
        "plans_admin.archive": plan_edit("archive", "plan.archive"),
        "plans_admin.restore": plan_edit("restore", "plan.restore", archived=True),
        "subscription.start": own_subscription("start", None, ["subscription.signing"]),
        "subscription.confirm": own_subscription(
            "confirm", S.SIGNING, ["subscription.terms_accepted", "subscription.signed"]
        ),
        "subscription.cancel": own_subscription("cancel", S.SIGNED, ["subscription.unsigned"]),
        "subscription.abandon": own_subscription("abandon", S.SIGNING, ["subscription.unsigned"]),
        "subscriptions_admin.act": act,
        "subscriptions_admin.bulk": subs_bulk,
        "subscriptions_admin.start_for_user": start_for_user,
        "sessions.revoke": lambda: own_sessions(False),
        "sessions.revoke_others": lambda: own_sessions(True),
        "sessions_admin.revoke_one": lambda: admin_sessions("one"),
        "sessions_admin.revoke_user": lambda: admin_sessions("user"),
        "sessions_admin.revoke_all": lambda: admin_sessions("all"),
        "support.start": support_start,
        "support.stop": support_stop,
        "oauth.token": token,
        "features_admin.switch": feature_switch,  # last: it switches a feature off
    }


def partner_post_endpoints(app: Flask) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.subdomain == "<partner>"
        and "POST" in (rule.methods or ())
        and not is_bearer(app, rule.endpoint)
    }


def new_events(partner_id: int, before: set[int]) -> list[tuple]:
    """The partner's events since `before`: (action, actor type, actor id, actor label)."""
    columns = (
        AuditEvent.action,
        AuditEvent.actor_type,
        AuditEvent.actor_id,
        AuditEvent.actor_label,
    )
    with unscoped():
        events = [
            tuple(row)
            for row in db.session.execute(
                sa.select(*columns).where(
                    AuditEvent.partner_id == partner_id, AuditEvent.id.not_in(before)
                )
            )
        ]
        db.session.rollback()
        return events


def run_write(w: Walk, endpoint: str, write: Write) -> None:
    """Post `write` and assert: a success, the stored change, exactly its audit events, each
    by its actor in acme."""
    if write.client is None:  # the admin's: one CSRF token for the whole walk
        client, token = w.signed_in_admin()
        post = lambda: client.post(write.path, data={**write.form, "csrf_token": token})  # noqa: E731
    else:
        client = write.client
        post = lambda: client.post_form(write.path, write.form)  # noqa: E731
    before, events_before = stored(w.acme.id), audit_ids(w.acme.id)
    response = write.send() if write.send else post()
    if write.then is not None:
        response = write.then(response)
    label = (endpoint, write.path, response.status_code)
    assert write.actions, label  # a write is on the trail; a route that writes none: NOT_WRITES
    assert response.status_code in write.status, (*label, response.text[:2000])
    page = response.get_data(as_text=True)
    if response.status_code == 302 and write.send is None:  # a refusal shows its message
        page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "flash-error" not in page and 'class="field-error"' not in page, (*label, page[:3000])
    assert write.says in page, (*label, write.says)
    assert stored(w.acme.id) != before, label  # something was written
    if write.check is not None:
        assert write.check(), label
    events = new_events(w.acme.id, events_before)
    assert sorted(e[0] for e in events) == sorted(write.actions), (*label, events)
    if write.by is not None:
        expected = write.by
    elif write.anonymous:
        expected = (ActorType.ANONYMOUS, None)
    else:
        expected = (ActorType.USER, (write.actor or w.admin).id)
    for action, actor_type, actor_id, actor_label in events:
        who = (action, actor_type, actor_id, actor_label)
        assert (actor_type, actor_id) == expected, (*label, who)


def test_every_partner_write_writes_its_audit_events(app: Flask, acme: Partner) -> None:
    """Every POST of a partner's host (but the single sign-on ones, walked below with a
    provider, and the API's, walked with a token), each from a state where it succeeds."""
    walk = Walk(app, acme)
    writes = partner_writes(walk)
    listed = set(writes) | set(SSO_WRITES) | set(NOT_WRITES)
    unlisted = partner_post_endpoints(app) - listed
    assert not unlisted, f"a new partner POST route: add it to partner_writes() {sorted(unlisted)}"
    assert listed <= partner_post_endpoints(app), listed - partner_post_endpoints(app)
    for endpoint, prepare in writes.items():
        for write in prepare():
            run_write(walk, endpoint, write)


def test_the_routes_that_write_nothing_write_nothing(app: Flask, acme: Partner) -> None:
    walk = Walk(app, acme)
    client = walk.walker()
    before, events_before = stored(acme.id), audit_ids(acme.id)
    response = client.post_form("/admin/settings/branding/preview", BRANDING)
    assert response.status_code == 200 and "Walked Rockets" in response.text
    assert stored(acme.id) == before and audit_ids(acme.id) == events_before


# --- Single sign-on: a real provider (tests/oidc.py) --------------------------------------------

SSO_WRITES = {
    "sso_admin.index",
    "sso_admin.test",
    "sso.start",
    "identities.link",
    "identities.unlink",
    "sso.backchannel_logout",
    "sso_admin.delete",
}


def test_every_single_sign_on_write_writes_its_audit_events(
    app: Flask, acme: Partner, idp: ProviderServer
) -> None:
    """The single sign-on POSTs, in the order a partner uses them: connect, test, sign in,
    link and unlink, the provider's logout, disconnect. A POST that only starts a flow at the
    provider is followed to its callback, where its write happens."""
    walk = Walk(app, acme)
    alice = make_user(acme, ALICE.email)
    connection = {
        "discovery_url": idp.issuer,
        "client_id": ACME_CLIENT[0],
        "client_secret": ACME_CLIENT[1],
        "scopes": "openid email profile",
        "provision_role": "basic",
        "link_by_email": "y",
        "sso_on": "y",
        "password_on": "y",
    }

    def provider_signs_in(client: HostClient, person: Any) -> Callable[[Any], Any]:
        def then(response: Any) -> Any:
            assert response.status_code == 302, response.text
            return client.get(Flow(client, response.headers["Location"]).choose(person))

        return then

    def retest() -> Write:
        clock.advance(timedelta(minutes=5))  # so that the time it passed moves
        return Write("/admin/settings/login/test", {}, ["sso.connection_test"], says="passed")

    visitor = walk.visitor()
    me, mine = walk.me()
    steps: list[tuple[str, Callable[[], Write]]] = [
        (
            "sso_admin.index",
            lambda: Write(
                "/admin/settings/login/",
                connection,
                ["sso.connection_create"],
                says="Connection test passed",
            ),
        ),
        (
            "sso_admin.test",
            retest,
        ),
        (
            "sso.start",
            lambda: Write(
                "/sso/start",
                {},
                ["sso.identity_link", "session.start", "auth.login"],
                visitor,
                alice,
                then=provider_signs_in(visitor, ALICE),
            ),
        ),
        (
            "identities.link",
            lambda: Write(
                "/account/identities/link",
                {},
                ["sso.identity_link"],
                mine,
                me,
                then=provider_signs_in(mine, NEWBIE),
            ),
        ),
        (
            "identities.unlink",
            lambda: Write(
                f"/account/identities/{rows(SsoIdentity, user_id=me.id)[0].id}/unlink",
                {},
                ["sso.identity_unlink"],
                mine,
                me,
            ),
        ),
        (
            "sso.backchannel_logout",
            lambda: Write(
                "/sso/backchannel-logout",
                {},
                ["sso.backchannel_logout"],
                send=lambda: walk.visitor().post(
                    "/sso/backchannel-logout",
                    data={"logout_token": logout_token(idp, sub=ALICE.subject)},
                ),
                by=(ActorType.IDENTITY_PROVIDER, None),
                status=(200,),
            ),
        ),
        (
            "sso_admin.delete",
            lambda: Write("/admin/settings/login/delete", {}, ["sso.connection_delete"]),
        ),
    ]
    assert [endpoint for endpoint, _ in steps] == sorted(
        SSO_WRITES, key=[e for e, _ in steps].index
    )
    assert {endpoint for endpoint, _ in steps} == SSO_WRITES
    for endpoint, write in steps:
        run_write(walk, endpoint, write())


# --- The partner API: bearer tokens of an API client -------------------------------------------


def test_every_api_write_writes_its_audit_events_by_its_api_client(
    app: Flask, acme: Partner
) -> None:
    """Every writing method of /api/v1, each from a state where it succeeds: its events are
    acme's, and their actor is the API client whose token made the request."""
    walk = Walk(app, acme)
    client_id, secret, row_id = api_client_for(acme, walk.admin)
    api = Api(app, "acme", get_token(app, "acme", client_id, secret))
    by = (ActorType.API_CLIENT, row_id)

    def send(path: str, body: dict | None = None) -> Callable[[], Any]:
        return lambda: api.post(path, body)

    def on_user(suffix: str, action: str, deactivated: bool = False) -> Callable[[], Write]:
        def prepare() -> Write:
            target = walk.user()
            if deactivated:
                assert api.post(f"/users/{target.id}/deactivate").status_code == 200
            body = {"role": "advanced"} if suffix == "role" else None
            return Write(suffix, {}, [action], send=send(f"/users/{target.id}/{suffix}", body))

        return prepare

    def revoke_session() -> Write:
        session_id = walk.other_session(walk.user())
        return Write("revoke", {}, ["session.revoke"], send=send(f"/sessions/{session_id}/revoke"))

    def start_subscription() -> Write:
        body = {"user_id": walk.user().id, "plan_id": walk.plan().id}
        return Write("start", {}, ["subscription.signing"], send=send("/subscriptions", body))

    def transition_subscription() -> Write:
        sub_id = walk.subscription(walk.user(), S.SIGNED).id
        body = {"action": "suspend", "reason": "walking every route"}
        path = f"/subscriptions/{sub_id}/transition"
        return Write(path, {}, ["subscription.suspended"], send=send(path, body))

    def invite() -> Write:
        body = {"email": walk.address(), "role": "basic"}
        return Write("/users", {}, ["user.create", "invitation.send"], send=send("/users", body))

    writes: dict[str, Callable[[], Write]] = {
        "api.invite_user": invite,
        "api.change_role": on_user("role", "user.role_change"),
        "api.deactivate_user": on_user("deactivate", "user.deactivate"),
        "api.reactivate_user": on_user("reactivate", "user.reactivate", deactivated=True),
        "api.revoke_session": revoke_session,
        "api.start_subscription": start_subscription,
        "api.transition_subscription": transition_subscription,
    }
    writing = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if is_bearer(app, rule.endpoint)
        and (rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}
    }
    assert writing == set(writes), f"a new API write: add it here {sorted(writing ^ set(writes))}"
    for endpoint, prepare in writes.items():
        write = prepare()
        write.by, write.status = by, (200, 201)
        run_write(walk, endpoint, write)


# --- The operator console (root domain) --------------------------------------------------------


def everything() -> dict[str, set]:
    """Every row of every table but the trail itself, without bookkeeping columns."""
    with unscoped():
        state = {}
        for table in db.metadata.sorted_tables:
            if table.name == "audit_events":
                continue
            columns = [c for c in table.c if c.name not in NOT_ACTIONS]
            state[table.name] = {repr(tuple(r)) for r in db.session.execute(sa.select(*columns))}
        db.session.rollback()
        return state


def all_audit_events() -> set[tuple]:
    """Every event as (id, action, target): SQLite reuses the ids of a deleted partner's."""
    columns = (AuditEvent.id, AuditEvent.action, AuditEvent.target_type, AuditEvent.target_id)
    with unscoped():
        events = {tuple(row) for row in db.session.execute(sa.select(*columns))}
        db.session.rollback()
        return events


def root_post_endpoints(app: Flask) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.subdomain != "<partner>" and "POST" in (rule.methods or ())
    }


def partner_in(
    slug: str, status: PartnerStatus = PartnerStatus.ACTIVE, **values: object
) -> Partner:
    """A partner with an admin, in `status`, its branding not the default."""
    partner = make_partner(slug, slug.title(), Theme(base="midnight", primary_color="#10b981"))
    make_user(partner, f"admin@{slug}.test", role=Role.ADMIN)
    partner.status = status
    for name, value in values.items():
        setattr(partner, name, value)
    db.session.commit()
    return partner


def failed_message(partner: Partner) -> OutboxMessage:
    with partner_scope(partner):
        message = OutboxMessage(
            to_address=f"admin@{partner.slug}.test",
            from_address="Partner Portal <no-reply@localhost>",
            subject="Invitation",
            body_text="text",
            body_html="<p>html</p>",
            status=MailStatus.FAILED,
            transport="smtp",
            attempts=3,
            error="ConnectionRefusedError: refused",
        )
        db.session.add(message)
        db.session.commit()
    return message


def operator_writes() -> dict[str, Callable[[], tuple[str, dict, str]]]:
    """Per root-domain POST endpoint: set up the state its write needs, and return the path,
    the form that makes the write succeed and the audit action it must record."""
    now = clock.now()

    def closed(slug: str, *, deletable: bool) -> Partner:
        after = now - timedelta(days=1) if deletable else now + timedelta(days=30)
        return partner_in(slug, PartnerStatus.CLOSED, closed_at=now, delete_after=after)

    def link() -> tuple[str, dict, str]:
        _, token, _ = set_password_link(None, "op@portal.test")
        db.session.commit()
        form = {"password": PASSWORD, "confirm": PASSWORD}  # a new hash; the walk signs in on
        return f"/operator/password/{token}", form, "operator.password_set"

    return {
        "operator.login": lambda: (
            "/login",
            {"email": "op@portal.test", "password": PASSWORD},
            "operator.login",
        ),
        "operator.logout": lambda: ("/logout", {}, "operator.logout"),
        "operator.set_password": link,
        "operator.new_partner": lambda: (
            "/operator/partners/new",
            {"slug": "initech", "name": "Initech", "admin_email": "boss@initech.test"},
            "partner.create",
        ),
        "operator.suspend": lambda: (
            f"/operator/partners/{partner_in('p-suspend').id}/suspend",
            {"reason": "unpaid invoices"},
            "partner.suspend",
        ),
        "operator.reactivate": lambda: (
            f"/operator/partners/{partner_in('p-react', PartnerStatus.SUSPENDED).id}/reactivate",
            {},
            "partner.reactivate",
        ),
        "operator.features": lambda: (
            f"/operator/partners/{partner_in('p-lock').id}/features",
            {"key": "impersonation", "lock": "off"},
            "feature.lock",
        ),
        "operator.admins": lambda: (
            f"/operator/partners/{partner_in('p-admin').id}/admins",
            {"email": "second@p-admin.test"},
            "partner.admin_granted",
        ),
        "operator.branding": lambda: (
            f"/operator/partners/{partner_in('p-brand').id}/branding",
            {},
            "partner.branding_reset",
        ),
        "operator.retry_mail": lambda: (
            f"/operator/mail/{failed_message(partner_in('p-mail')).id}/retry",
            {},
            "mail.retry",
        ),
        "privacy_operator.archive": lambda: (
            f"/operator/partners/{partner_in('p-archive').id}/archive",
            {},
            "partner.export",
        ),
        "privacy_operator.close_partner": lambda: (
            f"/operator/partners/{partner_in('p-close').id}/close",
            {"grace_days": "30", "confirm": "p-close"},
            "partner.close",
        ),
        "privacy_operator.reopen": lambda: (
            f"/operator/partners/{closed('p-reopen', deletable=False).id}/reopen",
            {},
            "partner.reopen",
        ),
        "privacy_operator.delete": lambda: (
            f"/operator/partners/{closed('p-delete', deletable=True).id}/delete",
            {"confirm": "p-delete", "understood": "1"},
            "partner.delete",
        ),
    }


def test_every_operator_write_writes_its_audit_event(make_app, data: Flask) -> None:
    """Every POST of the root domain, each from a state where it succeeds: what it changes
    (or, for the archive, reads) is on the trail under its own action."""
    app = make_app(SMTP_URL="smtp://127.0.0.1:1")  # so that a failed message can be retried
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    writes = operator_writes()
    assert root_post_endpoints(app) == set(writes)  # a new operator write must be listed here
    for endpoint, prepare in writes.items():
        console = host_client(app, None)
        if endpoint != "operator.login":
            assert console.login("op@portal.test").status_code == 302
        path, form, action = prepare()
        before, events_before = everything(), all_audit_events()
        response = console.post_form(path, form)
        assert response.status_code in (200, 302), (endpoint, response.status_code)
        if response.status_code == 302:  # a refusal goes back with its message: none here
            page = console.get(response.headers["Location"]).get_data(as_text=True)
            assert "flash-error" not in page, (endpoint, page)
        new_actions = [event[1] for event in all_audit_events() - events_before]
        assert action in new_actions, (endpoint, new_actions)
        if endpoint != "privacy_operator.archive":  # a download: it reads, changes nothing
            assert everything() != before, endpoint
