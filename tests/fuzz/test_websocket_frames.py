"""Malformed frames on /ws/inference/: junk text, binary frames, frames over the
size bound (counted in bytes, not characters), nesting deeper than a JSON parser
goes, and a wrong type for every field of every message. Each is answered with
an `error` message (INVALID_REQUEST or PAYLOAD_TOO_LARGE) on a socket that stays
open: a `ping` sent after it is still answered `pong`, and nothing reaches a
backend."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.faults.helpers import ws_connect
from tests.fuzz.strategies import json_values
from tests.inference.helpers import make_token
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
LIMIT = 4096  # WS_MAX_MESSAGE_BYTES for these tests

# Values pydantic does not coerce into each field of a chat request.
NOT_TEXT = st.integers() | st.booleans() | st.lists(json_values, max_size=2)
NOT_NUMBER = st.text(st.characters(categories=["L"]), min_size=1, max_size=5) | st.lists(
    json_values, max_size=2
)
WRONG = {
    "messages": st.text(max_size=5) | st.integers() | st.just([]) | st.just({}),
    "model": NOT_TEXT,
    "system": NOT_TEXT,
    "max_tokens": NOT_NUMBER | st.integers(max_value=0) | st.integers(min_value=1_000_001),
    "temperature": NOT_NUMBER | st.floats(min_value=2.01, allow_infinity=False),
    "top_p": NOT_NUMBER | st.floats(min_value=1.01, allow_infinity=False),
    "stop": st.integers() | st.just([""]) | st.lists(st.integers(), min_size=1, max_size=2),
    "tools": st.text(max_size=5) | st.integers() | st.just([{"name": "no spaces allowed"}]),
    "tool_choice": st.integers() | st.lists(json_values, max_size=2),
    "stream": st.text(st.characters(categories=["L"]), min_size=6, max_size=8)
    | st.lists(json_values, max_size=2),
    "conversation": st.text(st.characters(categories=["L"]), max_size=8) | st.integers(),
}
MESSAGE_WRONG = {
    "role": st.text(st.characters(categories=["L"]), min_size=1, max_size=6).filter(
        lambda role: role not in ("user", "assistant", "system", "tool")
    )
    | st.integers(),
    "content": st.integers() | st.just([{"type": "image"}]) | st.just({}),
    "tool_calls": st.text(max_size=3) | st.just([{"id": "", "name": "x"}]),
}


@pytest.fixture
async def socket(owner, settings):
    settings.WS_MAX_MESSAGE_BYTES = LIMIT
    communicator = await ws_connect(await make_token(owner))
    yield communicator
    await communicator.disconnect()
    assert await sync_to_async(UsageRecord.objects.count)() == 0


async def assert_refused(socket, code: str = "INVALID_REQUEST", request_id=None) -> None:
    message = await socket.receive_json_from(timeout=5)
    assert message["type"] == "error", message
    assert message["error"]["code"] == code
    if request_id is not None:
        assert message["id"] == request_id
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=5) == {"type": "pong"}


def not_a_known_message(text: str) -> bool:
    try:
        content = json.loads(text)
    except (ValueError, RecursionError):
        return True
    return not (isinstance(content, dict) and content.get("type") in ("ping", "inference"))


@FUZZ
@given(text=st.text(min_size=1, max_size=200))
async def test_it_answers_junk_text(socket, text):
    assume(not_a_known_message(text))
    await socket.send_to(text_data=text)
    await assert_refused(socket)


@FUZZ
@given(data=st.binary(min_size=1, max_size=200))
async def test_it_answers_a_binary_frame(socket, data):
    await socket.send_to(bytes_data=data)
    await assert_refused(socket)


@FUZZ
@given(char=st.sampled_from(["a", "é", "€", "😀"]), extra=st.integers(1, 50))
async def test_it_answers_a_frame_over_the_byte_bound(socket, char, extra):
    # A valid request, over the bound in bytes (though not always in characters).
    size = len(char.encode())
    text = char * ((LIMIT // size) + extra)
    frame = json.dumps(
        {
            "type": "inference",
            "id": "big",
            "request": {"messages": [{"role": "user", "content": text}]},
        },
        ensure_ascii=False,
    )
    await socket.send_to(text_data=frame)
    await assert_refused(socket, "PAYLOAD_TOO_LARGE")


@FUZZ
@given(opener=st.sampled_from(["[", '{"a":', '{"a":[']), data=st.data())
async def test_it_answers_nesting_deeper_than_the_parser_goes(socket, opener, data):
    # As deep as the size bound allows: past the parser's recursion limit for "[".
    depth = data.draw(st.integers(500, LIMIT // len(opener)))
    await socket.send_to(text_data=opener * depth)
    await assert_refused(socket)


@FUZZ
@given(kind=json_values, request_id=st.none() | st.booleans() | st.lists(json_values, max_size=2))
async def test_it_answers_a_wrong_type_or_id(socket, kind, request_id):
    assume(kind not in ("ping", "inference"))
    await socket.send_json_to({"type": kind, "id": "x"})
    await assert_refused(socket)
    # An inference without a usable id cannot be answered by id.
    await socket.send_json_to({"type": "inference", "id": request_id, "request": {}})
    await assert_refused(socket)


@FUZZ
@given(data=st.data(), field=st.sampled_from(sorted(WRONG)))
async def test_it_answers_a_wrong_type_in_any_request_field(socket, data, field):
    request = {"messages": [{"role": "user", "content": "hi"}], field: data.draw(WRONG[field])}
    await socket.send_json_to({"type": "inference", "id": "r", "request": request})
    await assert_refused(socket, request_id="r")


@FUZZ
@given(data=st.data(), field=st.sampled_from(sorted(MESSAGE_WRONG)))
async def test_it_answers_a_wrong_type_in_any_message_field(socket, data, field):
    message = {"role": "user", "content": "hi", field: data.draw(MESSAGE_WRONG[field])}
    await socket.send_json_to({"type": "inference", "id": "m", "request": {"messages": [message]}})
    await assert_refused(socket, request_id="m")


@FUZZ
@given(request=json_values)
async def test_it_answers_a_request_that_is_not_an_object(socket, request):
    assume(not isinstance(request, dict))
    await socket.send_json_to({"type": "inference", "id": "n", "request": request})
    await assert_refused(socket, request_id="n")
