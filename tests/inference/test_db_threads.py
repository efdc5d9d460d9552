"""DatabaseThreads: the long-lived threads the gateway's database calls run on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from inference.db_threads import DatabaseThreads


def where() -> str:
    return threading.current_thread().name


async def test_a_call_runs_on_the_thread_and_returns_its_result():
    threads = DatabaseThreads(1, "test-db")
    assert not threads.started
    assert await threads.call(where) == "test-db-0"
    assert await threads.call(lambda a, b: a + b, 2, 3) == 5
    assert threads.started


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on():
    threads = DatabaseThreads(1, "test-db")

    def fail():
        raise ValueError("no such row")

    with pytest.raises(ValueError, match="no such row"):
        await threads.call(fail)
    assert await threads.call(where) == "test-db-0"


async def test_one_thread_runs_calls_one_at_a_time_in_order():
    threads = DatabaseThreads(1, "test-db")
    order: list[int] = []
    running = threading.Lock()

    def step(i: int) -> int:
        assert running.acquire(blocking=False), "two calls ran at once"
        try:
            order.append(i)
            return i
        finally:
            running.release()

    results = await asyncio.gather(*(threads.call(step, i) for i in range(200)))
    assert results == list(range(200))
    assert order == list(range(200))


async def test_a_pool_runs_calls_in_parallel():
    threads = DatabaseThreads(4, "test-pool")
    barrier = threading.Barrier(4, timeout=5)

    def meet() -> str:
        barrier.wait()  # returns only when four calls run at once
        return where()

    names = await asyncio.gather(*(threads.call(meet) for _ in range(4)))
    assert sorted(names) == [f"test-pool-{i}" for i in range(4)]


async def test_a_cancelled_caller_drops_the_result_and_the_thread_goes_on():
    threads = DatabaseThreads(1, "test-db")
    release = threading.Event()
    ran: list[str] = []

    def slow() -> str:
        release.wait(5)
        ran.append("slow")
        return "late"

    waiting = asyncio.ensure_future(threads.call(slow))
    await asyncio.sleep(0.01)
    waiting.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await threads.call(where) == "test-db-0"
    assert ran == ["slow"]  # queued work still runs, as with an executor


def test_a_call_whose_loop_closed_meanwhile_does_not_stop_the_thread():
    threads = DatabaseThreads(1, "test-db")
    release = threading.Event()

    async def start_and_leave():
        threads.call(release.wait, 5)

    asyncio.run(start_and_leave())  # the loop closes while the call waits
    release.set()
    assert threads.call_sync(where) == "test-db-0"


def test_call_sync_waits_for_the_result_from_sync_code():
    threads = DatabaseThreads(1, "test-db")
    assert threads.call_sync(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        threads.call_sync(lambda: 1 / 0)


def test_loops_on_several_threads_share_the_threads():
    threads = DatabaseThreads(1, "test-db")
    seen: list[str] = []

    def run() -> None:
        seen.append(asyncio.run(_ask(threads)))

    workers = [threading.Thread(target=run) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert seen == ["test-db-0"] * 4


async def _ask(threads: DatabaseThreads) -> str:
    return await threads.call(where)
