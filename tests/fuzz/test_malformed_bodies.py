"""Request bodies no JSON parser should choke on, sent to every chat endpoint:
arbitrary bytes, and nesting deeper than the parser goes. Each is refused with
the endpoint's own 4xx error, never a 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inference.helpers import bearer, make_token

pytestmark = pytest.mark.django_db(transaction=True)

NATIVE = ("/api/inference/chat", "/api/inference/conversations")
COMPATIBLE = (
    "/api/inference/anthropic/v1/messages",
    "/api/inference/openai/v1/chat/completions",
    "/api/inference/ollama/api/chat",
)
DEEP = "[" * 5000


@pytest.fixture
async def headers(owner):
    return bearer(await make_token(owner))


async def post(async_client, path, body: bytes | str, headers):
    return await async_client.post(
        path, data=body, content_type="application/json", headers=headers
    )


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=64), path=st.sampled_from(NATIVE + COMPATIBLE))
async def test_it_refuses_arbitrary_bytes(async_client, headers, body, path):
    response = await post(async_client, path, body, headers)
    assert 400 <= response.status_code < 500, (path, body, response.content)


@pytest.mark.parametrize("path", NATIVE)
async def test_it_refuses_nesting_deeper_than_the_parser_goes(async_client, headers, path):
    response = await post(async_client, path, DEEP, headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("path", COMPATIBLE)
async def test_it_refuses_nesting_deeper_than_the_parser_goes_on_compatible_apis(
    async_client, headers, path
):
    response = await post(async_client, path, DEEP, headers)
    assert response.status_code == 400
