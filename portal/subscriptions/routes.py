"""Subscription pages: the user's own (/account/subscription) and the admin's."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.features.evaluation import feature
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.subscriptions.models import Plan, Subscription
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.services import (
    ActorKind,
    SubscriptionRefused,
    accept_terms,
    overview,
    start_signing,
    transition,
)
from portal.tenancy.context import get_or_404
from portal.users.models import User
from portal.web import perform

bp = Blueprint("subscription", __name__, subdomain="<partner>", url_prefix="/account/subscription")


def _me() -> User:
    return current_user._get_current_object()


@bp.get("/")
@feature("subscriptions")
@requires(Permission.SUBSCRIPTION_MANAGE_OWN)
def index() -> str:
    page = overview(_me())
    return render_template(
        "subscriptions/account.html",
        held=page.held,
        pending=page.pending,
        # The plans the user can choose first, then the others with the reason they cannot.
        offers=sorted(page.offers, key=lambda offer: offer[1] is not None),
        history=page.history,
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

    return perform(act, back=url_for(BACK))


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

    return perform(act, back=url_for(BACK))


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

    return perform(act, back=url_for(BACK))


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

    return perform(act, back=url_for(BACK))
