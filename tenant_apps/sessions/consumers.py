"""The live-room socket: a participant joins a booking's or group session's room; WebRTC
signalling is relayed to one named peer, chat and presence to the room (docs/live-protocol.md).

Nothing here is process-local except this connection's own state: who is in a room lives in
Redis (`PeerRegistry`), messages travel through the channel layer, so a room works across any
number of server processes.
"""

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from shared.core.errors import ApplicationError
from shared.core.token_bucket import TokenBucket
from shared.core.websocket import LayerOutageMixin, backend_down
from tenant_apps.notifications.push import push_to_users
from tenants.websocket import DirectDispatchMixin, in_tenant

from . import live
from .live import (
    CLOSE_ENDED,
    CLOSE_FORBIDDEN,
    CLOSE_THROTTLED,
    CLOSE_UNAVAILABLE,
    LIVE_UNAVAILABLE_MESSAGE,
    MAX_PARTICIPANTS,
    Room,
    RoomRefused,
)
from .live_registry import PeerRegistry

logger = logging.getLogger(__name__)

# Throttling, per connection (docs/live-protocol.md#limits). Every frame costs a token.
MESSAGES_PER_SECOND = 30
MESSAGE_BURST = 60
CHAT_PER_SECOND = 5
CHAT_BURST = 5
# More refused (throttled) frames than this within the window closes the socket with 4429.
FLOOD_STRIKES = 200
FLOOD_WINDOW_SECONDS = 60
SDP_MAX_CHARS = 32 * 1024
PEER_ID_MAX_CHARS = 64
ICE_FIELDS = {"candidate": 4096, "sdpMid": 64, "usernameFragment": 256}  # field → max length


class FrameError(Exception):
    """A client frame is refused: the sender gets an error frame, the room carries on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- Who is in a room, shared by every server process -------------------------------------------


# One client (and connection pool) per event loop: daphne has one loop; tests make one per run.
def _public(record: dict) -> dict:
    """A peer as the page sees it: never its channel name."""
    return {key: value for key, value in record.items() if key != "channel"}


# --- Database work, run through in_tenant ------------------------------------------------------


def _room_enter(*, room: Room, user) -> tuple[int, list[dict], list[dict]]:
    return (
        live.attendance_start(room=room, user=user),
        live.chat_history(room=room),
        live.ice_servers_for(user=user),
    )


def _room_exit(*, room: Room, attendance_id: int | None) -> None:
    if attendance_id is not None:
        live.attendance_end(attendance_id=attendance_id)
    if room.kind == "booking" and timezone.now() > room.closes_at:
        from .models import Booking

        booking = Booking.objects.select_related("mentor").get(pk=room.room_id)
        # Another participant's exit may have settled it a moment ago.
        with contextlib.suppress(ApplicationError):
            live.attendance_settle(booking=booking)


# --- The consumer --------------------------------------------------------------------------------


class LiveRoomConsumer(LayerOutageMixin, DirectDispatchMixin, AsyncJsonWebsocketConsumer):
    unavailable_message = LIVE_UNAVAILABLE_MESSAGE
    room: Room | None = None
    left = False
    closing = False

    async def connect(self) -> None:
        # Accept first: a refusal is then an error frame the page can explain, and a close code.
        await self.accept()
        self.user = self.scope["user"]
        self.peer_id = secrets.token_urlsafe(9)
        self.peer_channels: dict[str, str] = {}  # other peers of the room → their channel
        self.state = {"audio": False, "video": False, "screen": False}
        self.attendance_id: int | None = None
        # The heartbeat waits as a timer, not as a sleeping task: one small handle per socket.
        self.beat: asyncio.TimerHandle | None = None
        self.beat_task: asyncio.Task | None = None
        self.bucket = TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
        self.chat_bucket = TokenBucket(CHAT_PER_SECOND, CHAT_BURST)
        self.strikes, self.strikes_since = 0, time.monotonic()
        kwargs = self.scope["url_route"]["kwargs"]
        kind = kwargs["room_kind"]
        room_id = kwargs["booking_id"] if kind == "booking" else kwargs["group_id"]
        room = None
        try:
            room = await in_tenant(self.scope, live.room_join, user=self.user, kind=kind, room_id=room_id)
            await self._enter(room)
        except RoomRefused as refusal:
            await self._refuse(refusal.code, refusal.message, refusal.close_code)
        except Exception as error:
            unavailable = backend_down(error)
            if unavailable:
                logger.warning("live room %s/%s unavailable: %r", kind, room_id, error)
            else:
                logger.exception("joining live room %s/%s failed", kind, room_id)
            with contextlib.suppress(Exception):  # undo what can be undone; the cause is logged
                await self._leave()
                if room is not None:
                    await self.channel_layer.group_discard(room.group, self.channel_name)
            if unavailable:
                await self._refuse("live_unavailable", LIVE_UNAVAILABLE_MESSAGE, CLOSE_UNAVAILABLE)
            else:
                await self._refuse("server_error", "The room could not be opened. Please try again.", 1011)

    async def _enter(self, room: Room) -> None:
        registry = PeerRegistry(room.group)
        is_mentor = self.user.pk == room.mentor_id
        self.record = {
            "peer_id": self.peer_id,
            "user_id": self.user.pk,
            "name": room.participants.get(self.user.pk, self.user.full_name),
            "is_mentor": is_mentor,
            "seq": await registry.next_seq(),
            **self.state,
            "channel": self.channel_name,
        }
        # Listen to the room before registering: whoever registers after us is then heard.
        await self.channel_layer.group_add(room.group, self.channel_name)
        outcome, others, gone = await registry.join(self.peer_id, self.record)
        await self._announce_gone(room, gone)
        if outcome != PeerRegistry.JOINED:
            await self.channel_layer.group_discard(room.group, self.channel_name)
            if outcome == PeerRegistry.ENDED:
                return await self._refuse("ended", "The mentor has ended this session.", CLOSE_ENDED)
            return await self._refuse(
                "room_full", f"This room is full ({MAX_PARTICIPANTS} people at most).", CLOSE_FORBIDDEN
            )
        self.room, self.registry = room, registry
        self.peer_channels = {peer["peer_id"]: peer["channel"] for peer in others}
        self.attendance_id, chat, ice_servers = await in_tenant(
            self.scope, _room_enter, room=room, user=self.user
        )
        await self.send_json(
            {
                "type": "joined",
                "peer_id": self.peer_id,
                "seq": self.record["seq"],
                "room": room.as_dict(),
                "peers": [_public(peer) for peer in sorted(others, key=lambda peer: peer["seq"])],
                "chat": chat,
                "ice_servers": ice_servers,
                "you": {"user_id": self.user.pk, "name": self.record["name"], "is_mentor": is_mentor},
            }
        )
        await self.channel_layer.group_send(room.group, {"type": "live.peer_joined", "peer": self.record})
        seconds_left = int((room.closes_at - timezone.now()).total_seconds()) + 1
        if is_mentor and await registry.first_start(seconds_left):
            await in_tenant(
                self.scope,
                push_to_users,
                user_ids=[user_id for user_id in room.participants if user_id != room.mentor_id],
                event="session.starting",
                payload={
                    "kind": room.kind,
                    "room_id": room.room_id,
                    "title": room.title,
                    "starts_at": room.starts_at.isoformat(),
                },
            )
        self._schedule_beat()

    async def _announce_gone(self, room: Room, peer_ids: list[str]) -> None:
        """Peers whose server process died never said goodbye: say it for them."""
        for peer_id in peer_ids:
            await self.channel_layer.group_send(room.group, {"type": "live.peer_left", "peer_id": peer_id})

    async def _refuse(self, code: str, message: str, close_code: int) -> None:
        self.closing = True
        await self.send_json({"type": "error", "code": code, "message": message, "close_code": close_code})
        await self.close(code=close_code)

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        """Idempotent: a `leave` message, a dropped socket and a failed join all end here."""
        room = self.room
        if room is None or self.left:
            return
        self.left = True
        if self.beat is not None:
            self.beat.cancel()
        if self.beat_task is not None and self.beat_task is not asyncio.current_task():
            self.beat_task.cancel()
        try:
            await self.registry.leave(self.peer_id)
            await self.channel_layer.group_send(
                room.group, {"type": "live.peer_left", "peer_id": self.peer_id}
            )
        finally:
            await self.channel_layer.group_discard(room.group, self.channel_name)
            await in_tenant(self.scope, _room_exit, room=room, attendance_id=self.attendance_id)

    def _schedule_beat(self) -> None:
        """The next heartbeat: in HEARTBEAT_SECONDS, or when the room closes if that is sooner."""
        seconds_left = (self.room.closes_at - timezone.now()).total_seconds()
        delay = max(0.0, min(PeerRegistry.HEARTBEAT_SECONDS, seconds_left))
        self.beat = asyncio.get_running_loop().call_later(delay, self._beat_due)

    def _beat_due(self) -> None:
        self.beat = None
        if not (self.left or self.closing):
            self.beat_task = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        """Refreshes this peer's registry entry, and ends the session on time."""
        if (self.room.closes_at - timezone.now()).total_seconds() > 0:
            try:
                await self._announce_gone(self.room, await self.registry.touch(self.peer_id, self.record))
            except Exception:  # a Redis hiccup: the next beat tries again
                logger.warning("live-room heartbeat failed in %s", self.room.group, exc_info=True)
            if not (self.left or self.closing):
                self.beat_task = None  # the loop holds this task until it returns
                self._schedule_beat()
            return
        if not self.closing:
            self.closing = True
            await self.send_json({"type": "session.ended", "reason": "time"})
            await self.close(code=CLOSE_ENDED)

    # --- Frames from the page ------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.room is None or self.left or self.closing:
            return
        message_type = None
        try:
            self._spend(self.bucket)
            content = self._parse(text_data)
            message_type = content.get("type")
            handler = self.handlers.get(message_type) if isinstance(message_type, str) else None
            if handler is None:
                raise FrameError("unknown_type", "Unknown message type.")
            await handler(self, content)
        except FrameError as error:
            await self._error(error.code, error.message, message_type)
        except ApplicationError as error:
            await self._error(error.code, error.message, message_type)
        except Exception as error:
            if backend_down(error):
                logger.warning("live-room message not relayed in %s: %r", self.room.group, error)
                message = "Chat and signalling are unavailable at the moment; try again in a little while."
                await self._error("live_unavailable", message, message_type)
                return
            logger.exception("live-room message failed in %s", self.room.group)
            await self._error("server_error", "That did not work. Please try again.", message_type)

    def _parse(self, text_data: str | None) -> dict:
        if text_data is None:
            raise FrameError("bad_message", "Send JSON text frames.")
        limit = settings.LIVE_ROOM_MAX_FRAME_BYTES
        if len(text_data) > limit or (len(text_data) * 4 > limit and len(text_data.encode()) > limit):
            raise FrameError("too_large", f"Messages are limited to {limit} bytes.")
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            raise FrameError("bad_json", "That was not valid JSON.") from None
        if not isinstance(content, dict):
            raise FrameError("bad_message", "A message is a JSON object with a type.")
        return content

    def _spend(self, bucket: TokenBucket) -> None:
        if bucket.take():
            return
        now = time.monotonic()
        if now - self.strikes_since > FLOOD_WINDOW_SECONDS:
            self.strikes, self.strikes_since = 0, now
        self.strikes += 1
        if self.strikes > FLOOD_STRIKES:
            raise FrameError("flooding", "Too many messages: this connection is closed.")
        raise FrameError("throttled", "Too many messages: slow down.")

    async def _error(self, code: str, message: str, about: object = None) -> None:
        frame = {"type": "error", "code": code, "message": message}
        if isinstance(about, str) and about in self.handlers:
            frame["about"] = about
        if code == "flooding":
            self.closing = True
            frame["close_code"] = CLOSE_THROTTLED
            await self.send_json(frame)
            return await self.close(code=CLOSE_THROTTLED)
        await self.send_json(frame)

    @staticmethod
    def _fields(content: dict, *required: str) -> None:
        expected = {"type", *required}
        if set(content) != expected:
            fields = ", ".join(sorted(expected - {"type"})) or "nothing but its type"
            raise FrameError("bad_message", f"This message takes exactly: {fields}.")

    async def _addressee(self, content: dict) -> tuple[str, str]:
        to = content["to"]
        if not isinstance(to, str) or not 0 < len(to) <= PEER_ID_MAX_CHARS:
            raise FrameError("bad_message", "“to” is a peer id.")
        channel = self.peer_channels.get(to)
        if channel is None and to != self.peer_id:
            # Joined a moment ago and its announcement has not reached us yet.
            peer = await self.registry.get(to)
            channel = peer["channel"] if peer else None
            if channel:
                self.peer_channels[to] = channel
        if channel is None or to == self.peer_id:
            raise FrameError("unknown_peer", "There is no such peer in this room.")
        return to, channel

    async def _relay(self, to: str, channel: str, payload: dict) -> None:
        message = {"type": "live.relay", "group": self.room.group, "to": to, "payload": payload}
        await self.channel_layer.send(channel, message)

    async def on_description(self, content: dict) -> None:  # offer / answer
        self._fields(content, "to", "sdp")
        sdp = content["sdp"]
        if not isinstance(sdp, str) or not sdp:
            raise FrameError("bad_message", "“sdp” is the session description text.")
        if len(sdp) > SDP_MAX_CHARS:
            raise FrameError("too_large", f"Session descriptions are limited to {SDP_MAX_CHARS} characters.")
        to, channel = await self._addressee(content)
        await self._relay(to, channel, {"type": content["type"], "from": self.peer_id, "sdp": sdp})

    async def on_ice(self, content: dict) -> None:
        self._fields(content, "to", "candidate")
        candidate = content["candidate"]
        if not isinstance(candidate, dict) or "candidate" not in candidate:
            raise FrameError("bad_message", "“candidate” is an RTCIceCandidateInit object.")
        clean: dict = {}
        for key, value in candidate.items():
            if key == "sdpMLineIndex":
                if value is not None and (type(value) is not int or not 0 <= value <= 1024):
                    raise FrameError("bad_message", "“sdpMLineIndex” is a small integer or null.")
            elif key in ICE_FIELDS:
                if (value is not None or key == "candidate") and (
                    not isinstance(value, str) or len(value) > ICE_FIELDS[key]
                ):
                    raise FrameError("bad_message", f"“{key}” is too long or not text.")
            else:
                raise FrameError("bad_message", f"Unexpected candidate field “{key[:40]}”.")
            clean[key] = value
        to, channel = await self._addressee(content)
        await self._relay(to, channel, {"type": "ice", "from": self.peer_id, "candidate": clean})

    async def on_chat(self, content: dict) -> None:
        self._fields(content, "body")
        if not isinstance(content["body"], str):
            raise FrameError("bad_message", "“body” is text.")
        self._spend(self.chat_bucket)
        message = await in_tenant(
            self.scope, live.chat_post, room=self.room, user=self.user, body=content["body"]
        )
        await self.channel_layer.group_send(self.room.group, {"type": "live.chat", "message": message})

    async def on_state(self, content: dict) -> None:
        self._fields(content, "audio", "video", "screen")
        state = {key: content[key] for key in ("audio", "video", "screen")}
        if any(type(value) is not bool for value in state.values()):
            raise FrameError("bad_message", "“audio”, “video” and “screen” are true or false.")
        self.state = state
        self.record.update(state)
        await self._announce_gone(self.room, await self.registry.touch(self.peer_id, self.record))
        await self.channel_layer.group_send(
            self.room.group, {"type": "live.peer_state", "peer_id": self.peer_id, **state}
        )

    async def on_leave(self, content: dict) -> None:
        self._fields(content)
        self.closing = True
        await self._leave()
        await self.close(code=1000)

    async def on_ping(self, content: dict) -> None:
        self._fields(content)
        await self.send_json({"type": "pong"})

    async def on_end(self, content: dict) -> None:
        self._fields(content)
        if self.user.pk != self.room.mentor_id:
            raise FrameError("forbidden", "Only the mentor can end the session for everyone.")
        await self.registry.end(int((self.room.closes_at - timezone.now()).total_seconds()) + 1)
        await self.channel_layer.group_send(self.room.group, {"type": "live.ended", "reason": "mentor"})

    handlers: dict[str, Callable[["LiveRoomConsumer", dict], Awaitable[None]]] = {
        "offer": on_description,
        "answer": on_description,
        "ice": on_ice,
        "chat": on_chat,
        "state": on_state,
        "leave": on_leave,
        "ping": on_ping,
        "end": on_end,
    }

    # --- Events from the room (channel layer) ------------------------------------------------

    def _listening(self) -> bool:
        return self.room is not None and not self.left

    async def live_peer_joined(self, event: dict) -> None:
        peer = event["peer"]
        if not self._listening() or peer["peer_id"] == self.peer_id:
            return
        known = peer["peer_id"] in self.peer_channels  # already in the list `joined` gave
        self.peer_channels[peer["peer_id"]] = peer["channel"]
        if not known:
            await self.send_json({"type": "peer.joined", "peer": _public(peer)})

    async def live_peer_left(self, event: dict) -> None:
        if self._listening() and self.peer_channels.pop(event["peer_id"], None) is not None:
            await self.send_json({"type": "peer.left", "peer_id": event["peer_id"]})

    async def live_peer_state(self, event: dict) -> None:
        if self._listening():
            await self.send_json({**event, "type": "peer.state"})

    async def live_chat(self, event: dict) -> None:
        if self._listening():
            await self.send_json({"type": "chat", "message": event["message"]})

    async def live_relay(self, event: dict) -> None:
        # Channel names are secret, but a relay must still belong to this room and this peer.
        if self._listening() and event["group"] == self.room.group and event["to"] == self.peer_id:
            await self.send_json(event["payload"])

    async def live_ended(self, event: dict) -> None:
        if self._listening() and not self.closing:
            self.closing = True
            await self.send_json({"type": "session.ended", "reason": event["reason"]})
            await self.close(code=CLOSE_ENDED)
