"""Properties of the native request normalizer (`inference.schemas.normalize_chat`)
over generated requests: every valid `ChatIn` becomes one `ChatRequest` or an
`ApiError` and nothing else; the turns keep their order, roles, text and tool
data; system turns join the system prompt; the size bounds hold exactly."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import given, settings
from pydantic import ValidationError

from inference.errors import ApiError, InvalidRequest, PayloadTooLarge
from inference.schemas import ChatIn, normalize_chat
from tests.fuzz.strategies import content_text, json_values, native_bodies

FUZZ = settings(max_examples=150, deadline=None)
MAX_MESSAGES, MAX_CHARS = 4, 120


def expected_refusal(raw: dict[str, Any]) -> type[ApiError] | None:
    """The error the normalizer must raise for `raw`, or None to accept it."""
    turns = [m for m in raw["messages"] if m["role"] != "system"]
    if any(m["role"] == "tool" and not m.get("tool_call_id") for m in turns):
        return InvalidRequest
    if not turns:
        return InvalidRequest
    if len(turns) > MAX_MESSAGES:
        return PayloadTooLarge
    systems = [content_text(m["content"]) for m in raw["messages"] if m["role"] == "system"]
    chars = len(raw.get("system") or "") + sum(len(s) for s in systems)
    chars += sum(len(content_text(m["content"])) for m in turns)
    # Joining the system turns adds two characters between each.
    system_parts = len(systems) + (1 if raw.get("system") else 0)
    chars += 2 * max(0, system_parts - 1)
    if chars > MAX_CHARS:
        return PayloadTooLarge
    return None


@FUZZ
@given(raw=native_bodies)
def test_it_normalizes_any_valid_request_or_refuses_it_by_name(raw):
    body = ChatIn.model_validate(raw)
    refusal = expected_refusal(raw)
    with override_settings(INFERENCE_MAX_MESSAGES=MAX_MESSAGES, INFERENCE_MAX_CHARS=MAX_CHARS):
        if refusal is not None:
            with pytest.raises(refusal):
                normalize_chat(body)
            return
        request = normalize_chat(body)

    turns = [m for m in raw["messages"] if m["role"] != "system"]
    assert [(m.role, m.content) for m in request.messages] == [
        (m["role"], content_text(m["content"])) for m in turns
    ]
    for message, turn in zip(request.messages, turns, strict=True):
        if turn["role"] == "tool":
            assert message.tool_call_id == turn["tool_call_id"]
            assert message.tool_name == turn.get("name")
        calls = [(c.id, c.name, c.arguments) for c in message.tool_calls]
        assert calls == [(c["id"], c["name"], c["arguments"]) for c in turn.get("tool_calls", [])]

    systems = [raw["system"]] if raw.get("system") else []
    systems += [content_text(m["content"]) for m in raw["messages"] if m["role"] == "system"]
    assert request.system == ("\n\n".join(systems) if systems else None)

    assert request.model == (raw.get("model") or "")
    assert request.max_tokens == (raw.get("max_tokens") or 1024)
    stop = raw.get("stop")
    assert request.stop == ([stop] if isinstance(stop, str) else list(stop or []))
    assert [t.name for t in request.tools] == [t["name"] for t in raw.get("tools") or []]
    assert request.tool_choice == raw.get("tool_choice")


@FUZZ
@given(raw=json_values)
def test_it_meets_any_json_with_a_validation_error_or_an_api_error(raw):
    """What the WebSocket consumer does with `request`: whatever arrives, only
    the two kinds of refusal it renders as INVALID_REQUEST are possible."""
    try:
        body = ChatIn.model_validate(raw)
    except ValidationError:
        return
    with contextlib.suppress(ApiError):
        normalize_chat(body)


@FUZZ
@given(raw=native_bodies, extra=json_values)
def test_it_meets_a_valid_request_with_one_field_gone_wrong(raw, extra):
    """Each field of a valid request, in turn, replaced by arbitrary JSON."""
    for name in ("messages", "model", "system", "max_tokens", "stop", "tools", "stream"):
        try:
            body = ChatIn.model_validate({**raw, name: extra})
        except ValidationError:
            continue
        with contextlib.suppress(ApiError):
            normalize_chat(body)
