"""However many requests run at once, settled usage never passes a limit."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from inference.backends.base import Usage
from inference.errors import QuotaExceeded
from tests.factories import UserFactory
from usage.models import QuotaReservation, UsageRecord, UserQuota
from usage.services import quota_reserve, quota_settle

THREADS = 50
DAILY_LIMIT = 10_000


def _race(user) -> tuple[list[int], list[QuotaExceeded], list[BaseException]]:
    start = threading.Barrier(THREADS)
    settled: list[int] = []
    refused: list[QuotaExceeded] = []
    failures: list[BaseException] = []

    def request(index: int) -> None:
        try:
            start.wait()
            try:
                reservation = quota_reserve(
                    user=user, prompt_estimate=100, max_tokens=300 + 10 * index
                )
            except QuotaExceeded as exc:
                refused.append(exc)
                return
            time.sleep(0.01)  # the request is in flight
            # The worst case: the upstream uses every token reserved.
            usage = Usage(prompt_tokens=100, completion_tokens=reservation.max_tokens)
            record = quota_settle(
                reservation=reservation,
                usage=usage,
                outcome="ok",
                backend="demo",
                model="demo",
                latency_ms=10,
            )
            settled.append(record.total_tokens)
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return settled, refused, failures


def _check_the_invariant():
    user = UserFactory(daily_token_limit=DAILY_LIMIT, token_limit=1_000_000)
    settled, refused, failures = _race(user)

    assert not failures, failures
    assert len(settled) + len(refused) == THREADS
    assert refused, "the limit was never reached: the test proves nothing"
    assert all(exc.details["limit"] == "daily" for exc in refused)
    assert sum(settled) <= DAILY_LIMIT
    quota = UserQuota.objects.get(user=user)
    recorded = sum(UsageRecord.objects.filter(user=user).values_list("total_tokens", flat=True))
    assert quota.day_used == quota.total_used == recorded == sum(settled)
    assert not QuotaReservation.objects.filter(user=user).exists()


@pytest.mark.django_db(transaction=True)
def test_it_never_lets_settled_usage_pass_the_daily_limit():
    _check_the_invariant()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_it_never_lets_settled_usage_pass_the_daily_limit_on_postgresql():
    _check_the_invariant()
