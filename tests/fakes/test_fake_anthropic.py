"""The fake Anthropic API, driven by the official SDK: proof that it is faithful."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from tests.fakes.anthropic import FakeAnthropic, prompt_tokens
from tests.fakes.server import Fault

MODEL = "claude-sonnet-5-5"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}


@pytest.fixture
def client(anthropic_upstream: FakeAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=anthropic_upstream.url, api_key="sk-test", max_retries=0)


def ask(client: anthropic.Anthropic, text: str = "Describe the hall", **kw):
    return client.messages.create(
        model=kw.pop("model", MODEL),
        max_tokens=kw.pop("max_tokens", 100),
        messages=[{"role": "user", "content": text}],
        **kw,
    )


def test_it_answers_with_deterministic_counts(client):
    message = ask(client, "Describe the hall", system="You narrate a dungeon")

    assert message.type == "message"
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert message.content[0].text.split()[:2] == ["The", "torch"]
    assert message.usage.input_tokens == 3 + 4
    assert message.usage.output_tokens == 12
    assert message._request_id.startswith("req_")


def test_it_counts_prompt_tokens_like_count_tokens(client):
    body = {
        "system": [{"type": "text", "text": "Two words"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "one two three"}]},
            {"role": "assistant", "content": "four"},
        ],
        "tools": [WEATHER_TOOL],
    }
    counted = client.messages.count_tokens(model=MODEL, **body)

    assert counted.input_tokens == prompt_tokens(body) == 2 + 3 + 1 + 1


def test_it_cuts_at_max_tokens(client, anthropic_upstream):
    anthropic_upstream.fill = True

    message = ask(client, max_tokens=5)

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert len(message.content[0].text.split()) == 5


def test_it_honours_reply_length(client, anthropic_upstream):
    anthropic_upstream.reply_length = 3

    message = ask(client)

    assert message.content[0].text == "The torch flickers"
    assert message.stop_reason == "end_turn"


def test_it_stops_at_a_stop_sequence(client):
    message = ask(client, stop_sequences=["nothing", "step"])

    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "step"
    assert message.content[0].text == "The torch flickers as you "
    # The text leaves the sequence out, but generating it cost its token.
    assert message.usage.output_tokens == 6


def test_it_reports_cache_tokens(client, anthropic_upstream):
    anthropic_upstream.cache_read = 40
    anthropic_upstream.cache_creation = 7

    message = ask(client)

    assert message.usage.cache_read_input_tokens == 40
    assert message.usage.cache_creation_input_tokens == 7


def test_it_streams_named_events_in_order(client, anthropic_upstream):
    anthropic_upstream.cache_read = 10
    events = list(ask(client, "Describe the hall", stream=True))
    kinds = [event.type for event in events]

    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == 12
    start, delta = events[0], events[-2]
    assert start.message.usage.input_tokens == 3
    assert start.message.usage.cache_read_input_tokens == 10
    assert delta.usage.output_tokens == 12
    assert delta.delta.stop_reason == "end_turn"


def test_it_sends_ping_events(anthropic_upstream):
    with httpx2.Client(base_url=anthropic_upstream.url) as http:
        response = http.post(
            "/v1/messages?beta=true",
            headers={"x-api-key": "sk-test", "anthropic-version": "2023-06-01"},
            json={
                "model": MODEL,
                "max_tokens": 3,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )

    frames = response.text.split("\n\n")
    assert frames[0].startswith("event: message_start\ndata: ")
    assert frames[1] == 'event: ping\ndata: {"type": "ping"}'
    assert "[DONE]" not in response.text
    assert response.headers["request-id"].startswith("req_")


def test_it_rebuilds_a_final_message_from_the_stream(client, anthropic_upstream):
    anthropic_upstream.reply_length = 4
    with client.messages.stream(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Look around"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == final.content[0].text == "The torch flickers as"
    assert final.usage.input_tokens == 2
    assert final.usage.output_tokens == 4


def test_it_calls_a_tool_named_in_the_last_user_message(client):
    message = ask(client, "What does get_weather say?", tools=[WEATHER_TOOL])

    assert message.stop_reason == "tool_use"
    call = message.content[0]
    assert call.type == "tool_use"
    assert call.id.startswith("toolu_")
    assert call.name == "get_weather"
    assert call.input == {"city": "Paris", "days": 1}


def test_it_streams_tool_arguments_as_json_pieces(client):
    with client.messages.stream(
        model=MODEL,
        max_tokens=50,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Plan the trip"}],
    ) as stream:
        pieces = [e.delta.partial_json for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()

    assert pieces[0] == ""
    assert len(pieces) > 2
    assert final.content[0].input == {"city": "Paris", "days": 1}
    assert final.stop_reason == "tool_use"


def test_it_answers_a_tool_result_with_text(client):
    message = client.messages.create(
        model=MODEL,
        max_tokens=50,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Use get_weather"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "get_weather: rain",
                    }
                ],
            },
        ],
    )

    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"


def test_it_calls_no_tool_under_tool_choice_none(client):
    message = ask(client, "Use get_weather", tools=[WEATHER_TOOL], tool_choice={"type": "none"})

    assert message.stop_reason == "end_turn"


def test_it_accepts_x_api_key_and_checks_the_key(anthropic_upstream):
    anthropic_upstream.api_key = "sk-right"
    body = {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
    with httpx2.Client(base_url=anthropic_upstream.url) as http:
        ok = http.post(
            "/v1/messages",
            headers={"x-api-key": "sk-right", "anthropic-version": "2023-06-01"},
            json=body,
        )
        wrong = http.post(
            "/v1/messages",
            headers={"x-api-key": "sk-wrong", "anthropic-version": "2023-06-01"},
            json=body,
        )

    assert ok.status_code == 200
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"


def test_it_requires_anthropic_version_and_max_tokens(anthropic_upstream):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    with httpx2.Client(base_url=anthropic_upstream.url) as http:
        no_version = http.post("/v1/messages", headers={"x-api-key": "k"}, json=body)
        no_max = http.post(
            "/v1/messages",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json=body,
        )

    for response in (no_version, no_max):
        assert response.status_code == 400
        assert response.json()["type"] == "error"
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert response.json()["request_id"] == response.headers["request-id"]
    assert "max_tokens" in no_max.json()["error"]["message"]


def test_it_refuses_sampling_parameters_under_the_current_version(client, anthropic_upstream):
    for name in ("temperature", "top_p", "top_k"):
        with pytest.raises(anthropic.BadRequestError, match=name):
            ask(client, extra_body={name: 1})
    pinned = anthropic.Anthropic(
        base_url=anthropic_upstream.url,
        api_key="sk-test",
        max_retries=0,
        default_headers={"anthropic-version": "2023-06-01"},
    )

    message = ask(pinned, extra_body={"temperature": 0.2, "top_p": 0.9})

    assert message.stop_reason == "end_turn"
    assert anthropic_upstream.requests[-1].headers["anthropic-version"] == "2023-06-01"


def test_it_answers_404_for_an_unknown_model(client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        ask(client, model="claude-nonexistent-1")

    assert caught.value.type == "not_found_error"
    assert "claude-nonexistent-1" in caught.value.api_message


@pytest.mark.parametrize(
    ("status", "exception", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (504, anthropic.GatewayTimeoutError, "timeout_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_it_raises_the_sdk_exception_for_each_status(
    client, anthropic_upstream, status, exception, error_type
):
    anthropic_upstream.script(Fault.with_status(status))

    with pytest.raises(exception) as caught:
        ask(client)

    assert caught.value.status_code == status
    assert caught.value.type == error_type
    assert caught.value.request_id.startswith("req_")
    assert caught.value.body["request_id"] == caught.value.request_id


def test_it_lets_the_sdk_retry_after_retry_after_ms(anthropic_upstream):
    client = anthropic.Anthropic(base_url=anthropic_upstream.url, api_key="k", max_retries=2)
    anthropic_upstream.script(
        Fault.with_status(429, headers={"retry-after-ms": "10"}),
        Fault.with_status(529, headers={"retry-after-ms": "10"}),
    )

    message = ask(client)

    assert message.stop_reason == "end_turn"
    counts = [r.headers["x-stainless-retry-count"] for r in anthropic_upstream.requests]
    assert counts == ["0", "1", "2"]


def test_it_sends_an_error_event_mid_stream(client, anthropic_upstream):
    anthropic_upstream.script(Fault.mid_stream_error(after_chunks=2, message="Overloaded"))
    deltas = []

    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in ask(client, stream=True):
            if event.type == "content_block_delta":
                deltas.append(event.delta.text)

    assert len(deltas) == 2
    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"


def test_it_drops_the_connection_mid_stream(client, anthropic_upstream):
    anthropic_upstream.script(Fault.mid_stream_drop(after_chunks=1))

    with pytest.raises(httpx2.TransportError):
        list(ask(client, stream=True))


def test_it_turns_mid_stream_faults_of_a_json_request_into_their_failures(
    client, anthropic_upstream
):
    anthropic_upstream.script(Fault.mid_stream_error(), Fault.mid_stream_drop())

    with pytest.raises(anthropic.OverloadedError):
        ask(client)
    with pytest.raises(anthropic.APIConnectionError):
        ask(client)


def test_it_applies_faults_only_to_messages(client, anthropic_upstream):
    anthropic_upstream.script(Fault.with_status(500))

    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(anthropic.InternalServerError):
        ask(client)


def test_it_pages_the_model_list(client, anthropic_upstream):
    anthropic_upstream.models = ["claude-a-1", "claude-b-1", "claude-c-1"]

    first = client.models.list(limit=2)
    every = [model.id for model in client.models.list(limit=2)]

    assert [model.id for model in first.data] == ["claude-a-1", "claude-b-1"]
    assert first.has_more is True
    assert first.first_id == "claude-a-1"
    assert first.last_id == "claude-b-1"
    assert every == ["claude-a-1", "claude-b-1", "claude-c-1"]
    assert anthropic_upstream.requests[-1].query["after_id"] == ["claude-b-1"]


def test_it_retrieves_one_model(client):
    model = client.models.retrieve(MODEL)

    assert model.type == "model"
    assert model.display_name == "Claude Sonnet 5.5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-none")
