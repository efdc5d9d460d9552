"""What /healthz reports: the database, the cache, and each backend's reachability.

A worker whose database or cache fails answers 503, so a load balancer takes it
out. An unreachable model backend does not: every worker shares the upstreams,
and taking them all out would turn one slow provider into a full outage.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection

from inference.backends import enabled_backends, get_backend

# Generous: a worker builds each SDK client (and its TLS context) on first use.
BACKEND_TIMEOUT_S = 5.0
BACKEND_CACHE_S = 10.0

_backend_cache: tuple[float, dict[str, bool]] | None = None


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


async def _cache_ok() -> bool:
    try:
        await cache.aset("healthz", "1", 10)
        return await cache.aget("healthz") == "1"
    except Exception:
        return False


async def _reachable(name: str) -> bool:
    try:
        async with asyncio.timeout(BACKEND_TIMEOUT_S):
            return bool(await get_backend(name).health())
    except Exception:
        return False


async def backends_reachable() -> dict[str, bool]:
    global _backend_cache
    now = time.monotonic()
    if _backend_cache is not None and now - _backend_cache[0] < BACKEND_CACHE_S:
        return _backend_cache[1]
    names = enabled_backends()
    results = await asyncio.gather(*(_reachable(name) for name in names))
    report = dict(zip(names, results, strict=True))
    _backend_cache = (now, report)
    return report


def forget_backends() -> None:
    global _backend_cache
    _backend_cache = None


async def health_report() -> dict[str, Any]:
    database = await sync_to_async(_database_ok)()
    cache_ok = await _cache_ok()
    backends = await backends_reachable()
    if not (database and cache_ok):
        status = "error"
    elif not any(backends.values()):
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "database": "ok" if database else "error",
        "cache": "ok" if cache_ok else "error",
        "backends": backends,
    }
