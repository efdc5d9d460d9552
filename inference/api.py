"""The native JSON API (django-ninja), documented at /api/docs."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja import NinjaAPI, Router
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security.base import AuthBase

from accounts.auth import authenticate_request
from games.api import router as conversations_router
from inference import selectors
from inference.errors import ApiError, InvalidRequest, PayloadTooLarge, Unauthorized
from inference.rendering import chat_http_response, error_response
from inference.schemas import ChatIn, ChatOut, ErrorOut, ModelsOut, normalize_chat
from inference.services import chat_start
from usage.api import router as usage_router

logger = logging.getLogger(__name__)


class PlatformAuth(AuthBase):
    """Bearer token, `x-api-key`, or the session cookie (see accounts.auth)."""

    openapi_type = "http"
    openapi_scheme = "bearer"

    async def authenticate(self, request: HttpRequest):
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.INFERENCE_MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"The request body is {length} bytes; at most "
                f"{settings.INFERENCE_MAX_BODY_BYTES} are accepted."
            )
        return await authenticate_request(request)

    def __call__(self, request: HttpRequest):
        return self.authenticate(request)


api = NinjaAPI(
    title="Vanilla Game Platform API",
    version="1",
    description=(
        "Inference for HTML5 games: the platform holds the model keys, counts every "
        "token and keeps each player inside their limits. Errors are "
        '`{"error": {"code", "message"}}` with the codes listed in README.md.'
    ),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    auth=PlatformAuth(),
)

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut}
ERRORS.update({429: ErrorOut, 502: ErrorOut, 503: ErrorOut, 504: ErrorOut})


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    return error_response(exc)


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    problems = []
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "payload")]
        field = ".".join(location) or "body"
        problems.append(f"{field}: {error.get('msg', 'invalid value')}")
    message = "; ".join(problems[:5]) or "The request body is not valid."
    return error_response(InvalidRequest(message, details={"fields": problems}))


@api.exception_handler(AuthenticationError)
def _authentication_error(request, exc):
    return error_response(Unauthorized())


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    if exc.status_code == 413:
        return error_response(PayloadTooLarge(str(exc)))
    message = str(exc)
    if "parse" in message.lower():
        message = "The request body is not valid JSON."
    return error_response(InvalidRequest(message))


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return error_response(PayloadTooLarge("The request body is too large."))


@api.exception_handler(Exception)
def _unexpected(request, exc: Exception):
    logger.exception("unexpected error on %s", request.path)
    from config.views import server_error

    return server_error(request)


router = Router(tags=["inference"])


@router.post("/chat", response={200: ChatOut, **ERRORS}, summary="Chat with a model")
async def chat(request: HttpRequest, payload: ChatIn):
    """One chat turn. With `stream: true` the answer is `text/event-stream` of
    `stream_chunk` messages ending in `stream_end` (or `error`)."""
    chat_request = normalize_chat(payload)
    if payload.conversation is not None:
        from games.api import conversation_chat

        return await conversation_chat(
            request,
            conversation_id=payload.conversation,
            chat_request=chat_request,
            stream=payload.stream,
        )
    run = await chat_start(principal=request.auth, request=chat_request)
    return await chat_http_response(run, stream=payload.stream)


@router.get("/models", response={200: ModelsOut, **ERRORS}, summary="Models on offer")
async def models(request: HttpRequest):
    return await selectors.models_list()


api.add_router("/inference", router)
api.add_router("/inference", usage_router)
api.add_router("/inference", conversations_router)
