"""Whether a feature is on, and why: operator lock -> partner switch -> plan entitlement.

Read once per request from this process's copy for the partner's configuration version (the
database when the version changed), so a change made in one process applies on the very next
request in every other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, NamedTuple

from flask import Flask, abort, g
from flask_login import current_user
from sqlalchemy import select

from portal.extensions import db
from portal.features.catalogue import CATALOGUE, Feature, Scope
from portal.features.models import FeatureSetting, Lock
from portal.subscriptions.services import entitlements_of
from portal.tenancy.configuration import derived
from portal.tenancy.scope import forget_partner_caches
from portal.users.models import User


@dataclass(frozen=True)
class Evaluation:
    """The effective state of one feature for one partner (and user), with the reason."""

    feature: Feature
    on: bool
    reason: str
    lock: Lock = Lock.NONE
    partner_on: bool = False


def decide(feature: Feature, lock: Lock, switch: bool | None, entitled: bool | None) -> Evaluation:
    """The rule itself, free of any storage: lock, then switch, then (plan-gated) entitlement.

    `entitled` is None when no user is in question (the partner-level view).
    """
    if lock == Lock.ON:
        partner_on, reason = True, "locked on by the platform operator"
    elif lock == Lock.OFF:
        return Evaluation(feature, False, "locked off by the platform operator", lock, False)
    elif switch is None:
        partner_on = feature.default
        reason = f"{'on' if partner_on else 'off'} by default"
    else:
        partner_on = switch
        reason = f"switched {'on' if switch else 'off'} by the partner"
    if not partner_on:
        return Evaluation(feature, False, reason, lock, False)
    if feature.scope == Scope.PLAN and entitled is not None:
        if entitled:
            return Evaluation(feature, True, f"{reason}; included in your plan", lock, True)
        return Evaluation(feature, False, f"{reason}; not included in your plan", lock, True)
    return Evaluation(feature, True, reason, lock, True)


class Switch(NamedTuple):
    """A partner's stored setting of one feature, as plain values."""

    lock: Lock
    enabled: bool | None


def load_settings() -> dict[str, Switch]:
    rows = db.session.execute(select(FeatureSetting)).scalars()
    return {row.key: Switch(row.lock, row.enabled) for row in rows}


def _settings() -> dict[str, Switch]:
    if "feature_settings" not in g:
        g.feature_settings = derived("feature_settings", load_settings)
    return g.feature_settings


def forget_settings() -> None:
    """Drop this request's view of the settings after changing them."""
    forget_partner_caches()


def evaluate(key: str, user: User | None = None) -> Evaluation:
    """The current partner's feature `key`, for `user` when given (plan-gated features)."""
    feature = CATALOGUE[key]
    row = _settings().get(key)
    lock = row.lock if row is not None else Lock.NONE
    switch = row.enabled if row is not None else None
    entitled = None
    if feature.scope == Scope.PLAN and user is not None:
        # Plans entitle only while the partner runs subscriptions at all.
        entitled = evaluate("subscriptions").on and key in entitlements_of(user)
    return decide(feature, lock, switch, entitled)


def feature_on(key: str) -> bool:
    """Template and view helper: is `key` on here, for the logged-in user?"""
    if g.get("partner") is None:
        return False
    user = current_user._get_current_object() if current_user.is_authenticated else None
    return evaluate(key, user if isinstance(user, User) else None).on


def feature(key: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """View decorator: the route does not exist (404) while the feature is off."""
    if key not in CATALOGUE:
        raise KeyError(f"unknown feature {key!r}")

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not feature_on(key):
                abort(404)
            return view(*args, **kwargs)

        wrapped.required_feature = key  # type: ignore[attr-defined]
        return wrapped

    return decorator


def init_app(app: Flask) -> None:
    app.jinja_env.globals["feature_on"] = feature_on
