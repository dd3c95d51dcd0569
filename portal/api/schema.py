"""What the partner API answers (serializers) and its OpenAPI 3.1 description.

The description is built from the URL map: every route of the `api` blueprint contributes
the operation its view declares with `@documented`, so a route cannot exist undescribed
(`tests/test_api_openapi.py` checks both directions).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, request

from portal.api.models import SCOPE_DESCRIPTIONS

# --- Serializers ----------------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def user(u: Any) -> dict[str, Any]:
    return {
        "id": u.id,
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role.value,
        "status": u.status.value,
        "is_support": u.is_support,
        "created_at": _time(u.created_at),
        "last_login_at": _time(u.last_login_at),
        "version": u.version,
    }


def role(config: Any) -> dict[str, Any]:
    return {
        "role": config.role.value,
        "label": config.label,
        "enabled": config.enabled,
        "rank": config.role.rank,
        "permissions": sorted(p.value for p in config.permissions),
    }


def plan(p: Any) -> dict[str, Any]:
    return {
        "id": p.id,
        "code": p.code,
        "name": p.name,
        "description": p.description,
        "price_cents": p.price_cents,
        "currency": p.currency,
        "interval": p.interval.value,
        "allowed_roles": list(p.allowed_roles),
        "entitlements": list(p.entitlements),
        "needs_approval": p.needs_approval,
        "status": p.status.value,
    }


def subscription(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "user_id": s.user_id,
        "plan_id": s.plan_id,
        "state": s.state.value,
        "version": s.version,
        "terms_accepted_at": _time(s.terms_accepted_at),
        "created_at": _time(s.created_at),
        "updated_at": _time(s.updated_at),
    }


def history(e: Any) -> dict[str, Any]:
    return {
        "id": e.id,
        "from_state": e.from_state.value if e.from_state else None,
        "to_state": e.to_state.value,
        "actor_id": e.actor_id,
        "actor_kind": e.actor_kind,
        "reason": e.reason,
        "created_at": _time(e.created_at),
    }


def session(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "user_id": s.user_id,
        "login_method": s.login_method.value,
        "ip": s.ip,
        "user_agent": s.user_agent,
        "created_at": _time(s.created_at),
        "last_seen_at": _time(s.last_seen_at),
        "expires_at": _time(s.expires_at),
    }


def audit_event(e: Any) -> dict[str, Any]:
    return {
        "id": e.id,
        "created_at": _time(e.created_at),
        "actor_type": e.actor_type.value,
        "actor_id": e.actor_id,
        "actor_label": e.actor_label,
        "on_behalf_of_id": e.on_behalf_of_id,
        "action": e.action,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "details": e.details or {},
        "ip": e.ip,
    }


# --- Schemas --------------------------------------------------------------------------------

STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
N_TIME = {"type": ["string", "null"], "format": "date-time"}
N_STR = {"type": ["string", "null"]}
N_INT = {"type": ["integer", "null"]}
ROLES = ["guest", "basic", "advanced", "company", "admin"]
STATES = ["signing", "signed", "suspended", "unsigned"]


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(item: str, paged: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"data": {"type": "array", "items": _ref(item)}}
    if paged:
        props["next_cursor"] = N_STR
    return _obj(props)


SCHEMAS: dict[str, Any] = {
    "User": _obj(
        {
            "id": INT,
            "email": STR,
            "display_name": STR,
            "role": {"type": "string", "enum": ROLES},
            "status": {"type": "string", "enum": ["invited", "active", "deactivated"]},
            "is_support": BOOL,
            "created_at": TIME,
            "last_login_at": N_TIME,
            "version": INT,
        }
    ),
    "Role": _obj(
        {
            "role": {"type": "string", "enum": ROLES},
            "label": STR,
            "enabled": BOOL,
            "rank": INT,
            "permissions": {"type": "array", "items": STR},
        }
    ),
    "Plan": _obj(
        {
            "id": INT,
            "code": STR,
            "name": STR,
            "description": STR,
            "price_cents": INT,
            "currency": STR,
            "interval": STR,
            "allowed_roles": {"type": "array", "items": STR},
            "entitlements": {"type": "array", "items": STR},
            "needs_approval": BOOL,
            "status": STR,
        }
    ),
    "Subscription": _obj(
        {
            "id": INT,
            "user_id": INT,
            "plan_id": INT,
            "state": {"type": "string", "enum": STATES},
            "version": INT,
            "terms_accepted_at": N_TIME,
            "created_at": TIME,
            "updated_at": TIME,
        }
    ),
    "HistoryEntry": _obj(
        {
            "id": INT,
            "from_state": {"type": ["string", "null"]},
            "to_state": STR,
            "actor_id": N_INT,
            "actor_kind": STR,
            "reason": STR,
            "created_at": TIME,
        }
    ),
    "Session": _obj(
        {
            "id": INT,
            "user_id": INT,
            "login_method": STR,
            "ip": N_STR,
            "user_agent": N_STR,
            "created_at": TIME,
            "last_seen_at": TIME,
            "expires_at": TIME,
        }
    ),
    "AuditEvent": _obj(
        {
            "id": INT,
            "created_at": TIME,
            "actor_type": STR,
            "actor_id": N_INT,
            "actor_label": STR,
            "on_behalf_of_id": N_INT,
            "action": STR,
            "target_type": N_STR,
            "target_id": N_STR,
            "details": {"type": "object"},
            "ip": N_STR,
        }
    ),
    "Revoked": _obj({"id": INT, "revoked": BOOL, "already_ended": BOOL}),
    "UserPage": _list("User", paged=True),
    "SubscriptionPage": _list("Subscription", paged=True),
    "AuditPage": _list("AuditEvent", paged=True),
    "RoleList": _list("Role"),
    "PlanList": _list("Plan"),
    "HistoryList": _list("HistoryEntry"),
    "SessionList": _list("Session"),
    "Invitation": _obj(
        {
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "role": {"type": "string", "enum": ROLES},
            "display_name": {"type": "string", "maxLength": 120},
        },
        required=["email", "role"],
    ),
    "RoleChange": _obj(
        {
            "role": {"type": "string", "enum": ROLES},
            "confirm_suspension": {
                "type": "boolean",
                "description": "Required when the new role may not have the user's plan: "
                "the subscription is then suspended.",
            },
        },
        required=["role"],
    ),
    "SubscriptionStart": _obj(
        {
            "user_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            "plan_id": {
                "type": "integer",
                "minimum": 1,
                "maximum": 2**31 - 1,
                "description": "An active plan open to the user's role",
            },
        }
    ),
    "Transition": _obj(
        {
            "action": {"type": "string", "enum": ["approve", "reject", "suspend", "resume", "end"]},
            "reason": {"type": "string", "maxLength": 300},
        },
        required=["action"],
    ),
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": STR,
                    "message": STR,
                    "details": {"type": "object"},
                }
            )
        }
    ),
}

USER_FILTERS = [
    ("q", "Search in email and name", STR),
    ("role", "Only this role", {"type": "string", "enum": ROLES}),
    (
        "status",
        "Only this status",
        {"type": "string", "enum": ["invited", "active", "deactivated"]},
    ),
    (
        "subscription",
        "Users with a subscription in this state, or none",
        {"type": "string", "enum": ["signed", "suspended", "signing", "none"]},
    ),
]
SUBSCRIPTION_FILTERS = [
    ("state", "Only this state", {"type": "string", "enum": STATES}),
    ("user_id", "Only this user's", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
    ("plan_id", "Only this plan's", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
]
AUDIT_FILTERS = [("action", "Only this action (user.invite, …)", STR)]
PAGING = [
    (
        "limit",
        "Items per page (1 to 100, 25 by default)",
        {"type": "integer", "minimum": 1, "maximum": 100},
    ),
    ("cursor", "The next_cursor of the previous page", STR),
]
ERRORS = {
    "400": "Malformed request",
    "401": "No token, or an unknown, expired or revoked one",
    "403": "The token lacks the scope, or its admin the permission",
    "404": "No such row in this partner (or the API is off)",
    "409": "Refused in the current state (the same refusals as the pages)",
    "412": "If-Match names an older version",
    "422": "Invalid input, or an Idempotency-Key reused with another body",
    "429": "Too many requests from this client (see Retry-After)",
}


def documented(
    operation_id: str,
    summary: str,
    answer: str,
    *,
    request: str | None = None,
    status: int = 200,
    etag: bool = False,
    query: list[tuple[str, str, dict]] | None = None,
    paged: bool = False,
) -> Callable[[Any], Any]:
    """Attach the endpoint's OpenAPI operation to its view."""

    def decorator(view: Any) -> Any:
        view.openapi = {
            "operation_id": operation_id,
            "summary": summary,
            "answer": answer,
            "request": request,
            "status": status,
            "etag": etag,
            "query": list(query or []) + (PAGING if paged else []),
        }
        return view

    return decorator


def _operation(rule: Any, method: str, view: Any) -> dict[str, Any]:
    doc = view.openapi
    scope = view.bearer_scope.value
    parameters = [
        {"name": arg, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}
        for arg in sorted(rule.arguments - {"partner"})
    ]  # fmt: skip
    parameters += [
        {"name": name, "in": "query", "required": False, "description": text, "schema": kind}
        for name, text, kind in doc["query"]
    ]
    if doc["etag"] and method == "post":
        parameters.append(
            {"name": "If-Match", "in": "header", "required": False, "schema": STR,
             "description": "The ETag you read: refused with 412 when the row changed since"}
        )  # fmt: skip
    if method == "post":
        parameters.append(
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "minLength": 1, "maxLength": 255},
             "description": "A retry with the same key and body returns the first answer"}
        )  # fmt: skip
    answer: dict[str, Any] = {
        "description": "OK" if doc["status"] == 200 else "Created",
        "content": {"application/json": {"schema": _ref(doc["answer"])}},
    }
    headers: dict[str, Any] = {}
    if doc["etag"]:
        headers["ETag"] = {"schema": STR, "description": "The row's version"}
    if doc["status"] == 201:
        headers["Location"] = {
            "schema": STR,
            "required": True,
            "description": "The new row's address in this API",
        }
    if headers:
        answer["headers"] = headers
    responses: dict[str, Any] = {str(doc["status"]): answer}
    for code, text in ERRORS.items():
        responses[code] = {
            "description": text,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    operation: dict[str, Any] = {
        "operationId": doc["operation_id"],
        "summary": doc["summary"],
        "security": [{"client_credentials": [scope]}],
        "parameters": parameters,
        "responses": responses,
        "x-scope": scope,
    }
    if doc["request"]:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(doc["request"])}},
        }
    return operation


def openapi_path(rule: Any) -> str:
    """/api/v1/users/<int:user_id> → /users/{user_id} (relative to the server URL)."""
    path = rule.rule.removeprefix("/api/v1")
    for arg in rule.arguments:
        path = path.replace(f"<int:{arg}>", "{" + arg + "}")
    return path


def api_rules(app: Flask) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")]


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API on the host this request came to."""
    paths: dict[str, Any] = {}
    for rule in api_rules(app):
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, "openapi"):
            continue  # the description itself
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(openapi_path(rule), {})[method.lower()] = _operation(
                rule, method.lower(), view
            )
    base = request.host_url.rstrip("/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Partner Portal API",
            "version": "1.0.0",
            "description": "The partner's own users, roles, plans, subscriptions, sessions and "
            "audit log. OAuth 2 client credentials; see /developers.",
        },
        "servers": [{"url": f"{base}/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "client_credentials": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": f"{base}/oauth/token",
                            "scopes": {s.value: text for s, text in SCOPE_DESCRIPTIONS.items()},
                        }
                    },
                }
            },
        },
    }
