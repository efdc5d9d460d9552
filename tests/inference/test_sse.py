"""The server-sent events decoder the OpenAI-compatible backend reads answers with."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from inference.backends.sse import ServerSentEvent, sse_events


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


async def decode(*parts: bytes) -> list[ServerSentEvent]:
    return [event async for event in sse_events(_chunks(*parts))]


async def test_it_reads_data_events_and_ignores_comments_and_other_fields():
    body = b': keep-alive\n\ndata: {"a": 1}\n\nid: 7\nretry: 10\ndata: [DONE]\n\n'
    assert await decode(body) == [
        ServerSentEvent(None, '{"a": 1}'),
        ServerSentEvent(None, "[DONE]"),
    ]


async def test_it_joins_data_lines_and_keeps_the_event_name():
    body = b"event: error\ndata: first\ndata:second\ndata:  third\n\n"
    assert await decode(body) == [ServerSentEvent("error", "first\nsecond\n third")]


async def test_it_accepts_every_line_ending():
    events = [ServerSentEvent(None, "one"), ServerSentEvent(None, "two")]
    assert await decode(b"data: one\r\n\r\ndata: two\r\n\r\n") == events
    assert await decode(b"data: one\r\rdata: two\r\r") == events
    assert await decode(b"data: one\n\ndata: two\n\n") == events


async def test_a_crlf_split_between_two_reads_is_one_line_end():
    assert await decode(b"data: one\r", b"\n\r", b"\ndata: two\r\n\r\n") == [
        ServerSentEvent(None, "one"),
        ServerSentEvent(None, "two"),
    ]


async def test_an_event_cut_off_by_the_end_of_the_body_is_dropped():
    assert await decode(b"data: whole\n\ndata: cut") == [ServerSentEvent(None, "whole")]
    assert await decode(b"data: whole\n\ndata: cut\n") == [ServerSentEvent(None, "whole")]


async def test_an_event_without_data_is_not_dispatched():
    assert await decode(b"event: ping\n\n: comment\n\n") == []


async def test_it_imposes_no_line_length_limit():
    long = "x" * 300_000
    assert await decode(f"data: {long}\n\n".encode()) == [ServerSentEvent(None, long)]


async def test_a_multibyte_character_split_between_reads_survives():
    body = "data: héllo ✨\n\n".encode()
    cut = body.index("✨".encode()) + 1
    assert await decode(body[:cut], body[cut:]) == [ServerSentEvent(None, "héllo ✨")]


lines = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12).filter(
    lambda line: not line.startswith(":")
)
messages = st.lists(st.lists(lines, min_size=1, max_size=3), max_size=5)
endings = st.sampled_from(["\n", "\r\n", "\r"])


@given(messages=messages, ending=endings, cuts=st.lists(st.integers(min_value=0), max_size=8))
async def test_any_split_of_a_body_gives_the_same_events(messages, ending, cuts):
    body = "".join(
        "".join(f"data: {line}{ending}" for line in data) + ending for data in messages
    ).encode()
    points = sorted({cut % (len(body) + 1) for cut in cuts})
    parts = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    expected = [ServerSentEvent(None, "\n".join(data)) for data in messages]
    assert await decode(*parts) == expected
    assert await decode(body) == expected
