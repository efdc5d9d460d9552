"""Usage, quotas and cost: the only place these rules live.

CONTRACT (implemented by the usage work; the gateway in inference/services.py
calls exactly these):

- `estimate_prompt_tokens(request: ChatRequest) -> int`: a conservative upper
  bound of the prompt's tokens (UTF-8 bytes of all text, plus overheads per
  message and for tools), so settled usage cannot pass a limit.
- `quota_reserve(*, user, game=None, prompt_estimate, max_tokens) -> Reservation`
  (sync; `aquota_reserve` is the async twin): atomically checks the user's total
  and daily limits and the game's per-player daily limit against counted usage
  plus live reservations, lowers `max_tokens` to what is left, raises
  `inference.errors.QuotaExceeded` (naming the limit and when it resets) when
  fewer than QUOTA_MIN_COMPLETION_TOKENS would be left, and records a
  reservation that expires after QUOTA_RESERVATION_TTL_S.
- `quota_settle(*, reservation, usage: Usage, outcome, error_code="", backend,
  model, token=None, latency_ms, ttft_ms) -> UsageRecord` (+ `aquota_settle`):
  frees the reservation, adds the true counts to the counters and writes the
  one usage record, with its cost, in one transaction.
- `quota_release(*, reservation) -> None` (+ `aquota_release`): frees a
  reservation for a request that never reached a backend.
- `rate_limit_hit(*, user) -> None` (+ async twin `arate_limit_hit`): counts one
  inference request on the shared cache; raises `RateLimitExceeded` with
  `retry_after` when over the user's per-minute rate.
- `cost_usd(*, model, usage) -> Decimal` from the price table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Reservation:
    id: UUID
    user_id: int
    game_id: int | None
    day: date
    tokens: int
    prompt_estimate: int
    max_tokens: int
    # The max_tokens asked for, when the limits made it smaller.
    requested_max_tokens: int

    @property
    def lowered(self) -> bool:
        return self.max_tokens < self.requested_max_tokens
