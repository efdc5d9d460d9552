from __future__ import annotations

import pytest

from tests.inference.helpers import make_token


@pytest.fixture
def faulty(settings, upstreams):
    """The fake upstreams, with an Ollama host that failed tried again at once:
    the cool-down is for real outages, and here every fault is a single one."""
    settings.OLLAMA_COOLDOWN_S = 0
    return upstreams


@pytest.fixture
async def token(owner):
    return await make_token(owner)
