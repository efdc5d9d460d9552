"""Hypothesis strategies shared by the fuzz tests: JSON of any shape, and
well-formed native chat requests."""

from __future__ import annotations

from hypothesis import strategies as st

from inference.schemas import TOOL_NAME

# Short texts, with the characters that break naive handling: newlines, quotes,
# NUL, astral code points.
texts = st.text(st.characters(codec="utf-8"), max_size=30)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=6)

tool_names = st.from_regex(TOOL_NAME, fullmatch=True)
call_ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
arguments = st.dictionaries(texts, json_values, max_size=3)

text_blocks = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=3)
contents = texts | text_blocks


def content_text(content: str | list[dict]) -> str:
    """What the normalizer makes of a message's content."""
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content)


tool_calls = st.lists(
    st.fixed_dictionaries({"id": call_ids, "name": tool_names, "arguments": arguments}),
    max_size=2,
)

native_messages = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": contents}),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": contents},
        optional={"tool_calls": tool_calls},
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "content": contents},
        optional={"tool_call_id": st.none() | call_ids, "name": st.none() | tool_names},
    ),
)

native_bodies = st.fixed_dictionaries(
    {"messages": st.lists(native_messages, min_size=1, max_size=8)},
    optional={
        "model": st.none() | st.text(max_size=20),
        "system": st.none() | texts,
        "max_tokens": st.none() | st.integers(1, 1_000_000),
        "temperature": st.none() | st.floats(0, 2),
        "top_p": st.none() | st.floats(0, 1),
        "stop": st.none()
        | st.text(min_size=1, max_size=10)
        | st.lists(st.text(min_size=1, max_size=10), max_size=4),
        "tools": st.none()
        | st.lists(
            st.fixed_dictionaries(
                {"name": tool_names},
                optional={"description": texts, "parameters": st.just({"type": "object"})},
            ),
            max_size=2,
        ),
        "tool_choice": st.none() | st.sampled_from(["auto", "none", "any"]) | tool_names,
        "stream": st.booleans(),
    },
)
