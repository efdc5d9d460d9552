"""Which backend serves a model name.

Order: admin-defined aliases, then `claude-*` to Anthropic, names an Ollama host
serves to Ollama, `demo*` to the demo backend, then the OpenAI-compatible
backend when one is configured; otherwise MODEL_NOT_AVAILABLE. A request without
a model gets the default backend's default model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models.signals import post_delete, post_save

from inference.backends import enabled_backends, get_backend, is_enabled
from inference.backends.base import Backend
from inference.errors import ModelNotAvailable, NoBackendAvailable
from inference.models import InferenceSettings, ModelAlias

# Admin edits reach every worker within this many seconds; the worker where the
# edit was made forgets at once (signals below).
CONFIG_CACHE_S = 5.0


@dataclass(frozen=True, slots=True)
class Route:
    backend: Backend
    model: str

    @property
    def backend_name(self) -> str:
        return self.backend.name


@dataclass(frozen=True, slots=True)
class _Config:
    default_backend: str
    default_model: str
    aliases: dict[str, tuple[str, str]]
    retired: frozenset[str]
    loaded_at: float


_config: _Config | None = None


def _load_config() -> _Config:
    from usage.models import ModelPrice

    row = InferenceSettings.objects.filter(pk=1).first()
    aliases = {a.name: (a.backend, a.model) for a in ModelAlias.objects.all()}
    retired = frozenset(ModelPrice.objects.filter(retired=True).values_list("pattern", flat=True))
    return _Config(
        default_backend=row.default_backend if row else "",
        default_model=row.default_model if row else "",
        aliases=aliases,
        retired=retired,
        loaded_at=time.monotonic(),
    )


async def _get_config() -> _Config:
    global _config
    config = _config
    if config is None or time.monotonic() - config.loaded_at > CONFIG_CACHE_S:
        config = await sync_to_async(_load_config)()
        _config = config
    return config


def forget_config(**kwargs) -> None:
    global _config
    _config = None


for _model in (InferenceSettings, ModelAlias):
    post_save.connect(forget_config, sender=_model, dispatch_uid=f"forget-{_model.__name__}")
    post_delete.connect(forget_config, sender=_model, dispatch_uid=f"forget-d-{_model.__name__}")


def _connect_price_signals() -> None:
    from usage.models import ModelPrice

    post_save.connect(forget_config, sender=ModelPrice, dispatch_uid="forget-price")
    post_delete.connect(forget_config, sender=ModelPrice, dispatch_uid="forget-d-price")


_connect_price_signals()


async def default_backend_name() -> str:
    """The admin's choice, else INFERENCE_DEFAULT_BACKEND, else the first that works."""
    config = await _get_config()
    if config.default_backend:
        return config.default_backend
    if settings.INFERENCE_DEFAULT_BACKEND:
        return settings.INFERENCE_DEFAULT_BACKEND
    if settings.ANTHROPIC_API_KEY:
        return "anthropic"
    if settings.OLLAMA_URL_CONFIGURED:
        return "ollama"
    from inference.backends.ollama import ollama_reachable

    if await ollama_reachable():
        return "ollama"
    if settings.INFERENCE_DEMO_BACKEND:
        return "demo"
    if is_enabled("openai"):
        return "openai"
    return "demo"


async def default_model() -> str:
    config = await _get_config()
    if config.default_model:
        return config.default_model
    backend = get_backend(await default_backend_name())
    return backend.default_model or ""


async def resolve_model(model: str | None) -> Route:
    """The backend and upstream model name for `model` (None: the default)."""
    config = await _get_config()
    if not model:
        name = await default_backend_name()
        if not is_enabled(name):
            raise NoBackendAvailable(f"The default backend {name!r} is not configured.")
        backend = get_backend(name)
        chosen = config.default_model or backend.default_model
        if not chosen:
            models = await backend.list_models()
            if not models:
                raise NoBackendAvailable(f"The default backend {name!r} offers no models.")
            chosen = models[0].id
        return Route(backend, chosen)

    if model in config.retired:
        raise ModelNotAvailable(f"The model {model!r} has been retired.", details={"model": model})
    if model in config.aliases:
        backend_name, target = config.aliases[model]
        if not is_enabled(backend_name):
            raise NoBackendAvailable(
                f"The alias {model!r} points at the {backend_name} backend, which is not "
                "configured.",
                details={"model": model},
            )
        return Route(get_backend(backend_name), target)

    enabled = enabled_backends()
    if model.startswith("claude-"):
        if "anthropic" in enabled:
            return Route(get_backend("anthropic"), model)
        raise ModelNotAvailable(
            f"The model {model!r} needs the Anthropic backend, which is not configured "
            "(set ANTHROPIC_API_KEY).",
            details={"model": model},
        )
    if "ollama" in enabled and not model.startswith("demo"):
        ollama = get_backend("ollama")
        if await ollama.serves(model):
            return Route(ollama, model)
    if "demo" in enabled and model.startswith("demo"):
        return Route(get_backend("demo"), model)
    if "openai" in enabled:
        return Route(get_backend("openai"), model)
    raise ModelNotAvailable(f"No backend serves the model {model!r}.", details={"model": model})
