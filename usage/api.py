"""`GET /api/inference/usage`: the caller's limits, usage and cost.

Mounted on the project's NinjaAPI under `/inference`, whose auth puts an
`accounts.auth.Principal` on `request.auth`. A caller only ever sees their own
figures: there is no parameter naming a user.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Field, Router, Schema

from inference.schemas import ErrorOut
from usage.selectors import ausage_summary

router = Router(tags=["usage"])


class LimitsOut(Schema):
    total: int | None = Field(description="Total tokens allowed; null: unlimited.")
    daily: int | None = Field(description="Tokens allowed per usage day; null: unlimited.")


class TotalTodayOut(Schema):
    total: int
    today: int


class RemainingOut(Schema):
    total: int | None = Field(description="Tokens still allowed in total; null: unlimited.")
    today: int | None = Field(description="Tokens still allowed today; null: unlimited.")


class CostOut(Schema):
    total: float = Field(description="Estimated cost in USD of every recorded request.")
    today: float = Field(description="Estimated cost in USD of today's requests.")


class ModelUsageOut(Schema):
    model: str
    tokens: int
    cost_usd: float


class UsageSummaryOut(Schema):
    limits: LimitsOut
    used: TotalTodayOut = Field(description="Tokens counted against the limits.")
    reserved: TotalTodayOut = Field(description="Tokens held by requests in flight.")
    remaining: RemainingOut
    cost_usd: CostOut
    resets_at: str = Field(description="When today's counters start again (ISO 8601).")
    by_model: list[ModelUsageOut]


RESPONSES = {200: UsageSummaryOut, 401: ErrorOut, 403: ErrorOut}


@router.get("/usage", response=RESPONSES, summary="Your usage and limits")
async def usage(request: HttpRequest):
    """Token limits, counted usage, reservations in flight and estimated cost of
    the caller (a limit of `null` means unlimited)."""
    return await ausage_summary(user=request.auth.user)


@router.get(
    "/usage/stats",
    response=RESPONSES,
    summary="Your usage and limits (older path)",
    deprecated=True,
)
async def usage_stats(request: HttpRequest):
    """The first sprint's path, kept so games written against it keep working."""
    return await ausage_summary(user=request.auth.user)
