"""Request and response shapes of the native API, and the normalizer that turns
a native request into the backends' `ChatRequest`."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from django.conf import settings
from ninja import Schema
from pydantic import Field, field_validator

from inference.backends.base import ChatRequest, Message, Tool, ToolCall
from inference.errors import InvalidRequest, PayloadTooLarge

TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class TextBlock(Schema):
    type: Literal["text"] = "text"
    text: str


class ToolCallIn(Schema):
    id: str = Field(..., min_length=1, max_length=200)
    name: str = Field(..., pattern=TOOL_NAME)
    arguments: dict[str, Any] = Field(default_factory=dict)


class MessageIn(Schema):
    role: Literal["user", "assistant", "system", "tool"]
    content: str | list[TextBlock] = ""
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=64, description="A tool result's tool name.")

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(block.text for block in self.content)


class ToolIn(Schema):
    name: str = Field(..., pattern=TOOL_NAME)
    description: str = Field("", max_length=4000)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="A JSON Schema object for the tool's arguments.",
    )


class ChatIn(Schema):
    messages: list[MessageIn] = Field(..., min_length=1)
    model: str | None = Field(None, max_length=200)
    system: str | None = None
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: str | None = Field(
        None, max_length=64, description='"auto", "none", "any", or a tool name.'
    )
    stream: bool = False
    conversation: UUID | None = Field(
        None, description="Continue this server-side conversation (history and storage)."
    )

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else (value or [])
        if len(items) > 16 or any(not item or len(item) > 200 for item in items):
            raise ValueError("at most 16 stop sequences of 1 to 200 characters")
        return value


class UsageOut(Schema):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    estimated: bool = False


class AssistantMessageOut(Schema):
    role: Literal["assistant"] = "assistant"
    content: str
    tool_calls: list[ToolCallIn] = []


class ChatOut(Schema):
    id: str
    model: str
    backend: str
    content: str
    message: AssistantMessageOut
    stop_reason: str | None
    usage: UsageOut
    max_tokens: int
    max_tokens_lowered: bool


class PricingOut(Schema):
    input_per_mtok: float
    output_per_mtok: float


class ModelOut(Schema):
    id: str
    backend: str
    available: bool
    pricing: PricingOut


class ModelsOut(Schema):
    default_model: str
    models: list[ModelOut]


class ErrorBody(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorBody


def normalize_messages(
    messages: list[MessageIn], system: str | None
) -> tuple[list[Message], str | None]:
    """System turns in the list join the system prompt; the rest become `Message`s."""
    systems = [system] if system else []
    normalized: list[Message] = []
    for message in messages:
        text = message.text()
        if message.role == "system":
            systems.append(text)
            continue
        if message.role == "tool":
            if not message.tool_call_id:
                raise InvalidRequest("messages: a tool message needs tool_call_id.")
            normalized.append(
                Message(
                    role="tool",
                    content=text,
                    tool_call_id=message.tool_call_id,
                    tool_name=message.name,
                )
            )
            continue
        calls = tuple(
            ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in message.tool_calls or []
        )
        normalized.append(Message(role=message.role, content=text, tool_calls=calls))
    if not normalized:
        raise InvalidRequest("messages: at least one user or assistant message is needed.")
    return normalized, "\n\n".join(systems) if systems else None


def check_bounds(request: ChatRequest) -> ChatRequest:
    """Refuse requests over the configured message-count and size bounds."""
    if len(request.messages) > settings.INFERENCE_MAX_MESSAGES:
        raise PayloadTooLarge(
            f"messages: {len(request.messages)} messages, at most "
            f"{settings.INFERENCE_MAX_MESSAGES} allowed."
        )
    chars = len(request.system or "") + sum(len(m.content) for m in request.messages)
    if chars > settings.INFERENCE_MAX_CHARS:
        raise PayloadTooLarge(
            f"messages: {chars} characters of text, at most {settings.INFERENCE_MAX_CHARS} allowed."
        )
    return request


def normalize_chat(body: ChatIn) -> ChatRequest:
    messages, system = normalize_messages(body.messages, body.system)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    request = ChatRequest(
        model=body.model or "",
        messages=messages,
        system=system,
        max_tokens=body.max_tokens or settings.INFERENCE_DEFAULT_MAX_TOKENS,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=stop,
        tools=[Tool(t.name, t.description, t.parameters) for t in body.tools or []],
        tool_choice=body.tool_choice,
    )
    return check_bounds(request)
