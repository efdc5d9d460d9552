"""The SDK-compatible endpoints under /api/inference/ (DESIGN.md, Endpoints).

Included before the native API, so these paths are matched first. The first
sprint's paths stay served beside the current ones.
"""

from django.urls import path

from inference.compat import anthropic, ollama, openai

app_name = "compat"

urlpatterns = [
    # Anthropic: `Anthropic(base_url=".../api/inference/anthropic")`.
    path("anthropic/v1/messages", anthropic.messages, name="anthropic-messages"),
    path("anthropic/messages", anthropic.messages, name="anthropic-messages-legacy"),
    path("anthropic/v1/models", anthropic.models, name="anthropic-models"),
    path("anthropic/v1/models/<path:model_id>", anthropic.model, name="anthropic-model"),
    # OpenAI: `OpenAI(base_url=".../api/inference/openai/v1")`.
    path("openai/v1/chat/completions", openai.chat_completions, name="openai-chat"),
    path("openai/v1/models", openai.models, name="openai-models"),
    path("openai/v1/models/<path:model_id>", openai.model, name="openai-model"),
    # Ollama: `ollama.Client(host=".../api/inference/ollama")`.
    path("ollama", ollama.root, name="ollama-root-bare"),
    path("ollama/", ollama.root, name="ollama-root"),
    path("ollama/api/chat", ollama.chat, name="ollama-chat"),
    path("ollama/chat", ollama.chat, name="ollama-chat-legacy"),
    path("ollama/api/tags", ollama.tags, name="ollama-tags"),
    path("ollama/models", ollama.tags, name="ollama-tags-legacy"),
    path("ollama/api/version", ollama.version, name="ollama-version"),
]
