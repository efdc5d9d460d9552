"""A fake Ollama server speaking the native API (PROTOCOLS.md §2).

Served on a real socket, so the official `ollama` SDK (sync or async) and the
platform's Ollama backend talk to it exactly as they would to a real Ollama.

Counts are deterministic: the prompt is one token per word of the messages'
content (`count_words`), the reply one token per streamed word
(`reply_tokens`), and a tool call counts the words of its JSON.

Switches (reset between tests by `reset()`):

- `models`: the names `/api/tags` lists and `/api/chat` accepts
  (`"x"` and `"x:latest"` are the same model);
- `fill`: the reply runs until `num_predict` (done_reason `length`);
- `reply_length`: words in a reply when not filling;
- `omit_counts`: leave out `prompt_eval_count`/`eval_count`, as Ollama does
  for some answers (a prompt served from its cache, say);
- `version`: what `/api/version` reports.

Faults (`script(...)`) apply to `POST /api/chat` only, so a model listing never
eats a fault meant for a chat.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.server import (
    FakeUpstream,
    Fault,
    Request,
    Response,
    count_words,
    reply_tokens,
)

DEFAULT_MODELS = ("llama3.2:latest", "qwen3:0.6b")
# With no `num_predict` Ollama generates until the model stops; this caps a
# `fill` reply so that an unbounded request still ends.
UNBOUNDED_FILL = 256
NS_PER_PROMPT_TOKEN = 2_000_000
NS_PER_REPLY_TOKEN = 20_000_000
LOAD_NS = 1_500_000


def _compact(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def canonical_model(name: str) -> str:
    """Ollama's equivalence of `name` and `name:latest`."""
    return name if ":" in name else f"{name}:latest"


def example_arguments(parameters: dict[str, Any]) -> dict[str, Any]:
    """Arguments a model might fill in: one value per required property."""
    properties = parameters.get("properties") or {}
    arguments: dict[str, Any] = {}
    for name in parameters.get("required") or []:
        schema = properties.get(name) or {}
        if schema.get("enum"):
            arguments[name] = schema["enum"][0]
            continue
        kind = schema.get("type", "string")
        if isinstance(kind, list):
            kind = kind[0] if kind else "string"
        arguments[name] = {
            "integer": 1,
            "number": 1.5,
            "boolean": True,
            "array": [],
            "object": {},
        }.get(kind, f"example {name}")
    return arguments


class FakeOllama(FakeUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.reset_options()

    def reset_options(self) -> None:
        self.models: list[str] = list(DEFAULT_MODELS)
        self.fill = False
        self.reply_length = 12
        self.omit_counts = False
        self.version = "0.12.6"
        self.loaded: dict[str, datetime] = {}

    # --- faults and errors ------------------------------------------------------------

    def counts_for_faults(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/api/chat"

    def error_body(self, status: int) -> Any:
        return {
            "error": "an error was encountered while running the model"
            if status >= 500
            else f"status {status}"
        }

    def chat_requests(self) -> list[dict[str, Any]]:
        """The bodies of the chat requests received, oldest first."""
        return [r.json() for r in self.requests if r.path == "/api/chat" and r.body]

    # --- routing ---------------------------------------------------------------------------

    async def handle(self, request: Request, response: Response, fault: Fault | None) -> None:
        route = (request.method, request.path)
        if request.path == "/" and request.method in ("GET", "HEAD"):
            text = "Ollama is running"
            if request.method == "HEAD":
                # The same head as GET, without the body.
                await response.send(
                    200, b"", "text/plain; charset=utf-8", {"content-length": str(len(text))}
                )
            else:
                await response.send_text(200, text)
        elif route == ("GET", "/api/tags"):
            await response.send_json(200, {"models": [self._model_entry(m) for m in self.models]})
        elif route == ("HEAD", "/api/tags"):
            await response.send(200, b"", "application/json")
        elif route == ("GET", "/api/version"):
            await response.send_json(200, {"version": self.version})
        elif route == ("GET", "/api/ps"):
            await response.send_json(200, {"models": self._loaded_entries()})
        elif route == ("POST", "/api/chat"):
            await self._chat(request, response, fault)
        else:
            # Ollama's router (gin) answers unknown routes with a plain-text 404.
            await response.send_text(404, "404 page not found")

    # --- model listings --------------------------------------------------------------------

    def _find_model(self, name: str) -> str | None:
        wanted = canonical_model(name)
        for model in self.models:
            if canonical_model(model) == wanted:
                return model
        return None

    def _model_entry(self, name: str) -> dict[str, Any]:
        family = name.split(":", 1)[0].rstrip("0123456789.")
        return {
            "name": name,
            "model": name,
            "modified_at": "2026-11-01T12:00:00.000000000Z",
            "size": 2_019_393_189,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": family,
                "families": [family],
                "parameter_size": "3.2B",
                "quantization_level": "Q4_K_M",
            },
        }

    def _loaded_entries(self) -> list[dict[str, Any]]:
        entries = []
        for name, expires in self.loaded.items():
            entry = self._model_entry(name)
            del entry["modified_at"]
            entry.update(
                expires_at=expires.isoformat().replace("+00:00", "Z"),
                size_vram=entry["size"],
                context_length=4096,
            )
            entries.append(entry)
        return entries

    # --- chat ---------------------------------------------------------------------------------

    async def _chat(self, request: Request, response: Response, fault: Fault | None) -> None:
        if not request.body:
            await response.send_json(400, {"error": "missing request body"})
            return
        try:
            body = request.json()
        except ValueError:
            await response.send_json(
                400, {"error": "invalid character looking for beginning of value"}
            )
            return
        if not isinstance(body, dict):
            await response.send_json(400, {"error": "json: cannot unmarshal into chat request"})
            return
        name = body.get("model") or ""
        if not name:
            await response.send_json(400, {"error": "model is required"})
            return
        model = self._find_model(name)
        if model is None:
            await response.send_json(404, {"error": f"model '{name}' not found"})
            return
        self.loaded[model] = datetime.now(UTC) + timedelta(minutes=5)

        messages = body.get("messages") or []
        options = body.get("options") or {}
        tool_call = self._tool_call(messages, body.get("tools") or [])
        pieces, done_reason = self._reply(options) if tool_call is None else ([], "stop")
        prompt_count = sum(count_words(str(m.get("content") or "")) for m in messages)
        if tool_call is not None:
            reply_count = count_words(_compact(tool_call["function"]))
        else:
            reply_count = len(pieces)
        final = self._final_chunk(body["model"], done_reason, prompt_count, reply_count)

        if body.get("stream", True) is False:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces)}
            if tool_call is not None:
                message["tool_calls"] = [tool_call]
            await response.send_json(200, {**final, "message": message})
            return

        await response.start_stream(200, "application/x-ndjson")
        for sent, piece in enumerate(pieces):
            if fault is not None and sent == fault.after_chunks:
                if fault.kind == "mid_stream_error":
                    await response.write(_compact({"error": fault.message}) + "\n")
                    await response.end_stream()
                    return
                if fault.kind == "mid_stream_drop":
                    response.drop()
                    return
            await response.write(self._chunk(body["model"], {"content": piece}) + "\n")
        if fault is not None and fault.kind == "mid_stream_error":
            # Fewer chunks than scripted: the error still comes before the end.
            await response.write(_compact({"error": fault.message}) + "\n")
            await response.end_stream()
            return
        if fault is not None and fault.kind == "mid_stream_drop":
            response.drop()
            return
        if tool_call is not None:
            await response.write(
                self._chunk(body["model"], {"content": "", "tool_calls": [tool_call]}) + "\n"
            )
        final["message"] = {"role": "assistant", "content": ""}
        await response.write(_compact(final) + "\n")
        # Counted before the last bytes go out: a client may read them and look
        # at this counter before this coroutine runs again.
        self.completed_streams += 1
        await response.end_stream()

    def _reply(self, options: dict[str, Any]) -> tuple[list[str], str]:
        num_predict = options.get("num_predict")
        if isinstance(num_predict, int) and num_predict > 0:
            pieces, cut = reply_tokens(num_predict, fill=self.fill, length=self.reply_length)
        else:
            length = UNBOUNDED_FILL if self.fill else self.reply_length
            pieces, cut = reply_tokens(length, fill=False, length=length)
            cut = False
        stops = [s for s in options.get("stop") or [] if s]
        text = "".join(pieces)
        hits = [(text.find(s), s) for s in stops if s in text]
        if hits:
            # Like Ollama: the reply ends before the stop sequence, which is not sent.
            at = min(hits)[0]
            kept: list[str] = []
            used = 0
            for piece in pieces:
                if used + len(piece) >= at:
                    if at - used > 0:
                        kept.append(piece[: at - used])
                    break
                kept.append(piece)
                used += len(piece)
            return kept, "stop"
        return pieces, "length" if cut else "stop"

    def _tool_call(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        if not tools or not messages or messages[-1].get("role") != "user":
            return None
        said = str(messages[-1].get("content") or "").lower()
        for tool in tools:
            function = tool.get("function") or {}
            name = function.get("name") or ""
            if name and name.lower() in said:
                arguments = example_arguments(function.get("parameters") or {})
                return {"function": {"index": 0, "name": name, "arguments": arguments}}
        return None

    def _chunk(self, model: str, message: dict[str, Any]) -> str:
        return _compact(
            {
                "model": model,
                "created_at": _now(),
                "message": {"role": "assistant", **message},
                "done": False,
            }
        )

    def _final_chunk(
        self, model: str, done_reason: str, prompt_count: int, reply_count: int
    ) -> dict[str, Any]:
        metrics = {
            "total_duration": LOAD_NS
            + prompt_count * NS_PER_PROMPT_TOKEN
            + reply_count * NS_PER_REPLY_TOKEN,
            "load_duration": LOAD_NS,
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": prompt_count * NS_PER_PROMPT_TOKEN,
            "eval_count": reply_count,
            "eval_duration": reply_count * NS_PER_REPLY_TOKEN,
        }
        if self.omit_counts:
            del metrics["prompt_eval_count"], metrics["eval_count"]
        chunk: dict[str, Any] = {
            "model": model,
            "created_at": _now(),
            "done": True,
            "done_reason": done_reason,
        }
        # Ollama leaves zero-valued metrics out of the final chunk.
        chunk.update({key: value for key, value in metrics.items() if value})
        return chunk


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ollama_server() -> Iterator[FakeOllama]:
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ollama_server_b() -> Iterator[FakeOllama]:
    """A second, independent Ollama host (failover and load-sharing tests)."""
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture
def ollama_upstream(ollama_server: FakeOllama) -> Iterator[FakeOllama]:
    ollama_server.reset()
    yield ollama_server
    ollama_server.reset()


@pytest.fixture
def ollama_upstream_b(ollama_server_b: FakeOllama) -> Iterator[FakeOllama]:
    ollama_server_b.reset()
    yield ollama_server_b
    ollama_server_b.reset()
