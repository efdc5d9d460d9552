"""PerLoopClient: a loop's pooled clients (an aiohttp session, an SDK client)
are closed when the loop ends or on aclose(), so no aiohttp session is left to
the garbage collector."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

import pytest
from asgiref.sync import async_to_sync

from inference.backends.anthropic import AnthropicBackend
from inference.backends.base import ChatRequest, Message
from inference.backends.openai import OpenAIBackend


@pytest.fixture(params=["openai", "anthropic"])
def setup(request, openai_upstream, anthropic_upstream):
    if request.param == "openai":
        backend = OpenAIBackend(base_url=openai_upstream.url + "/v1", api_key="k")
        return backend, "gpt-test", openai_upstream
    backend = AnthropicBackend(base_url=anthropic_upstream.url, api_key="k")
    return backend, "claude-sonnet-5-5", anthropic_upstream


async def answer(backend, model):
    request = ChatRequest(model=model, messages=[Message("user", "Hello")])
    assert [event async for event in backend.stream(request)]
    return backend._clients.get()


def is_closed(client) -> bool:
    closed = client.closed if hasattr(client, "closed") else client.is_closed()
    return closed is True


async def eventually(predicate, timeout=5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return predicate()


@pytest.mark.parametrize("runner", ["asyncio.run", "async_to_sync"])
async def test_a_short_lived_loop_closes_its_clients(setup, runner):
    backend, model, upstream = setup
    before = upstream.open_connections
    made = []

    def run():
        if runner == "asyncio.run":
            made.append(asyncio.run(answer(backend, model)))
        else:
            made.append(async_to_sync(answer)(backend, model))

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(10)
        gc.collect()
    assert made and is_closed(made[0])
    assert backend._clients._clients.keys() == set()  # nothing kept for the dead loop
    assert await eventually(lambda: upstream.open_connections <= before)


async def test_aclose_closes_this_loops_client(setup):
    backend, model, upstream = setup
    before = upstream.open_connections
    client = await answer(backend, model)
    assert upstream.open_connections == before + 1  # pooled
    await backend.aclose()
    assert is_closed(client)
    assert await eventually(lambda: upstream.open_connections <= before)
    assert await answer(backend, model) is not client
    await backend.aclose()
