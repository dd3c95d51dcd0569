"""A small OpenID Connect provider built from Authlib's server components: development and tests.

It is a Flask app of its own (never the portal's), with discovery, a key set, an authorization
page where you pick a demo person (no passwords: whoever reaches it chooses who they are), a
token endpoint (authorization code with PKCE S256 required, client secret basic or post) and
userinfo. `make run` mounts it at `/dev/idp` of the development server only; the tests serve
it on 127.0.0.1 over real HTTP. Production configuration never mounts it.

Each sign-in at it is a provider session of its own, named by the ID token's `sid`. Its
`/sessions` page lists them, each with a "Sign out" button: signing out there ends that
provider session and sends the client it signed into a back-channel logout token (OpenID
Connect Back-Channel Logout 1.0) at the client's registered `backchannel_logout_uri`.

Its signing key is made once per installation and kept in the instance folder
(`stable_signing_key`), so a restart of `make run` publishes the same key set.

`faults` lets a test make it misbehave the way a broken or hostile provider would: an ID token
with another nonce, already expired, for another audience or issuer, or signed by a key it
does not publish.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from flask import Flask, abort, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

CODE_LIFETIME = 60  # seconds
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
KEY_PARAMETERS = {"kid": "demo-1", "use": "sig"}


def new_signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters=dict(KEY_PARAMETERS))


def stable_signing_key(path: Path) -> RSAKey:
    """The key kept in `path` (readable by its owner only), made and kept there on first use.

    Two first starts at once (two workers) each write a whole key to a temporary file of their
    own and hard-link it to `path`, which fails once `path` exists: the first link wins, and
    both use the key it names, never one each.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, candidate = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(new_signing_key().as_dict(private=True), file)
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another start's key got there first
                os.link(candidate, path)
        finally:
            os.unlink(candidate)
    try:
        return RSAKey.import_key(json.loads(path.read_text()))
    except (ValueError, JoseError) as exc:
        raise RuntimeError(
            f"{path} does not hold the demo identity provider's key: delete it, and a new key "
            "is made on the next start"
        ) from exc


@dataclass(frozen=True)
class DemoPerson:
    subject: str
    email: str
    name: str
    email_verified: bool = True


@dataclass(frozen=True)
class DemoClient(ClientMixin):
    client_id: str
    client_secret: str = field(repr=False)  # Authlib's debug log lines show clients
    redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("openid", "email", "profile"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    person: DemoPerson
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float
    sid: str = ""

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Faults:
    """Ways to misbehave, for tests; all off by default."""

    nonce: str | None = None  # put this nonce in ID tokens instead of the one asked for
    expired: bool = False  # ID tokens that expired ten minutes ago
    audience: str | None = None  # ID tokens for this client id instead
    issuer: str | None = None  # ID tokens naming this issuer instead
    foreign_key: bool = False  # sign ID tokens with a key the key set does not hold


@dataclass
class DemoProvider:
    """The provider's state: people, clients, signing key, codes handed out."""

    issuer: str
    clients: list[DemoClient]
    people: list[DemoPerson]
    faults: Faults = field(default_factory=Faults)
    key: RSAKey = field(default_factory=new_signing_key, repr=False)

    def __post_init__(self) -> None:
        self.issuer = self.issuer.rstrip("/")
        self.foreign = new_signing_key()  # the same kid, never published
        self.codes: dict[str, Code] = {}
        self.used: set[str] = set()
        self.tokens: dict[str, DemoPerson] = {}
        # Its sessions: sid -> (subject, client id), one per sign-in.
        self.sessions: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.token_requests = 0
        self.now: Callable[[], int] = lambda: int(time.time())  # logout tokens' iat
        # How a logout token reaches a client: (address, token) -> the HTTP status it got.
        self.deliver: Callable[[str, str], int] = post_logout_token

    def sign_out(self, sid: str) -> str:
        """End the provider session `sid` and tell the client it signed into; what happened."""
        with self._lock:
            found = self.sessions.pop(sid, None)
        if found is None:
            return "No such session (already signed out?)."
        subject, client_id = found
        client = self.client(client_id)
        if client is None or not client.backchannel_logout_uri:
            return f"Signed out; {client_id} has no back-channel logout address to tell."
        token = self.logout_token(client_id, subject=subject, sid=sid)
        try:
            status = self.deliver(client.backchannel_logout_uri, token)
        except requests.RequestException as exc:
            return f"Signed out; {client_id} could not be told ({type(exc).__name__})."
        return f"Signed out; {client_id} answered HTTP {status}."

    def logout_token(
        self,
        client_id: str,
        *,
        subject: str | None = None,
        sid: str | None = None,
        key: RSAKey | None = None,
        **claims: Any,
    ) -> str:
        """The back-channel logout token this provider sends `client_id` when `subject`'s
        session `sid` ends (either may be left out). `claims` add to or replace its claims;
        a claim given as None is left out."""
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": self.now(),
            "jti": secrets.token_urlsafe(16),
            "events": {BACKCHANNEL_EVENT: {}},
            "sub": subject,
            "sid": sid,
            **claims,
        }
        key = key or self.key
        header = {"alg": "RS256", "kid": key.kid, "typ": "logout+jwt"}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(header, payload, key)

    def person(self, subject: str) -> DemoPerson | None:
        return next((p for p in self.people if p.subject == subject), None)

    def client(self, client_id: str) -> DemoClient | None:
        return next((c for c in self.clients if c.client_id == client_id), None)


def post_logout_token(address: str, token: str) -> int:
    """POST a logout token to a client's back-channel logout address (5 s at most). A
    `*.localhost` host is reached on 127.0.0.1 with its name in the Host header: browsers
    resolve such names to loopback, Python's resolver does not."""
    parts = urlsplit(address)
    headers = {}
    if parts.hostname and parts.hostname.endswith(".localhost"):
        headers["Host"] = parts.netloc
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        address = urlunsplit(parts._replace(netloc=netloc))
    response = requests.post(
        address, data={"logout_token": token}, headers=headers, timeout=5, allow_redirects=False
    )
    return response.status_code


def _grants(provider: DemoProvider) -> tuple[type, OpenIDCode]:
    class CodeGrant(AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, request: Any) -> None:
            data = request.payload.data
            provider.codes[code] = Code(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.payload.scope,
                person=request.user,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=int(time.time()),
                expires_at=time.time() + CODE_LIFETIME,
                sid=(sid := secrets.token_urlsafe(16)),
            )
            provider.sessions[sid] = (request.user.subject, request.client.client_id)

        def query_authorization_code(self, code: str, client: DemoClient) -> Code | None:
            with provider._lock:
                if code in provider.used:
                    return None  # a code works once
                found = provider.codes.get(code)
            if found is None or found.client_id != client.client_id:
                return None
            return found if found.expires_at > time.time() else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            with provider._lock:
                provider.used.add(authorization_code.code)
                provider.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> DemoPerson:
            return authorization_code.person

    class IdToken(OpenIDCode):
        def exists_nonce(self, nonce: str, request: Any) -> bool:
            return any(
                c.nonce == nonce and c.client_id == request.payload.client_id
                for c in provider.codes.values()
            )

        def resolve_client_private_key(self, client: DemoClient) -> Any:
            return provider.foreign if provider.faults.foreign_key else provider.key

        def get_client_algorithm(self, client: DemoClient) -> str:
            return "RS256"

        def get_encode_header(self, client: DemoClient) -> dict[str, str]:
            return {"alg": "RS256", "kid": "demo-1"}

        def get_client_claims(self, client: DemoClient) -> dict[str, Any]:
            faults = provider.faults
            now = int(time.time())
            return {
                "iss": faults.issuer or provider.issuer,
                "aud": [faults.audience or client.client_id],
                "iat": now - 900 if faults.expired else now,
                "exp": now - 600 if faults.expired else now + 300,
            }

        def get_authorization_code_claims(self, authorization_code: Code) -> dict[str, Any]:
            claims = super().get_authorization_code_claims(authorization_code)
            claims["sid"] = authorization_code.sid
            if provider.faults.nonce is not None:
                claims["nonce"] = provider.faults.nonce
            return claims

        def generate_user_info(self, user: DemoPerson, scope: str) -> UserInfo:
            return _userinfo(user, scope)

    return CodeGrant, IdToken(require_nonce=True)


def _userinfo(person: DemoPerson, scope: str) -> UserInfo:
    info = UserInfo(sub=person.subject)
    if "email" in scope.split():
        info.update(email=person.email, email_verified=person.email_verified)
    if "profile" in scope.split():
        info.update(name=person.name)
    return info


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo identity provider</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}}
button{{display:block;width:100%;margin:.5rem 0;padding:.75rem;font-size:1rem;cursor:pointer}}
.muted{{color:#555}}</style></head><body>
<h1>Demo identity provider</h1>
<p class="muted">Development only. <strong>{client}</strong> asks who you are. There are no
passwords here: choose a person.</p>
<form method="post">{buttons}
<button type="submit" name="cancel" value="1">Cancel</button></form></body></html>"""


SESSIONS_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Demo identity provider: sessions</title></head><body>
<h1>Signed in at the demo identity provider</h1><p role="status">{note}</p>
<p>Signing out here signs the person out of the portal too (back-channel logout).</p>
<ul>{rows}</ul></body></html>"""


def create_provider_app(provider: DemoProvider, *, loopback_only: bool = False) -> Flask:
    """The provider as a WSGI app of its own; `loopback_only` answers nobody else (make run)."""
    app = Flask(__name__)
    app.config.update(OAUTH2_SCOPES_SUPPORTED=["openid", "email", "profile"])
    server = AuthorizationServer(app, query_client=provider.client, save_token=_keep(provider))
    grant, id_token = _grants(provider)
    server.register_grant(grant, [CodeChallenge(required=True), id_token])
    base = provider.issuer

    if loopback_only:

        @app.before_request
        def only_from_this_machine() -> None:
            try:
                if not ipaddress.ip_address(request.remote_addr or "").is_loopback:
                    abort(404)
            except ValueError:
                abort(404)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return jsonify(
            issuer=base,
            authorization_endpoint=f"{base}/authorize",
            token_endpoint=f"{base}/token",
            userinfo_endpoint=f"{base}/userinfo",
            jwks_uri=f"{base}/jwks",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            scopes_supported=["openid", "email", "profile"],
            token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
            code_challenge_methods_supported=["S256"],
            grant_types_supported=["authorization_code"],
            backchannel_logout_supported=True,
            backchannel_logout_session_supported=True,
        )

    @app.get("/jwks")
    def jwks() -> Response:
        return jsonify(KeySet([provider.key]).as_dict(private=False))

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        chosen = request.form.get("person") if request.method == "POST" else None
        person = provider.person(chosen) if chosen else None
        try:
            grant = server.get_consent_grant(end_user=person)
        except OAuth2Error as error:
            return Response(f"{error.error}: {error.description}", 400, mimetype="text/plain")
        if request.method == "POST" and (person is not None or request.form.get("cancel")):
            return server.create_authorization_response(grant_user=person, grant=grant)
        # The form posts back to this address, query string included: the request's
        # parameters travel in it, checked again on the way.
        buttons = "".join(
            f'<button type="submit" name="person" value="{escape(p.subject)}">'
            f"{escape(p.name)} &lt;{escape(p.email)}&gt;</button>"
            for p in provider.people
        )
        page = PAGE.format(client=escape(grant.client.client_id), buttons=buttons)
        return Response(page, mimetype="text/html")

    @app.get("/sessions")
    def sessions() -> Response:
        with provider._lock:
            current = list(provider.sessions.items())
        rows = "".join(
            f"<li>{escape(subject)} at <strong>{escape(client_id)}</strong> "
            f'<form method="post" action="{base}/sessions/{escape(sid)}/sign-out">'
            '<button type="submit">Sign out</button></form></li>'
            for sid, (subject, client_id) in current
        )
        page = SESSIONS_PAGE.format(note="", rows=rows or "<li>Nobody is signed in here.</li>")
        return Response(page, mimetype="text/html")

    @app.post("/sessions/<sid>/sign-out")
    def sign_out(sid: str) -> Response:
        note = provider.sign_out(sid)
        return Response(
            SESSIONS_PAGE.format(
                note=escape(note), rows=f'<li><a href="{base}/sessions">Back</a></li>'
            ),
            mimetype="text/html",
        )

    @app.post("/token")
    def token() -> Response:
        provider.token_requests += 1
        return server.create_token_response()

    @app.get("/userinfo")
    def userinfo() -> Response:
        header = request.headers.get("Authorization", "")
        person = provider.tokens.get(header.removeprefix("Bearer ").strip())
        if person is None:
            return Response(status=401)
        return jsonify(_userinfo(person, "openid email profile"))

    return app


def _keep(provider: DemoProvider) -> Any:
    def save_token(token: dict[str, Any], request: Any) -> None:
        provider.tokens[token["access_token"]] = request.user

    return save_token


# --- The development demo ---------------------------------------------------------------------

DEMO_PEOPLE = (
    DemoPerson("demo-new-person", "new.person@acme.test", "Nia Newcomer"),
    DemoPerson("demo-basic", "basic@acme.test", "Basil Basic"),
    DemoPerson("demo-admin", "admin@acme.test", "Ada Admin"),
    DemoPerson("demo-outsider", "someone@example.org", "Oscar Outsider"),
)
DEMO_CLIENT_ID = "acme-portal"
DEMO_CLIENT_SECRET = "demo-client-secret-for-development-only"


def demo_issuer(server_name: str) -> str:
    """The demo provider's issuer on the development server (127.0.0.1: Python's resolver
    does not resolve *.localhost, and the portal calls it from Python)."""
    port = server_name.rpartition(":")[2] if ":" in server_name else "80"
    return f"http://127.0.0.1:{port}/dev/idp"


def mount_demo_provider(app: Flask) -> None:
    """Serve the demo provider at /dev/idp of the development server; nowhere else."""
    server_name = app.config["SERVER_NAME"]
    provider = DemoProvider(
        issuer=demo_issuer(server_name),
        clients=[
            DemoClient(
                DEMO_CLIENT_ID,
                DEMO_CLIENT_SECRET,
                (f"http://acme.{server_name}/sso/callback",),
                f"http://acme.{server_name}/sso/backchannel-logout",
            )
        ],
        people=list(DEMO_PEOPLE),
        key=stable_signing_key(Path(app.config["DEMO_IDP_KEY_FILE"])),
    )
    app.extensions["portal_demo_idp"] = provider
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/dev/idp": create_provider_app(provider, loopback_only=True)}
    )
