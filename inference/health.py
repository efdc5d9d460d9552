async def health_report() -> dict:
    return {"status": "ok"}
