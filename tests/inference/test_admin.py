"""The admin's inference switches: aliases and the run-time default backend."""

from __future__ import annotations

import pytest

from inference.models import InferenceSettings, ModelAlias
from inference.routing import forget_config
from tests.inference.helpers import make_token, post_chat, user_says

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_config():
    forget_config()
    yield
    forget_config()


def test_it_lets_staff_add_an_alias_and_set_the_default(client, staff):
    client.force_login(staff)
    response = client.post(
        "/admin/inference/modelalias/add/",
        {"name": "storyteller", "backend": "demo", "model": "demo-storyteller", "description": ""},
    )
    assert response.status_code == 302
    assert ModelAlias.objects.get(name="storyteller").model == "demo-storyteller"
    response = client.post(
        "/admin/inference/inferencesettings/add/",
        {"default_backend": "demo", "default_model": "demo-storyteller"},
    )
    assert response.status_code == 302
    assert InferenceSettings.objects.get().default_model == "demo-storyteller"
    # One row only: no second "add", no delete.
    assert client.get("/admin/inference/inferencesettings/add/").status_code == 403
    assert client.get("/admin/inference/inferencesettings/1/delete/").status_code == 403


def test_it_refuses_the_admin_to_players(client, owner):
    client.force_login(owner)
    response = client.get("/admin/inference/modelalias/")
    assert response.status_code == 302


async def test_it_routes_an_alias_and_the_admin_default(async_client, owner):
    from asgiref.sync import sync_to_async

    await sync_to_async(ModelAlias.objects.create)(
        name="storyteller", backend="demo", model="demo-storyteller"
    )
    await sync_to_async(InferenceSettings.objects.create)(
        default_backend="demo", default_model="demo-storyteller"
    )
    token = await make_token(owner)
    by_alias = (
        await post_chat(async_client, token, {"messages": user_says("hi"), "model": "storyteller"})
    ).json()
    assert (by_alias["backend"], by_alias["model"]) == ("demo", "demo-storyteller")
    by_default = (await post_chat(async_client, token, {"messages": user_says("hi")})).json()
    assert by_default["model"] == "demo-storyteller"
