"""Properties of the compatible APIs' request translators (`chat_request_from`
of `inference.compat.anthropic`, `.openai` and `.ollama`): any JSON object is
either translated or refused with an `ApiError` that names the field, never
another exception; a well-formed request keeps its turns' order, roles and
text, and its system turns join the system prompt."""

from __future__ import annotations

import contextlib
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from inference.compat import anthropic as anthropic_api
from inference.compat import ollama as ollama_api
from inference.compat import openai as openai_api
from inference.errors import ApiError
from tests.fuzz.strategies import json_objects, json_values, texts

FUZZ = settings(max_examples=150, deadline=None)
DEFAULT_MAX_TOKENS = 1024

TRANSLATORS = {
    "anthropic": anthropic_api.chat_request_from,
    "openai": partial(openai_api.chat_request_from, default_max_tokens=DEFAULT_MAX_TOKENS),
    "ollama": partial(ollama_api.chat_request_from, default_max_tokens=DEFAULT_MAX_TOKENS),
}
# A minimal valid request of each API, to break one field at a time.
VALID = {
    "anthropic": {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
    "openai": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "ollama": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
}
FIELDS = {
    "anthropic": ("model", "max_tokens", "messages", "system", "temperature", "top_p",
                  "stop_sequences", "tools", "tool_choice"),
    "openai": ("model", "messages", "n", "max_tokens", "max_completion_tokens", "temperature",
               "top_p", "stop", "tools", "tool_choice"),
    "ollama": ("model", "messages", "options", "tools"),
}  # fmt: skip


def translate_or_refuse(api: str, body) -> None:
    with contextlib.suppress(ApiError):
        TRANSLATORS[api](body)


@FUZZ
@given(api=st.sampled_from(sorted(TRANSLATORS)), body=json_objects)
def test_it_translates_or_refuses_any_json_object(api, body):
    translate_or_refuse(api, body)


@FUZZ
@given(api=st.sampled_from(sorted(TRANSLATORS)), value=json_values, data=st.data())
def test_it_translates_or_refuses_a_valid_request_with_one_field_gone_wrong(api, value, data):
    name = data.draw(st.sampled_from(FIELDS[api]))
    translate_or_refuse(api, {**VALID[api], name: value})
    # One level deeper: inside the first message, and inside its content.
    translate_or_refuse(api, {**VALID[api], "messages": [{"role": "user", name: value}]})
    translate_or_refuse(api, {**VALID[api], "messages": [{"role": "user", "content": [value]}]})
    translate_or_refuse(api, {**VALID[api], "messages": [value]})


# --- well-formed requests ---------------------------------------------------------------

anthropic_blocks = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
                            min_size=1, max_size=3)  # fmt: skip
anthropic_turns = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system"]),
         "content": texts | anthropic_blocks}
    ),
    min_size=1, max_size=6,
)  # fmt: skip


def anthropic_text(content) -> str:
    return content if isinstance(content, str) else "\n".join(b["text"] for b in content)


def system_texts(content) -> list[str]:
    return [content] if isinstance(content, str) else [b["text"] for b in content]


@FUZZ
@given(turns=anthropic_turns, system=st.none() | texts | anthropic_blocks,
       max_tokens=st.integers(1, 100_000))  # fmt: skip
def test_it_keeps_an_anthropic_conversation_in_order(turns, system, max_tokens):
    body = {"model": "claude-x", "max_tokens": max_tokens, "messages": turns}
    if system is not None:
        body["system"] = system
    spoken = [t for t in turns if t["role"] != "system"]
    try:
        request = anthropic_api.chat_request_from(body)
    except ApiError:
        assert not spoken  # the only refusal possible here: nothing but system turns
        return
    assert [(m.role, m.content) for m in request.messages] == [
        (t["role"], anthropic_text(t["content"])) for t in spoken
    ]
    systems = system_texts(system) if system is not None else []
    for turn in turns:
        if turn["role"] == "system":
            systems += system_texts(turn["content"])
    # Each text block is a part of its own; empty ones are left out.
    assert request.system == ("\n\n".join(s for s in systems if s) or None)
    assert request.max_tokens == max_tokens


openai_parts = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
                        max_size=3)  # fmt: skip
openai_turns = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["developer", "system", "user", "assistant"]),
         "content": st.none() | texts | openai_parts}
    ),
    min_size=1, max_size=6,
)  # fmt: skip


def openai_text(content) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


@FUZZ
@given(turns=openai_turns)
def test_it_keeps_an_openai_conversation_in_order(turns):
    spoken = [t for t in turns if t["role"] in ("user", "assistant")]
    try:
        request = TRANSLATORS["openai"]({"model": "gpt-x", "messages": turns})
    except ApiError:
        assert not spoken
        return
    assert [(m.role, m.content) for m in request.messages] == [
        (t["role"], openai_text(t["content"])) for t in spoken
    ]
    systems = [openai_text(t["content"]) for t in turns if t["role"] in ("developer", "system")]
    assert request.system == ("\n\n".join(s for s in systems if s) or None)
    assert request.max_tokens == DEFAULT_MAX_TOKENS


ollama_turns = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant", "USER", "Assistant"]),
         "content": texts}
    ),
    min_size=1, max_size=6,
)  # fmt: skip


@FUZZ
@given(turns=ollama_turns, num_predict=st.none() | st.integers(-2, 10_000))
def test_it_keeps_an_ollama_conversation_in_order(turns, num_predict):
    body = {"model": "llama3.2", "messages": turns}
    if num_predict is not None:
        body["options"] = {"num_predict": num_predict}
    spoken = [t for t in turns if t["role"].lower() != "system"]
    try:
        request = TRANSLATORS["ollama"](body)
    except ApiError:
        assert not spoken
        return
    assert [(m.role, m.content) for m in request.messages] == [
        (t["role"].lower(), t["content"]) for t in spoken
    ]
    systems = [t["content"] for t in turns if t["role"] == "system" and t["content"]]
    assert request.system == ("\n\n".join(systems) or None)
    budget = num_predict if num_predict is not None and num_predict > 0 else DEFAULT_MAX_TOKENS
    assert request.max_tokens == budget
