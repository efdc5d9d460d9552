"""The dashboard's 30-day chart, drawn on the server as plain SVG geometry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

WIDTH, HEIGHT = 600, 160
TOP, BOTTOM = 12, 20  # room for the peak's label and the date labels


def daily_chart(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Token bars and a cost line for `usage_daily_series` rows (oldest first)."""
    days = len(series) or 1
    slot = WIDTH / days
    plot = HEIGHT - TOP - BOTTOM
    peak_tokens = max((row["tokens"] for row in series), default=0)
    peak_cost = max((row["cost_usd"] for row in series), default=Decimal(0))
    bars, points = [], []
    for index, row in enumerate(series):
        height = plot * row["tokens"] / peak_tokens if peak_tokens else 0
        x = index * slot
        bars.append(
            {
                "x": round(x + slot * 0.15, 1),
                "y": round(TOP + plot - height, 1),
                "width": round(slot * 0.7, 1),
                "height": round(height, 1),
                "day": row["day"],
                "tokens": row["tokens"],
                "cost_usd": row["cost_usd"],
            }
        )
        cost_height = plot * float(row["cost_usd"] / peak_cost) if peak_cost else 0
        points.append(f"{x + slot / 2:.1f},{TOP + plot - cost_height:.1f}")
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "baseline": TOP + plot,
        "bars": bars,
        "cost_points": " ".join(points),
        "peak_tokens": peak_tokens,
        "peak_cost": peak_cost,
        "first_day": series[0]["day"] if series else None,
        "last_day": series[-1]["day"] if series else None,
        "has_data": peak_tokens > 0,
    }
