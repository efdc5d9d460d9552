"""The Anthropic translators in isolation: body → ChatRequest, result/events →
Anthropic's shapes, errors → status and error.type."""

from __future__ import annotations

import json

import pytest

from inference.backends.base import Message, TextDelta, Tool, ToolCall, ToolCallEvent, Usage
from inference.compat import anthropic
from inference.compat.common import ServerFault
from inference.errors import (
    ERROR_CLASSES,
    InvalidRequest,
    QuotaExceeded,
    RateLimitExceeded,
)
from inference.services import ChatResult


def body(**fields) -> dict:
    return {"model": "demo", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]} | (
        fields
    )


def test_it_translates_a_plain_request():
    request = anthropic.chat_request_from(
        body(temperature=0.3, top_p=0.9, top_k=5, stop_sequences=["END"], metadata={"user_id": "x"})
    )
    assert request.model == "demo" and request.max_tokens == 100
    assert request.messages == [Message(role="user", content="Hi")]
    assert (request.temperature, request.top_p, request.stop) == (0.3, 0.9, ["END"])
    assert request.system is None and request.tools == [] and request.tool_choice is None


def test_it_requires_max_tokens():
    fields = body()
    del fields["max_tokens"]
    with pytest.raises(InvalidRequest, match="max_tokens"):
        anthropic.chat_request_from(fields)


@pytest.mark.parametrize("value", [0, -1, "100", 1.5, True])
def test_it_refuses_a_max_tokens_that_is_not_a_positive_integer(value):
    with pytest.raises(InvalidRequest, match="max_tokens"):
        anthropic.chat_request_from(body(max_tokens=value))


def test_it_leaves_the_model_to_the_platform_when_omitted():
    fields = body()
    del fields["model"]
    assert anthropic.chat_request_from(fields).model == ""


def test_it_joins_system_blocks_and_system_turns():
    request = anthropic.chat_request_from(
        body(
            system=[
                {"type": "text", "text": "You are a bard.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Rhyme."},
            ],
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Sing"}]},
            ],
        )
    )
    assert request.system == "You are a bard.\n\nRhyme.\n\nBe brief."
    assert request.messages == [Message(role="user", content="Sing")]


def test_it_translates_a_tool_round_trip():
    request = anthropic.chat_request_from(
        body(
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "Sunny"}],
                            "is_error": False,
                        },
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        )
    )
    call = ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Paris"})
    assert request.messages == [
        Message(role="user", content="Weather in Paris?"),
        Message(role="assistant", content="Checking.", tool_calls=(call,)),
        Message(role="tool", content="Sunny", tool_call_id="toolu_1", tool_name="get_weather"),
        Message(role="user", content="And tomorrow?"),
    ]
    assert request.tools == [
        Tool(
            "get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}
        )
    ]
    assert request.tool_choice == "get_weather"


def test_it_keeps_a_tool_error_flag():
    request = anthropic.chat_request_from(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "boom",
                            "is_error": True,
                        }
                    ],
                }
            ]
        )
    )
    assert request.messages == [
        Message(role="tool", content="boom", tool_call_id="t1", is_error=True)
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "any"), ({"type": "none"}, "none")],
)
def test_it_translates_tool_choice(choice, expected):
    assert anthropic.chat_request_from(body(tool_choice=choice)).tool_choice == expected


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "messages.0.content.0",
        ),
        ({"temperature": 1.5}, "temperature"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        ({"tools": [{"name": "bad name!"}]}, "tools.0.name"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}],
                    }
                ]
            },
            "messages.0.content.0.input",
        ),
    ],
)
def test_it_refuses_invalid_fields_naming_them(fields, named):
    with pytest.raises(InvalidRequest) as caught:
        anthropic.chat_request_from(body(**fields))
    assert caught.value.message.startswith(named)


def result(**fields) -> ChatResult:
    defaults = {
        "id": "chat_abc",
        "model": "claude-x",
        "backend": "anthropic",
        "content": "Hello",
        "stop_reason": "end_turn",
        "usage": Usage(prompt_tokens=10, completion_tokens=3, cache_read_tokens=4),
    }
    return ChatResult(**(defaults | fields))


def test_it_renders_a_message():
    message = anthropic.message_body(result())
    assert message == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 4,
        },
    }


def test_it_renders_tool_calls_without_an_empty_text_block():
    call = ToolCall("toolu_1", "get_weather", {"city": "Paris"})
    message = anthropic.message_body(result(content="", tool_calls=[call], stop_reason="tool_use"))
    assert message["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]


def test_it_keeps_an_empty_text_block_for_an_empty_reply():
    message = anthropic.message_body(result(content="", stop_reason=None))
    assert message["content"] == [{"type": "text", "text": ""}]
    assert message["stop_reason"] == "end_turn"


def test_it_streams_blocks_with_running_indexes():
    stream = anthropic.MessageStream(run_id="chat_abc", model="claude-x")
    frames = stream.start()
    for event in (
        TextDelta("Hel"),
        TextDelta(""),
        TextDelta("lo"),
        ToolCallEvent(ToolCall("t1", "f", {"a": 1})),
        ToolCallEvent(ToolCall("t2", "g", {})),
        Usage(1, 2),
    ):
        frames += stream.feed(event)
    frames += stream.finish(result(content="Hello", stop_reason="tool_use"))
    summary = [(f["type"], f.get("index")) for f in frames]
    assert summary == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert frames[5]["content_block"] == {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    assert json.loads(frames[6]["delta"]["partial_json"]) == {"a": 1}
    assert frames[-2]["usage"]["input_tokens"] == 10
    assert frames[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


def test_it_streams_an_empty_text_block_for_an_empty_reply():
    stream = anthropic.MessageStream(run_id="chat_abc", model="claude-x")
    frames = stream.finish(result(content=""))
    assert [f["type"] for f in frames] == [
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_it_names_each_sse_frame_by_its_type():
    assert anthropic.sse_frame({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("INVALID_REQUEST", 400, "invalid_request_error"),
        ("UNAUTHORIZED", 401, "authentication_error"),
        ("FORBIDDEN", 403, "permission_error"),
        ("NOT_FOUND", 404, "not_found_error"),
        ("MODEL_NOT_AVAILABLE", 404, "not_found_error"),
        ("PAYLOAD_TOO_LARGE", 413, "request_too_large"),
        ("RATE_LIMIT_EXCEEDED", 429, "rate_limit_error"),
        ("QUOTA_EXCEEDED", 429, "rate_limit_error"),
        ("CONNECTION_FAILED", 502, "api_error"),
        ("UPSTREAM_ERROR", 502, "api_error"),
        ("NO_BACKEND_AVAILABLE", 503, "api_error"),
        ("INFERENCE_TIMEOUT", 504, "timeout_error"),
    ],
)
def test_it_maps_every_platform_error(code, status, kind):
    response = anthropic.error_response(ERROR_CLASSES[code]("Nope."))
    assert response.status_code == status
    body = json.loads(response.content)
    assert body["error"]["type"] == kind and body["error"]["message"] == "Nope."
    assert body["error"]["details"] == {"error_code": code.lower()}
    assert body["request_id"] == response["request-id"]


def test_it_maps_every_code_in_the_error_table():
    assert set(anthropic.ERRORS) == set(ERROR_CLASSES)


def test_it_renders_a_platform_fault_as_api_error():
    response = anthropic.error_response(ServerFault())
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["type"] == "api_error"


def test_it_stops_the_sdk_retrying_a_quota_refusal_but_not_a_rate_limit():
    quota = anthropic.error_response(QuotaExceeded(retry_after=3600))
    assert quota["retry-after"] == "3600" and quota["x-should-retry"] == "false"
    rate = anthropic.error_response(RateLimitExceeded(retry_after=12))
    assert rate["retry-after"] == "12" and "x-should-retry" not in rate


def test_it_pages_models_by_id():
    rows = [{"id": name} for name in ("a", "b", "c", "d", "e")]
    first = anthropic.models_page(rows, limit=2, after_id=None, before_id=None)
    assert [m["id"] for m in first["data"]] == ["a", "b"]
    assert (first["has_more"], first["first_id"], first["last_id"]) == (True, "a", "b")
    last = anthropic.models_page(rows, limit=2, after_id="d", before_id=None)
    assert [m["id"] for m in last["data"]] == ["e"] and last["has_more"] is False
    before = anthropic.models_page(rows, limit=2, after_id=None, before_id="d")
    assert [m["id"] for m in before["data"]] == ["b", "c"]
    empty = anthropic.models_page(rows, limit=2, after_id="zzz", before_id=None)
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
