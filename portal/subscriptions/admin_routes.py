"""Admin pages: plans (/admin/plans) and every subscription (/admin/subscriptions)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager, joinedload
from werkzeug.wrappers import Response

from portal.exceptions import PortalError
from portal.extensions import db
from portal.features.catalogue import CATALOGUE, PLAN_GATED
from portal.features.evaluation import feature
from portal.paging import count_of, counting_limit, page_keys
from portal.redirects import local_path
from portal.roles.models import Role
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy, requires
from portal.subscriptions.models import BillingInterval, Plan, PlanStatus, Subscription
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.plans import (
    PlanError,
    PlanInput,
    create_plan,
    set_plan_status,
    update_plan,
)
from portal.subscriptions.services import (
    ADMIN_ACTIONS,
    ActorKind,
    admin_move,
    start_signing,
)
from portal.tenancy.context import get_or_404, parse_id, parse_ids
from portal.unit_of_work import attempt
from portal.users.models import User
from portal.users.search import contains_pattern
from portal.users.services import RowResult
from portal.web import perform

plans_bp = Blueprint("plans_admin", __name__, subdomain="<partner>", url_prefix="/admin/plans")
subs_bp = Blueprint(
    "subscriptions_admin", __name__, subdomain="<partner>", url_prefix="/admin/subscriptions"
)
PER_PAGE = 50


def _me() -> User:
    return current_user._get_current_object()


# --- Plans -----------------------------------------------------------------------------------


@plans_bp.get("/")
@requires(Permission.PLANS_MANAGE)
def index() -> str:
    plans = db.session.execute(select(Plan).order_by(Plan.position, Plan.name)).scalars().all()
    counts = dict(
        db.session.execute(
            select(Subscription.plan_id, func.count(Subscription.id))
            .where(Subscription.state.in_([S.SIGNED, S.SUSPENDED, S.SIGNING]))
            .group_by(Subscription.plan_id)
        ).all()
    )
    return render_template("plans/index.html", plans=plans, counts=counts, policy=current_policy())


def _parse_plan(form) -> PlanInput:
    """The plan the form describes; every field that cannot be read or saved is named at once
    (PlanError with all of them), so the admin corrects them in one go."""
    problems: dict[str, str] = {}
    try:
        price = round(float(form.get("price", "0").replace(",", ".") or 0) * 100)
    except (ValueError, OverflowError):  # "abc", or "inf" and "1e400"
        problems["price"] = "Enter the price as a number, for example 9.90."
        price = 0
    try:
        position = int(form.get("position", "0") or 0)
    except ValueError:
        problems["position"] = "Enter the order as a whole number."
        position = 0
    interval = form.get("interval", "")
    if interval not in BillingInterval._value2member_map_:
        problems["interval"] = "Choose how often the price is charged."
        interval = BillingInterval.MONTH.value
    data = PlanInput(
        code=form.get("code", "")[:100],
        name=form.get("name", "")[:200],
        description=form.get("description", "")[:5000],
        price_cents=price,
        currency=form.get("currency", "")[:10],
        interval=BillingInterval(interval),
        allowed_roles=tuple(
            Role(r) for r in form.getlist("allowed_roles") if r in Role._value2member_map_
        ),
        entitlements=tuple(form.getlist("entitlements"))[:20],
        needs_approval=form.get("needs_approval") == "1",
        position=position,
    )
    problems = {**data.problems(PLAN_GATED), **problems}
    if problems:
        raise PlanError.of(problems)
    return data


def _plan_form(plan: Plan | None) -> tuple[str, int] | Response:
    error: PlanError | None = None
    values = request.form if request.method == "POST" else None
    if request.method == "POST":
        try:
            with attempt():
                data = _parse_plan(request.form)
                saved = (
                    create_plan(data, PLAN_GATED)
                    if plan is None
                    else update_plan(plan, data, PLAN_GATED)
                )
        except PlanError as exc:
            error = exc
        else:
            flash(f"Plan {saved.name} saved.", "info")
            return redirect(url_for("plans_admin.index"))
    return render_template(
        "plans/form.html",
        plan=plan,
        values=values,
        error=error,
        roles=list(Role),
        intervals=list(BillingInterval),
        features=[CATALOGUE[k] for k in sorted(PLAN_GATED)],
        policy=current_policy(),
    ), 422 if error else 200


@plans_bp.route("/new", methods=["GET", "POST"])
@requires(Permission.PLANS_MANAGE)
def new() -> tuple[str, int] | Response:
    return _plan_form(None)


@plans_bp.route("/<int:plan_id>/edit", methods=["GET", "POST"])
@requires(Permission.PLANS_MANAGE)
def edit(plan_id: int) -> tuple[str, int] | Response:
    return _plan_form(get_or_404(Plan, plan_id))


@plans_bp.post("/<int:plan_id>/archive")
@requires(Permission.PLANS_MANAGE)
def archive(plan_id: int) -> Response:
    plan = get_or_404(Plan, plan_id)

    def act() -> str:
        set_plan_status(plan, PlanStatus.ARCHIVED)
        return f"{plan.name} is archived: no new subscriptions; existing ones continue."

    return perform(act, back=url_for("plans_admin.index"))


@plans_bp.post("/<int:plan_id>/restore")
@requires(Permission.PLANS_MANAGE)
def restore(plan_id: int) -> Response:
    plan = get_or_404(Plan, plan_id)

    def act() -> str:
        set_plan_status(plan, PlanStatus.ACTIVE)
        return f"{plan.name} is open for subscriptions again."

    return perform(act, back=url_for("plans_admin.index"))


# --- Subscriptions ---------------------------------------------------------------------------


@subs_bp.get("/", endpoint="index")
@requires(Permission.SUBSCRIPTIONS_MANAGE_ANY)
def subscriptions_index() -> str:
    state = request.args.get("state", "")
    plan_id = request.args.get("plan", "")
    email = request.args.get("user", "").strip()[:100]
    try:
        page = max(1, min(int(request.args.get("page", 1)), 100_000))
    except ValueError:
        page = 1
    filtered = select(Subscription).join(User, User.id == Subscription.user_id)
    if state in S._value2member_map_:
        filtered = filtered.where(Subscription.state == S(state))
    else:
        state = ""
        filtered = filtered.where(Subscription.state != S.UNSIGNED)
    plan_key = parse_id(plan_id)
    if plan_key is not None:
        filtered = filtered.where(Subscription.plan_id == plan_key)
    if email:
        filtered = filtered.where(User.email.like(contains_pattern(email.lower()), escape="\\"))
    # The page with its users and plans, and how many match, in one statement: counted up to
    # a limit unless the admin asked to count all.
    count_all = request.args.get("count") == "all"
    offset = (page - 1) * PER_PAGE
    limit = None if count_all else counting_limit(offset, PER_PAGE)
    newest = (Subscription.updated_at.desc(), Subscription.id.desc())
    keys = page_keys(filtered, Subscription.id, newest, PER_PAGE, offset, limit)
    rows = db.session.execute(
        select(Subscription, keys.c.total)
        .join(keys, keys.c.id == Subscription.id)
        .join(User, User.id == Subscription.user_id)
        .options(contains_eager(Subscription.user), joinedload(Subscription.plan))
        .order_by(*newest)
    ).all()
    subs = [sub for sub, _ in rows]
    # A page past the end has no row to carry the count.
    total = rows[0].total if rows else (count_of(filtered, Subscription.id) if page > 1 else 0)
    counted = not rows or limit is None or total < limit
    plans = db.session.execute(select(Plan).order_by(Plan.position, Plan.name)).scalars().all()
    filters = {"state": state, "plan": plan_id, "user": email}
    return render_template(
        "subscriptions/admin.html",
        subs=subs,
        total=total,
        counted=counted,
        page=page,
        pages=max(1, -(-total // PER_PAGE)) if counted else None,
        has_next=total > page * PER_PAGE,
        plans=plans,
        states=list(S),
        filters=filters,
        paging=filters | {"count": "all"} if count_all else filters,
    )


def _admin_move(sub: Subscription, action: str, reason: str) -> str:
    admin_move(sub, action, actor=_me(), reason=reason)
    return f"Subscription of {sub.user.email} to {sub.plan.name} {ADMIN_ACTIONS[action][1]}."


@subs_bp.post("/<int:sub_id>/<any(approve, reject, suspend, resume, end):action>")
@requires(Permission.SUBSCRIPTIONS_MANAGE_ANY)
def act(sub_id: int, action: str) -> Response:
    sub = get_or_404(Subscription, sub_id)
    reason = request.form.get("reason", "")
    back = local_path(
        request.form.get("back"), url_for("subscriptions_admin.index"), prefix="/admin/"
    )
    return perform(lambda: _admin_move(sub, action, reason), back=back)


@subs_bp.post("/start")
@requires(Permission.SUBSCRIPTIONS_MANAGE_ANY)
@feature("subscriptions")
def start_for_user() -> Response:
    user = get_or_404(User, request.form.get("user_id"))
    plan = get_or_404(Plan, request.form.get("plan_id"))

    def act_() -> str:
        start_signing(
            user, plan, actor=_me(), kind=ActorKind.ADMIN, reason="started by an administrator"
        )
        return f"{user.email} can now review and accept the terms of {plan.name}."

    return perform(act_, back=url_for("users_admin.detail", user_id=user.id))


@subs_bp.post("/bulk")
@requires(Permission.SUBSCRIPTIONS_MANAGE_ANY)
def bulk() -> tuple[str, int]:
    action = request.form.get("action", "")
    reason = request.form.get("reason", "")
    if action not in ("suspend", "resume"):
        return render_template("users/_bulk_results.html", error="Choose suspend or resume."), 422
    if action == "suspend" and not reason.strip():
        return render_template(
            "users/_bulk_results.html", error="Give a reason for the suspension."
        ), 422
    ids = parse_ids(request.form.getlist("ids"))
    if not ids:
        return render_template(
            "users/_bulk_results.html", error="Select at least one subscription."
        ), 422
    found = {
        s.id: s
        for s in db.session.execute(
            select(Subscription).where(Subscription.id.in_([i for i in ids if isinstance(i, int)]))
        ).scalars()
    }
    results = []
    for sub_id in ids:
        sub = found.get(sub_id)
        if sub is None:
            results.append(RowResult(sub_id, "", False, "No such subscription."))
            continue
        try:
            with attempt():
                message = _admin_move(sub, action, reason)
        except PortalError as exc:
            results.append(RowResult(sub.id, sub.user.email, False, str(exc)))
        else:
            results.append(RowResult(sub.id, sub.user.email, True, message))
    return render_template("users/_bulk_results.html", results=results, error=None), 200
