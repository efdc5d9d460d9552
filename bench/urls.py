"""The platform's URLs plus `/bench/floor`: what Django's ASGI handler and the
middleware chain cost before any platform code runs."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as platform_urlpatterns


async def floor(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/floor", floor), *platform_urlpatterns]
