"""Helpers for partner API tests: a client of a partner, a token, bearer requests."""

from __future__ import annotations

import base64
from typing import Any

from conftest import HostClient, host_client, set_feature
from flask import Flask

from portal.api.models import Scope
from portal.api.services import create_client
from portal.extensions import db
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

ALL_SCOPES = [s.value for s in Scope]


def api_client_for(
    partner: Partner, admin: User, scopes: list[str] | None = None, name: str = "Back office"
) -> tuple[str, str, int]:
    """(client_id, secret, row id) of a new API client of `partner`, created by `admin`."""
    set_feature(partner, "api_access", True)
    with partner_scope(partner):
        client, secret = create_client(admin, name, scopes or ALL_SCOPES)
        db.session.commit()
        return client.client_id, secret, client.id


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def token_response(http: HostClient, client_id: str, secret: str, scope: str | None = None) -> Any:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return http.post("/oauth/token", data=data, headers=basic(client_id, secret))


def get_token(app: Flask, slug: str, client_id: str, secret: str, scope: str | None = None) -> str:
    response = token_response(host_client(app, slug), client_id, secret, scope)
    assert response.status_code == 200, response.text
    return response.json["access_token"]


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


class Api:
    """Bearer requests to one partner host."""

    def __init__(self, app: Flask, slug: str, token: str) -> None:
        self.http = host_client(app, slug)
        self.token = token

    def get(self, path: str, **headers: str) -> Any:
        return self.http.get("/api/v1" + path, headers=bearer(self.token, **headers))

    def post(self, path: str, json: Any = None, **headers: str) -> Any:
        return self.http.post(
            "/api/v1" + path,
            json=json if json is not None else {},
            headers=bearer(self.token, **headers),
        )


def error_code(response: Any) -> str:
    body = response.json
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]
