"""Async-capable wrappers for middleware that only exists in a sync flavour.

Each sync middleware in the chain costs every request a thread hop (about a
millisecond); these keep the API's hot path on the event loop.
"""

from __future__ import annotations

import warnings

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware:
    """WhiteNoise for /static/ only; every other path passes straight through."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        with warnings.catch_warnings():
            # Before `collectstatic` there is no STATIC_ROOT; the finders serve.
            warnings.filterwarnings("ignore", message="No directory at")
            self.whitenoise = WhiteNoiseMiddleware(get_response)
        self.prefix = settings.STATIC_URL
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.whitenoise(request)

    async def __acall__(self, request):
        if request.path_info.startswith(self.prefix):
            static_file = self._find(request.path_info)
            if static_file is not None:
                return await sync_to_async(self.whitenoise.serve)(static_file, request)
        return await self.get_response(request)

    def _find(self, path):
        if self.whitenoise.autorefresh:
            return self.whitenoise.find_file(path)
        return self.whitenoise.files.get(path)


class UserSessionsMiddleware:
    """allauth's session-activity tracking, skipped on API paths.

    The session list shows where a person is signed in and when they were last
    seen; API calls from games would write a row per request for no one.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        from allauth.usersessions.middleware import UserSessionsMiddleware as Tracker

        self.get_response = get_response
        self.tracker = Tracker(lambda request: None)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        if not request.path_info.startswith("/api/"):
            self.tracker(request)
        return self.get_response(request)

    async def __acall__(self, request):
        if not request.path_info.startswith("/api/") and settings.SESSION_COOKIE_NAME in (
            request.COOKIES
        ):
            await sync_to_async(self.tracker)(request)
        return await self.get_response(request)
