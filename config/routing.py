"""WebSocket URLs of an institution's site."""

from django.urls import path

from tenant_apps.notifications.consumers import NotificationsConsumer
from tenant_apps.sessions.consumers import LiveRoomConsumer

websocket_urlpatterns = [
    path("ws/sessions/<int:booking_id>/", LiveRoomConsumer.as_asgi(), {"room_kind": "booking"}),
    path("ws/groups/<int:group_id>/", LiveRoomConsumer.as_asgi(), {"room_kind": "group"}),
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
]
