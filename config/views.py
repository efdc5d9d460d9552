"""Project-level views: the health check and error pages.

API paths never answer with an HTML page: their errors use the JSON error shape.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from inference.errors import Forbidden, InvalidRequest, NotFound
from inference.rendering import error_response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None, template_name="400.html"):
    if _is_api(request):
        return error_response(InvalidRequest("Bad request."))
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None, template_name="403.html"):
    if _is_api(request):
        return error_response(Forbidden())
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None, template_name="404.html"):
    if _is_api(request):
        return error_response(NotFound(f"No API endpoint at {request.path}."))
    return defaults.page_not_found(request, exception)


def server_error(request, template_name="500.html"):
    if _is_api(request):
        # A platform bug, not the caller's fault: still JSON, never an HTML page.
        return JsonResponse(
            {"error": {"code": "INTERNAL_ERROR", "message": "Something went wrong on our side."}},
            status=500,
        )
    return defaults.server_error(request)


async def healthz(request: HttpRequest) -> HttpResponse:
    from inference.health import health_report

    report = await health_report()
    response = JsonResponse(report, status=503 if report["status"] == "error" else 200)
    response["Cache-Control"] = "no-store"
    return response
