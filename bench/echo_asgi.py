"""Baseline for bench/ws_relay.py: a bare Channels WebSocket consumer that echoes every frame.

`daphne bench.echo_asgi:application` (from the repository root). No Django project, no channel
layer, no middleware: what one WebSocket costs in daphne + Channels before any of our code runs.
"""

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter
from django.conf import settings

if not settings.configured:
    # Only what Channels reads; the layer alias below is not configured, so there is no layer.
    settings.configure(CHANNEL_LAYERS={})


class EchoConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = "none"  # not in CHANNEL_LAYERS: the consumer gets no channel layer

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


application = ProtocolTypeRouter({"websocket": EchoConsumer.as_asgi()})
