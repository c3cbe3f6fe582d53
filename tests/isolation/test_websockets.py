"""WebSockets through the real ASGI application and the real Redis channel layer: A's session means
nothing on B's host, B's people in the room with A's id hear nothing of A, and A's notifications
reach A's sockets only.

The consumers do their database work in other threads, so these tests use the committed world
(no test transaction); what they add (attendance, chat lines) is new rows, which the fingerprint
comparison of the other tests ignores.
"""

from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context

from config.asgi import application
from tenant_apps.notifications.push import push_to_users

from .attacks import leaked_markers
from .world import Side, World

TIMEOUT = 5  # seconds: the longest any expected frame may take
QUIET = 0.5  # seconds of silence that show a frame was not delivered


@pytest.fixture
def world(isolation_world, django_db_blocker) -> Iterator[World]:
    with django_db_blocker.unblock():
        yield isolation_world
        connection.set_schema_to_public()
        _forget_rooms(isolation_world)


def _forget_rooms(world: World) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for side in (world.a, world.b):
            for kind, key in (("booking", "booking_confirmed"), ("group", "group")):
                group = f"{side.schema}.{kind}.{side.pk(key)}"
                client.delete(
                    *(f"live:{group}:{name}" for name in ("peers", "seen", "seq", "ended", "starting"))
                )
    finally:
        client.close()


async def _connect(host: str, path: str, *, session_key: str | None, origin: str | None = None):
    headers = [(b"host", host.encode()), (b"origin", (origin or f"http://{host}").encode())]
    if session_key:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
    socket = WebsocketCommunicator(application, path, headers=headers)
    accepted, _ = await socket.connect(timeout=TIMEOUT)
    return socket, accepted


async def _frames_until_close(socket: WebsocketCommunicator) -> tuple[list[dict], int | None]:
    frames = []
    while True:
        output = await socket.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return frames, output.get("code")
        frames.append(output)


def _room_paths(side: Side) -> list[str]:
    return [
        f"/ws/sessions/{side.pk('booking_confirmed')}/",
        f"/ws/sessions/{side.pk('booking_completed')}/",
        f"/ws/groups/{side.pk('group')}/",
        "/ws/notifications/",
    ]


def test_a_session_cookie_is_anonymous_on_b_sockets(world):
    a, b = world.a, world.b

    async def scenario():
        for person in ("owner", "mentor", "admin"):
            for path in _room_paths(a):
                socket, accepted = await _connect(b.host, path, session_key=a.session_cookie(person))
                assert accepted, path  # accepted first, so that the page can be told why
                frames, code = await _frames_until_close(socket)
                assert code == 4401, (person, path, frames)
                assert not leaked_markers(str(frames).lower(), private_only=False)

    async_to_sync(scenario)()


def test_a_page_cannot_open_b_sockets(world):
    """The Origin must be the socket's own host: A's pages cannot talk to B's sockets."""
    a, b = world.a, world.b

    async def scenario():
        _, accepted = await _connect(
            b.host, "/ws/notifications/", session_key=b.session_cookie("owner"), origin=f"http://{a.host}"
        )
        assert not accepted

    async_to_sync(scenario)()


def test_b_in_the_room_with_a_s_id_hears_nothing_of_a(world):
    a, b = world.a, world.b
    booking = a.pk("booking_confirmed")
    assert booking == b.pk("booking_confirmed")  # the same id in both institutions
    said = a.marker("prv", "chat line said during the WebSocket test")

    async def scenario():
        path = f"/ws/sessions/{booking}/"
        a_owner, _ = await _connect(a.host, path, session_key=a.session_cookie("owner"))
        a_joined = await a_owner.receive_json_from(timeout=TIMEOUT)
        assert a_joined["type"] == "joined", a_joined
        b_owner, _ = await _connect(b.host, path, session_key=b.session_cookie("owner"))
        b_joined = await b_owner.receive_json_from(timeout=TIMEOUT)
        assert b_joined["type"] == "joined", b_joined
        assert not leaked_markers(str(b_joined).lower(), private_only=False)
        assert b_joined["peers"] == []  # A's owner is in A's room, not in this one
        assert await a_owner.receive_nothing(timeout=QUIET)  # B's arrival is not A's business

        await a_owner.send_json_to({"type": "chat", "body": said})
        echoed = await a_owner.receive_json_from(timeout=TIMEOUT)
        assert echoed["type"] == "chat" and echoed["message"]["body"] == said
        assert await b_owner.receive_nothing(timeout=QUIET)

        # A non-participant of B cannot join B's room either, and hears nothing of A.
        b_stranger, _ = await _connect(b.host, path, session_key=b.session_cookie("learner"))
        frames, code = await _frames_until_close(b_stranger)
        assert code == 4404 or (code or 0) >= 4000, frames
        assert not leaked_markers(str(frames).lower(), private_only=False)
        for socket in (a_owner, b_owner):
            await socket.disconnect(timeout=TIMEOUT)

    async_to_sync(scenario)()


def test_b_group_room_with_a_s_id_hears_nothing_of_a(world):
    a, b = world.a, world.b
    group = a.pk("group")
    said = a.marker("prv", "group chat line said during the WebSocket test")

    async def scenario():
        path = f"/ws/groups/{group}/"
        a_owner, _ = await _connect(a.host, path, session_key=a.session_cookie("owner"))
        assert (await a_owner.receive_json_from(timeout=TIMEOUT))["type"] == "joined"
        b_owner, _ = await _connect(b.host, path, session_key=b.session_cookie("owner"))
        b_joined = await b_owner.receive_json_from(timeout=TIMEOUT)
        assert b_joined["type"] == "joined", b_joined
        assert not leaked_markers(str(b_joined).lower(), private_only=False)
        await a_owner.send_json_to({"type": "chat", "body": said})
        assert (await a_owner.receive_json_from(timeout=TIMEOUT))["type"] == "chat"
        assert await b_owner.receive_nothing(timeout=QUIET)
        for socket in (a_owner, b_owner):
            await socket.disconnect(timeout=TIMEOUT)

    async_to_sync(scenario)()


def test_a_notifications_reach_a_only(world):
    """A's owner and B's owner have the same id: a push to A's owner reaches A's socket only."""
    a, b = world.a, world.b
    owner_id = a.users["owner"].pk
    assert owner_id == b.users["owner"].pk
    title = a.marker("prv", "pushed notification title")

    def push() -> None:
        with tenant_context(a.institution):
            push_to_users(user_ids=[owner_id], event="notification.created", payload={"title": title})
        connection.set_schema_to_public()

    async def scenario():
        a_socket, _ = await _connect(a.host, "/ws/notifications/", session_key=a.session_cookie("owner"))
        b_socket, _ = await _connect(b.host, "/ws/notifications/", session_key=b.session_cookie("owner"))
        for socket in (a_socket, b_socket):
            assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "ready"
        await database_sync_to_async(push)()
        received = await a_socket.receive_json_from(timeout=TIMEOUT)
        assert received["title"] == title
        assert await b_socket.receive_nothing(timeout=QUIET)
        for socket in (a_socket, b_socket):
            await socket.disconnect(timeout=TIMEOUT)

    async_to_sync(scenario)()
