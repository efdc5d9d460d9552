"""The WebSocket protocol of /ws/inference/ (see DESIGN.md, "WebSocket").

One socket carries many requests, told apart by `id`. The consumer only parses
messages, calls the gateway, and sends what the run yields; limits, quotas and
usage records are the gateway's, exactly as for HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from pydantic import ValidationError

from accounts.auth import Principal, authenticate_scope, websocket_subprotocol
from inference.backends.base import TextDelta
from inference.errors import ApiError, InvalidRequest, PayloadTooLarge, RateLimitExceeded
from inference.rendering import stream_end_message
from inference.schemas import ChatIn, normalize_chat
from inference.services import ChatResult, chat_start, uses_sqlite

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
MAX_ID_LENGTH = 200


def _too_large(text: str) -> bool:
    """Whether a text frame is over WS_MAX_MESSAGE_BYTES. The bound is in bytes
    on the wire, and a character takes up to four of them."""
    limit = settings.WS_MAX_MESSAGE_BYTES
    if len(text) * 4 <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"request.{field}: {error.get('msg', 'invalid value')}")
    return "; ".join(problems[:5])


class InferenceConsumer(AsyncJsonWebsocketConsumer):
    principal: Principal | None = None

    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch, without its database clean-up on SQLite.

        Before every message Channels closes the database connections of
        asgiref's thread for sync code that are past `CONN_MAX_AGE`, which is 0:
        all of them. That is a thread hop on every message, and on SQLite the
        database file reopened by the next query there (a room's turns are saved
        from that thread). A SQLite connection is a file handle with nothing at
        the other end to break, so there it is kept. (The gateway's own queries
        run on threads of their own, `inference.services.run_db`.) On PostgreSQL
        Channels' clean-up stays: it hands that thread's connection back to the
        pool.
        """
        if not uses_sqlite():
            await super().dispatch(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.tasks: dict[str, asyncio.Task] = {}
        # Requests whose cancellation was already reported (with more detail,
        # e.g. a room turn's), so it is not reported twice.
        self.ended: set[str] = set()
        try:
            self.principal = await authenticate_scope(self.scope)
        except ApiError:
            # Close before accepting: browsers see a failed handshake; other
            # clients get the 4401 close code.
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        await self.accept(subprotocol=websocket_subprotocol(self.scope))

    async def disconnect(self, code: int) -> None:
        from games.realtime import rooms_leave_all

        await rooms_leave_all(consumer=self)
        tasks = list(getattr(self, "tasks", {}).values())
        for task in tasks:
            task.cancel()
        if tasks:
            # Each cancelled run settles its usage before it ends.
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- incoming ------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if text_data is None:
            await self.send_error(None, InvalidRequest("Send JSON text frames, not binary."))
            return
        if _too_large(text_data):
            await self.send_error(
                None,
                PayloadTooLarge(f"A message may be at most {settings.WS_MAX_MESSAGE_BYTES} bytes."),
            )
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            # RecursionError: nesting deeper than the parser goes ("[[[[…"),
            # which must not take the socket down with it.
            await self.send_error(None, InvalidRequest("The message is not valid JSON."))
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs) -> None:
        if not isinstance(content, dict):
            await self.send_error(None, InvalidRequest("A message must be a JSON object."))
            return
        kind = content.get("type")
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "inference":
            await self.start_inference(content)
        elif kind == "cancel":
            await self.cancel(content.get("id"))
        elif kind in ("join", "leave"):
            from games.realtime import room_join, room_leave

            await (room_join if kind == "join" else room_leave)(consumer=self, content=content)
        else:
            await self.send_error(
                content.get("id") if isinstance(content.get("id"), str) else None,
                InvalidRequest("type: expected one of inference, cancel, ping, join, leave."),
            )

    async def room_message(self, event: dict) -> None:
        """A turn in a room this socket joined (games.realtime), unless it is this
        socket's own turn: that one it has already had, with its request id."""
        if event.get("sender") != self.channel_name:
            await self.send_json(event["message"])

    def _request_id(self, content: dict) -> str | None:
        request_id = content.get("id")
        if isinstance(request_id, int) and not isinstance(request_id, bool):
            request_id = str(request_id)
        if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_ID_LENGTH:
            return None
        return request_id

    async def start_inference(self, content: dict) -> None:
        request_id = self._request_id(content)
        if request_id is None:
            await self.send_error(None, InvalidRequest("id: a non-empty string is required."))
            return
        if request_id in self.tasks:
            await self.send_error(
                request_id, InvalidRequest("id: a request with this id is running.")
            )
            return
        if len(self.tasks) >= settings.WS_MAX_IN_FLIGHT:
            await self.send_error(
                request_id,
                RateLimitExceeded(
                    f"At most {settings.WS_MAX_IN_FLIGHT} requests may run at once on a socket."
                ),
            )
            return
        try:
            body = ChatIn.model_validate(content.get("request"))
            chat_request = normalize_chat(body)
        except ValidationError as exc:
            await self.send_error(request_id, InvalidRequest(_validation_message(exc)))
            return
        except ApiError as error:
            await self.send_error(request_id, error)
            return
        task = asyncio.create_task(self.run_inference(request_id, body, chat_request))
        self.tasks[request_id] = task
        self.ended.discard(request_id)
        task.add_done_callback(lambda _: self.tasks.pop(request_id, None))

    async def cancel(self, request_id: Any) -> None:
        task = self.tasks.get(str(request_id)) if request_id is not None else None
        if task is None:
            await self.send_error(
                request_id if isinstance(request_id, str) else None,
                InvalidRequest("id: no request with this id is running."),
            )
            return
        task.cancel()

    # --- one request ---------------------------------------------------------------

    async def run_inference(self, request_id: str, body: ChatIn, chat_request) -> None:
        assert self.principal is not None
        run = None
        try:
            if body.conversation is not None:
                from games.realtime import conversation_stream

                await conversation_stream(
                    consumer=self, request_id=request_id, body=body, chat_request=chat_request
                )
                return
            run = await chat_start(principal=self.principal, request=chat_request)
            async for event in run.events():
                if isinstance(event, TextDelta) and event.text:
                    await self.send_json(
                        {"type": "stream_chunk", "id": request_id, "content": event.text}
                    )
            await self.send_json({**stream_end_message(run.result), "id": request_id})
        except ApiError as error:
            await self.send_error(request_id, error)
        except asyncio.CancelledError:
            if request_id not in self.ended:
                await self.send_cancelled(request_id, run)
            raise
        except Exception:
            logger.exception("websocket request %s failed", request_id)
            await self.send_error(request_id, InvalidRequest("The request could not be handled."))
        await self.send_token_usage(run)

    async def send_cancelled(self, request_id: str, run, **extra: Any) -> None:
        """A cancelled request ends with `stream_end`, finish reason `cancelled`,
        and what was counted (nothing, if it had not reached a backend yet)."""
        self.ended.add(request_id)
        try:
            if run is not None:
                message = {**stream_end_message(run.result), "id": request_id}
            else:
                message = {
                    "type": "stream_end",
                    "id": request_id,
                    "usage": ChatResult(id="", model="", backend="").usage_dict(),
                }
            message.update(extra)
            message["finish_reason"] = "cancelled"
            await self.send_json(message)
            await self.send_token_usage(run)
        except Exception:  # the socket may be gone already
            pass

    async def send_token_usage(self, run=None) -> None:
        """The user's quota figures after a request: limits, used, reserved and
        remaining tokens. Those of the request's own settlement when it has one
        (no query), else read (two small queries)."""
        from usage.selectors import ausage_quota

        assert self.principal is not None
        try:
            figures = run.result.quota if run is not None else None
            if not figures:
                figures = await ausage_quota(user=self.principal.user)
            await self.send_json({"type": "token_usage", "usage": figures})
        except Exception:
            logger.debug("sending token_usage failed", exc_info=True)

    async def send_error(self, request_id: str | None, error: ApiError) -> None:
        message: dict[str, Any] = {"type": "error", **error.to_dict()}
        if request_id is not None:
            message["id"] = request_id
        await self.send_json(message)

    @classmethod
    async def encode_json(cls, content) -> str:
        return json.dumps(content, separators=(",", ":"), default=str)
