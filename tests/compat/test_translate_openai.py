"""The OpenAI translators in isolation: body → ChatRequest, result/events →
completion shapes, errors → status, type and code."""

from __future__ import annotations

import json

import pytest

from inference.backends.base import Message, TextDelta, Tool, ToolCall, ToolCallEvent, Usage
from inference.compat import openai
from inference.errors import ERROR_CLASSES, InvalidRequest, QuotaExceeded
from inference.services import ChatResult

DEFAULT = 512


def translate(**fields):
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": "Hi"}]} | fields
    return openai.chat_request_from(body, default_max_tokens=DEFAULT)


def test_it_translates_a_plain_request():
    request = translate(temperature=1.5, top_p=0.5, stop="END", user="u1", seed=4)
    assert request.model == "gpt-x" and request.max_tokens == DEFAULT
    assert request.messages == [Message(role="user", content="Hi")]
    assert (request.temperature, request.top_p, request.stop) == (1.5, 0.5, ["END"])


def test_it_prefers_max_completion_tokens_over_max_tokens():
    assert translate(max_tokens=50).max_tokens == 50
    assert translate(max_tokens=50, max_completion_tokens=70).max_tokens == 70


def test_it_joins_developer_and_system_turns_and_text_parts():
    request = translate(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Rhyme."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Sing "}, {"type": "text", "text": "now"}],
            },
        ]
    )
    assert request.system == "Be brief.\n\nRhyme."
    assert request.messages == [Message(role="user", content="Sing now")]


def test_it_translates_a_tool_round_trip():
    request = translate(
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    assert request.messages == [
        Message(role="user", content="Weather in Paris?"),
        Message(role="assistant", content="", tool_calls=(call,)),
        Message(role="tool", content="Sunny", tool_call_id="call_1", tool_name="get_weather"),
    ]
    assert request.tools == [Tool("get_weather", "", {"type": "object"})]
    assert request.tool_choice == "get_weather"


@pytest.mark.parametrize(
    ("choice", "expected"), [("auto", "auto"), ("none", "none"), ("required", "any")]
)
def test_it_translates_tool_choice(choice, expected):
    assert translate(tool_choice=choice).tool_choice == expected


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"n": 2}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "only a system turn"}]}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages.0.role"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ]
            },
            "messages.0.content.0.type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{oops"},
                            }
                        ],
                    }
                ]
            },
            "messages.0.tool_calls.0.function.arguments",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1]"},
                            }
                        ],
                    }
                ]
            },
            "messages.0.tool_calls.0.function.arguments",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
        ({"temperature": 2.5}, "temperature"),
        ({"stop": [""]}, "stop"),
        ({"stop": ["a"] * 17}, "stop"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools.0.type"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_it_refuses_invalid_fields_naming_them(fields, named):
    with pytest.raises(InvalidRequest) as caught:
        translate(**fields)
    assert caught.value.message.startswith(named)
    assert openai.error_body(caught.value)["error"]["param"] == named


def test_it_reads_include_usage():
    assert openai.include_usage({"stream_options": {"include_usage": True}}) is True
    assert openai.include_usage({}) is False
    with pytest.raises(InvalidRequest):
        openai.include_usage({"stream_options": {"include_usage": "yes"}})


def result(**fields) -> ChatResult:
    defaults = {
        "id": "chat_abc",
        "model": "gpt-x",
        "backend": "openai",
        "content": "Hello",
        "stop_reason": "end_turn",
        "usage": Usage(prompt_tokens=10, completion_tokens=3, cache_read_tokens=4),
    }
    return ChatResult(**(defaults | fields))


def test_it_renders_a_completion():
    body = openai.completion_body(result(), created=1700000000)
    assert body["id"] == "chatcmpl-abc" and body["object"] == "chat.completion"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 3,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


def test_it_renders_tool_calls_with_json_string_arguments_and_null_content():
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    body = openai.completion_body(
        result(content="", tool_calls=[call], stop_reason="tool_use"), created=0
    )
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [rendered] = choice["message"]["tool_calls"]
    assert rendered["type"] == "function" and rendered["id"] == "call_1"
    assert json.loads(rendered["function"]["arguments"]) == {"city": "Paris"}


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_it_maps_stop_reasons_to_finish_reasons(stop, finish):
    assert openai.finish_reason(stop) == finish


def test_it_streams_role_content_tool_calls_finish_and_usage():
    stream = openai.CompletionStream(
        run_id="chat_abc", model="gpt-x", created=1, include_usage=True
    )
    chunks = stream.start()
    for event in (
        TextDelta("Hi"),
        TextDelta(""),
        ToolCallEvent(ToolCall("c1", "f", {"a": 1})),
        ToolCallEvent(ToolCall("c2", "g", {})),
    ):
        chunks += stream.feed(event)
    chunks += stream.finish(result(stop_reason="tool_use"))
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2]["tool_calls"][0] == {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert deltas[3]["tool_calls"][0] == {"index": 0, "function": {"arguments": '{"a":1}'}}
    assert deltas[4]["tool_calls"][0]["index"] == 1
    assert deltas[6] == {} and chunks[6]["choices"][0]["finish_reason"] == "tool_calls"
    assert deltas[7] is None and chunks[7]["usage"]["total_tokens"] == 17
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_it_leaves_usage_out_of_chunks_unless_asked():
    stream = openai.CompletionStream(
        run_id="chat_abc", model="gpt-x", created=1, include_usage=False
    )
    chunks = stream.start() + stream.finish(result())
    assert len(chunks) == 2 and all("usage" not in chunk for chunk in chunks)


@pytest.mark.parametrize(
    ("code", "status", "kind", "error_code"),
    [
        ("INVALID_REQUEST", 400, "invalid_request_error", None),
        ("UNAUTHORIZED", 401, "invalid_request_error", "invalid_api_key"),
        ("FORBIDDEN", 403, "invalid_request_error", "permission_denied"),
        ("MODEL_NOT_AVAILABLE", 404, "invalid_request_error", "model_not_found"),
        ("PAYLOAD_TOO_LARGE", 413, "invalid_request_error", "request_too_large"),
        ("RATE_LIMIT_EXCEEDED", 429, "requests", "rate_limit_exceeded"),
        ("QUOTA_EXCEEDED", 429, "insufficient_quota", "insufficient_quota"),
        ("CONNECTION_FAILED", 502, "server_error", "connection_failed"),
        ("UPSTREAM_ERROR", 502, "server_error", "upstream_error"),
        ("NO_BACKEND_AVAILABLE", 503, "server_error", "no_backend_available"),
        ("INFERENCE_TIMEOUT", 504, "server_error", "inference_timeout"),
    ],
)
def test_it_maps_platform_errors(code, status, kind, error_code):
    response = openai.error_response(ERROR_CLASSES[code]("Nope."))
    assert response.status_code == status
    error = json.loads(response.content)["error"]
    assert (error["type"], error["code"], error["message"]) == (kind, error_code, "Nope.")
    assert response["x-request-id"]


def test_it_stops_the_sdk_retrying_a_quota_refusal():
    response = openai.error_response(QuotaExceeded(retry_after=3600))
    assert response["x-should-retry"] == "false" and response["retry-after"] == "3600"
