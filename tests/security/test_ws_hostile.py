"""Hostile WebSocket frames against the live room and the notifications socket, through the real
stack (config.asgi's application: origin check, institution from the Host, sign-in from the session
cookie) and real Redis.

The live room's own suite (tenant_apps/sessions/tests/test_live_consumer.py) covers the protocol's
refusals one by one; this adds what an attacker would try beyond them: frames far over the limit, in
bytes and in characters, characters the database cannot store, floods and their effect on other rooms
and institutions. Every hostile frame gets an `error` frame (or, for a flood, a close with 4429);
never a crash, never a 1011, and the room and everyone else carry on.
"""

from __future__ import annotations

import json

from django.conf import settings
from django_tenants.utils import tenant_context

from shared.core.testing import host_of
from tenant_apps.notifications.consumers import FRAME_MAX_BYTES as NOTIFICATION_FRAME_MAX_BYTES
from tenant_apps.notifications.consumers import MESSAGE_BURST as NOTIFICATION_MESSAGE_BURST
from tenant_apps.notifications.push import push_to_users
from tenant_apps.sessions.consumers import MESSAGE_BURST
from tenant_apps.sessions.tests import test_live_consumer
from tenant_apps.sessions.tests.test_live_consumer import (
    NOW,
    TIMEOUT,
    Sockets,
    booking_path,
    frame,
    frame_of_type,
    in_db,
    run,
    silent,
)

world = test_live_consumer.world  # the fixture: committed people in institutions A and B
pair = test_live_consumer.pair

NOTIFICATIONS = "/ws/notifications/"
HUGE = 5 * 1024 * 1024


async def until_closed(socket) -> tuple[int, list[dict]]:
    """The close code, and the frames received before it."""
    frames = []
    while True:
        output = await socket.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return output["code"], frames
        frames.append(json.loads(output["text"]))


# --- The live room -------------------------------------------------------------------------------


def test_frames_far_over_the_limit_are_refused_before_they_are_parsed(world, pair):
    booking, mentor_key, learner_key = pair
    limit = settings.LIVE_ROOM_MAX_FRAME_BYTES
    hostile = [
        ('{"type": "chat", "body": "' + "x" * HUGE + '"}', "too_large"),  # 5 MB of ASCII
        ("[" * HUGE, "too_large"),  # 5 MB of nesting
        (json.dumps({"type": "chat", "body": "😀" * (limit // 3)}, ensure_ascii=False), "too_large"),  # bytes
        ("null", "bad_message"),
        ("42", "bad_message"),
        ("true", "bad_message"),
        ('"\\ud800"', "bad_message"),
        ('{"type": "' + "x" * (limit - 20) + '"}', "unknown_type"),
        ('{"type": "chat", "body": "a", "body": {"nested": [1, 2]}}', "bad_message"),  # last key wins
        ('{"type": "ping", "__proto__": {"admin": true}}', "bad_message"),
        ('{"type": "state", "audio": 1, "video": 0, "screen": null}', "bad_message"),
        (
            '{"type": "ice", "to": "x", "candidate": {"candidate": "c", "sdpMLineIndex": 1e308}}',
            "bad_message",
        ),
        ('{"type": "offer", "to": "' + "p" * 5000 + '", "sdp": "v=0"}', "bad_message"),
    ]

    async def scenario():
        async with Sockets() as sockets:
            mentor, _ = await sockets.join(world.a, booking_path(booking), mentor_key)
            learner, _ = await sockets.join(world.a, booking_path(booking), learner_key)
            await frame_of_type(mentor, "peer.joined")
            for text, code in hostile:
                await learner.send_to(text_data=text)
                error = await frame(learner)
                assert (error["type"], error["code"]) == ("error", code), text[:80]
            await learner.send_to(bytes_data=b"\x00" * HUGE)
            assert (await frame(learner))["code"] == "bad_message"
            assert await silent(mentor)
            await learner.send_json_to({"type": "ping"})
            assert await frame(learner) == {"type": "pong"}

    run(scenario)


def test_chat_with_characters_the_database_cannot_store_is_refused(world, pair):
    """A NUL or a lone surrogate would make Postgres refuse the row: a message, not a server error."""
    booking, mentor_key, learner_key = pair

    async def scenario():
        async with Sockets() as sockets:
            mentor, _ = await sockets.join(world.a, booking_path(booking), mentor_key)
            learner, _ = await sockets.join(world.a, booking_path(booking), learner_key)
            await frame_of_type(mentor, "peer.joined")
            for body in ('"nul\\u0000byte"', '"lone \\ud800 surrogate"', '"\\udfff"'):
                await learner.send_to(text_data='{"type": "chat", "body": ' + body + "}")
                error = await frame(learner)
                assert (error["type"], error["code"]) == ("error", "bad_message"), (body, error)
            assert await silent(mentor)
            await learner.send_json_to({"type": "chat", "body": "still here 👋"})
            assert (await frame_of_type(mentor, "chat"))["message"]["body"] == "still here 👋"

    run(scenario)


def test_a_flood_in_one_room_leaves_other_rooms_and_institutions_alone(world, pair):
    booking, mentor_key, learner_key = pair
    # Another room of A, and a room of B.
    other_mentor, other_learner = world.mentor(world.a), world.person(world.a)
    other = world.booking(world.a, other_mentor, other_learner, starts_in=NOW)
    b_mentor, b_learner = world.mentor(world.b), world.person(world.b)
    b_booking = world.booking(world.b, b_mentor, b_learner, starts_in=NOW)
    keys = {
        "other_mentor": world.sign_in(world.a, other_mentor),
        "other_learner": world.sign_in(world.a, other_learner),
        "b_mentor": world.sign_in(world.b, b_mentor),
        "b_learner": world.sign_in(world.b, b_learner),
    }

    async def scenario():
        async with Sockets() as sockets:
            mentor, _ = await sockets.join(world.a, booking_path(booking), mentor_key)
            flooder, _ = await sockets.join(world.a, booking_path(booking), learner_key)
            await frame_of_type(mentor, "peer.joined")
            rooms = []
            for institution, room, first, second in (
                (world.a, other, "other_mentor", "other_learner"),
                (world.b, b_booking, "b_mentor", "b_learner"),
            ):
                speaker, _ = await sockets.join(institution, booking_path(room), keys[first])
                listener, _ = await sockets.join(institution, booking_path(room), keys[second])
                await frame_of_type(speaker, "peer.joined")
                rooms.append((speaker, listener))

            # Chat lines and signalling, as fast as the socket takes them, until the server cuts it.
            for index in range(MESSAGE_BURST + 300):
                await flooder.send_json_to({"type": "chat", "body": f"spam {index}"})
            code, frames = await until_closed(flooder)
            assert code == 4429
            assert frames[-1]["code"] == "flooding" and frames[-1]["close_code"] == 4429
            assert {item.get("code") for item in frames if item["type"] == "error"} <= {
                "throttled",
                "flooding",
            }

            # The other rooms never heard of it and work as before.
            for speaker, listener in rooms:
                assert await silent(listener)
                await speaker.send_json_to({"type": "chat", "body": "unaffected"})
                assert (await frame_of_type(listener, "chat"))["message"]["body"] == "unaffected"
            # The flooded room goes on for the one who stayed (once the closed socket is gone).
            await flooder.disconnect(timeout=TIMEOUT)
            await frame_of_type(mentor, "peer.left")
            await mentor.send_json_to({"type": "ping"})
            assert await frame_of_type(mentor, "pong") == {"type": "pong"}

    run(scenario)


# --- The notifications socket --------------------------------------------------------------------


def _notifications_pair(world):
    mentor, learner = world.mentor(world.a), world.person(world.a)
    return (mentor, world.sign_in(world.a, mentor)), (learner, world.sign_in(world.a, learner))


async def _open(sockets: Sockets, institution, key: str):
    socket, accepted, _ = await sockets.connect(host_of(institution), NOTIFICATIONS, session_key=key)
    assert accepted
    assert (await frame(socket)) == {"type": "ready"}
    return socket


def test_the_notifications_socket_answers_every_hostile_frame_with_an_error(world):
    (_, key), _ = _notifications_pair(world)
    hostile = [
        ("{not json", "bad_json"),
        ("[" * 50_000 + "]" * 50_000, "too_large"),
        ("[" * 2_000 + "]" * 2_000, "bad_json"),  # small enough, too deep to parse
        ("[1, 2]", "bad_message"),
        ("null", "bad_message"),
        ('"ping"', "bad_message"),
        ('{"no": "type"}', "unsupported"),
        ('{"type": "subscribe", "group": "beta_u.user.1"}', "unsupported"),
        ('{"type": "' + "x" * HUGE + '"}', "too_large"),
        (
            json.dumps(
                {"type": "ping", "pad": "😀" * (NOTIFICATION_FRAME_MAX_BYTES // 3)}, ensure_ascii=False
            ),
            "too_large",
        ),
    ]

    frames = [{"text_data": text} for text, _ in hostile]
    frames += [{"bytes_data": b"\x00\xff" * 1000}, {"bytes_data": b"\x00" * HUGE}]
    codes = [code for _, code in hostile] + ["bad_message", "bad_message"]

    async def scenario():
        async with Sockets() as sockets:
            # A few frames per socket: more at once would be throttled (the next test).
            per_socket = NOTIFICATION_MESSAGE_BURST - 1
            for start in range(0, len(frames), per_socket):
                socket = await _open(sockets, world.a, key)
                for sent, code in zip(frames[start : start + per_socket], codes[start : start + per_socket]):
                    await socket.send_to(**sent)
                    error = await frame(socket)
                    assert (error["type"], error["code"]) == ("error", code), str(sent)[:80]
                # Still open and still working.
                await socket.send_json_to({"type": "ping"})
                assert await frame(socket) == {"type": "pong"}

    run(scenario)


def test_a_notifications_flood_is_cut_off_and_others_still_get_theirs(world):
    (_, flooder_key), (other_user, other_key) = _notifications_pair(world)

    async def scenario():
        async with Sockets() as sockets:
            flooder = await _open(sockets, world.a, flooder_key)
            other = await _open(sockets, world.a, other_key)
            for _ in range(NOTIFICATION_MESSAGE_BURST + 300):
                await flooder.send_json_to({"type": "ping"})
            code, frames = await until_closed(flooder)
            assert code == 4429
            pongs = sum(item["type"] == "pong" for item in frames)
            assert NOTIFICATION_MESSAGE_BURST <= pongs < NOTIFICATION_MESSAGE_BURST + 300
            assert frames[-1]["code"] == "flooding" and frames[-1]["close_code"] == 4429

            await in_db(
                _push_in_a, world, user_ids=[other_user.pk], event="session.starting", payload={"room_id": 1}
            )
            assert (await frame(other))["type"] == "session.starting"
            await other.send_json_to({"type": "ping"})
            assert await frame(other) == {"type": "pong"}

    run(scenario)


def _push_in_a(world, **kwargs) -> None:
    with tenant_context(world.a):
        push_to_users(**kwargs)
