"""Reading users for the admin list: search, filter, sort and paginate within one partner."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from sqlalchemy import Row, ScalarSelect, Select, and_, case, exists, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db
from portal.paging import count_of, page_keys
from portal.roles.models import Role
from portal.subscriptions.models import Plan, Subscription, SubscriptionState
from portal.users.models import User, UserStatus

SORTS = {
    "email": User.email,
    "name": User.display_name,
    "role": User.role,
    "status": User.status,
    "created": User.created_at,
    "last_login": User.last_login_at,
}
PER_PAGE = 25
# The subscription filter: a state the user has a subscription in, or none live at all.
NO_SUBSCRIPTION = "none"
SUBSCRIPTION_FILTERS = (
    SubscriptionState.SIGNED.value,
    SubscriptionState.SUSPENDED.value,
    SubscriptionState.SIGNING.value,
    NO_SUBSCRIPTION,
)


@dataclass(frozen=True)
class UserQuery:
    """The list's state, parsed from the query string; unknown values fall back to defaults."""

    q: str = ""
    role: Role | None = None
    status: UserStatus | None = None
    sort: str = "email"
    direction: str = "asc"
    page: int = 1
    subscription: str = ""

    @classmethod
    def from_args(cls, args: dict[str, str]) -> UserQuery:
        def enum_or_none(kind, value):
            return kind(value) if value in kind._value2member_map_ else None

        try:
            page = max(1, min(int(args.get("page", 1)), 1_000_000))
        except ValueError:
            page = 1
        sort = args.get("sort", "email")
        subscription = args.get("subscription", "")
        return cls(
            q=args.get("q", "").strip()[:100],
            role=enum_or_none(Role, args.get("role")),
            status=enum_or_none(UserStatus, args.get("status")),
            sort=sort if sort in SORTS else "email",
            direction="desc" if args.get("direction") == "desc" else "asc",
            page=page,
            subscription=subscription if subscription in SUBSCRIPTION_FILTERS else "",
        )

    def args(self, **changes: object) -> dict[str, object]:
        """Query-string arguments for a link that changes some of the state."""
        state = {
            "q": self.q,
            "role": self.role.value if self.role else "",
            "status": self.status.value if self.status else "",
            "sort": self.sort,
            "direction": self.direction,
            "page": self.page,
            "subscription": self.subscription,
            **changes,
        }
        return {k: v for k, v in state.items() if v not in ("", None)}


@dataclass(frozen=True)
class Page:
    items: list[User]
    total: int
    query: UserQuery
    per_page: int = PER_PAGE
    pages: int = field(init=False)
    # The live subscription of each listed user who has one (`with_subscription`).
    subscriptions: dict[int, Subscription] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", max(1, math.ceil(self.total / self.per_page)))


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with LIKE's wildcards taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filtered(query: UserQuery) -> Select:
    stmt = select(User)
    if query.q:
        pattern = contains_pattern(query.q)
        stmt = stmt.where(
            or_(
                User.email.like(pattern.lower(), escape="\\"),
                User.display_name.ilike(pattern, escape="\\"),
            )
        )
    if query.role:
        stmt = stmt.where(User.role == query.role)
    if query.status:
        stmt = stmt.where(User.status == query.status)
    if query.subscription == NO_SUBSCRIPTION:
        live = Subscription.state != SubscriptionState.UNSIGNED
        stmt = stmt.where(~exists().where(Subscription.user_id == User.id, live))
    elif query.subscription:
        state = SubscriptionState(query.subscription)
        stmt = stmt.where(
            exists().where(Subscription.user_id == User.id, Subscription.state == state)
        )
    return stmt


def search_users(
    query: UserQuery, per_page: int = PER_PAGE, *, with_subscription: bool = False
) -> Page:
    """One page of the current partner's users (the ORM adds the partner filter) and how many
    match, in one statement; `with_subscription`: each with their live subscription and its
    plan (the one in force, else the one being signed), in the same statement."""
    filtered = _filtered(query)
    column = SORTS[query.sort]
    order = column.desc() if query.direction == "desc" else column.asc()
    if query.sort == "last_login":
        order = order.nulls_last()
    ordering = (order, User.id)
    page = query.page
    rows = _page_rows(filtered, ordering, page, per_page, with_subscription)
    if rows:
        total = rows[0].total
    else:  # none here: past the last page (show that one), or nobody matches
        total = count_of(filtered, User.id) if page > 1 else 0
        last = max(1, math.ceil(total / per_page))
        if page > last:
            page = last
            rows = _page_rows(filtered, ordering, page, per_page, with_subscription)
    subscriptions = {}
    for row in rows:
        if with_subscription and row.Subscription is not None:
            set_committed_value(row.Subscription, "plan", row.Plan)
            subscriptions[row.User.id] = row.Subscription
    return Page(
        items=[row.User for row in rows],
        total=total,
        query=replace(query, page=page),
        per_page=per_page,
        subscriptions=subscriptions,
    )


def _page_rows(
    filtered: Select, ordering: tuple, page: int, per_page: int, with_subscription: bool
) -> list[Row]:
    keys = page_keys(filtered, User.id, ordering, page, per_page)
    stmt = select(User, keys.c.total).join(keys, keys.c.id == User.id).order_by(*ordering)
    if with_subscription:
        stmt = (
            stmt.add_columns(Subscription, Plan)
            .outerjoin(
                Subscription,
                and_(Subscription.partner_id == User.partner_id, Subscription.id == _live_id()),
            )
            .outerjoin(
                Plan,
                and_(Plan.partner_id == Subscription.partner_id, Plan.id == Subscription.plan_id),
            )
        )
    return list(db.session.execute(stmt).all())


def _live_id() -> ScalarSelect[int]:
    """The user's live subscription: the one in force (signed or suspended), else the one
    being signed."""
    live = aliased(Subscription)
    signing = case((live.state == SubscriptionState.SIGNING, 1), else_=0)
    return (
        select(live.id)
        .where(live.user_id == User.id, live.state != SubscriptionState.UNSIGNED)
        .order_by(signing, live.id)
        .limit(1)
        .correlate(User)
        .scalar_subquery()
    )


def users_after(query: UserQuery, after_id: int | None, limit: int) -> list[User]:
    """Up to `limit` users matching the list's search and filters, by id, after `after_id`
    (the partner API's cursor pages: stable while users are added)."""
    stmt = _filtered(query)
    if after_id is not None:
        stmt = stmt.where(User.id > after_id)
    return list(db.session.execute(stmt.order_by(User.id).limit(limit)).scalars())
