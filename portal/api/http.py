"""What every partner API endpoint does around its work: the feature, the bearer token and
its scope, the client's rate limit, idempotent POSTs, versions (ETag / If-Match), cursors."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6750 import InsufficientScopeError
from flask import g, jsonify, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal.api.models import ApiClient, IdempotentRequest, Scope
from portal.api.oauth import require_oauth
from portal.api.problems import ApiRefusal, IdempotencyMismatch, InsufficientScope
from portal.api.services import acting_admin
from portal.auth.throttle import throttle
from portal.exceptions import Forbidden, NotFound
from portal.extensions import db
from portal.features.evaluation import evaluate
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy
from portal.unit_of_work import lock_partner
from portal.users.models import User

MAX_LIMIT = 100
DEFAULT_LIMIT = 25
CHALLENGE = 'Bearer realm="partner-api"'


def bearer(scope: Scope, permission: Permission) -> Callable[[Callable[..., Any]], Any]:
    """An API endpoint: needs the `api_access` feature, a live token of this partner with
    `scope`, and an acting admin who holds `permission`; counted against the client's limit.
    A POST with an `Idempotency-Key` answers a retry with its first answer."""

    def decorator(view: Callable[..., Any]) -> Any:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            client = authenticate(scope)
            actor = acting_admin(client)
            g.api_actor = actor
            if not current_policy().allows(actor, permission):
                raise Forbidden(
                    "The admin this client acts for may not do this (permission "
                    f"{permission.value})."
                )
            if request.method == "POST":
                return idempotent(client, lambda: view(*args, **kwargs))
            return view(*args, **kwargs)

        wrapped.bearer_scope = scope  # type: ignore[attr-defined]
        return wrapped

    return decorator


def authenticate(scope: Scope) -> ApiClient:
    if not evaluate("api_access").on:
        raise NotFound("The partner API is not switched on for this portal.")
    try:
        token = require_oauth.acquire_token([scope.value])
    except InsufficientScopeError as exc:
        raise InsufficientScope(
            f"This token does not carry the scope {scope.value}.",
            status=403,
            headers={"WWW-Authenticate": f'{CHALLENGE}, error="insufficient_scope"'},
        ) from exc
    except OAuth2Error as exc:
        missing = exc.error == "missing_authorization"
        raise ApiRefusal(
            "Send a bearer token of this portal: Authorization: Bearer <token>."
            if missing
            else "The bearer token is unknown, expired or revoked.",
            status=401,
            headers={
                "WWW-Authenticate": CHALLENGE if missing else f'{CHALLENGE}, error="invalid_token"'
            },
        ) from exc
    client: ApiClient = token.client
    g.api_client = client
    wait = throttle().api_request(str(client.partner_id), client.client_id)
    if wait is not None:
        raise ApiRefusal(
            f"Too many requests from this client. Try again in {wait} seconds.",
            status=429,
            headers={"Retry-After": str(wait)},
        )
    return client


# --- Idempotency-Key ----------------------------------------------------------------------


def idempotent(client: ApiClient, run: Callable[[], Response]) -> Response:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return run()
    if not (1 <= len(key) <= 255 and key.isascii() and key.isprintable()):
        raise ApiRefusal("An Idempotency-Key is 1 to 255 printable ASCII characters.", status=400)
    fingerprint = hashlib.sha256(
        b"\0".join([request.method.encode(), request.path.encode(), request.get_data()])
    ).hexdigest()
    # Under the partner's write lock (which every write takes anyway): a retry sent while the
    # first is still running waits for it and then answers with its result.
    lock_partner()
    seen = db.session.execute(
        select(IdempotentRequest).where(
            IdempotentRequest.api_client_id == client.id, IdempotentRequest.key == key
        )
    ).scalar_one_or_none()
    if seen is not None:
        if seen.request_hash != fingerprint:
            raise IdempotencyMismatch(
                "This Idempotency-Key was used with another request; use a new key.", status=422
            )
        replay = jsonify(seen.body)
        replay.status_code = seen.status
        replay.headers.update(seen.headers)
        replay.headers["Idempotent-Replayed"] = "true"
        return replay
    response = run()
    if 200 <= response.status_code < 300:
        kept = {h: response.headers[h] for h in ("ETag", "Location") if h in response.headers}
        db.session.add(
            IdempotentRequest(
                api_client_id=client.id,
                key=key,
                request_hash=fingerprint,
                status=response.status_code,
                body=response.get_json(),
                headers=kept,
            )
        )
    return response


# --- Input ----------------------------------------------------------------------------------


def body() -> dict[str, Any]:
    """The JSON object sent, or a 400 that says what is wrong with it."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiRefusal("Send a JSON object (Content-Type: application/json).", status=400)
    return data


def text_field(data: dict[str, Any], name: str, *, required: bool = True, default: str = "") -> str:
    value = data.get(name, None if required else default)
    if not isinstance(value, str):
        raise ApiRefusal(f"'{name}' must be a string.", status=422)
    return value


def flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ApiRefusal(f"'{name}' must be true or false.", status=422)
    return value


def limit() -> int:
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw[:4]) <= MAX_LIMIT and len(raw) <= 3):
        raise ApiRefusal(f"'limit' is a whole number from 1 to {MAX_LIMIT}.", status=400)
    return int(raw)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def cursor() -> int | None:
    """The id the next page starts after, from the opaque `cursor` of the previous page."""
    raw = request.args.get("cursor")
    if not raw:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["after"]
    except (ValueError, KeyError, TypeError, UnicodeEncodeError) as exc:
        raise ApiRefusal("This cursor is not one this API gave out.", status=400) from exc
    if not isinstance(value, int) or not 0 <= value < 2**31:
        raise ApiRefusal("This cursor is not one this API gave out.", status=400)
    return value


def page(items: list[Any], size: int, serialize: Callable[[Any], dict]) -> Response:
    """One page: `items` holds up to size + 1 rows; the extra one says there is a next page."""
    more = len(items) > size
    shown = items[:size]
    return jsonify(
        {
            "data": [serialize(item) for item in shown],
            "next_cursor": encode_cursor(shown[-1].id) if more and shown else None,
        }
    )


# --- Versions ---------------------------------------------------------------------------------


def etag(version: int) -> str:
    return f'"{version}"'


def with_etag(response: Response, version: int) -> Response:
    response.headers["ETag"] = etag(version)
    return response


def check_if_match(version: int, what: str) -> None:
    """412 when If-Match names another version than the row has now (no header: no check)."""
    raw = (request.headers.get("If-Match") or "").strip()
    if not raw or raw == "*":
        return
    candidates = [c.strip().removeprefix("W/").strip('"') for c in raw.split(",")]
    if str(version) not in candidates:
        raise ApiRefusal(
            f"{what} was changed since you read it (now version {version}); read it again.",
            status=412,
            headers={"ETag": etag(version)},
        )


def acting() -> User:
    return g.api_actor
