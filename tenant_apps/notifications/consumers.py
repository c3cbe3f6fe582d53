"""`/ws/notifications/`: a per-user stream of events for any open page of the institution's site."""

import json
import logging
import time

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from shared.core.token_bucket import TokenBucket
from shared.core.websocket import CLOSE_UNAVAILABLE, LAYER_ERRORS, LayerOutageMixin
from tenants.websocket import DirectDispatchMixin

from .push import user_group

logger = logging.getLogger(__name__)


# What a page sends is a ping every half minute (static/js/notifications.js); these limits leave
# room for many tabs' worth of reconnects and nothing like a flood (docs/notifications.md).
FRAME_MAX_BYTES = 4 * 1024
MESSAGES_PER_SECOND = 2
MESSAGE_BURST = 10
# More refused (throttled) frames than this within the window closes the socket with 4429.
FLOOD_STRIKES = 50
FLOOD_WINDOW_SECONDS = 60
CLOSE_THROTTLED = 4429  # as the live room's


class NotificationsConsumer(LayerOutageMixin, DirectDispatchMixin, AsyncJsonWebsocketConsumer):
    group: str | None = None
    closing = False

    async def connect(self):
        user = self.scope["user"]
        await self.accept()
        if not user.is_authenticated:
            await self.send_json({"type": "error", "code": "unauthenticated", "message": "Please sign in."})
            return await self.close(code=4401)
        group = user_group(user.pk, schema_name=self.scope["tenant"].schema_name)
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except LAYER_ERRORS as error:
            # Redis is down: say so and close; the page reconnects with backoff (static/js/notifications.js).
            logger.warning("notifications socket unavailable: %r", error)
            frame = {"type": "error", "code": "live_unavailable", "message": self.unavailable_message}
            await self.send_json(frame)
            return await self.close(code=CLOSE_UNAVAILABLE)
        self.group = group
        self.bucket = TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
        self.strikes, self.strikes_since = 0, time.monotonic()
        await self.send_json({"type": "ready"})

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """The page only pings; anything else gets an error frame, and a flood closes the socket."""
        if self.group is None or self.closing:
            return
        if not self.bucket.take():
            now = time.monotonic()
            if now - self.strikes_since > FLOOD_WINDOW_SECONDS:
                self.strikes, self.strikes_since = 0, now
            self.strikes += 1
            if self.strikes > FLOOD_STRIKES:
                self.closing = True
                await self._error(
                    "flooding", "Too many messages: this connection is closed.", CLOSE_THROTTLED
                )
                return await self.close(code=CLOSE_THROTTLED)
            return await self._error("throttled", "Too many messages: slow down.")
        if text_data is None:
            return await self._error("bad_message", "Send JSON text frames.")
        if (
            len(text_data) > FRAME_MAX_BYTES
            or len(text_data.encode("utf-8", "surrogatepass")) > FRAME_MAX_BYTES
        ):
            return await self._error("too_large", f"Messages are limited to {FRAME_MAX_BYTES} bytes.")
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            return await self._error("bad_json", "That was not valid JSON.")
        if not isinstance(content, dict):
            return await self._error("bad_message", "A message is a JSON object with a type.")
        if content.get("type") == "ping":
            return await self.send_json({"type": "pong"})
        await self._error("unsupported", "This socket only sends.")

    async def _error(self, code: str, message: str, close_code: int | None = None) -> None:
        frame = {"type": "error", "code": code, "message": message}
        if close_code is not None:
            frame["close_code"] = close_code
        await self.send_json(frame)

    async def notification_push(self, message):
        await self.send_json({"type": message["event"], **message["payload"]})
