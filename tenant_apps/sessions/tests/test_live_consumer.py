"""The live room over the real stack: config.asgi's application (origin check, institution from the
Host, sign-in from the session cookie), real Redis for the channel layer and the peer registry,
and committed Postgres rows (the consumer's database work runs in another thread)."""

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.backends.cached_db import SessionStore
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from config.asgi import application
from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts.models import User
from tenants.models import Institution

from ..consumers import CHAT_BURST, MESSAGE_BURST
from ..live import MAX_PARTICIPANTS
from ..live_registry import PeerRegistry, _redis
from ..models import (
    Attendance,
    Booking,
    BookingTransition,
    ChatMessage,
    Enrollment,
    GroupSession,
    MentorProfile,
)
from .factories import make_booking

TIMEOUT = 3  # seconds: the longest any single expected frame may take
QUIET = 0.4  # seconds of silence that prove a frame was not delivered


# --- Committed people, sessions and sign-ins ---------------------------------------------------


class World:
    """People and sessions committed in institutions A and B; everything is removed afterwards."""

    def __init__(self, a: Institution, b: Institution) -> None:
        self.a, self.b = a, b
        self.users: dict[int, list[User]] = {a.pk: [], b.pk: []}
        self.session_keys: dict[int, list[str]] = {a.pk: [], b.pk: []}
        self.groups: list[str] = []

    def _institution(self, institution: Institution) -> Institution:
        return self.a if institution.pk == self.a.pk else self.b

    def person(self, institution: Institution, *, role=User.Role.LEARNER, **fields) -> User:
        fields.setdefault("email", f"live-{secrets.token_hex(4)}@example.org")
        fields.setdefault("full_name", "Lee Learner" if role == User.Role.LEARNER else "Mo Mentor")
        if role == User.Role.MENTOR:
            fields.setdefault("mentor_status", User.MentorStatus.APPROVED)
        user = make_user(institution, role=role, **fields)
        self.users[institution.pk].append(user)
        if role == User.Role.MENTOR:
            with tenant_context(institution):
                MentorProfile.objects.create(user=user, session_lengths=[30, 60], minimum_notice_minutes=0)
        return user

    def mentor(self, institution: Institution, **fields) -> User:
        return self.person(institution, role=User.Role.MENTOR, **fields)

    def booking(
        self,
        institution: Institution,
        mentor: User,
        learner: User,
        *,
        starts_in: timedelta,
        minutes=30,
        **fields,
    ) -> Booking:
        with tenant_context(institution):
            profile = MentorProfile.objects.select_related("user").get(user=mentor)
            booking = make_booking(profile, learner, timezone.now() + starts_in, minutes=minutes, **fields)
        self._forget_room(institution, "booking", booking.pk)
        return booking

    def group_session(
        self, institution: Institution, mentor: User, learners: list[User], *, starts_in: timedelta
    ) -> GroupSession:
        with tenant_context(institution):
            starts_at = timezone.now() + starts_in
            session = GroupSession.objects.create(
                mentor=MentorProfile.objects.get(user=mentor),
                title="SQL clinic",
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=60),
                capacity=10,
                currency="GBP",
            )
            for learner in learners:
                Enrollment.objects.create(group_session=session, learner=learner, status="enrolled")
        self._forget_room(institution, "group", session.pk)
        return session

    def _forget_room(self, institution: Institution, kind: str, room_id: int) -> None:
        """The test database restarts its ids every run: a room's Redis keys may outlive one."""
        group = f"{institution.schema_name}.{kind}.{room_id}"
        self.groups.append(group)
        _drop_room_keys(group)

    def sign_in(self, institution: Institution, user: User) -> str:
        """The session key of `user` signed in on the institution's host (through the login page)."""
        client = HostClient(host_of(institution))
        sign_in(client, user.email)
        key = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.session_keys[institution.pk].append(key)
        return key

    def cleanup(self) -> None:
        for institution in (self.a, self.b):
            made = self.users[institution.pk]
            with tenant_context(institution):
                for key in self.session_keys[institution.pk]:
                    SessionStore(key).delete()
                Attendance.objects.filter(user__in=made).delete()
                ChatMessage.objects.filter(author__in=made).delete()
                Enrollment.objects.filter(learner__in=made).delete()
                GroupSession.objects.filter(mentor__user__in=made).delete()
                BookingTransition.objects.filter(booking__mentor__user__in=made).delete()
                Booking.objects.filter(mentor__user__in=made).delete()
                MentorProfile.objects.filter(user__in=made).delete()
                User.objects.filter(pk__in=[user.pk for user in made]).delete()
        for group in self.groups:
            _drop_room_keys(group)


def _drop_room_keys(group: str) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.delete(*(f"live:{group}:{name}" for name in ("peers", "seen", "seq", "ended", "starting")))
    finally:
        client.close()


@pytest.fixture
def world(_institutions, django_db_blocker) -> Iterator[World]:
    """Institutions A and B without a test transaction: the consumer's thread sees what we commit."""
    with django_db_blocker.unblock():
        a, b = (Institution.objects.get(pk=institution.pk) for institution in _institutions)
        made = World(a, b)
        try:
            yield made
        finally:
            made.cleanup()
            connection.set_schema_to_public()


def run(scenario: Callable) -> None:
    """Run an async scenario; its database work runs in this (test) thread, outside any transaction."""
    async_to_sync(scenario)()


def in_db(function: Callable, /, *args, **kwargs):
    return database_sync_to_async(function)(*args, **kwargs)


# --- Sockets -----------------------------------------------------------------------------------


class Sockets:
    """Opens sockets through the real ASGI stack and disconnects whatever is left at the end."""

    def __init__(self) -> None:
        self.open: list[WebsocketCommunicator] = []

    async def __aenter__(self) -> "Sockets":
        return self

    async def __aexit__(self, *exc_info) -> None:
        for socket in self.open:
            if not socket.future.done():
                await socket.disconnect(timeout=TIMEOUT)

    async def connect(
        self, host: str, path: str, *, session_key: str | None = None, origin: str | None = "same"
    ) -> tuple[WebsocketCommunicator, bool, int | None]:
        headers = [(b"host", host.encode())]
        if origin is not None:
            headers.append((b"origin", (f"http://{host}" if origin == "same" else origin).encode()))
        if session_key:
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
        socket = WebsocketCommunicator(application, path, headers=headers)
        self.open.append(socket)
        accepted, detail = await socket.connect(timeout=TIMEOUT)
        return socket, accepted, detail

    async def join(
        self, institution: Institution, path: str, session_key: str
    ) -> tuple[WebsocketCommunicator, dict]:
        """A participant's socket in the room, and the `joined` frame it got."""
        socket, accepted, _ = await self.connect(host_of(institution), path, session_key=session_key)
        assert accepted
        joined = await frame(socket)
        assert joined["type"] == "joined", joined
        return socket, joined

    async def refused(
        self, institution: Institution, path: str, session_key: str | None = None, **kwargs
    ) -> tuple[dict, int]:
        """The error frame and close code of a refused join."""
        socket, accepted, _ = await self.connect(
            host_of(institution), path, session_key=session_key, **kwargs
        )
        assert accepted  # accepted first, so that the page can be told why
        error = await frame(socket)
        assert error["type"] == "error", error
        return error, await closed(socket)


async def frame(socket: WebsocketCommunicator) -> dict:
    return await socket.receive_json_from(timeout=TIMEOUT)


async def closed(socket: WebsocketCommunicator) -> int:
    output = await socket.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def frame_of_type(socket: WebsocketCommunicator, kind: str, timeout: float = TIMEOUT) -> dict:
    """The next frame of this type, skipping others (bounded by `timeout` overall)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind} frame within {timeout} s"
        message = await socket.receive_json_from(timeout=remaining)
        if message["type"] == kind:
            return message


async def silent(*sockets: WebsocketCommunicator) -> bool:
    """Whether none of these sockets gets anything for QUIET seconds (watched together)."""
    quiet = await asyncio.gather(*(socket.receive_nothing(timeout=QUIET) for socket in sockets))
    return all(quiet)


def booking_path(booking: Booking) -> str:
    return f"/ws/sessions/{booking.pk}/"


def group_path(session: GroupSession) -> str:
    return f"/ws/groups/{session.pk}/"


NOW = timedelta(0)


@pytest.fixture
def pair(world):
    """A mentor and a learner of A with a session starting now, both signed in."""
    mentor, learner = world.mentor(world.a), world.person(world.a)
    booking = world.booking(world.a, mentor, learner, starts_in=NOW)
    return booking, world.sign_in(world.a, mentor), world.sign_in(world.a, learner)


# --- Who may come in ---------------------------------------------------------------------------


def test_an_anonymous_visitor_is_told_to_sign_in(world, pair):
    booking, _, _ = pair

    async def scenario():
        async with Sockets() as sockets:
            error, code = await sockets.refused(world.a, booking_path(booking))
            assert (error["code"], error["close_code"], code) == ("unauthenticated", 4401, 4401)
            error, code = await sockets.refused(world.a, booking_path(booking), session_key="not-a-session")
            assert code == 4401

    run(scenario)


def test_someone_else_of_the_institution_finds_no_such_room(world, pair):
    booking, _, _ = pair
    stranger = world.sign_in(world.a, world.person(world.a))

    async def scenario():
        async with Sockets() as sockets:
            error, code = await sockets.refused(world.a, booking_path(booking), stranger)
            assert (error["code"], code) == ("not_found", 4404)
            error, code = await sockets.refused(world.a, "/ws/sessions/999999999/", stranger)
            assert (error["code"], code) == ("not_found", 4404)

    run(scenario)


def test_a_sign_in_on_institution_a_is_anonymous_on_b(world):
    """Same ids in both schemas: A's cookie sent to B's host finds no session there."""
    ids = 3_000_000 + secrets.randbelow(1_000_000)
    a_mentor, a_learner = world.mentor(world.a, id=ids), world.person(world.a, id=ids + 1)
    b_mentor, b_learner = world.mentor(world.b, id=ids), world.person(world.b, id=ids + 1)
    booking_id = 3_000_000 + secrets.randbelow(1_000_000)
    world.booking(world.a, a_mentor, a_learner, starts_in=NOW, id=booking_id)
    b_booking = world.booking(world.b, b_mentor, b_learner, starts_in=NOW, id=booking_id)
    a_key = world.sign_in(world.a, a_learner)

    async def scenario():
        async with Sockets() as sockets:
            error, code = await sockets.refused(world.b, booking_path(b_booking), a_key)
            assert (error["code"], code) == ("unauthenticated", 4401)

    run(scenario)


def test_only_pages_of_the_same_site_may_open_the_socket(world, pair):
    booking, _, learner_key = pair
    host = host_of(world.a)

    async def scenario():
        async with Sockets() as sockets:
            for origin in (None, f"http://{host_of(world.b)}", "http://evil.example", "null"):
                _, accepted, code = await sockets.connect(
                    host, booking_path(booking), session_key=learner_key, origin=origin
                )
                assert (accepted, code) == (False, 4403), origin

    run(scenario)


def test_an_unknown_or_platform_host_is_refused(world, pair):
    booking, _, learner_key = pair

    async def scenario():
        async with Sockets() as sockets:
            for host in (f"nobody-here.{settings.PLATFORM_DOMAIN}", settings.PLATFORM_DOMAIN, "evil.example"):
                _, accepted, code = await sockets.connect(
                    host, booking_path(booking), session_key=learner_key
                )
                assert (accepted, code) == (False, 4403), host

    run(scenario)


def test_the_room_opens_ten_minutes_before_and_closes_thirty_after(world):
    learner = world.person(world.a)

    def booking(starts_in: timedelta) -> Booking:  # one mentor each: their times overlap
        return world.booking(world.a, world.mentor(world.a), learner, starts_in=starts_in, minutes=30)

    early = booking(timedelta(minutes=11))
    ended = booking(-timedelta(minutes=30 + 31))
    just_open = booking(timedelta(minutes=9))
    late_but_open = booking(-timedelta(minutes=30 + 29))
    key = world.sign_in(world.a, learner)

    async def scenario():
        async with Sockets() as sockets:
            error, code = await sockets.refused(world.a, booking_path(early), key)
            assert (error["code"], code) == ("too_early", 4425)
            error, code = await sockets.refused(world.a, booking_path(ended), key)
            assert (error["code"], code) == ("ended", 4410)
            for booking in (just_open, late_but_open):
                socket, joined = await sockets.join(world.a, booking_path(booking), key)
                assert joined["room"]["id"] == booking.pk
                await socket.disconnect(timeout=TIMEOUT)

    run(scenario)


def test_the_same_booking_id_in_two_institutions_is_two_rooms(world):
    booking_id = 4_000_000 + secrets.randbelow(1_000_000)
    rooms = {}
    for institution in (world.a, world.b):
        mentor, learner = world.mentor(institution), world.person(institution)
        world.booking(institution, mentor, learner, starts_in=NOW, id=booking_id)
        rooms[institution.pk] = (world.sign_in(institution, mentor), world.sign_in(institution, learner))
    path = f"/ws/sessions/{booking_id}/"

    async def scenario():
        async with Sockets() as sockets:
            a_learner, a_joined = await sockets.join(world.a, path, rooms[world.a.pk][1])
            assert a_joined["peers"] == []
            b_learner, b_joined = await sockets.join(world.b, path, rooms[world.b.pk][1])
            assert b_joined["peers"] == []  # A's learner is not in B's room
            b_mentor, b_mentor_joined = await sockets.join(world.b, path, rooms[world.b.pk][0])
            assert [peer["peer_id"] for peer in b_mentor_joined["peers"]] == [b_joined["peer_id"]]
            assert (await frame(b_learner))["type"] == "peer.joined"

            await a_learner.send_json_to({"type": "chat", "body": "only for A"})
            assert (await frame(a_learner))["message"]["body"] == "only for A"
            await a_learner.send_json_to({"type": "offer", "to": b_joined["peer_id"], "sdp": "v=0"})
            assert (await frame(a_learner))["code"] == "unknown_peer"
            await b_mentor.send_json_to({"type": "chat", "body": "only for B"})
            assert (await frame(b_learner))["message"]["body"] == "only for B"
            assert (await frame(b_mentor))["message"]["body"] == "only for B"
            assert await silent(a_learner, b_learner, b_mentor)

    run(scenario)


def test_a_room_holds_at_most_six_peers(world):
    mentor = world.mentor(world.a)
    learners = [world.person(world.a) for _ in range(MAX_PARTICIPANTS - 1)]
    session = world.group_session(world.a, mentor, learners, starts_in=NOW)
    keys = [world.sign_in(world.a, person) for person in (mentor, *learners)]

    async def scenario():
        async with Sockets() as sockets:
            for key in keys:
                await sockets.join(world.a, group_path(session), key)
            # The mentor's second tab would be a seventh peer.
            error, code = await sockets.refused(world.a, group_path(session), keys[0])
            assert (error["code"], code) == ("room_full", 4403)

    run(scenario)


# --- Signalling, chat, presence ----------------------------------------------------------------


def test_an_offer_reaches_its_addressee_only(world):
    mentor, first, second = world.mentor(world.a), world.person(world.a), world.person(world.a)
    session = world.group_session(world.a, mentor, [first, second], starts_in=timedelta(minutes=5))
    keys = [world.sign_in(world.a, person) for person in (mentor, first, second)]
    path = group_path(session)

    async def scenario():
        async with Sockets() as sockets:
            mentor_socket, mentor_joined = await sockets.join(world.a, path, keys[0])
            first_socket, first_joined = await sockets.join(world.a, path, keys[1])
            assert (await frame(mentor_socket))["peer"]["peer_id"] == first_joined["peer_id"]
            second_socket, second_joined = await sockets.join(world.a, path, keys[2])
            assert [peer["peer_id"] for peer in second_joined["peers"]] == [
                mentor_joined["peer_id"],
                first_joined["peer_id"],
            ]
            assert second_joined["you"] == {
                "user_id": second.pk,
                "name": second.full_name,
                "is_mentor": False,
            }
            assert all("channel" not in peer for peer in second_joined["peers"])
            for socket in (mentor_socket, first_socket):
                assert (await frame(socket))["peer"]["peer_id"] == second_joined["peer_id"]

            await second_socket.send_json_to(
                {"type": "offer", "to": mentor_joined["peer_id"], "sdp": "v=0 offer"}
            )
            assert await frame(mentor_socket) == {
                "type": "offer",
                "from": second_joined["peer_id"],
                "sdp": "v=0 offer",
            }
            await mentor_socket.send_json_to(
                {"type": "answer", "to": second_joined["peer_id"], "sdp": "v=0 answer"}
            )
            assert await frame(second_socket) == {
                "type": "answer",
                "from": mentor_joined["peer_id"],
                "sdp": "v=0 answer",
            }
            candidate = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.2 54321 typ host", "sdpMid": "0"}
            await second_socket.send_json_to(
                {"type": "ice", "to": first_joined["peer_id"], "candidate": candidate}
            )
            assert await frame(first_socket) == {
                "type": "ice",
                "from": second_joined["peer_id"],
                "candidate": candidate,
            }
            assert await silent(mentor_socket, first_socket, second_socket)

    run(scenario)


def test_chat_is_stored_and_replayed_to_whoever_joins_later(world, pair):
    booking, mentor_key, learner_key = pair

    async def scenario():
        async with Sockets() as sockets:
            learner, _ = await sockets.join(world.a, booking_path(booking), learner_key)
            await learner.send_json_to({"type": "chat", "body": "  Hello, can you hear me?  "})
            said = await frame(learner)
            assert said["type"] == "chat"
            assert said["message"]["body"] == "Hello, can you hear me?"
            await learner.send_json_to({"type": "chat", "body": "   "})
            assert (await frame(learner))["code"] == "empty_message"
            await learner.send_json_to({"type": "chat", "body": "x" * 2001})
            assert (await frame(learner))["code"] == "too_long"

            _, mentor_joined = await sockets.join(world.a, booking_path(booking), mentor_key)
            assert [line["body"] for line in mentor_joined["chat"]] == ["Hello, can you hear me?"]
            assert mentor_joined["chat"][0]["author_name"] == "Lee Learner"

        def stored():
            with tenant_context(world.a):
                return list(ChatMessage.objects.filter(booking_id=booking.pk).values_list("body", flat=True))

        assert await in_db(stored) == ["Hello, can you hear me?"]

    run(scenario)


def test_media_state_is_broadcast_and_remembered_for_joiners(world, pair):
    booking, mentor_key, learner_key = pair

    async def scenario():
        async with Sockets() as sockets:
            learner, learner_joined = await sockets.join(world.a, booking_path(booking), learner_key)
            await learner.send_json_to({"type": "state", "audio": True, "video": False, "screen": True})
            state = await frame(learner)
            assert state == {
                "type": "peer.state",
                "peer_id": learner_joined["peer_id"],
                "audio": True,
                "video": False,
                "screen": True,
            }
            await learner.send_json_to({"type": "state", "audio": "yes", "video": False, "screen": True})
            assert (await frame(learner))["code"] == "bad_message"
            _, mentor_joined = await sockets.join(world.a, booking_path(booking), mentor_key)
            (peer,) = mentor_joined["peers"]
            assert (peer["audio"], peer["video"], peer["screen"], peer["is_mentor"]) == (
                True,
                False,
                True,
                False,
            )

    run(scenario)


def test_bad_frames_get_error_frames_and_the_room_carries_on(world, pair):
    booking, mentor_key, learner_key = pair
    too_big = json.dumps({"type": "chat", "body": "x" * settings.LIVE_ROOM_MAX_FRAME_BYTES})

    async def scenario():
        async with Sockets() as sockets:
            mentor, _ = await sockets.join(world.a, booking_path(booking), mentor_key)
            learner, _ = await sockets.join(world.a, booking_path(booking), learner_key)
            await frame_of_type(mentor, "peer.joined")
            sent_and_expected = [
                ("{not json", "bad_json"),
                ("[" * 20_000 + "]" * 20_000, "bad_json"),  # too deep for the parser
                ("[1, 2]", "bad_message"),
                ('"offer"', "bad_message"),
                (too_big, "too_large"),
                ('{"no": "type"}', "unknown_type"),
                ('{"type": ["offer"]}', "unknown_type"),
                ('{"type": "dance"}', "unknown_type"),
                ('{"type": "offer", "to": "nobody", "sdp": "v=0"}', "unknown_peer"),
                ('{"type": "offer", "to": 7, "sdp": "v=0"}', "bad_message"),
                ('{"type": "offer", "sdp": "v=0"}', "bad_message"),
                ('{"type": "ice", "to": "nobody", "candidate": "a string"}', "bad_message"),
                (
                    '{"type": "ice", "to": "nobody", "candidate": {"candidate": "c", "evil": 1}}',
                    "bad_message",
                ),
                (json.dumps({"type": "offer", "to": "x", "sdp": "v" * (32 * 1024 + 1)}), "too_large"),
                ('{"type": "chat", "body": 42}', "bad_message"),
                ('{"type": "end"}', "forbidden"),  # only the mentor ends the session
            ]
            for text, code in sent_and_expected:
                await learner.send_to(text_data=text)
                error = await frame(learner)
                assert (error["type"], error["code"]) == ("error", code), text[:60]
            await learner.send_to(bytes_data=b"\x00\x01")
            assert (await frame(learner))["code"] == "bad_message"

            # Still in the room, and nobody else heard any of it.
            assert await silent(mentor)
            await learner.send_json_to({"type": "ping"})
            assert await frame(learner) == {"type": "pong"}
            await learner.send_json_to({"type": "chat", "body": "still here"})
            assert (await frame(mentor))["message"]["body"] == "still here"

    run(scenario)


def test_a_flood_is_throttled_and_then_cut_off(world, pair):
    booking, mentor_key, learner_key = pair

    async def scenario():
        async with Sockets() as sockets:
            mentor, _ = await sockets.join(world.a, booking_path(booking), mentor_key)
            learner, _ = await sockets.join(world.a, booking_path(booking), learner_key)
            await frame_of_type(mentor, "peer.joined")

            # A few chat lines a second at most, whatever is left of the overall budget.
            for index in range(CHAT_BURST + 3):
                await mentor.send_json_to({"type": "chat", "body": f"line {index}"})
            replies = [await frame(mentor) for _ in range(CHAT_BURST + 3)]
            said = [reply["message"]["body"] for reply in replies if reply["type"] == "chat"]
            assert len(said) >= CHAT_BURST
            assert [reply.get("code") for reply in replies].count("throttled") >= 2
            assert [(await frame(learner))["message"]["body"] for _ in said] == said

            # Pings, ICE candidates, anything: a burst of 60, then 30 a second.
            for _ in range(100):
                await learner.send_json_to({"type": "ping"})
            replies = [await frame(learner) for _ in range(100)]
            pongs = sum(reply["type"] == "pong" for reply in replies)
            assert MESSAGE_BURST <= pongs < 100
            assert [reply.get("code") for reply in replies].count("throttled") == 100 - pongs

            # Keeping on flooding closes the socket; the room carries on.
            for _ in range(400):
                await learner.send_json_to({"type": "ping"})
            while True:
                output = await learner.receive_output(timeout=TIMEOUT)
                if output["type"] == "websocket.close":
                    break
                last = json.loads(output["text"])
            assert output["code"] == 4429
            assert (last["code"], last["close_code"]) == ("flooding", 4429)
            await learner.disconnect(timeout=TIMEOUT)
            await frame_of_type(mentor, "peer.left")
            await mentor.send_json_to({"type": "ping"})
            assert await frame_of_type(mentor, "pong") == {"type": "pong"}

    run(scenario)


def test_peers_on_other_processes_are_reached_and_dead_ones_forgotten(world, pair):
    """The registry is in Redis: a peer whose socket another server process holds is in the room
    and reachable on its own channel; one whose process died is dropped after 90 s of silence,
    and the room is told it left."""
    booking, mentor_key, learner_key = pair
    group = f"{world.a.schema_name}.booking.{booking.pk}"
    registry = PeerRegistry(group)

    def record(peer_id: str, channel: str, seq: int) -> dict:
        person = {"user_id": booking.mentor.user_id, "name": "Mo Mentor", "is_mentor": True}
        return {
            "peer_id": peer_id,
            **person,
            "seq": seq,
            "audio": True,
            "video": True,
            "screen": False,
            "channel": channel,
        }

    async def scenario():
        layer = get_channel_layer()
        elsewhere = await layer.new_channel()
        await registry.touch("alive-elsewhere", record("alive-elsewhere", elsewhere, 1))
        async with Sockets() as sockets:
            mentor, mentor_joined = await sockets.join(world.a, booking_path(booking), mentor_key)
            # Another process's peer joins, then its process dies without a word.
            doomed = record("died-with-its-process", "asgi.specific.gone", 3)
            await registry.touch("died-with-its-process", doomed)
            await layer.group_send(group, {"type": "live.peer_joined", "peer": doomed})
            assert (await frame(mentor))["peer"]["peer_id"] == "died-with-its-process"
            stale = time.time() - PeerRegistry.STALE_SECONDS - 1
            await _redis().zadd(registry.seen_key, {"died-with-its-process": stale})

            learner, joined = await sockets.join(world.a, booking_path(booking), learner_key)
            assert {peer["peer_id"] for peer in joined["peers"]} == {
                "alive-elsewhere",
                mentor_joined["peer_id"],
            }
            assert await frame(mentor) == {"type": "peer.left", "peer_id": "died-with-its-process"}
            await learner.send_json_to({"type": "offer", "to": "alive-elsewhere", "sdp": "v=0"})
            relayed = await asyncio.wait_for(layer.receive(elsewhere), TIMEOUT)
            assert relayed["payload"] == {"type": "offer", "from": joined["peer_id"], "sdp": "v=0"}
            await learner.send_json_to({"type": "offer", "to": "died-with-its-process", "sdp": "v=0"})
            assert (await frame(learner))["code"] == "unknown_peer"

    run(scenario)


# --- Leaving, attendance, the end of a session -------------------------------------------------


def test_leaving_tells_the_others_and_attendance_is_recorded(world, pair):
    booking, mentor_key, learner_key = pair

    def attendance():
        with tenant_context(world.a):
            return list(
                Attendance.objects.filter(booking_id=booking.pk).values("user_id", "joined_at", "left_at")
            )

    async def scenario():
        async with Sockets() as sockets:
            mentor, _ = await sockets.join(world.a, booking_path(booking), mentor_key)
            learner, learner_joined = await sockets.join(world.a, booking_path(booking), learner_key)
            await frame_of_type(mentor, "peer.joined")
            rows = await in_db(attendance)
            assert len(rows) == 2 and all(row["joined_at"] and row["left_at"] is None for row in rows)

            await learner.send_json_to({"type": "leave"})
            assert await closed(learner) == 1000
            assert await frame(mentor) == {"type": "peer.left", "peer_id": learner_joined["peer_id"]}
            left = {row["user_id"]: row["left_at"] for row in await in_db(attendance)}
            assert left[booking.learner_id] is not None and left[booking.mentor.user_id] is None

            # A dropped socket is a departure too; the learner comes back as a new peer.
            learner, again = await sockets.join(world.a, booking_path(booking), learner_key)
            assert again["peer_id"] != learner_joined["peer_id"]
            assert (await frame(mentor))["peer"]["peer_id"] == again["peer_id"]
            await learner.disconnect(timeout=TIMEOUT)
            assert await frame(mentor) == {"type": "peer.left", "peer_id": again["peer_id"]}
            await mentor.disconnect(timeout=TIMEOUT)
            rows = await in_db(attendance)
            assert len(rows) == 3 and all(row["left_at"] >= row["joined_at"] for row in rows)

    run(scenario)


def test_the_mentor_ends_the_session_for_everyone(world, pair):
    booking, mentor_key, learner_key = pair

    async def scenario():
        async with Sockets() as sockets:
            mentor, _ = await sockets.join(world.a, booking_path(booking), mentor_key)
            learner, _ = await sockets.join(world.a, booking_path(booking), learner_key)
            await mentor.send_json_to({"type": "end"})
            for socket in (mentor, learner):
                assert await frame_of_type(socket, "session.ended") == {
                    "type": "session.ended",
                    "reason": "mentor",
                }
                assert await closed(socket) == 4410
            error, code = await sockets.refused(world.a, booking_path(booking), learner_key)
            assert (error["code"], code) == ("ended", 4410)

    run(scenario)


def test_the_room_closes_on_time_and_attendance_settles_the_booking(world):
    mentor, learner = world.mentor(world.a), world.person(world.a)
    # Ended 30 minutes ago less three seconds: the room closes three seconds from now.
    booking = world.booking(
        world.a, mentor, learner, starts_in=-timedelta(minutes=60, seconds=-3), minutes=30
    )
    keys = [world.sign_in(world.a, mentor), world.sign_in(world.a, learner)]

    def status():
        with tenant_context(world.a):
            return Booking.objects.get(pk=booking.pk).status

    async def scenario():
        async with Sockets() as sockets:
            joined = [(await sockets.join(world.a, booking_path(booking), key))[0] for key in keys]
            for socket in joined:
                ended = await frame_of_type(socket, "session.ended", timeout=3 + TIMEOUT)
                assert ended == {"type": "session.ended", "reason": "time"}
                assert await closed(socket) == 4410
                await socket.disconnect(timeout=TIMEOUT)
        assert await in_db(status) == "completed"

    run(scenario)


def test_the_mentor_coming_in_tells_the_learners_the_session_is_starting(world):
    mentor, first, second = world.mentor(world.a), world.person(world.a), world.person(world.a)
    session = world.group_session(world.a, mentor, [first, second], starts_in=timedelta(minutes=5))
    mentor_key, first_key, second_key = (world.sign_in(world.a, person) for person in (mentor, first, second))

    async def scenario():
        async with Sockets() as sockets:
            notified = []
            for key in (first_key, second_key, mentor_key):
                socket, accepted, _ = await sockets.connect(
                    host_of(world.a), "/ws/notifications/", session_key=key
                )
                assert accepted and (await frame(socket))["type"] == "ready"
                notified.append(socket)
            await sockets.join(world.a, group_path(session), mentor_key)
            for socket in notified[:2]:
                starting = await frame(socket)
                assert (starting["type"], starting["kind"], starting["room_id"]) == (
                    "session.starting",
                    "group",
                    session.pk,
                )
            assert await silent(notified[2])  # not the mentor

    run(scenario)
