"""GET /healthz: database, cache and backends, for load balancers."""

from __future__ import annotations

import pytest

from inference.health import forget_backends
from tests.live import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh():
    forget_backends()
    yield
    forget_backends()


async def test_it_reports_ok_without_authentication(async_client):
    response = await async_client.get("/healthz")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ok"
    assert data["database"] == "ok" and data["cache"] == "ok"
    assert data["backends"]["demo"] is True


async def test_it_reports_each_backends_reachability(async_client, upstreams, settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    data = (await async_client.get("/healthz")).json()
    assert data["backends"]["anthropic"] is True
    assert data["backends"]["ollama"] is True
    assert data["backends"]["openai"] is False
    assert data["status"] == "ok"


async def test_it_is_degraded_not_down_when_no_backend_answers(async_client, settings):
    settings.INFERENCE_DEMO_BACKEND = False
    settings.OLLAMA_URLS = [f"http://127.0.0.1:{free_port()}"]
    response = await async_client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"


async def test_it_never_shows_secrets(async_client, upstreams):
    body = (await async_client.get("/healthz")).content.decode()
    assert "sk-ant-platform-key" not in body and "sk-platform-key" not in body
    assert "127.0.0.1" not in body
