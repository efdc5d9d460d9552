"""GET /api/inference/usage, as mounted on the project's API."""

from __future__ import annotations

import pytest

from tests.factories import ApiTokenFactory
from tests.usage.conftest import spend

pytestmark = pytest.mark.django_db


def _get(client, path, token):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token.secret}")


@pytest.mark.parametrize("path", ["/api/inference/usage", "/api/inference/usage/stats"])
def test_it_returns_the_callers_usage(client, owner, owner_token, path):
    owner.daily_token_limit = 1000
    owner.save()
    spend(owner, tokens=300, now=None)
    response = _get(client, path, owner_token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "limits", "used", "reserved", "remaining", "cost_usd", "resets_at", "by_model",
    }  # fmt: skip
    assert body["limits"]["daily"] == 1000
    assert body["used"] == {"total": 300, "today": 300}
    assert body["remaining"]["today"] == 700
    assert body["by_model"] == [{"model": "test-model", "tokens": 300, "cost_usd": 0.0}]


def test_it_never_shows_another_users_usage(client, owner, friend, outsider):
    spend(owner, tokens=300, now=None)
    for user in (friend, outsider):
        body = _get(client, "/api/inference/usage", ApiTokenFactory(owner=user)).json()
        assert body["used"]["total"] == 0
        assert body["by_model"] == []


def test_it_works_with_the_session_cookie(owner_client):
    response = owner_client.get("/api/inference/usage")
    assert response.status_code == 200


def test_it_requires_authentication(client):
    response = client.get("/api/inference/usage")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_it_rejects_post(client, owner_token):
    response = client.post(
        "/api/inference/usage", HTTP_AUTHORIZATION=f"Bearer {owner_token.secret}"
    )
    assert response.status_code == 405


def test_it_is_in_the_openapi_document(client):
    schema = client.get("/api/openapi.json").json()
    assert "/api/inference/usage" in schema["paths"]
    assert "UsageSummaryOut" in schema["components"]["schemas"]
