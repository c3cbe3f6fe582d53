"""`/ws/notifications/`: a per-user stream of events for any open page of the institution's site."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from tenants.websocket import DirectDispatchMixin

from .push import user_group


class NotificationsConsumer(DirectDispatchMixin, AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope["user"]
        await self.accept()
        if not user.is_authenticated:
            await self.send_json({"type": "error", "code": "unauthenticated", "message": "Please sign in."})
            return await self.close(code=4401)
        self.group = user_group(user.pk, schema_name=self.scope["tenant"].schema_name)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json({"type": "ready"})

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            return await self.send_json({"type": "pong"})
        await self.send_json({"type": "error", "code": "unsupported", "message": "This socket only sends."})

    async def decode_json(self, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def notification_push(self, message):
        await self.send_json({"type": message["event"], **message["payload"]})
