"""`make bench`: the platform's overhead, throughput, TTFT and stream capacity.

Three processes share the machine: a raw fake OpenAI-compatible upstream
(bench/upstream.py), the platform under ONE ASGI worker (Daphne, and Uvicorn
when installed) on a freshly migrated SQLite database, and this process, the
load generator (a bare asyncio HTTP client, bench/client.py, and `websockets`).
Authentication, rate limits, quota reservation and usage records are all on,
exactly as in production; the limits are only set high enough never to refuse.
As `docs/deploy.md` runs workers, the worker has a core of its own (the last
one) and the upstream and load generator share the others (`--no-pin`: the
scheduler places everything).

Measured, for each server:

- overhead over the upstream, non-streaming: the platform's P50/P95/P99 latency
  minus the upstream's own (the same streamed call made directly), at
  concurrency 1, 16 and 64 against an upstream that answers at once (a closed
  loop that saturates the worker from c=16 on), and at 16 against one that takes
  ~100 ms;
- a floor: a trivial async view through the same Django handler and middleware;
- sustained requests per second with zero errors;
- TTFT overhead of SSE and WebSocket streaming over the upstream's TTFT;
- 1,000 concurrent SSE streams and 1,000 WebSocket streams on one worker:
  errors, and the worker's RSS growth per open stream;
- the invariant: one usage record per request, no reservation left behind.

Writes bench/results/<name>.json and <name>.png, and prints a table.
Every load loop is bounded in count and in time; the whole run takes a few
minutes (`--quick`: about one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.client import Connection, Reply, build_request  # noqa: E402

PY = sys.executable
HOST = "127.0.0.1"
RESULTS = ROOT / "bench" / "results"
USERS = 64
CHAT_BODY = {
    "model": "bench",
    "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
    "max_tokens": 64,
}
# TTFT: the first token at once, two more 2 ms apart (so the stream is a stream).
TTFT_MODEL = "bench-pace-2-3"
# An upstream that takes ~100 ms to answer (still quicker than any real model):
# 16 requests at once then keep the worker busy without saturating it, so the
# latency it adds is its own work, not a queue.
PACED_MODEL = "bench-pace-50-3"
PACED_ANSWER_S = 0.1
PACED_CONCURRENCY = 16


# --- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Cores: the worker's, and the others' (upstream, load generator). None: unpinned.
WORKER_CPUS: set[int] | None = None


def pin_cores() -> dict[str, list[int]] | None:
    """Give the worker the last core and this process (so the upstream it starts
    too) the others; None where that cannot be done."""
    global WORKER_CPUS
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return None
    WORKER_CPUS, others = {cpus[-1]}, set(cpus[:-1])
    os.sched_setaffinity(0, others)
    return {"worker": sorted(WORKER_CPUS), "upstream_and_load": sorted(others)}


class Proc:
    """A child process whose output goes to a log file; stopped by its own pid."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log: Path,
        cwd: Path = ROOT,
        cpus: set[int] | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self.handle = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )

    @property
    def pid(self) -> int:
        return self.handle.pid

    def check(self) -> None:
        if self.handle.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.handle.poll() is None:
            self.handle.terminate()
            try:
                self.handle.wait(10)
            except subprocess.TimeoutExpired:
                self.handle.kill()
                self.handle.wait(5)


# The platform's code: this checkout, or another one (`--tree`, to compare).
TREE = ROOT


def server_env(db: Path, upstream_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "OPENAI_", "ANTHROPIC_", "OLLAMA_", "INFERENCE_"))
        and k not in ("REDIS_URL", "DATABASE_URL")
    }
    upstream = f"http://{HOST}:{upstream_port}"
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DJANGO_SECRET_KEY="bench-" + "x" * 50,
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"sqlite:///{db}",
        OPENAI_BASE_URL=f"{upstream}/v1",
        OPENAI_API_KEY="bench",
        OPENAI_DEFAULT_MODEL="bench",
        OLLAMA_URL=upstream,
        OLLAMA_MODELS_CACHE_S="3600",
        INFERENCE_DEFAULT_BACKEND="openai",
        INFERENCE_DEMO_BACKEND="false",
        # On, but never the reason a request is refused.
        RATE_LIMIT_PER_MINUTE="100000000",
        DEFAULT_TOKEN_LIMIT=str(10**15),
        DEFAULT_DAILY_TOKEN_LIMIT=str(10**15),
        PYTHONUNBUFFERED="1",
        # The platform from TREE; `bench` (settings with the floor view) from here.
        PYTHONPATH=f"{TREE}:{ROOT}",
    )
    return env


def server_argv(server: str, port: int) -> list[str]:
    if server == "daphne":
        return [PY, "-m", "daphne", "-b", HOST, "-p", str(port), "config.asgi:application"]
    if server == "uvicorn":
        return [
            PY,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
            "--backlog",
            "4096",
        ]
    raise ValueError(server)


async def wait_http(port: int, path: str, deadline_s: float, proc: Proc | None = None) -> None:
    raw = build_request("GET", HOST, port, path)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check()
        conn = Connection(HOST, port)
        try:
            reply = await conn.request(raw, timeout=5)
            if reply.status < 500:
                return
        except OSError:
            pass
        finally:
            conn.close()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing answered {path} on port {port} within {deadline_s:g} s")


# --- statistics ---------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(pct(values, 50) * 1000, 3),
        "p95": round(pct(values, 95) * 1000, 3),
        "p99": round(pct(values, 99) * 1000, 3),
        "mean": round(sum(values) / len(values) * 1000, 3) if values else float("nan"),
    }


# --- load loops -----------------------------------------------------------------------------


async def closed_loop(
    port: int,
    requests: list[bytes],
    *,
    concurrency: int,
    total: int,
    deadline_s: float,
    marker: bytes = b"",
    expect: bytes = b"",
    pid: int | None = None,
    spread_s: float = 0.0,
) -> dict[str, Any]:
    """`concurrency` keep-alive connections sending back to back until `total`
    requests or `deadline_s`; each connection cycles through `requests`.

    With `spread_s`, the connections start spread evenly over that time, as
    independent callers would; started together, callers of a slow upstream stay
    in step and arrive as one burst each round.

    With `pid`, the server's CPU time per request is noted too: unlike latency,
    it does not change when other work on the machine takes the cores."""
    latencies: list[float] = []
    ttfts: list[float] = []
    finish_times: list[float] = []
    errors: list[str] = []
    sent = 0
    deadline = time.monotonic() + deadline_s

    async def worker(index: int) -> None:
        nonlocal sent
        conn = Connection(HOST, port)
        raw = requests[index % len(requests)]
        if spread_s:
            await asyncio.sleep(spread_s * index / concurrency)
        try:
            while sent < total and time.monotonic() < deadline:
                sent += 1
                try:
                    reply: Reply = await conn.request(raw, marker=marker, timeout=30)
                except Exception as exc:  # counted, never hidden
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if reply.status != 200 or (expect and expect not in reply.body):
                    errors.append(f"{reply.status}: {reply.body[:200]!r}")
                    continue
                latencies.append(reply.latency)
                finish_times.append(reply.finished)
                if reply.ttft is not None:
                    ttfts.append(reply.ttft)
        finally:
            conn.close()

    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_used = cpu_seconds(pid) - cpu_before if pid else None
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": sent,
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": summary_ms(latencies),
        # The machine's 1-minute load average when the loop began (2 cores).
        "loadavg": round(load_before, 2),
    }
    if cpu_used is not None and latencies:
        result["server_cpu_ms_per_request"] = round(cpu_used / len(latencies) * 1000, 3)
    if marker:
        result["ttft_ms"] = summary_ms(ttfts)
    # Completions per second, second by second (for the plot).
    buckets: dict[int, int] = {}
    for finished in finish_times:
        second = int(finished - started)
        buckets[second] = buckets.get(second, 0) + 1
    result["per_second"] = [buckets.get(s, 0) for s in range(int(elapsed) + 1)]
    return result


def chat_requests(port: int, tokens: list[str], body: dict, path="/api/inference/chat"):
    payload = json.dumps(body).encode()
    return [
        build_request(
            "POST",
            HOST,
            port,
            path,
            payload,
            {"authorization": f"Bearer {t}", "content-type": "application/json"},
        )
        for t in tokens
    ]


def upstream_requests(port: int, model: str) -> list[bytes]:
    body = {
        "model": model,
        "messages": CHAT_BODY["messages"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
    }
    return [
        build_request(
            "POST",
            HOST,
            port,
            "/v1/chat/completions",
            json.dumps(body).encode(),
            {"authorization": "Bearer bench", "content-type": "application/json"},
        )
    ]


async def ws_ttft(port: int, tokens: list[str], total: int, deadline_s: float) -> dict[str, Any]:
    """One socket, requests one after another: time from sending `inference`
    to the first `stream_chunk`."""
    from websockets.asyncio.client import connect

    ttfts: list[float] = []
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + deadline_s
    request = {"model": TTFT_MODEL, "messages": CHAT_BODY["messages"], "max_tokens": 64}
    async with connect(
        f"ws://{HOST}:{port}/ws/inference/",
        subprotocols=["vgp.v1", f"bearer.{tokens[0]}"],
        compression=None,
        ping_interval=None,
        open_timeout=10,
    ) as ws:
        for i in range(total):
            if time.monotonic() >= deadline:
                break
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "inference", "id": str(i), "request": request}))
            first = None
            try:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    kind = message.get("type")
                    if kind == "stream_chunk" and first is None:
                        first = time.perf_counter()
                    elif kind == "stream_end":
                        latencies.append(time.perf_counter() - started)
                    elif kind == "error":
                        errors.append(json.dumps(message)[:200])
                    elif kind == "token_usage":
                        break  # the last message of a request
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                break
            if first is not None:
                ttfts.append(first - started)
    return {
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_samples": errors[:5],
        "ttft_ms": summary_ms(ttfts),
        "latency_ms": summary_ms(latencies),
    }


async def hold_streams(
    kind: str,
    port: int,
    pid: int,
    upstream_port: int,
    tokens: list[str],
    *,
    streams: int,
    pace_ms: int,
    pieces: int,
    ramp_s: float,
    deadline_s: float,
) -> dict[str, Any]:
    """Open `streams` SSE or WebSocket streams at once and hold them.

    The upstream sends the first token at once and then one every `pace_ms`, so
    every stream stays open well past the ramp. The worker's RSS is read before
    the first stream and again once every stream has its first token.
    """
    from websockets.asyncio.client import connect

    model = f"bench-pace-{pace_ms}-{pieces}"
    body = {**CHAT_BODY, "model": model, "stream": True}
    sse_raw = chat_requests(port, tokens, body)
    state = {"open": 0, "max_open": 0, "done": 0}
    errors: list[str] = []
    ttfts: list[float] = []
    all_open = asyncio.Event()
    deadline = time.monotonic() + deadline_s
    timeline: list[tuple[float, int, int]] = []

    def opened(ttft: float) -> None:
        ttfts.append(ttft)
        state["open"] += 1
        state["max_open"] = max(state["max_open"], state["open"])
        if state["open"] >= streams:
            all_open.set()

    async def sse_stream(index: int) -> None:
        conn = Connection(HOST, port)
        protocol_open = False
        try:
            await asyncio.sleep(index * ramp_s / streams)
            # The first token: a marker in the body while the response goes on.
            task = asyncio.ensure_future(
                conn.request(
                    sse_raw[index % len(sse_raw)],
                    marker=b"stream_chunk",
                    timeout=max(1.0, deadline - time.monotonic()),
                )
            )
            started = time.perf_counter()
            while not task.done():
                protocol = conn.protocol
                if protocol is not None and protocol.marker_at is not None and not protocol_open:
                    protocol_open = True
                    opened(protocol.marker_at - started)
                await asyncio.wait({task}, timeout=0.05)
            reply = task.result()
            if not protocol_open and reply.ttft is not None:
                protocol_open = True
                opened(reply.ttft)
            if reply.status != 200 or b"stream_end" not in reply.body:
                errors.append(f"{reply.status}: {reply.body[-200:]!r}")
            else:
                state["done"] += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if protocol_open:
                state["open"] -= 1
            conn.close()

    async def ws_stream(index: int) -> None:
        is_open = False
        try:
            await asyncio.sleep(index * ramp_s / streams)
            async with connect(
                f"ws://{HOST}:{port}/ws/inference/",
                subprotocols=["vgp.v1", f"bearer.{tokens[index % len(tokens)]}"],
                compression=None,
                ping_interval=None,
                open_timeout=30,
                close_timeout=5,
            ) as ws:
                started = time.perf_counter()
                await ws.send(
                    json.dumps(
                        {
                            "type": "inference",
                            "id": "1",
                            "request": {k: v for k, v in body.items() if k != "stream"},
                        }
                    )
                )
                ended = False
                while True:
                    left = deadline - time.monotonic()
                    message = json.loads(await asyncio.wait_for(ws.recv(), max(1.0, left)))
                    kind = message.get("type")
                    if kind == "stream_chunk" and not is_open:
                        is_open = True
                        opened(time.perf_counter() - started)
                    elif kind == "stream_end":
                        ended = True
                    elif kind == "error":
                        errors.append(json.dumps(message)[:200])
                        return
                    elif kind == "token_usage":
                        break
                if ended:
                    state["done"] += 1
                else:
                    errors.append("no stream_end")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if is_open:
                state["open"] -= 1

    async def sample() -> None:
        started = time.monotonic()
        while time.monotonic() < deadline:
            timeline.append((round(time.monotonic() - started, 2), state["open"], rss_kib(pid)))
            await asyncio.sleep(0.25)

    rss_before = rss_kib(pid)
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    run = ws_stream if kind == "ws" else sse_stream
    tasks = [asyncio.ensure_future(run(i)) for i in range(streams)]
    sampler = asyncio.ensure_future(sample())
    rss_open = None
    upstream_open = None
    try:
        await asyncio.wait_for(all_open.wait(), timeout=max(1.0, deadline - time.monotonic()))
        rss_open = rss_kib(pid)
        upstream_open = await upstream_stat(upstream_port, "open_streams")
        open_after = time.monotonic() - started
    except TimeoutError:
        open_after = None
    await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic()))
    for task in tasks:
        if not task.done():
            task.cancel()
            errors.append("still running at the deadline")
    sampler.cancel()
    if rss_open is not None:
        rss_per_stream = round((rss_open - rss_before) / streams, 1)
    else:
        # Not all open at once: the growth per stream at the fullest moment.
        fullest = max(timeline, key=lambda sample: sample[1], default=None)
        rss_per_stream = (
            round((fullest[2] - rss_before) / fullest[1], 1) if fullest and fullest[1] else None
        )
    return {
        "kind": kind,
        "streams": streams,
        "max_open_at_once": state["max_open"],
        "upstream_open_when_all_open": upstream_open,
        "completed": state["done"],
        "errors": len(errors),
        "error_samples": errors[:5],
        "all_open_after_s": None if open_after is None else round(open_after, 2),
        "rss_before_kib": rss_before,
        "rss_all_open_kib": rss_open,
        "rss_per_stream_kib": rss_per_stream,
        "worker_cpu_s": round(cpu_seconds(pid) - cpu_before, 2),
        "ttft_ms": summary_ms(ttfts),
        "timeline": timeline[::2],
    }


async def upstream_stat(port: int, key: str) -> int | None:
    conn = Connection(HOST, port)
    try:
        reply = await conn.request(build_request("GET", HOST, port, "/stats"), timeout=5)
        return json.loads(reply.body)[key]
    except Exception:
        return None
    finally:
        conn.close()


# --- the suite ------------------------------------------------------------------------------


class Sizes:
    def __init__(self, quick: bool) -> None:
        # Counts, each loop also stopped at 30 s: the run stays within minutes
        # however slow the worker is.
        self.latency = {1: 300, 16: 1000, 64: 1500} if quick else {1: 600, 16: 2500, 64: 3500}
        self.paced = 800 if quick else 1600
        self.sustain_s = 8.0 if quick else 15.0
        self.ttft = 100 if quick else 200
        self.streams = 1000
        # Admitting a stream costs the worker ~10 ms of CPU, so 1,000 take ~10-20 s
        # to open: each stream must last longer than that to overlap them all.
        self.pace_ms = 2500
        self.pieces = 8 if quick else 10


def ledger(db: Path) -> dict[str, int]:
    """Rows the run left: one usage record per request, no live reservation."""
    with sqlite3.connect(db) as conn:
        records = conn.execute("select count(*) from usage_usagerecord").fetchone()[0]
        reservations = conn.execute("select count(*) from usage_quotareservation").fetchone()[0]
        not_ok = conn.execute(
            "select count(*) from usage_usagerecord where outcome != 'ok'"
        ).fetchone()[0]
    return {"usage_records": records, "reservations_left": reservations, "records_not_ok": not_ok}


class Suite:
    def __init__(self, args, workdir: Path, template: Path, upstream_port: int, tokens) -> None:
        self.args = args
        self.workdir = workdir
        self.template = template
        self.upstream_port = upstream_port
        self.tokens = tokens
        self.sizes = Sizes(args.quick)

    def start(self, server: str, tag: str) -> tuple[Proc, int, Path]:
        db = self.workdir / f"{server}-{tag}.sqlite3"
        shutil.copy(self.template, db)
        port = free_port()
        argv = server_argv(server, port)
        env = server_env(db, self.upstream_port)
        proc = Proc(
            server, argv, env, self.workdir / f"{server}-{tag}.log", cwd=TREE, cpus=WORKER_CPUS
        )
        return proc, port, db

    async def warm(self, port: int) -> None:
        """Imports, pooled clients, caches: what the first requests pay once."""
        raws = chat_requests(port, self.tokens, CHAT_BODY)
        await closed_loop(port, raws, concurrency=4, total=100, deadline_s=30)
        stream = chat_requests(port, self.tokens, {**CHAT_BODY, "stream": True})
        await closed_loop(port, stream, concurrency=2, total=20, deadline_s=30)
        await ws_ttft(port, self.tokens, 5, 30)

    async def load(self, server: str) -> dict[str, Any]:
        proc, port, db = self.start(server, "load")
        out: dict[str, Any] = {}
        try:
            await wait_http(port, "/bench/floor", 60, proc)
            await self.warm(port)
            sizes = self.sizes
            pid = proc.pid
            floor = [build_request("GET", HOST, port, "/bench/floor")]
            out["floor"] = {
                str(c): await closed_loop(
                    port, floor, concurrency=c, total=sizes.latency[c], deadline_s=30, pid=pid
                )
                for c in (1, 16)
            }
            chat = chat_requests(port, self.tokens, CHAT_BODY)
            out["chat"] = {}
            for c, total in sizes.latency.items():
                out["chat"][str(c)] = await closed_loop(
                    port,
                    chat,
                    concurrency=c,
                    total=total,
                    deadline_s=30,
                    expect=b'"content"',
                    pid=pid,
                )
            out["chat_paced"] = await closed_loop(
                port,
                chat_requests(port, self.tokens, {**CHAT_BODY, "model": PACED_MODEL}),
                concurrency=PACED_CONCURRENCY,
                total=sizes.paced,
                deadline_s=30,
                expect=b'"content"',
                pid=pid,
                spread_s=PACED_ANSWER_S,
            )
            out["sustained"] = await closed_loop(
                port,
                chat,
                concurrency=self.args.sustain_concurrency,
                total=10**6,
                deadline_s=sizes.sustain_s,
                expect=b'"content"',
                pid=pid,
            )
            ttft_chat = chat_requests(
                port, self.tokens, {**CHAT_BODY, "model": TTFT_MODEL, "stream": True}
            )
            out["ttft_sse"] = await closed_loop(
                port,
                ttft_chat,
                concurrency=1,
                total=sizes.ttft,
                deadline_s=30,
                marker=b"stream_chunk",
                expect=b"stream_end",
                pid=pid,
            )
            out["ttft_ws"] = await ws_ttft(port, self.tokens, sizes.ttft, 30)
            out["rss_after_load_kib"] = rss_kib(pid)
            proc.check()
        finally:
            proc.stop()
        out["ledger"] = ledger(db)
        sent = sum(r["requests"] for r in out["chat"].values()) + out["sustained"]["requests"]
        sent += out["chat_paced"]["requests"]
        sent += out["ttft_sse"]["requests"] + out["ttft_ws"]["requests"] + 100 + 20 + 5
        out["ledger"]["requests_sent"] = sent
        return out

    async def streams(self, server: str, kind: str) -> dict[str, Any]:
        proc, port, db = self.start(server, f"streams-{kind}")
        try:
            await wait_http(port, "/bench/floor", 60, proc)
            await self.warm(port)
            sizes = self.sizes
            hold_s = sizes.pace_ms * (sizes.pieces - 1) / 1000
            result = await hold_streams(
                kind,
                port,
                proc.pid,
                self.upstream_port,
                self.tokens,
                streams=sizes.streams,
                pace_ms=sizes.pace_ms,
                pieces=sizes.pieces,
                ramp_s=2.0,
                deadline_s=hold_s + 60,
            )
            proc.check()
        finally:
            proc.stop()
        result["ledger"] = ledger(db)
        return result


async def direct_baseline(upstream_port: int, sizes: Sizes) -> dict[str, Any]:
    """The same streamed call the platform makes, straight to the upstream."""
    raws = upstream_requests(upstream_port, "bench")
    out: dict[str, Any] = {"chat": {}}
    for c, total in sizes.latency.items():
        out["chat"][str(c)] = await closed_loop(
            upstream_port, raws, concurrency=c, total=total, deadline_s=30, expect=b"[DONE]"
        )
    out["paced"] = await closed_loop(
        upstream_port,
        upstream_requests(upstream_port, PACED_MODEL),
        concurrency=PACED_CONCURRENCY,
        total=sizes.paced,
        deadline_s=30,
        expect=b"[DONE]",
        spread_s=PACED_ANSWER_S,
    )
    out["ttft"] = await closed_loop(
        upstream_port,
        upstream_requests(upstream_port, TTFT_MODEL),
        concurrency=1,
        total=sizes.ttft,
        deadline_s=30,
        marker=b'"content"',
        expect=b"[DONE]",
    )
    return out


def prepare_database(workdir: Path, upstream_port: int) -> tuple[Path, list[str]]:
    template = workdir / "template.sqlite3"
    env = server_env(template, upstream_port)
    subprocess.run(
        [PY, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=TREE,
        env=env,
        check=True,
        timeout=180,
    )
    made = subprocess.run(
        [PY, str(ROOT / "bench" / "setup_db.py"), str(USERS)],
        cwd=TREE,
        env=env,
        check=True,
        timeout=180,
        capture_output=True,
        text=True,
    )
    tokens = json.loads(made.stdout.strip().splitlines()[-1])
    # Fold the WAL into the file, so that copies of it are whole databases.
    with sqlite3.connect(template) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return template, tokens


def overheads(direct: dict[str, Any], chat: dict[str, Any]) -> dict[str, dict[str, float]]:
    out = {}
    for c, result in chat.items():
        base = direct["chat"][c]["latency_ms"]
        mine = result["latency_ms"]
        out[c] = {p: round(mine[p] - base[p], 3) for p in ("p50", "p95", "p99")}
    return out


TARGETS = {
    "overhead_p50_c16_ms": 3.0,
    "overhead_p99_c16_ms": 15.0,
    "rps": 300.0,
    "ttft_overhead_p50_ms": 5.0,
    "kib_per_stream": 100.0,
}


def verdicts(direct: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    over = result["overhead_ms"]["16"]
    base_ttft = direct["ttft"]["ttft_ms"]["p50"]
    load = result["load"]
    checks = {
        "overhead_p50_c16_ms": (over["p50"], over["p50"] <= TARGETS["overhead_p50_c16_ms"]),
        "overhead_p99_c16_ms": (over["p99"], over["p99"] <= TARGETS["overhead_p99_c16_ms"]),
        "rps": (
            load["sustained"]["rps"],
            load["sustained"]["rps"] >= TARGETS["rps"] and load["sustained"]["errors"] == 0,
        ),
        "ttft_overhead_sse_p50_ms": (
            round(load["ttft_sse"]["ttft_ms"]["p50"] - base_ttft, 3),
            load["ttft_sse"]["ttft_ms"]["p50"] - base_ttft <= TARGETS["ttft_overhead_p50_ms"],
        ),
        "ttft_overhead_ws_p50_ms": (
            round(load["ttft_ws"]["ttft_ms"]["p50"] - base_ttft, 3),
            load["ttft_ws"]["ttft_ms"]["p50"] - base_ttft <= TARGETS["ttft_overhead_p50_ms"],
        ),
    }
    for kind in ("sse", "ws"):
        streams = result.get(f"streams_{kind}")
        if streams:
            per = streams["rss_per_stream_kib"]
            ok = (
                streams["errors"] == 0
                and streams["max_open_at_once"] >= streams["streams"]
                and per is not None
                and per <= TARGETS["kib_per_stream"]
            )
            checks[f"streams_{kind}_kib_per_stream"] = (per, ok)
    return {name: {"value": value, "met": met} for name, (value, met) in checks.items()}


def print_table(report: dict[str, Any]) -> None:
    direct = report["direct"]
    print()
    print(
        "upstream direct (ms)   "
        + "  ".join(
            f"c={c}: p50 {r['latency_ms']['p50']:.2f} p99 {r['latency_ms']['p99']:.2f}"
            for c, r in direct["chat"].items()
        )
    )
    paced = direct["paced"]["latency_ms"]
    print(
        f"upstream direct, ~100 ms answers, c={PACED_CONCURRENCY}: "
        f"p50 {paced['p50']:.2f} p99 {paced['p99']:.2f}"
    )
    print(f"upstream TTFT p50      {direct['ttft']['ttft_ms']['p50']:.2f} ms")
    cores = report["config"].get("cores")
    if cores:
        print(
            f"cores                  worker {cores['worker']}, "
            f"upstream and load generator {cores['upstream_and_load']}"
        )
    else:
        print("cores                  not pinned")
    for server, result in report["servers"].items():
        load = result["load"]
        print(f"\n== {server} (one worker) ==")
        print(
            f"{'':24}{'c':>4}{'p50':>9}{'p95':>9}{'p99':>9}{'rps':>9}{'err':>6}"
            f"{'cpu ms/req':>11}{'load':>6}"
        )
        rows = [("floor (trivial view)", load["floor"]), ("chat latency", load["chat"])]
        for label, results in rows:
            for c, r in results.items():
                lat = r["latency_ms"]
                print(
                    f"{label:24}{c:>4}{lat['p50']:>9.2f}{lat['p95']:>9.2f}"
                    f"{lat['p99']:>9.2f}{r['rps']:>9.0f}{r['errors']:>6}"
                    f"{r.get('server_cpu_ms_per_request', 0):>11.2f}{r['loadavg']:>6.1f}"
                )
        for c, o in result["overhead_ms"].items():
            print(f"{'chat overhead':24}{c:>4}{o['p50']:>9.2f}{o['p95']:>9.2f}{o['p99']:>9.2f}")
        paced, o = load["chat_paced"], result["overhead_paced_ms"]
        lat = paced["latency_ms"]
        c = paced["concurrency"]
        print(
            f"{'chat, 100 ms upstream':24}{c:>4}{lat['p50']:>9.2f}{lat['p95']:>9.2f}"
            f"{lat['p99']:>9.2f}{paced['rps']:>9.0f}{paced['errors']:>6}"
            f"{paced.get('server_cpu_ms_per_request', 0):>11.2f}{paced['loadavg']:>6.1f}"
        )
        print(f"{'  its overhead':24}{c:>4}{o['p50']:>9.2f}{o['p95']:>9.2f}{o['p99']:>9.2f}")
        s = load["sustained"]
        print(
            f"sustained: {s['rps']:.0f} req/s over {s['seconds']:.0f} s at c={s['concurrency']}, "
            f"{s['errors']} errors, {s.get('server_cpu_ms_per_request', 0):.2f} ms CPU a request "
            f"(load {s['loadavg']})"
        )
        for kind in ("sse", "ws"):
            t = load[f"ttft_{kind}"]["ttft_ms"]
            print(f"TTFT {kind}: p50 {t['p50']:.2f} p95 {t['p95']:.2f} p99 {t['p99']:.2f} ms")
        for kind in ("sse", "ws"):
            st = result.get(f"streams_{kind}")
            if st:
                print(
                    f"{st['streams']} {kind} streams: max open {st['max_open_at_once']}, "
                    f"completed {st['completed']}, errors {st['errors']}, "
                    f"RSS {st['rss_before_kib'] / 1024:.0f} -> "
                    f"{(st['rss_all_open_kib'] or 0) / 1024:.0f} MiB, "
                    f"{st['rss_per_stream_kib']} KiB/stream"
                )
        print(f"ledger: {load['ledger']}")
        for name, verdict in result["targets"].items():
            met = "MET" if verdict["met"] else "NOT MET"
            print(f"  target {name:32} {verdict['value']!s:>10}  {met}")


def plot(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[dev]')")
        return
    servers = list(report["servers"])
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0][0]
    levels = list(report["direct"]["chat"])
    width = 0.8 / (len(servers) + 1)
    for i, name in enumerate(["upstream", *servers]):
        if name == "upstream":
            source = report["direct"]["chat"]
        else:
            source = report["servers"][name]["load"]["chat"]
        xs = [j + i * width for j in range(len(levels))]
        ax.bar(xs, [source[c]["latency_ms"]["p50"] for c in levels], width, label=f"{name} p50")
        ax.scatter(xs, [source[c]["latency_ms"]["p99"] for c in levels], marker="_", s=200)
    ax.set_xticks([j + width * len(servers) / 2 for j in range(len(levels))])
    ax.set_xticklabels([f"c={c}" for c in levels])
    ax.set_ylabel("ms (bar p50, tick p99)")
    ax.set_title("Non-streaming latency")
    ax.legend()
    ax = axes[0][1]
    for name in servers:
        series = report["servers"][name]["load"]["sustained"]["per_second"]
        ax.plot(range(len(series)), series, label=name)
    ax.axhline(TARGETS["rps"], color="grey", linestyle="--", label="target")
    ax.set_title("Sustained requests per second, one worker")
    ax.set_xlabel("s")
    ax.legend()
    ax = axes[1][0]
    labels, values = ["upstream"], [report["direct"]["ttft"]["ttft_ms"]["p50"]]
    for name in servers:
        for kind in ("sse", "ws"):
            labels.append(f"{name} {kind}")
            values.append(report["servers"][name]["load"][f"ttft_{kind}"]["ttft_ms"]["p50"])
    ax.bar(labels, values)
    ax.set_ylabel("ms")
    ax.set_title("Time to first token, P50")
    ax = axes[1][1]
    for name in servers:
        for kind in ("sse", "ws"):
            st = report["servers"][name].get(f"streams_{kind}")
            if st and st["timeline"]:
                ts = [t for t, _, _ in st["timeline"]]
                ax.plot(ts, [o for _, o, _ in st["timeline"]], label=f"{name} {kind} open")
    ax.set_title("Concurrent streams held")
    ax.set_xlabel("s")
    ax.legend()
    fig.suptitle(f"Vanilla Game Platform benchmark, {report['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"plot: {path.relative_to(ROOT)}")


async def main_async(args) -> dict[str, Any]:
    cores = None if args.no_pin else pin_cores()
    workdir = Path(tempfile.mkdtemp(prefix="vgp-bench-"))
    upstream_port = free_port()
    upstream = Proc(
        "upstream",
        [PY, str(ROOT / "bench" / "upstream.py"), str(upstream_port), "1800"],
        dict(os.environ),
        workdir / "upstream.log",
    )
    try:
        await wait_http(upstream_port, "/stats", 20, upstream)
        template, tokens = prepare_database(workdir, upstream_port)
        suite = Suite(args, workdir, template, upstream_port, tokens)
        report: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
            },
            "config": {
                "tree": str(TREE),
                "users": USERS,
                "quick": args.quick,
                "sustain_concurrency": args.sustain_concurrency,
                "streams": suite.sizes.streams,
                "stream_pace_ms": suite.sizes.pace_ms,
                "stream_pieces": suite.sizes.pieces,
                "cores": cores,
            },
            "targets": TARGETS,
            "servers": {},
        }
        print("upstream baseline…", flush=True)
        report["direct"] = await direct_baseline(upstream_port, suite.sizes)
        for server in args.servers:
            print(f"{server}: load…", flush=True)
            result: dict[str, Any] = {"load": await suite.load(server)}
            result["overhead_ms"] = overheads(report["direct"], result["load"]["chat"])
            base, mine = report["direct"]["paced"]["latency_ms"], result["load"]["chat_paced"]
            result["overhead_paced_ms"] = {
                p: round(mine["latency_ms"][p] - base[p], 3) for p in ("p50", "p95", "p99")
            }
            if not args.no_streams:
                for kind in ("sse", "ws"):
                    print(f"{server}: {suite.sizes.streams} {kind} streams…", flush=True)
                    result[f"streams_{kind}"] = await suite.streams(server, kind)
            result["targets"] = verdicts(report["direct"], result)
            report["servers"][server] = result
        return report
    finally:
        upstream.stop()
        if args.keep:
            print(f"logs and databases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _runner():
    """uvloop when installed: the load generator should cost the server little."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="latest", help="bench/results/<name>.json and .png")
    parser.add_argument("--servers", default=None, help="comma list: daphne,uvicorn")
    parser.add_argument("--quick", action="store_true", help="fewer requests (about a minute)")
    parser.add_argument("--no-streams", action="store_true", help="skip the 1,000-stream tests")
    parser.add_argument("--sustain-concurrency", type=int, default=32)
    parser.add_argument("--no-pin", action="store_true", help="no core of its own for the worker")
    parser.add_argument("--keep", action="store_true", help="keep logs and databases")
    parser.add_argument(
        "--tree", type=Path, default=None, help="run the platform from this checkout instead"
    )
    args = parser.parse_args()
    if args.tree is not None:
        global TREE
        TREE = args.tree.resolve()
    if args.servers is None:
        servers = ["daphne"]
        try:
            import uvicorn  # noqa: F401

            servers.append("uvicorn")
        except ImportError:
            print("uvicorn is not installed: measuring Daphne only")
        args.servers = servers
    else:
        args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    # Three thousand sockets and more are open at once in the stream tests.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report = _runner()(main_async(args))
    report["duration_s"] = round(time.monotonic() - started, 1)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(report)
    print(f"\nresults: {out.relative_to(ROOT)} ({report['duration_s']:.0f} s)")
    plot(report, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
