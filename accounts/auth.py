"""The one authentication helper of the API and the WebSocket.

A caller proves who it is with `Authorization: Bearer <token>`, `x-api-key:
<token>` (what the Anthropic SDK sends), or the session cookie of a signed-in
page (unsafe methods then need the CSRF token). On the WebSocket the token may
also come as the subprotocol `bearer.<token>` or the `?token=` query parameter.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

from asgiref.sync import sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from accounts.models import ApiToken, User, hash_token
from inference.errors import Forbidden, Unauthorized
from inference.services import run_db

# Writing last_used_at on every request would cost a query each time; a minute's
# precision is what a person reading the token list needs.
LAST_USED_PRECISION = timedelta(seconds=60)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and through which credential."""

    user: User
    token: ApiToken | None = None

    @property
    def game_id(self) -> int | None:
        """The game a scoped token is limited to."""
        return self.token.game_id if self.token is not None else None

    @property
    def via(self) -> str:
        return "token" if self.token is not None else "session"


def token_from_headers(headers) -> str | None:
    authorization = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = headers.get("X-Api-Key") or headers.get("x-api-key")
    if api_key and api_key.strip():
        return api_key.strip()
    return None


async def principal_for_token(secret: str) -> Principal:
    """The principal a token secret stands for; raises when it is not usable."""
    digest = hash_token(secret)
    # On the gateway's long-lived database thread: no new thread and no new
    # connection for each request (see inference.services.run_db).
    token = await run_db(
        ApiToken.objects.select_related("owner", "game").filter(token_hash=digest).first
    )
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        raise Unauthorized("Invalid API token.")
    if token.revoked_at is not None:
        raise Unauthorized("This API token has been revoked.")
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized("This API token has expired.")
    if not token.owner.is_active:
        raise Forbidden("This account is deactivated.")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        token.last_used_at = now
        await run_db(ApiToken.objects.filter(pk=token.pk).update, last_used_at=now)
    return Principal(user=token.owner, token=token)


def _csrf_failure(request: HttpRequest) -> str | None:
    check = CsrfViewMiddleware(lambda req: None)
    check.process_request(request)
    response = check.process_view(request, None, (), {})
    if response is None:
        return None
    return "CSRF check failed: send the X-CSRFToken header with a cookie-authenticated write."


async def authenticate_request(request: HttpRequest) -> Principal:
    """Authenticate an API request, or raise `Unauthorized` / `Forbidden`."""
    secret = token_from_headers(request.headers)
    if secret is not None:
        return await principal_for_token(secret)
    user = await request.auser()
    if not user.is_authenticated:
        raise Unauthorized(
            "Authentication required: send 'Authorization: Bearer <token>' or sign in."
        )
    if not user.is_active:
        raise Forbidden("This account is deactivated.")
    if request.method not in SAFE_METHODS:
        failure = await sync_to_async(_csrf_failure)(request)
        if failure:
            raise Forbidden(failure)
    return Principal(user=user)


def _websocket_token(scope) -> tuple[str | None, str | None]:
    """The token offered on a WebSocket handshake, and the subprotocol to select."""
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith("bearer."):
            secret = protocol[len("bearer.") :]
            offered = scope.get("subprotocols") or []
            chosen = "vgp.v1" if "vgp.v1" in offered else protocol
            return secret, chosen
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], None
    return None, None


def websocket_subprotocol(scope) -> str | None:
    """The subprotocol to accept a handshake with (browsers need one they offered)."""
    _, chosen = _websocket_token(scope)
    if chosen:
        return chosen
    if "vgp.v1" in (scope.get("subprotocols") or []):
        return "vgp.v1"
    return None


def _origin_allowed(scope) -> bool:
    """A cookie only counts when the page that opened the socket is ours."""
    origin = None
    for name, value in scope.get("headers") or []:
        if name == b"origin":
            origin = value.decode("latin-1")
    if origin is None:
        return True  # not a browser: no ambient cookie to abuse
    validator = OriginValidator(None, settings.ALLOWED_HOSTS)
    return validator.valid_origin(urlparse(origin))


async def authenticate_scope(scope) -> Principal:
    """Authenticate a WebSocket handshake, or raise `Unauthorized` / `Forbidden`."""
    secret, _ = _websocket_token(scope)
    if secret is not None:
        return await principal_for_token(secret)
    # Channels' AuthMiddlewareStack has already resolved the session's user.
    user = scope.get("user")
    if not user or not getattr(user, "is_authenticated", False):
        raise Unauthorized("Authentication required.")
    if not _origin_allowed(scope):
        raise Unauthorized("Cookie authentication is only accepted from this site's pages.")
    if not user.is_active:
        raise Forbidden("This account is deactivated.")
    return Principal(user=user)
