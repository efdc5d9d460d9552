"""The platform's API errors: the error table of DESIGN.md and nothing else.

Every failure on an API path is one of these classes. The native API renders
them as `{"error": {"code", "message", ...details}}`; the compatible endpoints
translate them into their own API's error shape.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    code: str = "UPSTREAM_ERROR"
    status: int = 502
    default_message: str = "The request failed."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.retry_after = retry_after
        self.details = dict(details or {})
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        if self.retry_after is not None:
            body.setdefault("retry_after", self.retry_after)
        return {"error": body}

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, int(self.retry_after + 0.999)))}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidRequest(ApiError):
    code, status, default_message = "INVALID_REQUEST", 400, "The request is not valid."


class Unauthorized(ApiError):
    code, status, default_message = "UNAUTHORIZED", 401, "Missing or invalid credentials."


class Forbidden(ApiError):
    code, status, default_message = "FORBIDDEN", 403, "You may not do this."


class NotFound(ApiError):
    # Objects a caller may not see are reported exactly like missing ones.
    code, status, default_message = "NOT_FOUND", 404, "Not found."


class ModelNotAvailable(ApiError):
    code, status, default_message = "MODEL_NOT_AVAILABLE", 404, "No backend serves this model."


class PayloadTooLarge(ApiError):
    code, status, default_message = "PAYLOAD_TOO_LARGE", 413, "The request is too large."


class RateLimitExceeded(ApiError):
    code, status, default_message = "RATE_LIMIT_EXCEEDED", 429, "Too many requests."


class QuotaExceeded(ApiError):
    code, status, default_message = "QUOTA_EXCEEDED", 429, "Token limit reached."


class UpstreamFailure(ApiError):
    """An upstream fault. `retryable` faults are retried before the first byte."""

    retryable: bool = False

    def __init__(self, message: str | None = None, *, retryable: bool | None = None, **kw):
        super().__init__(message, **kw)
        if retryable is not None:
            self.retryable = retryable


class ConnectionFailed(UpstreamFailure):
    code, status, default_message = "CONNECTION_FAILED", 502, "Could not reach the model server."
    retryable = True


class UpstreamError(UpstreamFailure):
    code, status, default_message = "UPSTREAM_ERROR", 502, "The model server reported an error."


class NoBackendAvailable(UpstreamFailure):
    code, status, default_message = "NO_BACKEND_AVAILABLE", 503, "No model backend is available."


class InferenceTimeout(UpstreamFailure):
    code, status, default_message = "INFERENCE_TIMEOUT", 504, "The model server took too long."


ERROR_CLASSES: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        ModelNotAvailable,
        PayloadTooLarge,
        RateLimitExceeded,
        QuotaExceeded,
        ConnectionFailed,
        UpstreamError,
        NoBackendAvailable,
        InferenceTimeout,
    )
}
