"""WebSockets while Redis is down: the page is told why and retries, instead of a failed handshake.

The channel layer lives in Redis. With the pub/sub layer, a consumer subscribes to its own channel
before it sees the client's `websocket.connect`; when Redis is unreachable that raises, and the
browser would only see the handshake fail (1006: "cannot reach the server"). `LayerOutageMixin`
accepts the socket instead, sends an `error` frame with code `live_unavailable` and closes with
4503, which the pages answer with "Live features are unavailable at the moment. Reconnecting…" and
a reconnect with backoff (static/js/live-room.js, static/js/notifications.js).
"""

from __future__ import annotations

import asyncio
import json
import logging

from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Application close code: the live backend (Redis) is unavailable; retry with backoff.
CLOSE_UNAVAILABLE = 4503
LAYER_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


def backend_down(error: BaseException) -> bool:
    """Whether `error` says Redis (the channel layer, the room registry) cannot be reached."""
    return isinstance(error, LAYER_ERRORS)


class LayerOutageMixin:
    """Put before the consumer class: an outage at the socket's start becomes an explained close."""

    unavailable_message = "Live updates are unavailable at the moment. Reconnecting by itself…"

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except LAYER_ERRORS as error:
            if hasattr(self, "channel_receive"):
                raise  # the layer was reached: a failure later on is not this mixin's to explain
            logger.warning("WebSocket %s refused, channel layer unavailable: %r", scope.get("path"), error)
            await self._refuse_unavailable(receive, send)

    async def _refuse_unavailable(self, receive, send) -> None:
        message = await receive()
        if message.get("type") != "websocket.connect":
            return
        frame = {
            "type": "error",
            "code": "live_unavailable",
            "message": self.unavailable_message,
            "close_code": CLOSE_UNAVAILABLE,
        }
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(frame)})
        await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
