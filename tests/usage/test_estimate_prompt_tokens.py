from __future__ import annotations

import json

from inference.backends.base import ChatRequest, Message, Tool, ToolCall
from usage.services import estimate_prompt_tokens


def test_it_counts_utf8_bytes_plus_overheads():
    request = ChatRequest(
        model="m", system="Be brief.", messages=[Message(role="user", content="héllo")]
    )
    # 9 bytes of system, 6 of "héllo" (é is two bytes), 8 for the message, 16 for the request.
    assert estimate_prompt_tokens(request) == 9 + 6 + 8 + 16


def test_it_bounds_the_tokens_of_non_latin_text():
    text = "日本語のテキスト" * 10  # 3 bytes a character, never more than one token each
    request = ChatRequest(model="m", messages=[Message(role="user", content=text)])
    assert estimate_prompt_tokens(request) >= len(text)


def test_it_counts_tool_calls_results_and_schemas():
    call = ToolCall(id="call_1", name="roll", arguments={"sides": 20})
    tool = Tool(name="roll", description="Roll a die.", parameters={"type": "object"})
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="user", content="roll"),
            Message(role="assistant", tool_calls=(call,)),
            Message(role="tool", content="17", tool_call_id="call_1", tool_name="roll"),
        ],
        tools=[tool],
    )
    schemas = json.dumps(
        [{"name": "roll", "description": "Roll a die.", "parameters": {"type": "object"}}],
        separators=(",", ":"),
    )
    expected = (
        len("roll")
        + len("call_1") + len("roll") + len(call.arguments_json)
        + len("17") + len("call_1") + len("roll")
        + len(schemas) + 300
        + 3 * 8 + 16
    )  # fmt: skip
    assert estimate_prompt_tokens(request) == expected


def test_it_grows_with_every_message():
    one = ChatRequest(model="m", messages=[Message(role="user", content="")])
    two = ChatRequest(model="m", messages=[Message(role="user"), Message(role="assistant")])
    assert estimate_prompt_tokens(two) - estimate_prompt_tokens(one) == 8
