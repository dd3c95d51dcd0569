"""The admin user list's rows as the table shows them: each row's texts worked out once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from portal.roles.policy import PartnerPolicy
from portal.template_urls import row_links


class ShownUser(NamedTuple):
    """One row of the user list."""

    id: int
    link: str  # to the user's own page
    email: str
    support: bool
    name: str
    role: str  # the partner's label for it
    status: str
    last_login: str
    created: str


def shown_users(users: Iterable[Any], policy: PartnerPolicy) -> list[ShownUser]:
    """The rows of a page of users (`Page.items`: their listed columns), in its order
    (`policy`: the partner's, for role labels)."""
    link = row_links("users_admin.detail", "user_id")
    labels = {role: policy.label(role) for role in policy.roles}
    return [
        ShownUser(
            id=user.id,
            link=link(user.id),
            email=user.email,
            support=user.is_support,
            name=user.display_name,
            role=labels[user.role],
            status=user.status.value,
            last_login=user.last_login_at.strftime("%Y-%m-%d %H:%M")
            if user.last_login_at
            else "never",
            created=user.created_at.strftime("%Y-%m-%d"),
        )
        for user in users
    ]
