"""Views for tests/config/test_handler.py: what each request did, and where."""

from __future__ import annotations

import asyncio
import threading

from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path

from accounts.models import User

# Filled by the views; read by the tests.
seen: dict[str, object] = {}
release = threading.Event()


async def quiet(request):
    return JsonResponse({"thread": threading.current_thread().name})


def sync_query(request):
    User.objects.count()
    seen["connection"] = connection
    return JsonResponse({"thread": threading.current_thread().name, "ident": threading.get_ident()})


async def async_query(request):
    await User.objects.acount()
    return JsonResponse({"thread": threading.current_thread().name})


def blocking(request):
    seen.setdefault("blocking", []).append(threading.get_ident())
    release.wait(10)
    return JsonResponse({"thread": threading.current_thread().name, "ident": threading.get_ident()})


async def endless(request):
    async def events():
        yield b"data: first\n\n"
        await asyncio.sleep(30)
        yield b"data: never\n\n"

    return StreamingHttpResponse(events(), content_type="text/event-stream")


urlpatterns = [
    path("quiet", quiet),
    path("sync-query", sync_query),
    path("async-query", async_query),
    path("blocking", blocking),
    path("endless", endless),
]
