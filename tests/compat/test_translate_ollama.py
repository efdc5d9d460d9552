"""The Ollama translators in isolation: body → ChatRequest, result/events →
`/api/chat` chunks and the final object."""

from __future__ import annotations

import pytest

from inference.backends.base import Message, TextDelta, Tool, ToolCall, ToolCallEvent, Usage
from inference.compat import ollama
from inference.errors import InvalidRequest
from inference.services import ChatResult

DEFAULT = 512


def translate(**fields):
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]} | fields
    return ollama.chat_request_from(body, default_max_tokens=DEFAULT)


def test_it_translates_options():
    request = translate(
        options={"num_predict": 64, "temperature": 0.2, "top_p": 0.8, "stop": ["END"], "seed": 3},
        keep_alive="5m",
        format="json",
        think=False,
    )
    assert request.model == "llama3.2"
    assert (request.max_tokens, request.temperature, request.top_p) == (64, 0.2, 0.8)
    assert request.stop == ["END"]


@pytest.mark.parametrize("predict", [None, -1, -2])
def test_it_takes_the_default_budget_for_unbounded_num_predict(predict):
    assert translate(options={"num_predict": predict}).max_tokens == DEFAULT


def test_it_lowercases_roles_and_joins_system_turns():
    request = translate(
        messages=[
            {"role": "SYSTEM", "content": "Be brief."},
            {"role": "User", "content": "Hi"},
        ]
    )
    assert request.system == "Be brief."
    assert request.messages == [Message(role="user", content="Hi")]


def test_it_pairs_tool_results_with_calls_by_name_when_they_carry_no_id():
    request = translate(
        messages=[
            {"role": "user", "content": "Weather and time in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": '{"city": "Paris"}'}},
                ],
            },
            {"role": "tool", "content": "14:00", "tool_name": "get_time"},
            {"role": "tool", "content": "Sunny"},
        ],
        tools=[{"type": "function", "function": {"name": "get_weather", "description": "Weather"}}],
    )
    weather = ToolCall("call_1_0", "get_weather", {"city": "Paris"})
    time = ToolCall("call_1_1", "get_time", {"city": "Paris"})
    assert request.messages[1] == Message(role="assistant", content="", tool_calls=(weather, time))
    assert request.messages[2:] == [
        Message(role="tool", content="14:00", tool_call_id="call_1_1", tool_name="get_time"),
        Message(role="tool", content="Sunny", tool_call_id="call_1_0", tool_name="get_weather"),
    ]
    assert request.tools == [Tool("get_weather", "Weather", {"type": "object", "properties": {}})]


def test_it_keeps_ids_a_client_sent():
    request = translate(
        messages=[
            {
                "role": "assistant",
                "tool_calls": [{"id": "abc", "function": {"name": "f", "arguments": {}}}],
            },
            {"role": "tool", "content": "done", "tool_call_id": "abc"},
        ]
    )
    assert request.messages[1].tool_call_id == "abc"
    assert request.messages[1].tool_name == "f"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}, "messages.0.images"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{x"}}],
                    }
                ]
            },
            "messages.0.tool_calls.0.function.arguments",
        ),
        ({"options": {"num_predict": "many"}}, "options.num_predict"),
        ({"options": {"temperature": 5}}, "options.temperature"),
        ({"options": []}, "options"),
        ({"tools": [{"type": "function"}]}, "tools.0.function"),
    ],
)
def test_it_refuses_invalid_fields_naming_them(fields, named):
    with pytest.raises(InvalidRequest) as caught:
        translate(**fields)
    assert caught.value.message.startswith(named)


def result(**fields) -> ChatResult:
    defaults = {
        "id": "chat_abc",
        "model": "llama3.2",
        "backend": "ollama",
        "content": "Hello",
        "stop_reason": "end_turn",
        "usage": Usage(prompt_tokens=10, completion_tokens=3),
    }
    return ChatResult(**(defaults | fields))


def test_it_streams_text_and_whole_tool_calls():
    chat = ollama.OllamaChat(model="llama3.2")
    [text] = chat.feed(TextDelta("Hi"))
    assert text["message"] == {"role": "assistant", "content": "Hi"} and text["done"] is False
    assert chat.feed(TextDelta("")) == []
    assert chat.feed(Usage(1, 2)) == []
    [first] = chat.feed(ToolCallEvent(ToolCall("c1", "f", {"a": 1})))
    [second] = chat.feed(ToolCallEvent(ToolCall("c2", "g", {})))
    assert first["message"]["content"] == ""
    assert first["message"]["tool_calls"] == [
        {"id": "c1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}
    ]
    assert second["message"]["tool_calls"][0]["function"]["index"] == 1


def test_it_ends_with_metrics_in_nanoseconds():
    chat = ollama.OllamaChat(model="llama3.2")
    final = chat.final(result(), ollama.Timings(first_ns=2_000, total_ns=9_000))
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert (final["prompt_eval_count"], final["eval_count"]) == (10, 3)
    assert (final["total_duration"], final["prompt_eval_duration"], final["eval_duration"]) == (
        9_000,
        2_000,
        7_000,
    )


def test_it_leaves_zero_metrics_out():
    final = ollama.OllamaChat(model="m").final(
        result(usage=Usage()), ollama.Timings(first_ns=5, total_ns=5)
    )
    assert "prompt_eval_count" not in final and "eval_count" not in final
    assert "eval_duration" not in final and final["total_duration"] == 5


def test_it_puts_the_whole_reply_in_the_non_stream_answer():
    call = ToolCall("c1", "f", {"a": 1})
    final = ollama.OllamaChat(model="m").final(
        result(tool_calls=[call], stop_reason="tool_use"),
        ollama.Timings(first_ns=1, total_ns=2),
        whole=True,
    )
    assert final["message"]["content"] == "Hello"
    assert final["message"]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert final["done_reason"] == "stop"


def test_it_reports_length_for_max_tokens():
    assert ollama.done_reason("max_tokens") == "length"
    assert ollama.done_reason("stop_sequence") == "stop"
