"""Switching features (partner admins) and locking them (platform operators)."""

from __future__ import annotations

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import select

from portal.audit.services import record_audit
from portal.exceptions import PortalError
from portal.extensions import db
from portal.features.catalogue import CATALOGUE
from portal.features.evaluation import evaluate, forget_settings
from portal.features.models import FeatureSetting, Lock
from portal.operator.models import Operator
from portal.sso.models import SsoConnection, SsoIdentity
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.unit_of_work import lock_partner


class FeatureError(PortalError):
    """A feature change that is refused, with the reason."""


def _sso_connection() -> SsoConnection | None:
    return db.session.execute(select(SsoConnection)).scalar_one_or_none()


def other_login_method_available() -> bool:
    """Whether users could still sign in with password sign-in off: single sign-on is
    configured, its provider passed a connection test, and it is switched on."""
    connection = _sso_connection()
    return connection is not None and connection.ready and evaluate("oidc_login").on


def _acting_admin_without_sso() -> bool:
    """A partner admin switching password sign-in off who never signed in with single
    sign-on could be locking themselves out; operators (no request user) are not asked."""
    if not has_request_context() or not current_user.is_authenticated:
        return False
    if getattr(current_user, "kind", None) != "user":
        return False
    connection = _sso_connection()
    issuer = connection.issuer if connection is not None else None
    linked = db.session.execute(
        select(SsoIdentity.id).where(
            SsoIdentity.user_id == current_user.id, SsoIdentity.issuer == issuer
        )
    ).first()
    return linked is None


def _guard_login(key: str, on: bool) -> None:
    if key == "password_login" and not on:
        if not other_login_method_available():
            raise FeatureError(
                "Password sign-in is the only way to sign in here; switching it off would lock "
                "everyone out. Set up single sign-on first (Settings > Sign-in), test the "
                "connection and switch it on."
            )
        if _acting_admin_without_sso():
            raise FeatureError(
                "Sign in once with single sign-on yourself (or link it under Account > "
                "Sign-in methods) before switching password sign-in off, so that you know it "
                "works for you."
            )
    if key == "oidc_login" and not on and not evaluate("password_login").on:
        raise FeatureError(
            "Single sign-on is the only way to sign in here while password sign-in is off; "
            "switch password sign-in on first."
        )


def _row(key: str) -> FeatureSetting:
    if key not in CATALOGUE:
        raise FeatureError("No such feature.")
    row = db.session.execute(
        select(FeatureSetting).where(FeatureSetting.key == key)
    ).scalar_one_or_none()
    if row is None:
        row = FeatureSetting(key=key, enabled=None, lock=Lock.NONE)
        db.session.add(row)
    return row


def switch_feature(key: str, on: bool) -> None:
    """The partner admin's switch for the current partner (refused while locked).

    Under the partner's lock: whether the other way to sign in is still on is read as it is
    now, so two admins switching off one way each cannot leave nobody a way in.
    """
    lock_partner()
    row = _row(key)
    if row.lock != Lock.NONE:
        raise FeatureError(
            f"{CATALOGUE[key].label} is locked {row.lock.value} by the platform operator."
        )
    _guard_login(key, on)
    before = evaluate(key).on
    row.enabled = on
    db.session.flush()
    forget_settings()
    record_audit("feature.switch", target=("feature", key), details={"on": on, "was_on": before})


def lock_feature(operator: Operator | None, partner: Partner, key: str, lock: Lock) -> None:
    """An operator forces a feature on or off for a partner, or releases the lock."""
    with partner_scope(partner):
        lock_partner()
        row = _row(key)
        if lock == Lock.OFF:
            _guard_login(key, False)
        before = row.lock
        row.lock = lock
        db.session.flush()
        forget_settings()
        details = {"partner": partner.slug, "lock": lock.value, "was": before.value}
        record_audit("feature.lock", target=("feature", key), actor=operator, details=details)
    record_audit("feature.lock", target=("feature", key), actor=operator, details=details)
