"""Demo data: two partners with different themes, one user per role, and an operator."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from portal.api.models import ApiClient, Scope, digest
from portal.audit.services import record_audit
from portal.auth.passwords import hash_password, verify_password
from portal.clock import utcnow
from portal.extensions import db
from portal.features.catalogue import PLAN_GATED
from portal.features.models import FeatureSetting
from portal.features.services import switch_feature
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.roles.policy import current_policy
from portal.sso.crypto import secret_box
from portal.sso.demo_provider import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, demo_issuer
from portal.sso.models import SsoConnection
from portal.subscriptions.models import BillingInterval, Plan
from portal.subscriptions.plans import PlanInput, create_plan
from portal.tenancy.models import Partner, Theme
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus
from portal.users.services import create_user, email_taken

DEMO_PASSWORD = "portal-demo-2026"
OPERATOR_EMAIL = "operator@portal.test"
SHARED_PASSWORDS = {"acme": "orchard-lantern-2026", "globex": "harbour-lantern-2026"}
PARTNERS = (
    (
        "acme",
        "Acme Corp",
        Theme(
            base="default",
            primary_color="#2563eb",
            accent_color="#1e3a8a",
            support_email="help@acme.test",
        ),
    ),
    (
        "globex",
        "Globex",
        Theme(
            base="midnight",
            primary_color="#10b981",
            accent_color="#064e3b",
            support_url="https://help.globex.test/portal",
        ),
    ),
)
SHARED_EMAIL = "shared@example.com"


@dataclass(frozen=True)
class DemoAccount:
    where: str
    email: str
    password: str
    note: str


def _ensure_user(email: str, password: str, role: Role, *, support: bool = False) -> None:
    if email_taken(email):
        return
    create_user(
        email,
        role=role,
        password=password,
        display_name=email.split("@")[0].title(),
        is_support=support,
        actor=None,
        source="seed-demo",
    )


def _described(slug: str, email: str, password: str, extra: str = "") -> DemoAccount:
    """The demo account as it is now, not as it was seeded: its role's label, support agent
    or not, deactivated, or a password someone changed (`make reset-demo` starts over)."""
    user = db.session.execute(select(User).where(User.email == email)).scalar_one()
    notes = [current_policy().label(user.role)]
    if user.is_support:
        notes.append("support agent: /support")
    if user.status != UserStatus.ACTIVE:
        notes.append(user.status.value.upper())
    if not verify_password(user.password_hash, password):
        notes.append("PASSWORD CHANGED")
        password = "(changed)"
    if extra:
        notes.append(extra)
    return DemoAccount(slug, email, password, ", ".join(notes))


def _ensure_support_on() -> None:
    """Support impersonation on, so that the demo's support agents can try it at once (a
    partner admin's own choice, once made, is left alone)."""
    _ensure_feature_on("impersonation")


def _ensure_feature_on(key: str) -> None:
    chosen = db.session.execute(select(FeatureSetting.id).where(FeatureSetting.key == key)).first()
    if chosen is None:
        switch_feature(key, True)


DEMO_API_CLIENT_ID = "pp_demo_acme"
DEMO_API_SECRET = "acme-demo-api-secret-2026"


def _ensure_demo_api_client() -> None:
    """Acme's partner API on, with a client of every scope whose secret the README and
    /developers print, so that the curl examples work right after `make run`."""
    _ensure_feature_on("api_access")
    exists = db.session.execute(
        select(ApiClient.id).where(ApiClient.client_id == DEMO_API_CLIENT_ID)
    ).first()
    if exists is not None:
        return
    admin = db.session.execute(select(User).where(User.email == "admin@acme.test")).scalar_one()
    client = ApiClient(
        name="Demo back office",
        client_id=DEMO_API_CLIENT_ID,
        secret_hash=digest(DEMO_API_SECRET),
        scopes=[s.value for s in Scope],
        created_by_id=admin.id,
    )
    db.session.add(client)
    db.session.flush()
    record_audit("api_client.create", target=client, actor=None, details={"source": "seed-demo"})


DEMO_PLANS = (
    # code, name, description, price (cents), interval, roles, entitlements, needs approval
    (
        "free",
        "Free",
        "The essentials, at no cost.",
        0,
        BillingInterval.FREE,
        (Role.BASIC, Role.ADVANCED, Role.COMPANY),
        (),
        False,
    ),
    (
        "plus",
        "Plus",
        "Usage reports for individuals; an administrator approves each request.",
        900,
        BillingInterval.MONTH,
        (Role.BASIC, Role.ADVANCED),
        ("reports",),
        True,
    ),
    (
        "pro",
        "Pro",
        "Everything in Free, plus usage reports.",
        1900,
        BillingInterval.MONTH,
        (Role.ADVANCED,),
        ("reports",),
        False,
    ),
    (
        "business",
        "Business",
        "For companies: reports for the whole team.",
        9900,
        BillingInterval.MONTH,
        (Role.COMPANY,),
        ("reports",),
        False,
    ),
)


def _ensure_plans(currency: str) -> None:
    for position, (code, name, text, cents, interval, roles, ents, approval) in enumerate(
        DEMO_PLANS
    ):
        if db.session.execute(select(Plan.id).where(Plan.code == code)).first():
            continue
        create_plan(
            PlanInput(code, name, text, cents, currency, interval, roles, ents, approval, position),
            PLAN_GATED,
        )


def _ensure_demo_sso() -> None:
    """Acme signs in through the demo identity provider that `make run` serves at /dev/idp.

    Its address follows the development server's port, so it is set again on every seed."""
    issuer = demo_issuer(current_app.config["SERVER_NAME"])
    connection = db.session.execute(select(SsoConnection)).scalar_one_or_none()
    if connection is not None and not connection.discovery_url.endswith("/dev/idp"):
        return  # someone connected a provider of their own: leave it
    if connection is None:
        key_id, encrypted = secret_box().encrypt(DEMO_CLIENT_SECRET)
        connection = SsoConnection(
            discovery_url=issuer,
            client_id=DEMO_CLIENT_ID,
            client_secret_key_id=key_id,
            client_secret_encrypted=encrypted,
            button_label="Acme Demo ID",
            allowed_domains=["acme.test"],
            auto_provision=True,
            provision_role=Role.BASIC,
            link_by_email=True,
        )
        db.session.add(connection)
        db.session.flush()
        record_audit(
            "sso.connection_create", target=connection, actor=None, details={"source": "seed-demo"}
        )
        switch_feature("oidc_login", True)
    if connection.issuer != issuer:
        connection.discovery_url = connection.issuer = issuer
        connection.verified_at = utcnow()


def seed_demo() -> list[DemoAccount]:
    """Create whatever of the demo data is missing; existing rows are left as they are."""
    accounts: list[DemoAccount] = []
    for slug, name, theme in PARTNERS:
        partner = db.session.execute(
            select(Partner).where(Partner.slug == slug)
        ).scalar_one_or_none()
        if partner is None:
            partner = Partner(slug=slug, name=name, theme_settings=theme.to_dict())
            db.session.add(partner)
            db.session.flush()
        with partner_scope(partner):
            for role in Role:
                email = f"{role.value}@{slug}.test"
                _ensure_user(email, DEMO_PASSWORD, role)
                accounts.append(_described(slug, email, DEMO_PASSWORD))
            _ensure_user(f"support@{slug}.test", DEMO_PASSWORD, Role.BASIC, support=True)
            _ensure_support_on()
            accounts.append(_described(slug, f"support@{slug}.test", DEMO_PASSWORD))
            # Different for each partner, and within the password rules (no partner's name).
            shared_password = SHARED_PASSWORDS[slug]
            _ensure_user(SHARED_EMAIL, shared_password, Role.BASIC)
            _ensure_plans("USD" if slug == "globex" else "EUR")
            if slug == "acme":
                _ensure_demo_sso()
                _ensure_demo_api_client()
            accounts.append(
                _described(slug, SHARED_EMAIL, shared_password, "same email, own password")
            )
    if (
        db.session.execute(
            select(Operator).where(Operator.email == OPERATOR_EMAIL)
        ).scalar_one_or_none()
        is None
    ):
        operator = Operator(
            email=OPERATOR_EMAIL,
            display_name="Platform Operator",
            password_hash=hash_password(DEMO_PASSWORD),
        )
        db.session.add(operator)
        db.session.flush()
        record_audit(
            "operator.create", target=operator, actor=None, details={"source": "seed-demo"}
        )
    accounts.append(
        DemoAccount("operator console", OPERATOR_EMAIL, DEMO_PASSWORD, "platform operator")
    )
    return accounts
