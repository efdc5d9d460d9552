"""What the three compatible APIs share: reading a bounded JSON body, checking
field types with messages that name the field, and running a view so that every
refusal comes out in that API's own error shape.

The compatible endpoints are renderings of the one gateway (`chat_start`), so a
request through them is limited, reserved, settled and recorded exactly as a
native one is; only the wire shapes differ.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.auth import Principal, authenticate_request
from inference.backends.base import ChatRequest
from inference.errors import ApiError, InvalidRequest, PayloadTooLarge
from inference.schemas import check_bounds
from inference.selectors import models_list
from inference.services import ChatResult, ChatRun, chat_start

logger = logging.getLogger(__name__)

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 200

# Errors the gateway has already retried (with backoff and failover) before
# answering: a client retrying them again only multiplies the wait and the
# usage records, and a quota refusal stays refused until its reset, which an SDK
# honouring `retry-after` would otherwise sleep through.
NOT_WORTH_RETRYING = frozenset(
    {"QUOTA_EXCEEDED", "CONNECTION_FAILED", "UPSTREAM_ERROR", "INFERENCE_TIMEOUT"}
)


class ServerFault(ApiError):
    """A fault of the platform itself, rendered in the caller's API shape
    instead of a bare 500 page."""

    code, status, default_message = "INTERNAL_ERROR", 500, "The platform failed to answer."


def new_request_id(prefix: str = "req_") -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def retry_headers(error: ApiError) -> dict[str, str]:
    """`retry-after` when the error knows it, and the Stainless SDKs' override
    for errors a retry cannot fix."""
    headers = {name.lower(): value for name, value in error.headers().items()}
    if error.code in NOT_WORTH_RETRYING:
        headers["x-should-retry"] = "false"
    return headers


# --- the request body ---------------------------------------------------------------


def read_body(request: HttpRequest) -> bytes:
    """The raw request body, within INFERENCE_MAX_BODY_BYTES.

    The declared length is checked before the body is touched (and before the
    caller is authenticated, as on the native API); the read body is checked
    again because a chunked request declares none.
    """
    limit = settings.INFERENCE_MAX_BODY_BYTES
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"The request body is {length} bytes; at most {limit} are accepted.")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge(f"The request body is over {limit} bytes.") from None
    if len(raw) > limit:
        raise PayloadTooLarge(
            f"The request body is {len(raw)} bytes; at most {limit} are accepted."
        )
    return raw


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidRequest("The request body is empty; a JSON object is expected.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The request body is not valid JSON.") from None
    except RecursionError:
        raise InvalidRequest("The request body nests deeper than is accepted.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


# --- typed field access (messages name the field, as the native API's do) -----------


def field_str(body: dict[str, Any], name: str, *, where: str = "") -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}{name}: Input should be a valid string.")
    return value


def field_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name}: Input should be a valid boolean.")
    return value


def field_int(body: dict[str, Any], name: str, *, minimum: int = 1, where: str = "") -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{where}{name}: Input should be a valid integer.")
    if value < minimum:
        raise InvalidRequest(f"{where}{name}: Input should be greater than or equal to {minimum}.")
    return value


def field_number(
    body: dict[str, Any], name: str, *, low: float, high: float, where: str = ""
) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{where}{name}: Input should be a valid number.")
    if not low <= value <= high:
        raise InvalidRequest(f"{where}{name}: Input should be between {low:g} and {high:g}.")
    return float(value)


def field_list(body: dict[str, Any], name: str, *, where: str = "") -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}{name}: Input should be a valid list.")
    return value


def field_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: Input should be an object.")
    return value


def stop_list(value: Any, name: str, *, one_string: bool = True) -> list[str]:
    """Stop sequences (a list, or with `one_string` also a single string) within
    the native API's bounds."""
    items = [value] if one_string and isinstance(value, str) else value
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        kind = "a string or a list of strings" if one_string else "a list of strings"
        raise InvalidRequest(f"{name}: Input should be {kind}.")
    if len(items) > MAX_STOP_SEQUENCES or any(
        not item or len(item) > MAX_STOP_CHARS for item in items
    ):
        raise InvalidRequest(
            f"{name}: at most {MAX_STOP_SEQUENCES} stop sequences of 1 to "
            f"{MAX_STOP_CHARS} characters."
        )
    return items


def tool_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not TOOL_NAME.match(value):
        raise InvalidRequest(f"{where}: a tool name is 1 to 64 letters, digits, '_' or '-'.")
    return value


def json_schema(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {"type": "object", "properties": {}}
    return field_object(value, where)


# --- the gateway ---------------------------------------------------------------------


async def authenticated_body(request: HttpRequest) -> tuple[Principal, dict[str, Any]]:
    """Who is calling and what they sent: size first, then credentials, then JSON."""
    raw = read_body(request)
    principal = await authenticate_request(request)
    return principal, parse_json_object(raw)


async def run_start(principal: Principal, chat_request: ChatRequest) -> ChatRun:
    """The gateway's admission, after the same bounds the native API applies."""
    return await chat_start(principal=principal, request=check_bounds(chat_request))


async def run_collect(run: ChatRun) -> ChatResult:
    """The whole answer; raises `ApiError` when the upstream fails part-way."""
    async with aclosing(run.events()) as events:
        async for _ in events:
            pass
    assert run.result is not None
    return run.result


async def served_models() -> list[dict[str, Any]]:
    """The models a caller can ask for right now, each once, in catalogue order."""
    catalogue = await models_list()
    seen: set[str] = set()
    rows = []
    for row in catalogue["models"]:
        if row["available"] and row["id"] not in seen:
            seen.add(row["id"])
            rows.append(row)
    return rows


# --- views ---------------------------------------------------------------------------

ErrorRenderer = Callable[[ApiError], HttpResponse]
View = Callable[..., Awaitable[HttpResponse]]


def compat_view(*, methods: tuple[str, ...], render_error: ErrorRenderer) -> Callable[[View], View]:
    """An async, CSRF-exempt view (the session path checks CSRF itself, in
    `authenticate_request`) whose refusals are rendered by `render_error`."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = render_error(
                    InvalidRequest(f"{request.method} is not allowed here; use {methods[0]}.")
                )
                response.status_code = 405
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return await view(request, *args, **kwargs)
            except ApiError as error:
                return render_error(error)
            except Exception:
                logger.exception("unexpected error on %s", request.path)
                return render_error(ServerFault())

        return wrapper

    return decorate
