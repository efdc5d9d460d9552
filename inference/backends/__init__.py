"""The backend registry: one instance per backend, built from settings.

Instances are process-wide; each keeps one pooled upstream client per event
loop. Changing settings (tests) rebuilds the registry.
"""

from __future__ import annotations

from django.conf import settings
from django.core.signals import setting_changed

from inference.backends.base import Backend

BACKEND_NAMES = ("anthropic", "ollama", "openai", "demo")

_registry: dict[str, Backend] = {}


def enabled_backends() -> list[str]:
    """Names of the backends this deployment offers, in routing order."""
    names = []
    if settings.ANTHROPIC_API_KEY:
        names.append("anthropic")
    names.append("ollama")  # always configured: OLLAMA_URL has a default
    if settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL:
        names.append("openai")
    if settings.INFERENCE_DEMO_BACKEND:
        names.append("demo")
    return names


def is_enabled(name: str) -> bool:
    return name in enabled_backends()


def get_backend(name: str) -> Backend:
    backend = _registry.get(name)
    if backend is None:
        backend = _build(name)
        _registry[name] = backend
    return backend


def _build(name: str) -> Backend:
    if name == "anthropic":
        from inference.backends.anthropic import AnthropicBackend

        return AnthropicBackend()
    if name == "ollama":
        from inference.backends.ollama import OllamaBackend

        return OllamaBackend()
    if name == "openai":
        from inference.backends.openai import OpenAIBackend

        return OpenAIBackend()
    if name == "demo":
        from inference.backends.demo import DemoBackend

        return DemoBackend()
    raise KeyError(name)


def reset_registry(**kwargs) -> None:
    _registry.clear()


_WATCHED = {
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_DEFAULT_MODEL",
    "OLLAMA_URLS",
    "OLLAMA_DEFAULT_MODEL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_DEFAULT_MODEL",
    "INFERENCE_DEMO_BACKEND",
    "INFERENCE_DEMO_TOKENS_PER_S",
    "INFERENCE_TIMEOUT_S",
    "INFERENCE_CONNECT_TIMEOUT_S",
    "OLLAMA_COOLDOWN_S",
    "OLLAMA_MODELS_CACHE_S",
}


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting in _WATCHED:
        reset_registry()


setting_changed.connect(_on_setting_changed)
