"""Subscription pages: the user's own (/account/subscription) and the admin's."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal.extensions import db
from portal.features.evaluation import feature
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy, requires
from portal.subscriptions.models import Plan, PlanStatus, Subscription, SubscriptionEvent
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.services import (
    ActorKind,
    SubscriptionRefused,
    accept_terms,
    held_subscription,
    pending_subscription,
    start_signing,
    transition,
)
from portal.tenancy.context import get_or_404
from portal.users.models import User

bp = Blueprint("subscription", __name__, subdomain="<partner>", url_prefix="/account/subscription")


def _me() -> User:
    return current_user._get_current_object()


def run(action: Callable[[], str], back: str) -> Response:
    """Run one lifecycle action: commit and say so, or roll back and say why (409 for htmx)."""
    try:
        message = action()
    except SubscriptionRefused as exc:
        db.session.rollback()
        if request.headers.get("HX-Request"):
            state = exc.state.value if exc.state else "none"
            return Response(str(exc), 409, {"X-Subscription-State": state})
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(message, "info")
    return redirect(back)


def plan_offers(user: User) -> list[tuple[Plan, str | None]]:
    """Every active plan, with the reason it is not open to `user` (None when it is)."""
    label = current_policy().label
    plans = db.session.execute(
        select(Plan).where(Plan.status == PlanStatus.ACTIVE).order_by(Plan.position, Plan.name)
    ).scalars()
    offers = []
    for plan in plans:
        reason = None
        if not plan.allows(user.role):
            roles = ", ".join(
                label(r) for r in user.role.__class__ if r.value in plan.allowed_roles
            )
            reason = f"Only for {roles}."
        offers.append((plan, reason))
    return offers


@bp.get("/")
@feature("subscriptions")
@requires(Permission.SUBSCRIPTION_MANAGE_OWN)
def index() -> str:
    me = _me()
    history = db.session.execute(
        select(SubscriptionEvent)
        .join(Subscription, Subscription.id == SubscriptionEvent.subscription_id)
        .where(Subscription.user_id == me.id)
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc())
        .limit(50)
    ).scalars()
    return render_template(
        "subscriptions/account.html",
        held=held_subscription(me),
        pending=pending_subscription(me),
        offers=plan_offers(me),
        history=list(history),
    )


def _own(sub_id: int) -> Subscription:
    sub = get_or_404(Subscription, sub_id)
    if sub.user_id != _me().id:
        abort(404)
    return sub


BACK = "subscription.index"


@bp.post("/start")
@feature("subscriptions")
@requires(Permission.SUBSCRIPTION_MANAGE_OWN)
def start() -> Response:
    plan = get_or_404(Plan, request.form.get("plan_id"))

    def act() -> str:
        start_signing(_me(), plan, actor=_me(), kind=ActorKind.USER)
        return f"Review the terms of {plan.name} and confirm to subscribe."

    return run(act, url_for(BACK))


@bp.post("/<int:sub_id>/confirm")
@feature("subscriptions")
@requires(Permission.SUBSCRIPTION_MANAGE_OWN)
def confirm(sub_id: int) -> Response:
    sub = _own(sub_id)

    def act() -> str:
        if request.form.get("accept_terms") != "1":
            raise SubscriptionRefused("Tick the box to accept the terms.", sub.state)
        accept_terms(sub, actor=_me())
        if sub.state == S.SIGNED:
            return f"You are subscribed to {sub.plan.name}."
        return f"Thank you. An administrator will review your request for {sub.plan.name}."

    return run(act, url_for(BACK))


@bp.post("/<int:sub_id>/abandon")
@feature("subscriptions")
@requires(Permission.SUBSCRIPTION_MANAGE_OWN)
def abandon(sub_id: int) -> Response:
    sub = _own(sub_id)

    def act() -> str:
        transition(
            sub, S.UNSIGNED, actor=_me(), kind=ActorKind.USER, reason="abandoned by the user"
        )
        return f"You abandoned the subscription to {sub.plan.name}."

    return run(act, url_for(BACK))


@bp.post("/<int:sub_id>/cancel")
@feature("subscriptions")
@requires(Permission.SUBSCRIPTION_MANAGE_OWN)
def cancel(sub_id: int) -> Response:
    sub = _own(sub_id)

    def act() -> str:
        transition(
            sub, S.UNSIGNED, actor=_me(), kind=ActorKind.USER, reason="cancelled by the user"
        )
        return f"Your subscription to {sub.plan.name} has ended."

    return run(act, url_for(BACK))
