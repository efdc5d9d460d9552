"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import gc
import importlib
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.handler import get_asgi_application

# Django's ASGI handler, without a thread per request (config/handler.py).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402

# Import the model SDKs now: imported on a first request, they would stall the
# event loop (and every stream on it) for a second or more.
for backend in ("anthropic", "demo", "ollama", "openai"):
    importlib.import_module(f"inference.backends.{backend}")

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origins are checked per credential in accounts.auth: a cookie counts
        # only from our own pages, a token from anywhere (games hosted elsewhere).
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)


def _freeze_startup_objects() -> None:
    """Keep what start-up made out of the garbage collector's passes.

    Modules, settings, URL patterns, models' and schemas' metadata live as long
    as the process, yet every full collection walked them all again: a pause of
    ~200 ms now and then on a loaded worker (every request in flight waited) and
    CPU on every request. Frozen, a collection walks only what requests made.
    The URLconf is loaded first, as the first request would otherwise do.
    """
    get_resolver().url_patterns  # noqa: B018
    gc.collect()
    gc.freeze()


_freeze_startup_objects()
