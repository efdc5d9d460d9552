"""Reads of the inference app: what models are on offer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import sync_to_async

from inference.backends import enabled_backends, get_backend
from inference.backends.base import ModelInfo
from inference.models import ModelAlias
from inference.routing import default_model

logger = logging.getLogger(__name__)

LIST_TIMEOUT_S = 3.0


async def _backend_models(name: str) -> list[ModelInfo]:
    backend = get_backend(name)
    try:
        async with asyncio.timeout(LIST_TIMEOUT_S):
            return await backend.list_models()
    except Exception as exc:  # a backend that cannot list today offers nothing today
        logger.info("listing %s models failed: %s", name, exc)
        return []


def model_pricing(*, model: str) -> dict[str, float]:
    from usage.selectors import model_price_get

    price = model_price_get(model=model)
    if price is None:
        return {"input_per_mtok": 0.0, "output_per_mtok": 0.0}
    return {
        "input_per_mtok": float(price.input_per_mtok),
        "output_per_mtok": float(price.output_per_mtok),
    }


def _catalogue(models: list[ModelInfo]) -> list[dict[str, Any]]:
    from usage.models import ModelPrice

    retired = set(ModelPrice.objects.filter(retired=True).values_list("pattern", flat=True))
    enabled = set(enabled_backends())
    rows = []
    for alias in ModelAlias.objects.all():
        pricing = model_pricing(model=alias.model)
        rows.append(
            {
                "id": alias.name,
                "backend": alias.backend,
                "available": alias.backend in enabled,
                "pricing": pricing,
            }
        )
    for info in models:
        if info.id in retired:
            continue
        rows.append(
            {
                "id": info.id,
                "backend": info.backend,
                "available": info.available,
                "pricing": model_pricing(model=info.id),
            }
        )
    return rows


async def models_list() -> dict[str, Any]:
    """`{default_model, models:[{id, backend, available, pricing}]}` of every enabled backend."""
    names = enabled_backends()
    listed = await asyncio.gather(*(_backend_models(name) for name in names))
    models = [info for infos in listed for info in infos]
    return {
        "default_model": await default_model(),
        "models": await sync_to_async(_catalogue)(models),
    }
