"""Async-capable wrappers for middleware that only exists in a sync flavour.

Each sync middleware in the chain costs every request a thread hop (about a
millisecond); these keep the API's hot path on the event loop.
"""

from __future__ import annotations

import warnings

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import clickjacking, common, csrf, security
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


# --- Django's own middleware, without the thread hops -------------------------------
#
# Django's MiddlewareMixin runs `process_request` and `process_response` through
# `sync_to_async` in an async stack: two thread hops per middleware, about a dozen
# per request for the stack in settings, and most of the time of a small API call.
# Most of these hooks only read headers and set attributes or cookies; the classes
# below run them on the event loop and keep the hop for the cases that reach the
# database or the cache (which Django would refuse on the loop anyway).
# Django's deploy checks look for its security, CSRF and clickjacking
# middleware by dotted path; config/checks.py makes the same checks for these
# subclasses.


class _OnTheLoop:
    """Runs a MiddlewareMixin's hooks on the event loop unless they may do I/O."""

    def _request_on_loop(self, request) -> bool:
        return True

    def _response_on_loop(self, request, response) -> bool:
        return True

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            if self._request_on_loop(request):
                response = self.process_request(request)
            else:
                response = await sync_to_async(self.process_request)(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self._response_on_loop(request, response):
                response = self.process_response(request, response)
            else:
                response = await sync_to_async(self.process_response)(request, response)
        return response


class SecurityMiddleware(_OnTheLoop, security.SecurityMiddleware):
    """The HTTPS redirect and the security headers: no I/O."""


class CsrfViewMiddleware(_OnTheLoop, csrf.CsrfViewMiddleware):
    """The token is read from a cookie and headers; its checks are CPU only.

    Two things do I/O and keep the hop: a CSRF secret kept in the session
    (CSRF_USE_SESSIONS), and the form body that a POST's check reads, which for
    a multipart upload means writing its files.
    """

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(self):
            # The handler calls an async `process_view` without a thread hop.
            self.process_view = self._process_view_async

    def _request_on_loop(self, request) -> bool:
        return not settings.CSRF_USE_SESSIONS

    def _response_on_loop(self, request, response) -> bool:
        return not settings.CSRF_USE_SESSIONS

    async def _process_view_async(self, request, callback, callback_args, callback_kwargs):
        args = (request, callback, callback_args, callback_kwargs)
        on_loop = not settings.CSRF_USE_SESSIONS and (
            getattr(callback, "csrf_exempt", False)
            or request.method in ("GET", "HEAD", "OPTIONS", "TRACE")
            or not request.content_type.startswith("multipart/")
        )
        if on_loop:
            return super().process_view(*args)
        return await sync_to_async(super().process_view)(*args)


class XFrameOptionsMiddleware(_OnTheLoop, clickjacking.XFrameOptionsMiddleware):
    """One response header: no I/O."""


class CommonMiddleware(_OnTheLoop, common.CommonMiddleware):
    """URL checks (resolving is CPU only) and headers: no I/O."""


class AuthenticationMiddleware(_OnTheLoop, auth.AuthenticationMiddleware):
    """Sets `request.user` / `request.auser` lazily: no I/O until they are used."""


class SessionMiddleware(_OnTheLoop, sessions.SessionMiddleware):
    """The session store is made lazily; saving it is I/O.

    With SESSION_SAVE_EVERY_REQUEST a request that brings a session cookie saves
    its session even unread, so only a request without the cookie whose session
    nobody touched (an API call with a token) is finished on the loop.
    """

    def _response_on_loop(self, request, response) -> bool:
        session = getattr(request, "session", None)
        return settings.SESSION_COOKIE_NAME not in request.COOKIES and not getattr(
            session, "accessed", False
        )


class MessageMiddleware(_OnTheLoop, messages.MessageMiddleware):
    """Storing messages may load the session: only a request that used none is
    finished on the loop."""

    def _response_on_loop(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is None or not (storage.used or storage.added_new)


class ApiMethodNotAllowedMiddleware:
    """A wrong method on an API path answers in the API's error shape.

    django-ninja answers it with a plain-text 405; every other API error is
    `{"error": {"code", "message"}}`, so this one is too (the `Allow` header kept).
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        response = await self.get_response(request)
        if response.status_code == 405 and request.path_info.startswith("/api/"):
            content_type = response.get("Content-Type", "")
            if not content_type.startswith("application/json") and "Allow" in response:
                from django.http import JsonResponse

                allowed = response["Allow"]
                body = {
                    "error": {
                        "code": "INVALID_REQUEST",
                        "message": f"{request.method} is not allowed here; use {allowed}.",
                    }
                }
                json_response = JsonResponse(body, status=405)
                json_response["Allow"] = allowed
                return json_response
        return response
