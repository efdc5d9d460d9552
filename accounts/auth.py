"""The one authentication helper of the API and the WebSocket.

A caller proves who it is with `Authorization: Bearer <token>`, `x-api-key:
<token>` (what the Anthropic SDK sends), or the session cookie of a signed-in
page (unsafe methods then need the CSRF token). On the WebSocket the token may
also come as the subprotocol `bearer.<token>` or the `?token=` query parameter.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

from asgiref.sync import sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.expressions import Col
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
    token = await run_db(_token_by_hash, digest)
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


# --- The token lookup ----------------------------------------------------------------
#
# Every API request starts with it, so it is one SQL statement built once: the
# token with its owner and game, as `select_related("owner", "game")` would load
# them, without compiling that queryset again for each request (~0.7 ms of CPU).
# Columns come from the models' `_meta`, values go through the same converters
# the ORM applies, and the instances are made with `Model.from_db`.


@dataclass(frozen=True, slots=True)
class _TokenQuery:
    sql: str
    # (model, attnames, (column, its converters) each) for the token, owner, game.
    parts: tuple[tuple[type[Model], list[str], list[tuple[Col, list[Callable]]]], ...]
    # The column of the game's primary key: None there means no game.
    game_pk_at: int


_token_queries: dict[str, _TokenQuery] = {}


def _token_query(db: BaseDatabaseWrapper) -> _TokenQuery:
    query = _token_queries.get(db.vendor)
    if query is not None:
        return query
    qn = db.ops.quote_name
    owner_field, game_field = ApiToken._meta.get_field("owner"), ApiToken._meta.get_field("game")
    tables = (("t", ApiToken), ("u", owner_field.related_model), ("g", game_field.related_model))
    columns: list[str] = []
    parts = []
    for alias, model in tables:
        fields = model._meta.concrete_fields
        columns += [f"{alias}.{qn(field.column)}" for field in fields]
        converters = []
        for field in fields:
            col = field.get_col(alias)
            converters.append((col, db.ops.get_db_converters(col) + field.get_db_converters(db)))
        parts.append((model, [field.attname for field in fields], converters))
    token_count = len(ApiToken._meta.concrete_fields)
    user_count = len(owner_field.related_model._meta.concrete_fields)
    game_pk = game_field.related_model._meta.pk
    sql = (
        f"SELECT {', '.join(columns)} FROM {qn(ApiToken._meta.db_table)} t "
        f"INNER JOIN {qn(owner_field.related_model._meta.db_table)} u "
        f"ON u.{qn(owner_field.target_field.column)} = t.{qn(owner_field.column)} "
        f"LEFT JOIN {qn(game_field.related_model._meta.db_table)} g "
        f"ON g.{qn(game_field.target_field.column)} = t.{qn(game_field.column)} "
        f"WHERE t.{qn(ApiToken._meta.get_field('token_hash').column)} = %s"
    )
    game_pk_at = (
        token_count + user_count + game_field.related_model._meta.concrete_fields.index(game_pk)
    )
    query = _token_queries[db.vendor] = _TokenQuery(sql, tuple(parts), game_pk_at)
    return query


def _token_by_hash(digest: str) -> ApiToken | None:
    """The token whose hash is `digest`, with `owner` and `game` loaded."""
    db = connections[DEFAULT_DB_ALIAS]
    query = _token_query(db)
    with db.cursor() as cursor:
        cursor.execute(query.sql, [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    instances: list[Model | None] = []
    at = 0
    for model, attnames, converters in query.parts:
        values = list(row[at : at + len(attnames)])
        at += len(attnames)
        if model is not ApiToken and at > query.game_pk_at and row[query.game_pk_at] is None:
            instances.append(None)  # a token for no game: the LEFT JOIN found none
            continue
        for i, (col, column_converters) in enumerate(converters):
            for convert in column_converters:
                values[i] = convert(values[i], col, db)
        instances.append(model.from_db(db.alias, attnames, values))
    token, owner, game = instances
    ApiToken._meta.get_field("owner").set_cached_value(token, owner)
    ApiToken._meta.get_field("game").set_cached_value(token, game)
    return token


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
